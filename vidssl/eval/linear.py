"""Linear probe on frozen, L2-normalised features (plus the ridge probe used by diagnostics).

**Solver.** Multinomial logistic regression: one linear layer ``W x + b`` and softmax
cross-entropy, fitted full-batch with L-BFGS (``torch.optim.LBFGS``, strong-Wolfe line search)
on ``mean CE + (lambda / 2) * ||W||^2`` (the bias is not penalised). The objective is convex, so
the fit has no learning rate, no epochs and no seed to tune: the only hyper-parameter is the L2
strength ``lambda`` ("weight decay"). This is the CLIP linear-probe recipe (Radford et al.,
2021, appendix A.3: L-BFGS logistic regression, ``lambda`` swept on a validation set); the
grid here is ``10^-8 .. 10^0`` (9 values) by default.

**Selection never sees test.** ``lambda`` is chosen by :func:`select_weight_decay`, which is
given the *train* features only: it holds out a validation part of train (group-aware when the
index has groups: whole group ids go to validation, so no ``gGG`` source is in both parts; else
stratified per class), fits every ``lambda`` on the rest and keeps the best validation top-1
(ties: lower validation cross-entropy, then the larger ``lambda``). The winner is refitted on
all of train and evaluated once on test.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from vidssl.eval.config import DEFAULT_RIDGE_LAMBDAS, DEFAULT_WEIGHT_DECAYS
from vidssl.errors import VidsslError

log = logging.getLogger("vidssl.eval")

ArrayLike = torch.Tensor | np.ndarray

#: Below this many multiply-adds per objective evaluation, L-BFGS runs on one CPU thread.
SINGLE_THREAD_WORK = 1 << 22


@contextlib.contextmanager
def single_thread_if_small(work: int, device: torch.device) -> Iterator[None]:
    """One intra-op thread for tiny CPU problems: L-BFGS makes hundreds of small calls, and
    waking a thread pool for each cost 50-400x more than the arithmetic on a loaded 2-core
    machine (0.2 ms vs 88 ms per evaluation, measured)."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or work >= SINGLE_THREAD_WORK or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def as_tensor(x: ArrayLike, dtype: torch.dtype = torch.float32,
              device: torch.device | str | None = None) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(
        device=device, dtype=dtype)


def l2_normalize(x: ArrayLike) -> torch.Tensor:
    """Rows scaled to unit L2 norm (float32). Shape: ``(N, D)`` -> ``(N, D)``."""
    return F.normalize(as_tensor(x), dim=1, eps=1e-12)


# ---------------------------------------------------------------------- validation split --

@dataclass(frozen=True)
class ValSplit:
    """Positions of the fitting part and the validation part of a training set."""

    fit: np.ndarray
    val: np.ndarray
    kind: str  # "group" | "stratified"


def validation_split(labels: ArrayLike, groups: ArrayLike | None = None, val_fraction: float = 0.2,
                     seed: int = 0) -> ValSplit:
    """Hold out about ``val_fraction`` of a training set.

    With groups (any ``>= 0``), whole group ids are held out (UCF101's ``gGG`` is shared by all
    classes and its official splits are made the same way, so each class loses the same
    groups); a video with group ``-1`` is its own group. Without groups: per class, a random
    ``val_fraction`` (at least one video of every class with two or more).
    """
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    n = len(y)
    if n < 2:
        raise VidsslError(f"cannot hold out a validation part of {n} training video(s)")
    rng = np.random.default_rng(seed)
    g = None if groups is None else np.asarray(groups, dtype=np.int64).reshape(-1)
    if g is not None and (g >= 0).any():
        g = np.where(g >= 0, g, -1 - np.arange(n))   # ungrouped videos: singleton groups
        ids = np.unique(g)
        if len(ids) >= 2:
            n_val = min(max(1, int(round(val_fraction * len(ids)))), len(ids) - 1)
            val_ids = rng.permutation(ids)[:n_val]
            is_val = np.isin(g, val_ids)
            return ValSplit(np.flatnonzero(~is_val), np.flatnonzero(is_val), "group")
    is_val = np.zeros(n, dtype=bool)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        if len(members) >= 2:
            is_val[members[:max(1, int(round(val_fraction * len(members))))]] = True
    if is_val.all() or not is_val.any():
        is_val[:] = False
        is_val[rng.permutation(n)[:max(1, min(n - 1, int(round(val_fraction * n))))]] = True
    return ValSplit(np.flatnonzero(~is_val), np.flatnonzero(is_val), "stratified")


# ----------------------------------------------------------------------------- logistic --

@dataclass
class LinearClassifier:
    """``logits = x @ weight.T + bias``; weight ``(C, D)``, bias ``(C,)``."""

    weight: torch.Tensor
    bias: torch.Tensor

    def logits(self, x: ArrayLike) -> torch.Tensor:
        x = as_tensor(x, device=self.weight.device)
        return x @ self.weight.T + self.bias


def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, weight_decay: float, *,
                 max_iter: int = 1000, init: LinearClassifier | None = None) -> LinearClassifier:
    """Minimise ``mean CE(x W^T + b, y) + weight_decay / 2 * ||W||^2`` with full-batch L-BFGS.

    Shapes: ``x`` float ``(N, D)``, ``y`` int64 ``(N,)`` in ``[0, num_classes)``. Solved in
    float64 (L-BFGS's line search is fragile in float32); the classifier is returned in float32.
    """
    x = as_tensor(x, torch.float64)
    y = torch.as_tensor(y, dtype=torch.int64, device=x.device)
    d = x.shape[1]
    zeros = dict(dtype=x.dtype, device=x.device)
    w = init.weight.to(**zeros) if init is not None else torch.zeros(num_classes, d, **zeros)
    b = init.bias.to(**zeros) if init is not None else torch.zeros(num_classes, **zeros)
    w.requires_grad_(True)
    b.requires_grad_(True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-5, tolerance_change=1e-9,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y) + 0.5 * weight_decay * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad(), single_thread_if_small(x.numel() * num_classes, x.device):
        opt.step(closure)
    return LinearClassifier(w.detach().float(), b.detach().float())


def topk_hits(scores: torch.Tensor, y: ArrayLike, ks: Sequence[int] = (1, 5)) -> dict[int, np.ndarray]:
    """Per row, whether its label is among the ``k`` highest scores (``k`` capped at ``C``):
    float ``(N,)`` arrays of 0/1, the per-video outcomes the intervals resample.

    Shapes: ``scores`` ``(N, C)``, ``y`` ``(N,)``.
    """
    y = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y,
                        dtype=torch.int64, device=scores.device)
    if len(y) == 0:
        return {k: np.zeros(0) for k in ks}
    top = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    hit = top == y[:, None]
    return {k: hit[:, :min(k, scores.shape[1])].any(dim=1).double().cpu().numpy() for k in ks}


def topk_accuracy(scores: torch.Tensor, y: ArrayLike, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """Fraction of rows whose label is among the ``k`` highest scores (``k`` capped at ``C``).

    Shapes: ``scores`` ``(N, C)``, ``y`` ``(N,)``.
    """
    return {k: float(v.mean()) if len(v) else float("nan") for k, v in topk_hits(scores, y, ks).items()}


@dataclass
class Selection:
    """The chosen L2 strength and every candidate's validation top-1 / cross-entropy."""

    best: float
    val_top1: dict[float, float]
    val_loss: dict[float, float]
    kind: str
    fit_size: int
    val_size: int


def select_weight_decay(x: ArrayLike, y: ArrayLike, groups: ArrayLike | None = None, *,
                        num_classes: int | None = None,
                        weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS,
                        val_fraction: float = 0.2, seed: int = 0, max_iter: int = 1000,
                        device: torch.device | str | None = None) -> Selection:
    """Choose ``lambda`` on a validation part of the given (training) set only."""
    if not weight_decays:
        raise VidsslError("weight_decays is empty")
    x = l2_normalize(x).to(device)
    y = torch.as_tensor(np.asarray(y), dtype=torch.int64)
    num_classes = int(num_classes or int(y.max()) + 1)
    split = validation_split(y.numpy(), groups, val_fraction, seed)
    fit_idx, val_idx = torch.as_tensor(split.fit), torch.as_tensor(split.val)
    top1: dict[float, float] = {}
    loss: dict[float, float] = {}
    init = None
    for wd in sorted((float(v) for v in weight_decays), reverse=True):  # warm start: strong -> weak
        clf = fit_logistic(x[fit_idx], y[fit_idx], num_classes, wd, max_iter=max_iter, init=init)
        init = clf
        logits = clf.logits(x[val_idx])
        y_val = y[val_idx].to(logits.device)
        top1[wd] = topk_accuracy(logits, y_val, (1,))[1]
        loss[wd] = F.cross_entropy(logits, y_val).item()
    best = min(top1, key=lambda wd: (-top1[wd], loss[wd], -wd))
    if len(top1) > 2 and best in (min(top1), max(top1)):
        log.info("linear probe: weight decay %g is at the edge of the grid %s; consider widening it",
                 best, sorted(top1))
    return Selection(best, top1, loss, split.kind, len(split.fit), len(split.val))


@dataclass
class LinearProbeResult:
    """Test accuracy of the probe refitted on all of train with the selected ``lambda``."""

    top1: float
    top5: float
    weight_decay: float
    selection: Selection
    train_size: int
    test_size: int
    predictions: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))
    hits: dict[int, np.ndarray] = field(repr=False, default_factory=dict)   # k -> per test video 0/1

    def metrics(self) -> dict[str, float]:
        return {"top1": self.top1, "top5": self.top5, "weight_decay": self.weight_decay,
                "val_top1": self.selection.val_top1[self.weight_decay]}

    def outcomes(self) -> dict[str, float | np.ndarray]:
        """:meth:`metrics` with top-1 / top-5 as per-test-video 0/1 arrays (for intervals)."""
        return {**self.metrics(), "top1": self.hits[1], "top5": self.hits[5]}


def linear_probe(train_x: ArrayLike, train_y: ArrayLike, test_x: ArrayLike, test_y: ArrayLike, *,
                 train_groups: ArrayLike | None = None, num_classes: int | None = None,
                 weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS, val_fraction: float = 0.2,
                 seed: int = 0, max_iter: int = 1000,
                 device: torch.device | str | None = None) -> LinearProbeResult:
    """Select ``lambda`` on train only, refit on all of train, report test top-1 / top-5.

    Shapes: ``train_x`` ``(N, D)``, ``train_y``/``train_groups`` ``(N,)``, ``test_x`` ``(M, D)``,
    ``test_y`` ``(M,)``. Features are L2-normalised here; the fits run on ``device``
    (default: the CPU).
    """
    ytr = np.asarray(train_y, dtype=np.int64)
    yte = np.asarray(test_y, dtype=np.int64)
    num_classes = int(num_classes or max(ytr.max(), yte.max() if len(yte) else 0) + 1)
    sel = select_weight_decay(train_x, ytr, train_groups, num_classes=num_classes,
                              weight_decays=weight_decays, val_fraction=val_fraction, seed=seed,
                              max_iter=max_iter, device=device)
    clf = fit_logistic(l2_normalize(train_x).to(device), torch.as_tensor(ytr), num_classes,
                       sel.best, max_iter=max_iter)
    logits = clf.logits(l2_normalize(test_x))
    hits = topk_hits(logits, yte, (1, 5))
    return LinearProbeResult(float(hits[1].mean()), float(hits[5].mean()), sel.best, sel, len(ytr),
                             len(yte), logits.argmax(dim=1).cpu().numpy(), hits)


# -------------------------------------------------------------------------------- ridge --

def fit_ridge(x: torch.Tensor, t: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ridge regression with an unpenalised intercept, closed form (float64).

    Shapes: ``x`` ``(N, D)``, ``t`` ``(N, P)`` -> weight ``(D, P)``, bias ``(P,)``.
    """
    x, t = x.double(), t.double()
    xm, tm = x.mean(0), t.mean(0)
    xc, tc = x - xm, t - tm
    a = xc.T @ xc + lam * torch.eye(x.shape[1], dtype=x.dtype)
    w = torch.linalg.solve(a, xc.T @ tc)
    return w, tm - xm @ w


def r2_score(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Coefficient of determination, averaged over outputs (``1 - SS_res / SS_tot``, about the
    target's own mean; outputs with zero variance are ignored). Shapes: ``(N, P)``."""
    pred, target = pred.double().reshape(len(pred), -1), target.double().reshape(len(target), -1)
    ss_tot = (target - target.mean(0)).pow(2).sum(0)
    ss_res = (target - pred).pow(2).sum(0)
    ok = ss_tot > 0
    if not ok.any():
        return float("nan")
    return float((1 - ss_res[ok] / ss_tot[ok]).mean())


@dataclass
class RidgeProbeResult:
    r2: float
    lam: float
    val_r2: dict[float, float]


def ridge_probe(train_x: ArrayLike, train_t: ArrayLike, test_x: ArrayLike, test_t: ArrayLike, *,
                train_groups: ArrayLike | None = None,
                lambdas: Sequence[float] = DEFAULT_RIDGE_LAMBDAS, val_fraction: float = 0.2,
                seed: int = 0) -> RidgeProbeResult:
    """Ridge regression of a continuous target on L2-normalised features; ``lambda`` by
    validation R² on a (group-aware) part of train, refit on train, test R²."""
    xtr, xte = l2_normalize(train_x), l2_normalize(test_x)
    ttr = as_tensor(train_t, torch.float64).reshape(len(xtr), -1)
    tte = as_tensor(test_t, torch.float64).reshape(len(xte), -1)
    split = validation_split(np.zeros(len(xtr), np.int64), train_groups, val_fraction, seed)
    fit, val = torch.as_tensor(split.fit), torch.as_tensor(split.val)
    scores = {}
    for lam in lambdas:
        w, b = fit_ridge(xtr[fit], ttr[fit], float(lam))
        scores[float(lam)] = r2_score(xtr[val].double() @ w + b, ttr[val])
    best = max(scores, key=lambda lam: (np.nan_to_num(scores[lam], nan=-np.inf), lam))
    w, b = fit_ridge(xtr, ttr, best)
    return RidgeProbeResult(r2_score(xte.double() @ w + b, tte), best, scores)
