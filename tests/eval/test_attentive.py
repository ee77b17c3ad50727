"""The attentive probe: V-JEPA's block math by hand, token-order invariance, learning what mean
pooling cannot, a grid trained in one pass, selection that never sees test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidssl.errors import ConfigError
from vidssl.eval.attentive import AttentiveProbe, attentive_probe, default_heads
from vidssl.eval.config import AttentiveConfig
from vidssl.eval.features import FeatureSet


def reference_cross_block(probe: AttentiveProbe, x: torch.Tensor) -> torch.Tensor:
    """V-JEPA's CrossAttentionBlock + linear written out (src/models/utils/modules.py)."""
    c = probe.cross
    h = c.heads
    b, n, d = x.shape
    q = probe.query_tokens.expand(b, -1, -1)
    xn = F.layer_norm(x, (d,), c.norm1.weight, c.norm1.bias)
    qq = (q @ c.q.weight.T + c.q.bias).view(b, 1, h, d // h).transpose(1, 2)
    kv = (xn @ c.kv.weight.T + c.kv.bias).view(b, n, 2, h, d // h)
    k, v = kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2)
    att = (qq @ k.transpose(-1, -2) / math.sqrt(d // h)).softmax(-1)
    y = (att @ v).transpose(1, 2).reshape(b, 1, d) @ c.proj.weight.T + c.proj.bias
    q = q + y
    hid = F.gelu(F.layer_norm(q, (d,), c.norm2.weight, c.norm2.bias) @ c.mlp.fc1.weight.T + c.mlp.fc1.bias)
    q = q + hid @ c.mlp.fc2.weight.T + c.mlp.fc2.bias
    return q[:, 0] @ probe.linear.weight.T + probe.linear.bias


def test_one_block_is_vjepas_cross_attention_by_hand():
    torch.manual_seed(0)
    probe = AttentiveProbe(16, 5, depth=1, num_heads=4)
    x = torch.randn(3, 11, 16)
    assert torch.allclose(probe(x), reference_cross_block(probe, x), atol=1e-5)
    # token order does not matter (no position embedding in the pooler)
    assert torch.allclose(probe(x), probe(x[:, torch.randperm(11)]), atol=1e-5)
    deep = AttentiveProbe(16, 5, depth=4, num_queries=2)
    assert len(deep.blocks) == 3 and deep(x).shape == (3, 5)
    assert default_heads(768) == 12 and default_heads(1024) == 16 and default_heads(128) == 2 and default_heads(8) == 1
    with pytest.raises(ConfigError, match="depth"):
        AttentiveProbe(16, 5, depth=5)


def _tokens(n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Every video holds all 3 class prototypes at random positions among 8 tokens; the class
    is the prototype whose token carries a flag (dimension 0). The mean over tokens is the same
    for every class (chance for any probe of it); attention can find the flagged token."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(3, 16, generator=torch.Generator().manual_seed(99)) * 2
    protos[:, 0] = 0
    y = torch.randint(0, 3, (n,), generator=g)
    x = 0.3 * torch.randn(n, 1, 1, 8, 16, generator=g)
    for i in range(n):
        where = torch.randperm(8, generator=g)[:3]
        x[i, 0, 0, where] += protos
        x[i, 0, 0, where[y[i]], 0] += 8.0
    return x.half(), y.numpy()


def _set(x: torch.Tensor, y: np.ndarray) -> FeatureSet:
    n = len(y)
    return FeatureSet(x.float().mean(dim=(1, 2, 3)), y, np.arange(n) % 7, [f"v{i}" for i in range(n)],
                      np.arange(n), tokens=x)


def test_attentive_probe_learns_a_token_that_mean_pooling_hides():
    torch.manual_seed(0)
    xtr, ytr = _tokens(240, 1)
    xte, yte = _tokens(90, 2)
    s = AttentiveConfig(lrs=[3e-3, 1e-5], weight_decays=[0.01], epochs=30, batch_size=32, refit=True)
    out = attentive_probe(_set(xtr, ytr), _set(xte, yte), s, num_classes=3, device=torch.device("cpu"))
    assert out["hits"][1].mean() > 0.9 and out["lr"] == 3e-3
    assert set(out["grid"]) == {"0.003/0.01", "1e-05/0.01"}
    from vidssl.eval.linear import linear_probe
    mean_pooled = linear_probe(_set(xtr, ytr).features, ytr, _set(xte, yte).features, yte)
    assert mean_pooled.top1 < 0.6


def test_selection_never_sees_test_labels():
    xtr, ytr = _tokens(60, 3)
    xte, yte = _tokens(30, 4)
    s = AttentiveConfig(lrs=[1e-2, 1e-4], weight_decays=[0.0, 0.5], epochs=3, batch_size=16, refit=False)
    a = attentive_probe(_set(xtr, ytr), _set(xte, yte), s, num_classes=3, device=torch.device("cpu"))
    b = attentive_probe(_set(xtr, ytr), _set(xte, np.random.default_rng(0).permutation(yte)), s, num_classes=3,
                        device=torch.device("cpu"))
    assert (a["lr"], a["weight_decay"], a["val_top1"]) == (b["lr"], b["weight_decay"], b["val_top1"])
