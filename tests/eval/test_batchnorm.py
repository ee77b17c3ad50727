"""Precise BN: statistics re-estimated on the evaluation's train clips, on a copy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tests.eval.conftest import CLIPS
from vidssl.eval import EvalConfig, evaluate
from vidssl.eval.batchnorm import batchnorm_layers, recompute_batchnorm
from vidssl.eval.config import FeatureConfig


class OneBN(nn.Module):
    """``forward_features``: a fixed 1x1x1 conv, then BatchNorm3d, then the mean."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 1, bias=False)
        self.bn = nn.BatchNorm3d(4)

    def forward_features(self, x):
        return self.bn(self.conv(x)).mean(dim=(2, 3, 4))


def test_recomputed_statistics_are_the_pooled_mean_and_variance():
    torch.manual_seed(0)
    model = OneBN()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    # batches of unequal size and very different content: the estimate does not depend on batching
    batches = [torch.randn(5, 3, 2, 4, 4) * 3 + 1, torch.randn(2, 3, 2, 4, 4) - 2, torch.randn(7, 3, 2, 4, 4)]
    copy, used = recompute_batchnorm(model, batches, num_batches=10, device="cpu")
    assert used == 3 and copy is not model and not copy.training
    with torch.no_grad():
        z = torch.cat([model.conv(b) for b in batches])                  # inputs of the BN layer
    per_channel = z.transpose(0, 1).reshape(4, -1).double()
    assert torch.allclose(copy.bn.running_mean.double(), per_channel.mean(1), atol=1e-5)
    assert torch.allclose(copy.bn.running_var.double(), per_channel.var(1, unbiased=False), atol=1e-4)
    # the caller's model: same weights and buffers, same mode
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # num_batches caps the pass
    _, used = recompute_batchnorm(model, iter(batches), num_batches=2, device="cpu")
    assert used == 2


def test_encoder_without_batchnorm_is_returned_as_is():
    lin = nn.Sequential(nn.Conv3d(3, 2, 1), nn.LayerNorm(2))
    out, used = recompute_batchnorm(lin, [torch.randn(2, 3, 1, 1, 2)], num_batches=5, device="cpu")
    assert out is lin and used == 0 and batchnorm_layers(lin) == []


def _config(mode: str) -> EvalConfig:
    cfg = EvalConfig(features=FeatureConfig(num_clips=2, batch_size=16, num_workers=0, **CLIPS), device="cpu")
    cfg.bn.mode, cfg.bn.batch_size = mode, 4
    cfg.linear.max_iter = 100
    return cfg


def test_evaluate_recompute_per_split_and_records_the_mode(small_synthetic, tiny_encoder, monkeypatch):
    import vidssl.eval.cache as cache

    calls = []
    real = cache.extract_features

    def counting(encoder, index, **kw):
        calls.append((len(index), encoder))
        return real(encoder, index, **kw)

    monkeypatch.setattr(cache, "extract_features", counting)
    state = {k: v.clone() for k, v in tiny_encoder.state_dict().items()}
    keep = evaluate(tiny_encoder, dataset="synthetic", root=small_synthetic, splits=[1], protocols="knn",
                    config=_config("keep"), progress=False)
    rec = evaluate(tiny_encoder, dataset="synthetic", root=small_synthetic, splits=[1, 2], protocols="knn",
                   config=_config("recompute"), progress=False)
    assert calls[0][1] is tiny_encoder
    assert [n for n, _ in calls[1:]] == [18, 18] and all(e is not tiny_encoder for _, e in calls[1:])
    assert calls[1][1] is not calls[2][1]                       # one re-estimated copy per split
    assert all(torch.equal(state[k], v) for k, v in tiny_encoder.state_dict().items())
    assert keep.info["bn"]["recomputed"] is False and rec.info["bn"]["recomputed"] is True
    assert rec.info["bn"]["batches"] == {"1": 6, "2": 6}       # 12 train videos x 2 clips / 4
    assert any(n.startswith("BatchNorm: recompute") for n in rec.info["notes"])
    assert any(n.startswith("BatchNorm: keep") for n in keep.info["notes"])
    # different statistics, different features: kNN sees other neighbours (scores differ)
    a = np.asarray(keep.info["per_video"]["1"]["knn"]["outcomes"]["top1"])
    assert a.shape == (6,) and rec.info["per_video"]["1"]["knn"]["videos"] == keep.info["per_video"]["1"]["knn"]["videos"]


def test_bad_bn_mode_is_one_line(small_synthetic, tiny_encoder):
    from vidssl.errors import ConfigError

    cfg = _config("train")
    with pytest.raises(ConfigError, match="bn.mode"):
        evaluate(tiny_encoder, dataset="synthetic", root=small_synthetic, splits=[1], protocols="knn", config=cfg)
