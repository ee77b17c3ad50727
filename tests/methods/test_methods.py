"""CVRL and TCLR (+ pinned runs of VCOP, O3N, DPC): CPU training steps with ``r3d_tiny``, pinned short runs, params validation,
augmentation recipes, and the contract the trainer relies on."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from vidssl.data.samplers import CVRLIntervalSampler, TCLRSampler
from vidssl.data.transforms import Compose, ToFloat, ToModelLayout, cvrl_augment
from vidssl.errors import ConfigError
from vidssl.methods import create_method, list_methods, method_params
from vidssl.methods.cvrl import CVRLParams, cvrl_view_augment
from vidssl.data.transforms import RandomChannelDrop, RandomErase
from vidssl.methods.tclr import TCLRParams, temporal_slices
from vidssl.models.encoders import Preprocess, create_encoder

B, SIDE, CROP = 4, 40, 32
CVRL_SMALL = dict(crop_size=CROP, clip_len=8, stride=2, hidden_dim=64)
TCLR_SMALL = dict(crop_size=CROP, num_frames=16, global_stride=1)  # local clips: 4 x 4 frames
VCOP_SMALL = dict(crop_size=CROP, clip_len=4, interval=2, hidden_dim=32)
O3N_SMALL = dict(crop_size=CROP, num_elements=4, element_len=4, element_hidden_dim=32)
DPC_SMALL = dict(crop_size=CROP, num_blocks=5, block_len=4, frame_step=1, pred_steps=2)
COCLR_SMALL = dict(crop_size=CROP, num_frames=4, queue_size=8, topk=2, proj_dim=16, temperature=1.0)
LSS_SMALL = dict(crop_size=CROP, global_frames=4, global_stride=2, num_local=2, local_frames=2, local_stride=2,
                 clip_model="vidssl-tiny-clip", clip_pretrained=None, vocabulary="synthetic", head_hidden_dim=32,
                 concept_mode="classes", attributes=None, alignment="entropy")  # no attribute file needed
SMALL = {"cvrl": CVRL_SMALL, "tclr": TCLR_SMALL, "vcop": VCOP_SMALL, "o3n": O3N_SMALL, "dpc": DPC_SMALL,
         "coclr": COCLR_SMALL, "lss": LSS_SMALL}


def uint8_views(lengths, seed: int = 0, batch: int = B) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (batch, t, 3, SIDE, SIDE), dtype=torch.uint8, generator=g) for t in lengths]


def build(name: str, params: dict):
    enc = create_encoder("r3d_tiny", temporal_dilation_last_stage=(name == "tclr"))
    return create_method(name, enc, params)


def batch_for(method, seed: int = 0) -> dict:
    """Random views; methods with a classification pretext (``target_key``) get random labels."""
    targets = {}
    if hasattr(method, "target_key"):
        g = torch.Generator().manual_seed(seed)
        targets[method.target_key] = torch.randint(0, method.head.fc.out_features, (B,), generator=g)
    return {"views": uint8_views(method.sampler.view_lengths, seed), "targets": targets}


# ---------------------------------------------------------------- the trainer's contract


def test_registered():
    assert {"cvrl", "tclr", "lss"} <= set(list_methods())


@pytest.mark.parametrize("name,params", [("cvrl", CVRL_SMALL), ("tclr", TCLR_SMALL), ("lss", LSS_SMALL)])
def test_two_cpu_steps_train_the_encoder(name, params):
    torch.manual_seed(0)
    method = build(name, params)
    method.train()
    before = {k: v.detach().clone() for k, v in method.encoder.state_dict().items() if v.is_floating_point()}
    opt = torch.optim.SGD(method.parameters(), lr=0.05, momentum=0.9)
    for step in range(2):
        out = method(batch_for(method, seed=step))
        assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
        assert all(v.ndim == 0 and torch.isfinite(v) for v in out.values())
        opt.zero_grad()
        out["loss"].backward()
        grads = [p.grad for p in method.encoder.parameters()]
        assert all(g is not None for g in grads), "some encoder parameter got no gradient"
        assert sum(float(g.abs().sum()) for g in grads) > 0
        assert all(p.grad is not None for p in method.head.parameters())
        opt.step()
    changed = [k for k, v in method.encoder.state_dict().items() if k in before and not torch.equal(v, before[k])]
    assert any(k.endswith("weight") for k in changed)


def test_cvrl_outputs_and_sampler():
    method = build("cvrl", CVRL_SMALL)
    assert isinstance(method.sampler, CVRLIntervalSampler)
    assert method.sampler.view_lengths == (8, 8) and method.sampler.stride == 2
    batch = batch_for(method)
    batch["targets"] = {"interval": torch.tensor([0, 3, 5, 8])}
    out = method(batch)
    assert {"loss", "acc", "pos_sim", "neg_sim", "interval"} <= set(out)
    assert out["interval"].item() == pytest.approx(4.0)
    assert 0.0 <= out["acc"].item() <= 1.0
    with pytest.raises(ValueError, match="2 views"):
        method({"views": batch["views"][:1], "targets": {}})


def test_tclr_outputs_view_order_and_weights():
    torch.manual_seed(0)
    method = build("tclr", {**TCLR_SMALL, "loss_weights": "mean"})   # weights over plain means
    assert isinstance(method.sampler, TCLRSampler)
    assert method.sampler.view_names == ("global", "local0", "local1", "local2", "local3")
    assert method.sampler.view_lengths == (16, 4, 4, 4, 4)
    method.eval()  # BN in eval mode: the same input gives the same embeddings twice
    batch = batch_for(method)
    torch.manual_seed(1)
    out = method(batch)
    for key in ("loss_ic", "loss_ic_global", "loss_ic_local", "loss_ll", "loss_gl", "acc", "acc_ll", "acc_gl"):
        assert key in out
    assert out["loss_ic"].item() == pytest.approx(out["loss_ic_global"].item() + out["loss_ic_local"].item(), rel=1e-5)
    assert out["loss"].item() == pytest.approx(
        out["loss_ic"].item() + out["loss_ll"].item() + out["loss_gl"].item(), rel=1e-5)
    weighted = create_method("tclr", method.encoder, {**TCLR_SMALL, "loss_weights": "mean", "ic_weight": 0.0,
                                                      "ll_weight": 2.0, "gl_weight": 0.5})
    weighted.head.load_state_dict(method.head.state_dict())
    weighted.eval()
    torch.manual_seed(1)
    out_w = weighted(batch)
    assert out_w["loss"].item() == pytest.approx(2 * out["loss_ll"].item() + 0.5 * out["loss_gl"].item(), rel=1e-4)
    with pytest.raises(ValueError, match="5 views"):
        method({"views": batch["views"][:4], "targets": {}})


def test_tclr_needs_slices_divisible_by_num_local():
    method = build("tclr", TCLR_SMALL)
    method.encoder = create_encoder("r3d_tiny")  # no dilation: 16 frames -> 2 positions < 4
    with pytest.raises(ValueError, match="temporal_dilation_last_stage"):
        method(batch_for(method))
    fm = torch.randn(2, 5, 8, 3, 3)
    torch.testing.assert_close(temporal_slices(fm, 4), fm.mean(dim=(3, 4)).view(2, 5, 4, 2).mean(-1).transpose(1, 2))
    torch.testing.assert_close(temporal_slices(fm[:, :, :4], 4), fm[:, :, :4].mean(dim=(3, 4)).transpose(1, 2))


class TimeOnlyEncoder(torch.nn.Module):
    """Feature map ``(B, 16, T, 1, 1)``: Fourier features of each frame's mean value, i.e. of the
    frame's position in the video when frame ``t`` is filled with ``3 t`` (no downsampling)."""

    num_features = 16
    preprocess = Preprocess()

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        v = x.mean(dim=(1, 3, 4))[..., None] * (2 * math.pi * torch.arange(1, 9))  # (B, T, 8)
        return torch.cat([v.cos(), v.sin()], dim=-1).permute(0, 2, 1)[..., None, None]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_feature_map(x).mean(dim=(2, 3, 4))


def test_tclr_pairs_slices_with_the_right_local_clips():
    """Plumbing check: with an encoder that only sees *when* a frame is, no augmentation and no
    head, slice k of the global clip is closest to local clip k (GL accuracy 1), each local clip
    to itself under the other draw (LL accuracy 1) and each global clip to its own video."""
    method = create_method("tclr", TimeOnlyEncoder(), {"num_frames": 16, "global_stride": 2, "crop_size": 8})
    method.augment = torch.nn.ModuleList([Compose([ToFloat(), ToModelLayout()])] * 2)
    method.head = torch.nn.Identity()
    video = (3 * torch.arange(48, dtype=torch.uint8)).view(48, 1, 1, 1).expand(48, 3, 8, 8)
    rng = np.random.default_rng(0)
    draws = [method.sampler(48, 16.0, rng) for _ in range(B)]
    views = [torch.stack([video[torch.tensor(d.views[v])] for d in draws]) for v in range(5)]
    out = method({"views": views, "targets": {}})
    assert out["acc_gl"].item() == 1.0
    assert out["acc_ll"].item() == 1.0
    starts = {int(d.views[0][0]) for d in draws}
    if len(starts) == B:  # distinct videos: each global clip matches its own other draw
        assert out["acc"].item() == 1.0


def test_tclr_loss_weights_paper_is_the_authors_sum_and_mean_the_plain_sum():
    """``loss_weights: paper`` (default) = IC_global + 14 IC_local + B LL + 16 GL (the authors'
    train_gen_all_step.py sums, K = 4, B = 4 videos); ``mean`` = IC + LL + GL."""
    for weights in ("paper", "mean"):
        torch.manual_seed(0)
        method = build("tclr", {**TCLR_SMALL, "loss_weights": weights})
        out = method(batch_for(method))
        c = (1, 14, B, 16) if weights == "paper" else (1, 1, 1, 1)
        expect = (c[0] * out["loss_ic_global"] + c[1] * out["loss_ic_local"] + c[2] * out["loss_ll"]
                  + c[3] * out["loss_gl"])
        assert out["loss"].item() == pytest.approx(expect.item(), rel=1e-5)
    assert method_params("tclr").loss_weights == "paper"


def test_tclr_head_normalises_each_slice_on_its_own():
    """slice_bn: per_slice (default, the authors' mlp.py) runs the head once per slice index:
    slice j's embedding is the head on slice j alone (its own batch statistics), and the BN
    running statistics take K updates; "shared" normalises all slices together."""
    torch.manual_seed(0)
    method = build("tclr", TCLR_SMALL).train()
    assert method.params.slice_bn == "per_slice"
    slices = torch.randn(6, 4, method.encoder.num_features) * torch.arange(1.0, 5.0).view(1, 4, 1)
    bn = method.head.bn1
    before = int(bn.num_batches_tracked)
    z = method.embed_slices(slices)
    assert z.shape == (6, 4, 128) and int(bn.num_batches_tracked) == before + 4
    for j in range(4):
        torch.testing.assert_close(z[:, j], method.head(slices[:, j]))
    method.params.slice_bn = "shared"
    shared = method.embed_slices(slices)
    torch.testing.assert_close(shared, method.head(slices.flatten(0, 1)).view(6, 4, -1))
    assert not torch.allclose(shared, z, atol=1e-3)


def test_tclr_with_cvrl_augmentation_and_same_clip_pairs():
    torch.manual_seed(0)
    method = build("tclr", {**TCLR_SMALL, "augment": "cvrl", "ic_local_pairs": "same_clip"})
    out = method(batch_for(method))
    assert torch.isfinite(out["loss"])


# ---------------------------------------------------------------- pinned short runs


def pinned_run(name: str, params: dict, steps: int = 3) -> list[float]:
    """Losses of three seeded plain-SGD steps (lr 0.01, no momentum: a large or momentum step
    turns float rounding into percent-level differences by step 3, see PINNED_RTOL)."""
    torch.manual_seed(1234)
    method = build(name, params)
    opt = torch.optim.SGD(method.parameters(), lr=0.01)
    losses = []
    for step in range(steps):
        out = method(batch_for(method, seed=100 + step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(f"{out['loss'].item():.6g}"))
    return losses


# Regenerate with: python -c "from tests.methods.test_methods import *; print(pinned_run('cvrl', CVRL_SMALL))"
PINNED = {
    "cvrl": [5.84373, 4.44213, 5.55853],       # blur sigma scaled with the crop (issue 21)
    "cvrl_fixed_blur": [5.12563, 4.21226, 7.64737],   # blur_sigma: fixed (before issue 21)
    "tclr": [87.6372, 106.112, 122.63],        # loss_weights: paper, slice_bn: per_slice (issue 21)
    "tclr_mean_shared": [10.2138, 11.8462, 11.4293],   # loss_weights: mean, slice_bn: shared (before issue 21)
    "vcop": [1.51729, 1.79433, 1.74436],
    "o3n": [2.10921, 1.4153, 1.18865],
    "dpc": [3.75371, 4.11393, 3.89897],
    "dpc_feature_map": [3.55969, 3.54539, 3.62486],   # targets: feature_map (before issue 21), tests/methods/test_dpc.py
    "coclr": [1.42624, 1.37458, 1.39537],      # shuffle BN over 2 sub-batches, bn_splits: 2 (issue 21)
    "coclr_one_bn_batch": [1.40172, 1.42088, 1.40077],   # bn_splits: 1 (before issue 21)
    "lss": [1.31837, 1.24696, 1.24667],
}
# Relative tolerance per step. Float rounding differs between CPUs (ATen's vectorised kernels:
# default / AVX2 / AVX512), thread counts and torch releases, and each SGD step amplifies it.
# Largest deviation from PINNED measured over ATEN_CPU_CAPABILITY=default|avx2|avx512 x 1-2
# threads on torch 2.14.1, and on torch 2.9.1 and 2.15.0 (docs/install.md, "Supported versions"):
# step 1 3.9e-6, step 2 2.8e-4, step 3 2.6e-3 (TCLR). The tolerances are 4-25x those; a change
# of sampler, augmentation, head, loss or initialisation moves step 1 by far more.
PINNED_RTOL = (1e-4, 2e-3, 1e-2)
# CVRL with its blur sigma scaled to the 32-px crop (issue 21) amplifies rounding more by step 3:
# 5.43319 with ATEN_CPU_CAPABILITY=default (1 and 2 threads) vs 5.5585 with AVX2 / AVX512 (2.3%),
# while steps 1-2 agree to 8e-6 / 8e-5 (the augmented inputs agree to 3e-5).
PINNED_RTOL_FOR = {"cvrl": (1e-4, 2e-3, 5e-2)}


def check_pinned(name: str, losses: list[float]) -> None:
    rtols = PINNED_RTOL_FOR.get(name, PINNED_RTOL)
    for step, (got, want, rtol) in enumerate(zip(losses, PINNED[name], rtols), 1):
        assert got == pytest.approx(want, rel=rtol), (
            f"{name} step {step}: loss {got} vs pinned {want} (rtol {rtol}); all steps: {losses}")


@pytest.mark.parametrize("name,params", list(SMALL.items()))
def test_pinned_short_run(name, params):
    """Three seeded SGD steps: a change of sampler, augmentation, head, loss or encoder numerics
    moves these values beyond what CPU kernels and torch releases move them (PINNED_RTOL)."""
    check_pinned(name, pinned_run(name, params))


# Options that restore a default from before issue 21 give that default's pinned values.
PREVIOUS_DEFAULTS = {
    "cvrl_fixed_blur": ("cvrl", {**CVRL_SMALL, "blur_sigma": "fixed"}),
    "tclr_mean_shared": ("tclr", {**TCLR_SMALL, "loss_weights": "mean", "slice_bn": "shared"}),
    "coclr_one_bn_batch": ("coclr", {**COCLR_SMALL, "bn_splits": 1}),
}


@pytest.mark.parametrize("key", sorted(PREVIOUS_DEFAULTS))
def test_options_reproduce_the_previous_defaults(key):
    name, params = PREVIOUS_DEFAULTS[key]
    check_pinned(key, pinned_run(name, params))


@pytest.mark.slow
def test_pinned_values_hold_on_another_cpu_kernel_set():
    """The tolerances hold when ATen runs its portable (non-AVX) kernels, as on a CPU without
    AVX2: a stand-in for 'another machine' that this one can run."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import json; from tests.methods.test_methods import SMALL, pinned_run; "
            "print(json.dumps({n: pinned_run(n, p) for n, p in SMALL.items()}))")
    env = dict(os.environ, ATEN_CPU_CAPABILITY="default", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=Path(__file__).resolve().parents[2],
                         capture_output=True, text=True, check=True)
    for name, losses in json.loads(out.stdout.strip().splitlines()[-1]).items():
        check_pinned(name, losses)


# ---------------------------------------------------------------- params


def test_defaults_are_the_papers():
    c = method_params("cvrl")
    assert (c.clip_len, c.stride, c.crop_size, c.temperature) == (16, 2, 224, 0.1)
    assert (c.hidden_dim, c.num_hidden_layers, c.proj_dim) == (2048, 3, 128)
    assert c.blur_prob == (1.0, 0.1) and c.solarize_prob == (0.0, 0.2) and c.loss_reduction == "sum"
    t = method_params("tclr")
    assert (t.num_frames, t.global_stride, t.num_local, t.crop_size, t.temperature) == (16, 4, 4, 112, 0.1)
    assert (t.proj_dim, t.ic_weight, t.ll_weight, t.gl_weight, t.ic_local_pairs) == (128, 1.0, 1.0, 1.0, "all")
    assert (t.loss_weights, t.slice_bn) == ("paper", "per_slice")   # the authors' code (issue 21)
    assert TCLRSampler(16, 4, 4).view_lengths == build_sampler_lengths(t)


def build_sampler_lengths(t: TCLRParams) -> tuple[int, ...]:
    from vidssl.methods.tclr import build_sampler

    return build_sampler(t).view_lengths


@pytest.mark.parametrize("name,bad", [
    ("cvrl", {"temperature": 0.0}),
    ("cvrl", {"clip_len": 0}),
    ("cvrl", {"stride": 0}),
    ("cvrl", {"crop_scale": [0.9, 0.1]}),
    ("cvrl", {"blur_prob": [1.0, 1.5]}),
    ("cvrl", {"loss_reduction": "max"}),
    ("cvrl", {"blur_sigma": "tf"}),
    ("cvrl", {"hidden_dim": 0}),
    ("cvrl", {"unknown_key": 1}),
    ("cvrl", {"color_jitter": [0.8, 0.8, 0.8, 0.9]}),
    ("tclr", {"temperature": -1.0}),
    ("tclr", {"num_local": 3}),           # does not divide 16 * 4
    ("tclr", {"num_local": 1}),
    ("tclr", {"augment": "simclr"}),
    ("tclr", {"ic_local_pairs": "some"}),
    ("tclr", {"ll_weight": -1.0}),
    ("tclr", {"loss_weights": "sum"}),
    ("tclr", {"slice_bn": "per_clip"}),
    ("tclr", {"crop_size": 0}),
    ("tclr", {"short_video": "wrap"}),
])
def test_bad_params_are_config_errors(name, bad):
    with pytest.raises(ConfigError):
        method_params(name, bad)


@pytest.mark.parametrize("name,bad,message", [
    ("cvrl", {"crop_size": 0}, "method 'cvrl' at key 'method.params.crop_size': must be an int >= 1, got 0"),
    ("o3n", {"element_hidden_dim": -1}, "method 'o3n' at key 'method.params.element_hidden_dim': must be an int >= 0"),
    ("vcop", {"tuple_of": "pairs"}, "method 'vcop' at key 'method.params.tuple_of': must be one of ('clips', 'frames'), got 'pairs'"),
    ("dpc", {"similarity": "l2"}, "method 'dpc' at key 'method.params.similarity': must be one of"),
    ("coclr", {"stage": "moco"}, "method 'coclr' at key 'method.params.stage': must be one of"),
    ("lss", {"head_layers": 0}, "method 'lss' at key 'method.params.head_layers': must be an int >= 1, got 0"),
    ("tclr", {"temperature": -1.0}, "invalid parameter for method 'tclr': "),  # raised by the loss, no key
    ("cvrl", {"unknown_key": 1}, "method 'cvrl' at key 'method.params.unknown_key'"),
])
def test_bad_params_name_the_method_and_key_on_one_line(name, bad, message):
    with pytest.raises(ConfigError) as err:
        method_params(name, bad)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_params_round_trip_through_dict():
    p = method_params("tclr", {"crop_scale": [0.27, 0.75], "local_len": 8})
    assert p.crop_scale == (0.27, 0.75) and p.local_len == 8
    assert method_params("tclr", dataclasses.asdict(p)) == p


# ---------------------------------------------------------------- augmentations


def test_cvrl_pipeline_equals_the_preset_with_default_params():
    x = torch.randint(0, 256, (3, 4, 3, 48, 48), dtype=torch.uint8)
    p = CVRLParams(crop_size=32)
    for view in (0, 1):
        ours = cvrl_view_augment(p, view)(x, generator=torch.Generator().manual_seed(view))
        preset = cvrl_augment(32, view)(x, generator=torch.Generator().manual_seed(view))
        torch.testing.assert_close(ours, preset)


def test_augmentations_use_encoder_statistics_and_crop():
    method = build("tclr", TCLR_SMALL)
    norm = [t for t in method.augment[0].transforms if type(t).__name__ == "Normalize"][0]
    assert norm.mean == tuple(method.encoder.preprocess.mean)
    x = method.augment[0](uint8_views([8])[0])
    assert x.shape == (B, 3, 8, CROP, CROP) and x.dtype == torch.float32


def test_tclr_two_draws_differ_and_are_clip_consistent():
    method = build("tclr", TCLR_SMALL)
    still = uint8_views([1])[0].expand(B, 6, 3, SIDE, SIDE)  # every frame of a clip identical
    torch.manual_seed(0)
    x = method._two_draws(still)
    assert x.shape == (2 * B, 3, 6, CROP, CROP)
    assert not torch.allclose(x[:B], x[B:])
    torch.testing.assert_close(x[:, :, :1].expand_as(x), x)  # same draw on every frame


def test_channel_drop_and_erase():
    x = torch.rand(4, 3, 3, 20, 20) + 0.1
    drop = RandomChannelDrop(p=1.0)
    params = drop.sample_params(x.shape, torch.Generator().manual_seed(0))
    y = drop.apply(x, params)
    for b in range(4):
        c = int(params["channel"][b])
        assert (y[b, :, c] == 0).all()
        others = [k for k in range(3) if k != c]
        torch.testing.assert_close(y[b][:, others], x[b][:, others])
    erase = RandomErase(p=1.0, size=(0.25, 0.25))
    params = erase.sample_params(x.shape, torch.Generator().manual_seed(1))
    y = erase.apply(x, params)
    for b in range(4):
        zero = y[b] == 0
        assert zero.any()
        assert (zero == zero[:1, :1]).all()  # same box on every frame and channel
        top, left = (int(v) for v in params["box"][b, :2])
        assert zero[0, 0, top, left]
        assert zero[0, 0].sum() <= 25
    assert torch.equal(RandomErase(p=0.0)(x), x)
    with pytest.raises(ValueError):
        RandomErase(size=(0.5, 0.2))
    with pytest.raises(ValueError):
        RandomChannelDrop(p=2.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name,params", [("cvrl", CVRL_SMALL), ("tclr", TCLR_SMALL)])
def test_cuda_step(name, params):
    torch.manual_seed(0)
    method = build(name, params).cuda()
    batch = {"views": [v.cuda() for v in batch_for(method)["views"]], "targets": {}}
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = method(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and out["loss"].device.type == "cuda"
