"""Finetuning: one CPU epoch on a handful of real videos runs and changes the weights."""

from __future__ import annotations

import pytest
import torch

from tests.eval.conftest import CLIPS
from vidssl.data.index import build_index
from vidssl.eval.config import FinetuneConfig
from vidssl.eval.finetune import finetune
from vidssl.runtime.optim import param_groups, warmup_cosine


def test_warmup_cosine_schedule():
    m = warmup_cosine(10, 2, peak_in_warmup=True)
    assert m[:2] == [0.5, 1.0] and m[2] == pytest.approx(1.0)
    assert m[-1] == pytest.approx(0.5 * (1 + torch.cos(torch.tensor(torch.pi * 7 / 8)).item()))
    assert all(a >= b for a, b in zip(m[2:], m[3:]))
    assert warmup_cosine(3, 0, peak_in_warmup=True) == pytest.approx([1.0, 0.75, 0.25])


def test_finetune_one_epoch_changes_weights(small_synthetic, tiny_encoder):
    train = build_index("synthetic", small_synthetic, split=1, subset="train", progress=False)
    test = build_index("synthetic", small_synthetic, split=1, subset="test", progress=False)
    before = {k: v.clone() for k, v in tiny_encoder.state_dict().items()}
    cfg = FinetuneConfig(epochs=1, batch_size=4, lr=1e-2, warmup_epochs=0, test_clips=2,
                         test_crops=1, num_workers=0, **CLIPS)
    res = finetune(tiny_encoder, train, test, config=cfg, device="cpu", progress=False)
    assert res.steps == len(train) // 4 and len(res.train_loss) == 1
    assert 0.0 <= res.top1 <= res.top5 <= 1.0 and res.skipped_test == []
    after = res.model.encoder.state_dict()
    changed = [k for k in before
               if before[k].dtype.is_floating_point and not torch.equal(before[k], after[k])]
    assert changed, "finetuning left every encoder tensor unchanged"
    for k, v in tiny_encoder.state_dict().items():      # the caller's encoder is a copy's source
        assert torch.equal(v, before[k])
    assert set(res.metrics()) == {"top1", "top5", "train_loss"}


def test_no_weight_decay_on_biases_and_norms(tiny_encoder):
    decay, no_decay = param_groups(tiny_encoder, 0.05)
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim < 2 for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0
