"""Linear probe: separable data, the validation split, selection never seeing test, ridge."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import vidssl.eval.linear as linear
from vidssl.eval.linear import (fit_logistic, l2_normalize, linear_probe, ridge_probe,
                                select_weight_decay, topk_accuracy, validation_split)


def clusters(n_per_class: int, num_classes: int = 4, dim: int = 16, noise: float = 0.1,
             seed: int = 0, groups_per_class: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian clusters around orthogonal directions; UCF-like group ids shared by classes."""
    rng = np.random.default_rng(seed)
    centres = np.eye(dim)[:num_classes] * 3.0
    y = np.repeat(np.arange(num_classes), n_per_class)
    x = centres[y] + noise * rng.standard_normal((len(y), dim))
    groups = np.tile(np.arange(n_per_class) % groups_per_class, num_classes)
    return x.astype(np.float32), y, groups


def test_separable_clusters_are_classified_perfectly():
    xtr, ytr, gtr = clusters(20, seed=0)
    xte, yte, _ = clusters(10, seed=1)
    res = linear_probe(xtr, ytr, xte, yte, train_groups=gtr)
    assert res.top1 == 1.0 and res.top5 == 1.0
    assert res.weight_decay in res.selection.val_top1
    assert res.selection.kind == "group"
    assert res.train_size == 80 and res.test_size == 40


def test_chance_level_on_random_labels():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    res = linear_probe(x[:200], rng.integers(0, 10, 200), x[200:], rng.integers(0, 10, 100))
    assert res.top1 < 0.3


def test_fit_logistic_reaches_the_optimum():
    """At the returned weights the gradient of the penalised objective vanishes."""
    x, y, _ = clusters(15, num_classes=3, noise=1.0, seed=2)
    x = l2_normalize(x)
    y = torch.as_tensor(y)
    lam = 1e-2
    clf = fit_logistic(x, y, 3, lam)
    w, b = clf.weight.clone().requires_grad_(True), clf.bias.clone().requires_grad_(True)
    loss = F.cross_entropy(x @ w.T + b, y) + 0.5 * lam * w.pow(2).sum()
    gw, gb = torch.autograd.grad(loss, (w, b))
    assert gw.abs().max() < 1e-4 and gb.abs().max() < 1e-4


def test_topk_accuracy_by_hand():
    scores = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    acc = topk_accuracy(scores, [2, 0, 0], ks=(1, 2, 5))
    assert acc[1] == pytest.approx(1 / 3) and acc[2] == pytest.approx(2 / 3)
    assert acc[5] == 1.0   # k is capped at the number of classes


def test_group_aware_validation_split():
    y = np.repeat(np.arange(5), 12)
    groups = np.tile(np.arange(12) // 2, 5)   # 6 group ids, shared by every class
    split = validation_split(y, groups, val_fraction=0.34, seed=3)
    assert split.kind == "group"
    assert not set(groups[split.fit]) & set(groups[split.val])
    assert len(np.unique(groups[split.val])) == 2
    assert sorted(np.concatenate([split.fit, split.val])) == list(range(len(y)))
    assert set(y[split.val]) == set(range(5))   # holding out group ids keeps every class


def test_stratified_split_without_groups():
    y = np.repeat(np.arange(4), [10, 10, 5, 2])
    split = validation_split(y, np.full(len(y), -1), val_fraction=0.2, seed=0)
    assert split.kind == "stratified"
    assert set(y[split.val]) == set(range(4)) and set(y[split.fit]) == set(range(4))


def test_selection_never_sees_test(monkeypatch):
    """A spy on every fit and every scoring: test rows are used once, after selection."""
    xtr, ytr, gtr = clusters(12, num_classes=3, noise=1.5, seed=4)
    xte, yte, _ = clusters(6, num_classes=3, noise=1.5, seed=5)
    xte = xte + 100.0   # test rows are recognisable by their values
    events = []
    real_fit, real_topk = linear.fit_logistic, linear.topk_hits

    def spy_fit(x, y, *a, **kw):
        events.append(("fit", bool((torch.as_tensor(x).abs().max() > 50).item()), len(x)))
        return real_fit(x, y, *a, **kw)

    def spy_topk(scores, y, ks=(1, 5)):
        events.append(("score", len(scores)))
        return real_topk(scores, y, ks)

    real_normalize = linear.l2_normalize

    def spy_normalize(x):  # before normalisation the test rows are still recognisable
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        events.append(("normalize", bool((t.abs().max() > 50).item())))
        return real_normalize(x)

    monkeypatch.setattr(linear, "fit_logistic", spy_fit)
    monkeypatch.setattr(linear, "topk_hits", spy_topk)
    monkeypatch.setattr(linear, "l2_normalize", spy_normalize)
    res = linear_probe(xtr, ytr, xte, yte, train_groups=gtr, weight_decays=[1e-4, 1e-2, 1.0])
    test_touched = [i for i, e in enumerate(events) if e[0] == "normalize" and e[1]]
    fits = [i for i, e in enumerate(events) if e[0] == "fit"]
    assert len(test_touched) == 1 and test_touched[0] > fits[-1]   # test read after the last fit
    assert len(fits) == 3 + 1 and events[fits[-1]][2] == len(xtr)   # 3 candidates + refit on train
    assert events[-1] == ("score", len(xte))
    assert res.weight_decay in (1e-4, 1e-2, 1.0)


def test_selection_does_not_depend_on_test_labels():
    xtr, ytr, gtr = clusters(12, num_classes=3, noise=2.0, seed=6)
    xte, yte, _ = clusters(6, num_classes=3, noise=2.0, seed=7)
    a = linear_probe(xtr, ytr, xte, yte, train_groups=gtr)
    b = linear_probe(xtr, ytr, xte[::-1].copy(), np.roll(yte, 5), train_groups=gtr)
    assert a.weight_decay == b.weight_decay
    assert a.selection.val_top1 == b.selection.val_top1


def test_select_weight_decay_takes_train_only():
    x, y, g = clusters(10, num_classes=2, seed=8)
    sel = select_weight_decay(x, y, g, weight_decays=[1e-3, 1e-1])
    assert set(sel.val_top1) == {1e-3, 1e-1} and sel.fit_size + sel.val_size == len(y)


def test_ridge_probe_recovers_a_linear_target_and_not_noise():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((240, 12)).astype(np.float32)
    xn = l2_normalize(x).numpy()
    target = xn @ rng.standard_normal((12, 2))
    groups = np.arange(240) % 6
    res = ridge_probe(xn[:160], target[:160], xn[160:], target[160:], train_groups=groups[:160])
    assert res.r2 > 0.99
    noise = rng.standard_normal(240)
    res = ridge_probe(x[:160], noise[:160], x[160:], noise[160:], train_groups=groups[:160])
    assert res.r2 < 0.1
