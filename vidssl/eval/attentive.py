"""The frozen attentive probe (V-JEPA / V-JEPA 2 / InternVideo2) for any encoder, on cached tokens.

**Probe** (:class:`AttentiveProbe`, after ``facebookresearch/jepa`` ``src/models/
attentive_pooler.py`` and the V-JEPA 2 pooler as ported to ``transformers``): ``depth - 1``
pre-norm self-attention blocks over the encoder's tokens (V-JEPA 2 runs 3 of them before the
cross-attention), then one cross-attention block in which ``num_queries`` learned queries attend
to the (layer-normalised) tokens (``q + proj(attn(q, norm1(x)))``, then ``+ mlp(norm2(q))``),
the queries averaged (V-JEPA: one query), a linear classifier. Initialisation as V-JEPA's:
truncated normal (std 0.02) weights, zero biases, unit LayerNorms, output projections of block
``i`` divided by ``sqrt(2 i)``. With ``depth = 1`` V-JEPA and V-JEPA 2 coincide.

**Tokens** are the encoder's last feature map per view (a ViT's patch tokens, a 3D CNN's last
stage), average-pooled to at most ``token_grid`` cells and cached in float16
(:class:`~vidssl.eval.cache.FeatureCache`): extracted once, shared with kNN / linear /
retrieval. The ``K`` clips (segments) of a video are concatenated per spatial view (V-JEPA's
``attend_across_segments``; no extra temporal position embedding); each of the ``C`` spatial
views is one training sample per epoch (drawn at random per video and epoch) and at test the
softmax probabilities of the ``C`` views are averaged.

**Grid in one pass**: one probe per ``(lr, weight decay)`` pair, all trained on the same batches
(AdamW, no decay on biases and 1-D parameters, warm-up then cosine lr to 0, optional cosine
weight-decay schedule), as V-JEPA 2 trains its 20 heads. The head with the best top-1 on a
validation part of train (group-aware, :func:`~vidssl.eval.linear.validation_split`) wins; test
is never seen before that choice. With ``refit`` the chosen setting is retrained on all of train.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidssl.errors import ConfigError, VidsslError
from vidssl.eval.linear import topk_hits, validation_split
from vidssl.runtime.optim import check_finite, param_groups, warmup_cosine

__all__ = ["AttentiveProbe", "train_probe_grid", "attentive_probe", "run_attentive", "run_attentive_preset"]


class _MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SelfAttentionBlock(nn.Module):
    """``x + proj(attn(norm1(x)))``, then ``+ mlp(norm2(x))``. Shape ``(B, N, D)`` -> same."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = _MLP(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
        x = x + self.proj(y)
        return x + self.mlp(self.norm2(x))


class CrossAttentionBlock(nn.Module):
    """V-JEPA's ``CrossAttentionBlock``: ``q + proj(attn(q W_q, norm1(x) W_kv))``, then
    ``+ mlp(norm2(q))``. Shapes: ``q`` ``(B, Q, D)``, ``x`` ``(B, N, D)`` -> ``(B, Q, D)``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.q, self.kv, self.proj = nn.Linear(dim, dim), nn.Linear(dim, 2 * dim), nn.Linear(dim, dim)
        self.mlp = _MLP(dim, int(dim * mlp_ratio))

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        b, nq, d = q.shape
        h = self.heads
        x = self.norm1(x)
        qh = self.q(q).view(b, nq, h, d // h).transpose(1, 2)
        k, v = self.kv(x).view(b, x.shape[1], 2, h, d // h).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qh, k, v).transpose(1, 2).reshape(b, nq, d)
        q = q + self.proj(y)
        return q + self.mlp(self.norm2(q))


def default_heads(dim: int) -> int:
    """``dim // 64`` (ViT-B: 12, ViT-L: 16, R3D-18: 8), lowered until it divides ``dim``."""
    heads = max(1, dim // 64)
    while dim % heads:
        heads -= 1
    return heads


class AttentiveProbe(nn.Module):
    """Attentive classifier over tokens (see the module docstring).

    Args:
        dim: token width ``D``; num_classes: outputs; depth: 1-4 blocks in all; num_queries: learned
        queries; num_heads: attention heads (``None``: :func:`default_heads`).

    Shape: ``(B, N, D)`` tokens -> ``(B, num_classes)`` logits.
    """

    def __init__(self, dim: int, num_classes: int, *, depth: int = 1, num_queries: int = 1,
                 num_heads: int | None = None, mlp_ratio: float = 4.0, init_std: float = 0.02):
        super().__init__()
        if not 1 <= depth <= 4:
            raise ConfigError(f"attentive probe depth must be 1 to 4 blocks, got {depth}")
        heads = num_heads or default_heads(dim)
        if dim % heads:
            raise ConfigError(f"attentive probe: {heads} heads do not divide the token width {dim}")
        self.blocks = nn.ModuleList([SelfAttentionBlock(dim, heads, mlp_ratio) for _ in range(depth - 1)])
        self.query_tokens = nn.Parameter(torch.zeros(1, num_queries, dim))
        self.cross = CrossAttentionBlock(dim, heads, mlp_ratio)
        self.linear = nn.Linear(dim, num_classes)
        self._init(init_std)

    def _init(self, std: float) -> None:
        nn.init.trunc_normal_(self.query_tokens, std=std)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=std)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        with torch.no_grad():   # V-JEPA's _rescale_blocks: the cross block is layer 1
            self.cross.proj.weight.div_(math.sqrt(2.0))
            self.cross.mlp.fc2.weight.div_(math.sqrt(2.0))
            for i, blk in enumerate(self.blocks, start=2):
                blk.proj.weight.div_(math.sqrt(2.0 * i))
                blk.mlp.fc2.weight.div_(math.sqrt(2.0 * i))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        for blk in self.blocks:
            x = blk(x)
        q = self.cross(self.query_tokens.expand(len(x), -1, -1), x)
        return self.linear(q.mean(dim=1))


# ---------------------------------------------------------------------- training

@dataclass
class GridResult:
    probes: list[AttentiveProbe]
    grid: list[tuple[float, float]]
    final_loss: list[float]


def _views(tokens: torch.Tensor) -> torch.Tensor:
    """``(N, K, C, L, D)`` -> ``(N, C, K * L, D)``: per spatial view, the clips' tokens concatenated."""
    n, k, c, l, d = tokens.shape
    return tokens.permute(0, 2, 1, 3, 4).reshape(n, c, k * l, d)


def train_probe_grid(tokens: torch.Tensor, labels: np.ndarray, num_classes: int, s: Any, *,
                     grid: Sequence[tuple[float, float]], device: torch.device,
                     amp_dtype: torch.dtype | None = None) -> GridResult:
    """Train one probe per ``(lr, weight_decay)`` of ``grid`` on the same shuffled batches.

    ``tokens``: float16 ``(N, K, C, L, D)`` (cached); each epoch every video contributes one of its
    ``C`` spatial views, drawn at random.
    """
    views = _views(tokens)
    n, c = views.shape[:2]
    y_all = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    dim = views.shape[-1]
    gen = torch.Generator().manual_seed(int(s.seed))
    probes, opts = [], []
    for i, (lr, wd) in enumerate(grid):
        torch.manual_seed(int(s.seed) + i)
        probe = AttentiveProbe(dim, num_classes, depth=s.depth, num_queries=s.num_queries,
                               num_heads=s.num_heads, mlp_ratio=s.mlp_ratio).to(device)
        probes.append(probe)
        opts.append(torch.optim.AdamW(param_groups(probe, wd), lr=lr))
    batch = max(1, min(int(s.batch_size), n))
    steps_per_epoch = math.ceil(n / batch)
    total = s.epochs * steps_per_epoch
    lr_table = warmup_cosine(total, int(round(s.warmup_epochs * steps_per_epoch)), 0.0, peak_in_warmup=True)
    final_loss = [float("nan")] * len(grid)
    step = 0
    for _ in range(s.epochs):
        order = torch.randperm(n, generator=gen)
        pick = torch.randint(0, c, (n,), generator=gen)
        for start in range(0, n, batch):
            rows = order[start:start + batch]
            x = views[rows, pick[rows]].to(device, non_blocking=True)
            y = y_all[rows].to(device)
            frac = step / max(1, total - 1)
            for i, ((lr, wd), probe, opt) in enumerate(zip(grid, probes, opts)):
                for g in opt.param_groups:
                    g["lr"] = lr * lr_table[min(step, total - 1)]
                    if g["weight_decay"] > 0 and s.final_weight_decay is not None:
                        g["weight_decay"] = s.final_weight_decay + 0.5 * (wd - s.final_weight_decay) * (
                            1 + math.cos(math.pi * frac))
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    loss = F.cross_entropy(probe(x).float(), y)
                check_finite({"loss": loss}, step, f"lower the attentive probe's lr {lr:g}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if s.clip_grad:
                    nn.utils.clip_grad_norm_(probe.parameters(), s.clip_grad)
                opt.step()
                final_loss[i] = loss.item()
            step += 1
    return GridResult(probes, list(grid), final_loss)


@torch.no_grad()
def probe_probabilities(probe: AttentiveProbe, tokens: torch.Tensor, device: torch.device,
                        batch_size: int = 64) -> torch.Tensor:
    """Softmax averaged over the ``C`` spatial views: ``(N, K, C, L, D)`` -> ``(N, classes)``."""
    views = _views(tokens)
    n, c = views.shape[:2]
    probe.eval()
    out = []
    for start in range(0, n, batch_size):
        x = views[start:start + batch_size].flatten(0, 1).to(device)
        p = probe(x).float().softmax(dim=1).view(-1, c, probe.linear.out_features).mean(dim=1)
        out.append(p.cpu())
    return torch.cat(out)


def attentive_probe(train, test, s: Any, *, num_classes: int, device: torch.device) -> dict[str, Any]:
    """Select ``(lr, wd)`` on a validation part of ``train`` (grid trained in one pass), refit the
    winner on all of ``train`` (``s.refit``), test. ``train`` / ``test``: FeatureSets with tokens."""
    if train.tokens is None or test.tokens is None:
        raise VidsslError("the attentive probe needs cached tokens (features extracted with a token_grid)")
    amp_dtype = torch.bfloat16 if device.type == "cuda" else None
    grid = [(float(lr), float(wd)) for lr in s.lrs for wd in s.weight_decays]
    split = validation_split(train.labels, train.groups, s.val_fraction, s.seed)
    fit, val = torch.as_tensor(split.fit), torch.as_tensor(split.val)
    res = train_probe_grid(train.tokens[fit], train.labels[split.fit], num_classes, s, grid=grid,
                           device=device, amp_dtype=amp_dtype)
    val_top1, val_loss = [], []
    y_val = torch.as_tensor(train.labels[split.val], dtype=torch.int64)
    for probe in res.probes:
        p = probe_probabilities(probe, train.tokens[val], device)
        val_top1.append(float((p.argmax(1) == y_val).float().mean()))
        val_loss.append(float(F.nll_loss(p.clamp_min(1e-12).log(), y_val)))
    best = min(range(len(grid)), key=lambda i: (-val_top1[i], val_loss[i], i))
    probe = res.probes[best]
    if s.refit:
        probe = train_probe_grid(train.tokens, train.labels, num_classes, s, grid=[grid[best]], device=device,
                                 amp_dtype=amp_dtype).probes[0]
    probs = probe_probabilities(probe, test.tokens, device)
    hits = topk_hits(probs, test.labels, (1, 5))
    return {"hits": hits, "lr": grid[best][0], "weight_decay": grid[best][1], "val_top1": val_top1[best],
            "grid": {f"{lr:g}/{wd:g}": v for (lr, wd), v in zip(grid, val_top1)}, "probe": probe}


# ---------------------------------------------------------------------- protocol runners

def _run(split: Any, s: Any, train, test, name: str) -> dict[str, Any]:
    num_classes = max(split.train.num_classes, split.test.num_classes)
    out = attentive_probe(train, test, s, num_classes=num_classes, device=split.context.device)
    split.videos = list(test.paths)
    split.context.info.setdefault("attentive", {}).setdefault(str(split.split), {})[name] = {
        "validation_top1_by_lr/wd": out["grid"], "token_shape": list(test.tokens.shape[1:])}
    return {"top1": out["hits"][1], "top5": out["hits"][5], "lr": out["lr"],
            "weight_decay": out["weight_decay"], "val_top1": out["val_top1"]}


def run_attentive(split: Any) -> dict[str, Any]:
    """``attentive``: ``EvalConfig.attentive`` on the shared feature views' cached tokens."""
    return _run(split, split.config.attentive, split.train_features, split.test_features, "attentive")


def run_attentive_preset(split: Any, preset: Any, s: Any) -> dict[str, Any]:
    """``attentive:vjepa`` / ``attentive:vjepa2``: the preset's own views (segments x spatial
    views) and token grid, from the evaluation's feature cache."""
    from vidssl.eval.views import ViewSpec

    views = ViewSpec(clip_len=s.clip_len, stride=s.stride, size=s.size, resize_size=s.resize_size,
                     num_clips=s.num_clips, num_crops=s.num_crops)
    fs = split.context.cache.features(split.split, views, token_grid=tuple(s.token_grid))
    return _run(split, s, fs.select(split.train), fs.select(split.test), preset.name)
