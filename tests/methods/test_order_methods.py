"""VCOP (+ Shuffle & Learn) and O3N: CPU training steps, heads against hand-written references,
labels that round-trip through the samplers, and pretexts a time-aware encoder can solve."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from vidssl.data.samplers import OddOneOutSampler, ShuffleLearnSampler, VCOPSampler
from vidssl.data.samplers.order import permutation_from_id
from vidssl.data.transforms import Compose, ToFloat, ToModelLayout
from vidssl.errors import ConfigError
from vidssl.methods import create_method, list_methods
from vidssl.methods.common import encode_elements
from vidssl.methods.o3n import SumOfDifferencesHead
from vidssl.methods.vcop import OrderHead
from vidssl.models.encoders import Preprocess, create_encoder

B, SIDE, CROP = 4, 40, 32
VCOP_SMALL = dict(clip_len=4, interval=2, crop_size=CROP, hidden_dim=32)
SL_SMALL = dict(tuple_of="frames", min_gap=1, max_gap=3, crop_size=CROP)
O3N_SMALL = dict(num_elements=4, element_len=4, crop_size=CROP)
CASES = [("vcop", VCOP_SMALL, "order"), ("vcop", SL_SMALL, "in_order"), ("o3n", O3N_SMALL, "odd")]


def batch_for(method, key: str, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    views = [torch.randint(0, 256, (B, t, 3, SIDE, SIDE), dtype=torch.uint8, generator=g)
             for t in method.sampler.view_lengths]
    classes = method.head.fc.out_features
    return {"views": views, "targets": {key: torch.randint(0, classes, (B,), generator=g)}}


def test_registered():
    assert {"vcop", "o3n"} <= set(list_methods())


@pytest.mark.parametrize("name,params,key", CASES)
def test_two_cpu_steps_train_the_encoder(name, params, key):
    torch.manual_seed(0)
    method = create_method(name, create_encoder("r3d_tiny"), params)
    method.train()
    before = {k: v.detach().clone() for k, v in method.encoder.state_dict().items() if v.is_floating_point()}
    opt = torch.optim.SGD(method.parameters(), lr=0.05, momentum=0.9)
    for step in range(2):
        out = method(batch_for(method, key, seed=step))
        assert set(out) == {"loss", "acc", "chance"} and torch.isfinite(out["loss"])
        opt.zero_grad()
        out["loss"].backward()
        assert all(p.grad is not None for p in method.encoder.parameters())
        assert all(p.grad is not None for p in method.head.parameters())
        opt.step()
    assert any(not torch.equal(v, before[k]) for k, v in method.encoder.state_dict().items() if k in before)


@pytest.mark.parametrize("name,params,key", CASES)
def test_wrong_views_or_missing_targets_are_clear_errors(name, params, key):
    method = create_method(name, create_encoder("r3d_tiny"), params)
    batch = batch_for(method, key)
    with pytest.raises(ValueError, match="expects"):
        method({**batch, "views": batch["views"][:-1]})
    with pytest.raises(ValueError, match=key):
        method({**batch, "targets": {}})


def test_sizes_from_the_samplers():
    vcop = create_method("vcop", create_encoder("r3d_tiny"), {})
    assert isinstance(vcop.sampler, VCOPSampler)
    assert vcop.sampler.view_lengths == (16, 16, 16) and vcop.sampler.interval == 8
    assert vcop.head.fc.out_features == 6 and vcop.head.pair_fc.out_features == 512
    sl = create_method("vcop", create_encoder("r3d_tiny"), {"tuple_of": "frames"})
    assert isinstance(sl.sampler, ShuffleLearnSampler) and sl.head.fc.out_features == 2
    o3n = create_method("o3n", create_encoder("r3d_tiny"), {})
    assert isinstance(o3n.sampler, OddOneOutSampler) and o3n.head.fc.out_features == 6


@pytest.mark.parametrize("name,params", [("vcop", {"tuple_of": "pairs"}), ("vcop", {"num_clips": 1}),
                                         ("vcop", {"hidden_dim": 0}), ("o3n", {"fusion": "max"}),
                                         ("o3n", {"window_scale": 0.5}), ("o3n", {"num_elements": 1})])
def test_bad_params_are_config_errors(name, params):
    with pytest.raises(ConfigError, match=f"method '{name}'"):
        create_method(name, create_encoder("r3d_tiny"), params)


# ---------------------------------------------------------------- heads vs hand-written references


def test_pairwise_order_head_matches_a_loop():
    torch.manual_seed(0)
    head = OrderHead(5, 4, 24, hidden_dim=3, dropout=0.0).eval()
    f = torch.randn(2, 4, 5)
    expect = []
    for b in range(2):
        pieces = [torch.relu(head.pair_fc.weight @ torch.cat([f[b, i], f[b, j]]) + head.pair_fc.bias)
                  for i, j in itertools.combinations(range(4), 2)]
        expect.append(head.fc.weight @ torch.cat(pieces) + head.fc.bias)
    torch.testing.assert_close(head(f), torch.stack(expect))
    concat = OrderHead(5, 3, 2, dropout=0.0, fusion="concat").eval()
    g = torch.randn(2, 3, 5)
    torch.testing.assert_close(concat(g), g.flatten(1) @ concat.fc.weight.T + concat.fc.bias)


def test_sum_of_differences_matches_the_double_sum():
    torch.manual_seed(0)
    head = SumOfDifferencesHead(5, 6, dropout=0.0).eval()
    v = torch.randn(3, 6, 5)
    fused = sum(v[:, j] - v[:, i] for i in range(6) for j in range(i + 1, 6))
    torch.testing.assert_close(head(v), fused @ head.fc.weight.T + head.fc.bias)
    mlp = SumOfDifferencesHead(5, 6, dropout=0.0, hidden_dim=7).eval()
    h = torch.relu(v @ mlp.element[0].weight.T + mlp.element[0].bias)
    fused = sum(h[:, j] - h[:, i] for i in range(6) for j in range(i + 1, 6))
    torch.testing.assert_close(mlp(v), fused @ mlp.fc.weight.T + mlp.fc.bias)


def test_shared_draw_keeps_one_crop_per_question():
    """per_element=False: every element of a video gets the same crop (checked with an encoder
    that returns the clip itself)."""

    class Flat(torch.nn.Module):
        def forward_features(self, x):
            return x.flatten(1)

    from vidssl.data.transforms import RandomResizedCrop
    aug = Compose([RandomResizedCrop(8, scale=(0.2, 0.5)), ToModelLayout()])
    frame = torch.randint(0, 256, (2, 1, 3, 20, 20), dtype=torch.uint8)
    views = [frame.expand(2, 2, 3, 20, 20)] * 3      # identical elements
    torch.manual_seed(0)
    shared = encode_elements(Flat(), aug, views, per_element=False)   # (B, 3, D)
    assert all(torch.equal(shared[:, 0], shared[:, k]) for k in (1, 2))
    torch.manual_seed(0)
    own = encode_elements(Flat(), aug, views, per_element=True)
    assert not all(torch.equal(own[:, 0], own[:, k]) for k in (1, 2))


# ---------------------------------------------------------------- labels round-trip, pretexts solvable


class FrameTimeEncoder(torch.nn.Module):
    """Per clip: the time value of each frame (a video whose frame ``t`` is filled with ``t``)."""

    num_features = 4
    preprocess = Preprocess()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T, H, W) in [0, 1]
        t = x.mean(dim=(1, 3, 4)) * 255.0
        return torch.stack([t.mean(1), t[:, 0], t[:, -1], (t.diff(dim=1).clamp(max=0)).sum(1)], 1) / 50.0


def time_video(n: int = 48) -> np.ndarray:
    return np.arange(n, dtype=np.uint8)[:, None, None, None].repeat(3, 1).repeat(4, 2).repeat(4, 3)


def sampled_batch(method, videos: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    video = torch.from_numpy(time_video())
    draws = [method.sampler(48, 16.0, rng) for _ in range(videos)]
    views = [torch.stack([video[torch.as_tensor(np.array(d.views[k]))] for d in draws]) for k in range(len(draws[0].views))]
    targets = {k: torch.as_tensor(np.stack([np.asarray(d.targets[k]) for d in draws])) for k in draws[0].targets}
    return {"views": views, "targets": targets}


def test_vcop_permutation_round_trips():
    """Presented view k is original clip perm[k]; undoing the order id restores time order."""
    sampler = VCOPSampler(clip_len=4, interval=2, num_clips=3)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):
        d = sampler(48, 16.0, rng)
        perm = permutation_from_id(3, d.targets["order"])
        np.testing.assert_array_equal(perm, d.targets["permutation"])
        starts = np.array([v[0] for v in d.views])
        assert np.all(np.diff(starts[np.argsort(perm)]) > 0)
        seen.add(d.targets["order"])
    assert seen == set(range(6))


@pytest.mark.parametrize("name,params", [("vcop", dict(clip_len=4, interval=2, crop_size=4, hidden_dim=32)),
                                         ("o3n", dict(num_elements=4, element_len=4, crop_size=4, element_hidden_dim=32))])
def test_head_learns_the_pretext_from_time_features(name, params):
    """With features that say *when* each frame is, the head reaches high accuracy on the
    sampler's own labels: the labels the sampler writes are the ones the views encode."""
    torch.manual_seed(0)
    method = create_method(name, FrameTimeEncoder(), {**params, "dropout": 0.0})
    method.augment = Compose([ToFloat(), ToModelLayout()])
    opt = torch.optim.Adam(method.head.parameters(), lr=0.02)
    for step in range(300):
        out = method(sampled_batch(method, 64, step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    method.eval()
    with torch.no_grad():
        acc = method(sampled_batch(method, 256, 10_000))["acc"].item()
    assert acc > 0.9, acc
