"""Test-view layouts named after their sources, crops, and the trained presets' augmentations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidssl.errors import ConfigError
from vidssl.eval.augment import (RandomErasePixels, RandomSquareCrop, build_augment, mix_batch, soft_targets)
from vidssl.eval.classify import class_mapping, normalise_class_name
from vidssl.eval.features import extract_features, spatial_crops
from vidssl.eval.retrieval import retrieval_hits
from vidssl.eval.views import SlidingWindowSampler, TCLRClipSampler, ViewSpec


def test_tclr_clip_starts_follow_the_released_linspace():
    s = TCLRClipSampler(16, 2, 10)
    # N = 150: int(linspace(0, 150 - 32 - 10, 10)) = 0, 12, 24, 36, 48, 60, 72, 84, 96, 108
    assert s.clip_starts(150).tolist() == [int(v) for v in np.linspace(0, 108, 10)]
    # a short video: negative starts become the clip number (as released)
    assert s.clip_starts(35).tolist() == [0, 0, 2, 3, 4, 5, 6, 7, 8, 9]   # int(-0.78) = 0
    clips = s(40, 25.0, np.random.default_rng(0))
    assert len(clips.views) == 10 and all(v.max() < 40 for v in clips.views)


def test_sliding_windows_every_step_and_capped():
    s = SlidingWindowSampler(32, 1, 15, max_clips=64)
    assert s.clip_starts(100).tolist() == [0, 15, 30, 45, 60]        # last window ends at 92 <= 100
    assert s.clip_starts(20).tolist() == [0]                          # shorter than a window: one
    assert len(SlidingWindowSampler(32, 1, 15, max_clips=4).clip_starts(1000)) == 4
    with pytest.raises(ConfigError):
        ViewSpec(clip_len=4, stride=1, size=32, resize_size=16)
    with pytest.raises(ConfigError):
        ViewSpec(clip_len=4, stride=1, size=8, resize_size=16, layout="random")


def test_five_and_ten_crops():
    frame = torch.arange(6 * 8, dtype=torch.float32).view(1, 1, 6, 8)
    five = spatial_crops(frame, 4, 5)
    assert [c[0, 0, 0, 0].item() for c in five] == [0.0, 4.0, 16.0, 20.0, 10.0]   # TL TR BL BR centre
    ten = spatial_crops(frame, 4, 10)
    assert len(ten) == 10 and torch.equal(ten[5], five[0].flip(-1))


def test_variable_clip_counts_extract_a_mean_over_views(small_synthetic, tiny_encoder):
    from vidssl.data.index import build_index

    ix = build_index("synthetic", small_synthetic, split=1, subset="test", progress=False)
    kw = dict(clip_len=4, stride=1, size=32, resize_size=32, num_workers=0, progress=False, num_crops=1)
    fs = extract_features(tiny_encoder, ix, sampler=SlidingWindowSampler(4, 1, 5, 64), **kw)
    per = extract_features(tiny_encoder, ix, sampler=SlidingWindowSampler(4, 1, 5, 64), pooling="mean_l2", **kw)
    assert fs.features.shape == (6, tiny_encoder.num_features) and fs.clip_features is None
    assert not torch.allclose(fs.features, per.features)
    one = extract_features(tiny_encoder, ix, num_clips=3, keep_clip_features=True, token_grid=(1, 1, 1),
                           **{k: v for k, v in kw.items() if k != "stride"}, stride=2)
    assert one.tokens.shape[:3] == (6, 3, 1) and one.tokens.dtype == torch.float16
    assert torch.allclose(one.tokens.float().mean(dim=(2, 3)), one.clip_features, atol=1e-2)


def test_each_set_centred_by_its_own_mean():
    rng = np.random.default_rng(0)
    g, q = rng.normal(size=(20, 5)) + 3, rng.normal(size=(8, 5)) - 1
    gy, qy = rng.integers(0, 3, 20), rng.integers(0, 3, 8)
    res = retrieval_hits(g, gy, q, qy, ks=[1], center="each")
    gc, qc = g - g.mean(0), q - q.mean(0)
    gc /= np.linalg.norm(gc, axis=1, keepdims=True)
    qc /= np.linalg.norm(qc, axis=1, keepdims=True)
    nn1 = (qc @ gc.T).argmax(1)
    assert res.hits[1] == pytest.approx(np.mean(gy[nn1] == qy)) and res.centered == "each"
    assert res.outcomes()["hit@1"].tolist() == (gy[nn1] == qy).astype(float).tolist()


def test_square_crop_and_recipes():
    crop = RandomSquareCrop(16, (0.6, 1.0))
    p = crop.sample_params((200, 2, 3, 48, 64), torch.Generator().manual_seed(0))
    top, left, h, w = p["boxes"].unbind(1)
    assert torch.equal(h, w) and (h >= 28).all() and (h <= 48).all()
    assert (top + h <= 48).all() and (left + w <= 64).all() and left.max() > 16
    x = torch.randint(0, 255, (3, 4, 3, 40, 50), dtype=torch.uint8)
    for name in ("tclr_linear", "coclr_linear", "cvrl_linear", "videomae_finetune"):
        out = build_augment(name, 32, (0.5,) * 3, (0.25,) * 3, torch.Generator().manual_seed(1))(x)
        assert out.shape == (3, 3, 4, 32, 32) and out.dtype == torch.float32, name
    with pytest.raises(ConfigError, match="recipe"):
        build_augment("simclr", 32, (0,) * 3, (1,) * 3)


def test_random_erasing_is_per_frame_noise():
    x = torch.zeros(2, 6, 3, 32, 32)
    out = RandomErasePixels(p=1.0)(x, torch.Generator().manual_seed(0))
    erased = (out != 0).flatten(2).any(dim=2)                 # (B, T): each frame erased on its own
    assert erased.all()
    masks = (out != 0).any(dim=2)
    assert not torch.equal(masks[0, 0], masks[0, 1])          # different boxes on different frames


def test_mixup_cutmix_targets():
    y = torch.tensor([0, 1, 2, 1])
    t = soft_targets(y, 3, 0.1)
    assert torch.allclose(t.sum(1), torch.ones(4)) and t[0, 0] == pytest.approx(1 - 0.1 + 0.1 / 3)
    x = torch.rand(4, 3, 2, 8, 8)
    for kw in ({"mixup": 0.8, "cutmix": 0.0}, {"mixup": 0.0, "cutmix": 1.0}):
        xm, tm = mix_batch(x, y, 3, smoothing=0.1, generator=torch.Generator().manual_seed(3), **kw)
        assert xm.shape == x.shape and torch.allclose(tm.sum(1), torch.ones(4))
        assert not torch.allclose(tm, t)                       # mixed with the reversed batch
    same, tt = mix_batch(x, y, 3, mixup=0.0, cutmix=0.0)
    assert same is x and torch.allclose(tt, soft_targets(y, 3))


def test_class_names_match_across_spellings():
    assert normalise_class_name("ApplyEyeMakeup") == normalise_class_name("apply_eye makeup")
    m = class_mapping(["b", "Extra", "A"], ["a", "B"])
    assert m.tolist() == [1, -1, 0]
    with pytest.raises(ConfigError, match="no class for 1"):
        class_mapping(["a"], ["a", "c"])
