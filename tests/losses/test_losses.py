"""Losses against hand-written references (explicit loops), known-answer cases, validation, and
NT-Xent's gather across two gloo ranks."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F

from vidssl.losses import (
    DenseContrastiveLoss,
    GlobalLocalLoss,
    InfoNCELoss,
    LocalLocalLoss,
    TCLRInstanceLoss,
    local_view_pairs,
    nt_xent,
)
from vidssl.models.heads import CVRLProjectionHead, TCLRProjectionHead

TAU = 0.1


# ---------------------------------------------------------------- references (plain loops)


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a @ b) / (a.norm() * b.norm()))


def ref_nt_xent(z0: torch.Tensor, z1: torch.Tensor, tau: float) -> float:
    """SimCLR's definition: 2N embeddings, anchor i's positive is its other view, every other
    embedding but itself is in the denominator; mean over the 2N anchors."""
    reps = list(z0) + list(z1)
    n = len(z0)
    total = 0.0
    for i, a in enumerate(reps):
        pos = (i + n) % (2 * n)
        denom = sum(math.exp(cos(a, reps[j]) / tau) for j in range(2 * n) if j != i)
        total += -math.log(math.exp(cos(a, reps[pos]) / tau) / denom)
    return total / (2 * n)


def ref_nt_xent_offset(q0, q1, k0, k1, offset: int, tau: float) -> float:
    """Anchors are rows ``offset..offset+N`` of the candidates; denominators over all 2M
    candidates but the anchor itself."""
    total, n, m = 0.0, len(q0), len(k0)
    for i in range(n):
        for a, same, other in ((q0[i], k0, k1), (q1[i], k1, k0)):
            terms = [math.exp(cos(a, other[j]) / tau) for j in range(m)]
            terms += [math.exp(cos(a, same[j]) / tau) for j in range(m) if j != offset + i]
            total += -math.log(math.exp(cos(a, other[offset + i]) / tau) / sum(terms))
    return total / (2 * n)


def ref_global_local(slices: torch.Tensor, local: torch.Tensor, tau: float) -> float:
    n, k, _ = slices.shape
    total = 0.0
    for b in range(n):
        s = [[cos(slices[b, i], local[b, j]) / tau for j in range(k)] for i in range(k)]
        for i in range(k):
            row = [math.exp(v) for v in s[i]]
            col = [math.exp(s[j][i]) for j in range(k)]
            total += -math.log(row[i] / sum(row)) - math.log(col[i] / sum(col))
    return total / (2 * n * k)


def authors_ntxent(zis: torch.Tensor, zjs: torch.Tensor, tau: float) -> torch.Tensor:
    """The SimCLR-PyTorch NTXentLoss the TCLR authors use (dot product of normalised rows,
    sum of cross-entropies / 2N), rewritten compactly."""
    reps = F.normalize(torch.cat([zjs, zis]), dim=1)
    n = zis.shape[0]
    sim = reps @ reps.T
    pos = torch.cat([torch.diag(sim, n), torch.diag(sim, -n)])
    eye = torch.eye(2 * n)
    mask = (eye + torch.roll(eye, n, dims=1)) == 0  # not itself, not its positive
    logits = torch.cat([pos[:, None], sim[mask].view(2 * n, -1)], dim=1) / tau
    return F.cross_entropy(logits, torch.zeros(2 * n, dtype=torch.long), reduction="sum") / (2 * n)


# ---------------------------------------------------------------- InfoNCE / NT-Xent


@pytest.mark.parametrize("n,d", [(1, 3), (2, 5), (6, 16)])
def test_info_nce_matches_loop_reference(n, d):
    g = torch.Generator().manual_seed(n * 10 + d)
    z0, z1 = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    loss = InfoNCELoss(TAU)(z0, z1)
    assert loss.item() == pytest.approx(ref_nt_xent(z0, z1, TAU), rel=1e-5, abs=1e-6)
    assert loss.item() == pytest.approx(authors_ntxent(z0, z1, TAU).item(), rel=1e-5, abs=1e-6)
    summed = InfoNCELoss(TAU, reduction="sum")(z0, z1)
    assert summed.item() == pytest.approx(2 * loss.item(), rel=1e-6)


def test_info_nce_is_symmetric_and_scale_invariant():
    g = torch.Generator().manual_seed(1)
    z0, z1 = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    loss_fn = InfoNCELoss(0.5)
    assert loss_fn(z0, z1).item() == pytest.approx(loss_fn(z1, z0).item(), rel=1e-6)
    assert loss_fn(3 * z0, 0.1 * z1).item() == pytest.approx(loss_fn(z0, z1).item(), rel=1e-5)


def test_info_nce_known_match_gives_low_loss_and_wrong_match_high():
    z = torch.eye(4) * 5  # orthogonal rows: cos = 1 with itself, 0 with the others
    loss, stats = InfoNCELoss(TAU)(z, z.clone(), return_stats=True)
    # each anchor: positive logit 1/tau = 10, six negatives at 0
    assert loss.item() == pytest.approx(math.log(1 + 6 * math.exp(-10)), abs=1e-6)
    assert stats["acc"].item() == 1.0 and stats["pos_sim"].item() == pytest.approx(1.0)
    assert stats["neg_sim"].item() == pytest.approx(0.0, abs=1e-6)
    wrong = InfoNCELoss(TAU)(z, z[[1, 2, 3, 0]])
    assert wrong.item() > 9.0  # the positive sits at cos 0 while one negative is at cos 1


def test_nt_xent_with_candidates_and_offset_matches_reference():
    g = torch.Generator().manual_seed(2)
    k0, k1 = F.normalize(torch.randn(6, 4, generator=g), dim=1), F.normalize(torch.randn(6, 4, generator=g), dim=1)
    for offset in (0, 2, 4):
        q0, q1 = k0[offset : offset + 2], k1[offset : offset + 2]
        got = nt_xent(q0, q1, k0, k1, offset=offset, temperature=TAU)
        assert got.item() == pytest.approx(ref_nt_xent_offset(q0, q1, k0, k1, offset, TAU), rel=1e-5)
    with pytest.raises(ValueError, match="offset"):
        nt_xent(k0[:2], k1[:2], k0, k1, offset=5, temperature=TAU)


def test_nt_xent_leading_dims_are_independent_problems():
    g = torch.Generator().manual_seed(3)
    z0, z1 = F.normalize(torch.randn(3, 4, 8, generator=g), dim=-1), F.normalize(torch.randn(3, 4, 8, generator=g), dim=-1)
    batched = nt_xent(z0, z1, temperature=TAU)
    looped = sum(ref_nt_xent(z0[i], z1[i], TAU) for i in range(3)) / 3
    assert batched.item() == pytest.approx(looped, rel=1e-5)


def test_info_nce_gradients_flow_to_both_views():
    z0 = torch.randn(4, 8, requires_grad=True)
    z1 = torch.randn(4, 8, requires_grad=True)
    InfoNCELoss(TAU)(z0, z1).backward()
    assert z0.grad.abs().sum() > 0 and z1.grad.abs().sum() > 0
    assert torch.isfinite(z0.grad).all()


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, float("nan"), float("inf"), "0.1", True, None])
def test_temperature_validation(bad):
    for cls in (InfoNCELoss, TCLRInstanceLoss, LocalLocalLoss, GlobalLocalLoss):
        with pytest.raises(ValueError, match="temperature"):
            cls(temperature=bad)


def test_argument_and_shape_validation():
    with pytest.raises(ValueError, match="reduction"):
        InfoNCELoss(reduction="max")
    with pytest.raises(ValueError, match="reduction"):
        nt_xent(torch.ones(2, 3), torch.ones(2, 3), reduction="none")
    loss = InfoNCELoss()
    with pytest.raises(ValueError, match="same shape"):
        loss(torch.randn(4, 8), torch.randn(3, 8))
    with pytest.raises(ValueError, match=r"\(\.\.\., N, D\)"):
        loss(torch.randn(8), torch.randn(8))
    with pytest.raises(ValueError, match="empty"):
        loss(torch.randn(0, 8), torch.randn(0, 8))
    with pytest.raises(TypeError):
        loss([1.0], [1.0])


# ---------------------------------------------------------------- TCLR losses


def test_local_view_pairs():
    assert len(local_view_pairs(4, "all")) == 28
    assert local_view_pairs(4, "same_clip") == [(0, 4), (1, 5), (2, 6), (3, 7)]
    assert local_view_pairs(4, "none") == []
    with pytest.raises(ValueError, match="local_pairs"):
        local_view_pairs(4, "some")


@pytest.mark.parametrize("mode", ["all", "same_clip", "none"])
def test_tclr_instance_loss_matches_pairwise_reference(mode):
    g = torch.Generator().manual_seed(4)
    n, k, d = 3, 4, 6
    glob, loc = torch.randn(2, n, d, generator=g), torch.randn(2, k, n, d, generator=g)
    got_g, got_l = TCLRInstanceLoss(TAU, local_pairs=mode)(glob, loc)
    assert got_g.item() == pytest.approx(ref_nt_xent(glob[0], glob[1], TAU), rel=1e-5)
    slots = [loc[a, c] for a in range(2) for c in range(k)]  # index a*K + c
    pairs = local_view_pairs(k, mode)
    want = sum(ref_nt_xent(slots[p], slots[q], TAU) for p, q in pairs) / len(pairs) if pairs else 0.0
    assert got_l.item() == pytest.approx(want, rel=1e-5, abs=1e-7)


def test_tclr_instance_local_equals_authors_sum_over_ordered_pairs():
    """Authors' ``loss_ic1``: sum over ordered pairs of distinct local views, divided by 4, i.e.
    ``K (2K - 1) / 2 = 14`` times our mean over the 28 unordered pairs."""
    g = torch.Generator().manual_seed(5)
    n, k, d = 4, 4, 8
    loc = torch.randn(2, k, n, d, generator=g)
    authors = 0.0
    for ii in range(2):
        for jj in range(2):
            for c in range(k):
                for c1 in range(k):
                    if ii == jj and c == c1:
                        continue
                    authors += authors_ntxent(loc[ii, c], loc[jj, c1], TAU).item()
    authors /= 4
    _, ours = TCLRInstanceLoss(TAU)(torch.randn(2, n, d), loc)
    assert authors == pytest.approx(14 * ours.item(), rel=1e-5)


def test_authors_loss_scale_holds_the_factors_checked_here():
    """The factors TCLR's ``loss_weights: paper`` applies are the ones the tests above derive
    from the authors' sums: 1, 14 (56 ordered pairs / 4), B, 4K = 16."""
    from vidssl.losses.tclr import authors_loss_scale

    assert authors_loss_scale(4, 40) == {"ic_global": 1.0, "ic_local": 14.0, "ll": 40.0, "gl": 16.0}
    assert authors_loss_scale(4, 8, "same_clip")["ic_local"] == 2.0     # 8 ordered pairs / 4
    assert authors_loss_scale(2, 8)["gl"] == 8.0
    with pytest.raises(ValueError):
        authors_loss_scale(1, 8)


def test_tclr_instance_loss_shapes_are_checked():
    loss = TCLRInstanceLoss()
    with pytest.raises(ValueError, match="global_z"):
        loss(torch.randn(3, 4, 8), torch.randn(2, 4, 4, 8))
    with pytest.raises(ValueError, match="local_z"):
        loss(torch.randn(2, 4, 8), torch.randn(2, 4, 5, 8))
    with pytest.raises(ValueError, match="local_pairs"):
        TCLRInstanceLoss(local_pairs="half")


def test_local_local_matches_per_video_reference_and_authors():
    g = torch.Generator().manual_seed(6)
    n, k, d = 3, 4, 8
    z0, z1 = torch.randn(n, k, d, generator=g), torch.randn(n, k, d, generator=g)
    got = LocalLocalLoss(TAU)(z0, z1)
    # per video: 2K embeddings, positive = same clip under the other draw, the other 2K-2 local
    # views of the same video are the negatives
    want = sum(ref_nt_xent(z0[b], z1[b], TAU) for b in range(n)) / n
    assert got.item() == pytest.approx(want, rel=1e-5)
    authors = sum(authors_ntxent(z0[b], z1[b], TAU) for b in range(n))  # summed over the batch
    assert authors.item() == pytest.approx(n * got.item(), rel=1e-5)


def test_local_local_known_match_is_low():
    z = torch.eye(4).expand(2, 4, 4) * 3  # per video, the 4 local clips are orthogonal
    loss, stats = LocalLocalLoss(TAU)(z, z.clone(), return_stats=True)
    assert loss.item() == pytest.approx(math.log(1 + 6 * math.exp(-10)), abs=1e-6)
    assert stats["acc"].item() == 1.0
    with pytest.raises(ValueError, match="K >= 2"):
        LocalLocalLoss()(torch.randn(3, 1, 8), torch.randn(3, 1, 8))
    with pytest.raises(ValueError, match=r"\(N, K, D\)"):
        LocalLocalLoss()(torch.randn(3, 4, 8), torch.randn(3, 4, 7))


def test_global_local_matches_loop_reference_and_authors():
    g = torch.Generator().manual_seed(7)
    n, k, d = 3, 4, 8
    slices, local = torch.randn(n, k, d, generator=g), torch.randn(n, k, d, generator=g)
    got = GlobalLocalLoss(TAU)(slices, local)
    assert got.item() == pytest.approx(ref_global_local(slices, local, TAU), rel=1e-5)
    # authors' global_local_temporal_contrastive: sum of the 2NK cross-entropies / 2N = K x ours
    a, b = F.normalize(slices, dim=2), F.normalize(local, dim=2)
    sim = torch.bmm(a, b.permute(0, 2, 1))
    sim = torch.cat((sim, sim.permute(0, 2, 1)), dim=0).view(-1, k) / TAU
    authors = F.cross_entropy(sim, torch.arange(k).repeat(2 * n), reduction="sum") / (2 * n)
    assert authors.item() == pytest.approx(k * got.item(), rel=1e-5)


def test_global_local_known_match_and_permutation():
    slices = torch.eye(4).expand(2, 4, 4).clone()
    loss, stats = GlobalLocalLoss(TAU)(slices, slices.clone(), return_stats=True)
    assert loss.item() == pytest.approx(math.log(1 + 3 * math.exp(-10)), abs=1e-6)
    assert stats["acc"].item() == 1.0
    shuffled = GlobalLocalLoss(TAU)(slices, slices[:, [1, 0, 3, 2]])  # local clips out of order
    assert shuffled.item() > 9.0
    with pytest.raises(ValueError, match="K >= 2"):
        GlobalLocalLoss()(torch.randn(2, 1, 4), torch.randn(2, 1, 4))
    with pytest.raises(ValueError, match=r"\(N, K, D\)"):
        GlobalLocalLoss()(torch.randn(2, 4, 4), torch.randn(2, 3, 4))


# ---------------------------------------------------------------- heads


def test_cvrl_head_layout_and_shapes():
    head = CVRLProjectionHead(16, hidden_dim=32, out_dim=8, num_hidden_layers=3)
    kinds = [type(m).__name__ for m in head.mlp]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU"] * 3 + ["Linear"]
    assert head(torch.randn(5, 16)).shape == (5, 8)
    assert [type(m).__name__ for m in CVRLProjectionHead(16, num_hidden_layers=0).mlp] == ["Linear"]
    for kw in ({"hidden_dim": 0}, {"out_dim": 1.5}, {"num_hidden_layers": -1}):
        with pytest.raises(ValueError):
            CVRLProjectionHead(16, **kw)


def test_tclr_head_layout_and_unit_norm():
    head = TCLRProjectionHead(16)
    assert head.fc1.in_features == head.fc1.out_features == 16
    assert head.fc2.bias is None and head.fc2.out_features == 128
    out = head(torch.randn(6, 16))
    assert out.shape == (6, 128)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(6))
    assert TCLRProjectionHead(16, hidden_dim=8, out_dim=4)(torch.randn(3, 16)).shape == (3, 4)
    with pytest.raises(ValueError):
        TCLRProjectionHead(0)


# ---------------------------------------------------------------- DDP: two gloo ranks


def _ddp_worker(rank: int, world: int, tensors: dict, out_dir: str) -> None:
    import torch.distributed as tdist

    torch.set_num_threads(1)
    # a rendezvous file instead of a TCP port: no port to collide with other jobs on the machine
    init = "file://" + os.path.join(out_dir, "rendezvous")
    tdist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        n = tensors["z0"].shape[0] // world
        rows = slice(rank * n, (rank + 1) * n)
        z0 = tensors["z0"][rows].clone().requires_grad_(True)
        z1 = tensors["z1"][rows].clone().requires_grad_(True)
        loss = InfoNCELoss(TAU)(z0, z1)
        loss.backward()
        glob = tensors["glob"][:, rows].clone().requires_grad_(True)
        loc = tensors["loc"][:, :, rows].clone().requires_grad_(True)
        ic_g, ic_l = TCLRInstanceLoss(TAU)(glob, loc)
        (ic_g + ic_l).backward()
        pred = tensors["pred"][rows].clone().requires_grad_(True)
        target = tensors["target"][rows].clone().requires_grad_(True)
        dense = DenseContrastiveLoss()(pred, target)
        dense.backward()
        torch.save({"loss": loss.detach(), "z0_grad": z0.grad, "ic": (ic_g + ic_l).detach(),
                    "loc_grad": loc.grad, "dense": dense.detach(), "pred_grad": pred.grad,
                    "target_grad": target.grad}, os.path.join(out_dir, f"rank{rank}.pt"))
        tdist.barrier()  # no rank tears gloo down while the other is still in a collective
    finally:
        tdist.destroy_process_group()


def test_gather_across_two_gloo_ranks_equals_full_batch(tmp_path):
    """Mean of the per-rank losses (negatives gathered) == the loss of the concatenated batch,
    and each rank's gradient / world == the full-batch gradient of its rows (what DDP averages)."""
    import torch.multiprocessing as mp

    world, n = 2, 3
    g = torch.Generator().manual_seed(8)
    tensors = {"z0": torch.randn(world * n, 8, generator=g), "z1": torch.randn(world * n, 8, generator=g),
               "glob": torch.randn(2, world * n, 8, generator=g), "loc": torch.randn(2, 4, world * n, 8, generator=g),
               "pred": torch.randn(world * n, 2, 4, 2, 2, generator=g) / 2,
               "target": torch.randn(world * n, 2, 4, 2, 2, generator=g) / 2}
    mp.spawn(_ddp_worker, args=(world, tensors, str(tmp_path)), nprocs=world, join=True)
    res = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]

    z0 = tensors["z0"].clone().requires_grad_(True)
    full = InfoNCELoss(TAU)(z0, tensors["z1"])
    full.backward()
    assert torch.stack([r["loss"] for r in res]).mean().item() == pytest.approx(full.item(), rel=1e-5)
    got_grad = torch.cat([r["z0_grad"] for r in res]) / world
    torch.testing.assert_close(got_grad, z0.grad, rtol=1e-4, atol=1e-6)

    loc = tensors["loc"].clone().requires_grad_(True)
    ic_g, ic_l = TCLRInstanceLoss(TAU)(tensors["glob"], loc)
    (ic_g + ic_l).backward()
    assert torch.stack([r["ic"] for r in res]).mean().item() == pytest.approx((ic_g + ic_l).item(), rel=1e-5)
    torch.testing.assert_close(torch.cat([r["loc_grad"] for r in res], dim=2) / world, loc.grad,
                               rtol=1e-4, atol=1e-6)

    # DPC: every rank's predictions score the targets of both ranks
    pred = tensors["pred"].clone().requires_grad_(True)
    target = tensors["target"].clone().requires_grad_(True)
    dense = DenseContrastiveLoss()(pred, target)
    dense.backward()
    assert torch.stack([r["dense"] for r in res]).mean().item() == pytest.approx(dense.item(), rel=1e-5)
    torch.testing.assert_close(torch.cat([r["pred_grad"] for r in res]) / world, pred.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(torch.cat([r["target_grad"] for r in res]) / world, target.grad,
                               rtol=1e-4, atol=1e-6)
