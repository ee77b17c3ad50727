"""Association head: reconstruction similarity, matching, Kalman filter, a scripted crossing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidssl.errors import ConfigError
from vidssl.track.adapter import build_adapter
from vidssl.track.association import (AssociationConfig, AssociationTracker, iou_matrix,
                                      linear_assignment, mask_features, reconstruction_similarity,
                                      roi_features)
from vidssl.track.kalman import KalmanFilter, xywh_to_xyah, xyah_to_xywh
from vidssl.track.metrics import mot_accumulator, mot_summary


def test_reconstruction_similarity_identical_and_orthogonal_sets():
    eye = torch.eye(8)
    a = eye[:4][None]  # one set of 4 orthonormal vectors
    b = eye[4:][None]  # orthogonal to all of them
    sim = reconstruction_similarity(torch.cat([a, b]), torch.cat([a, b]))
    assert sim[0, 0] == pytest.approx(1.0, abs=1e-6) and sim[1, 1] == pytest.approx(1.0, abs=1e-6)
    assert sim[0, 1] == pytest.approx(0.0, abs=1e-6) and sim[1, 0] == pytest.approx(0.0, abs=1e-6)


def test_reconstruction_similarity_ignores_padding():
    g = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(2, 5, 16, generator=g), dim=-1)
    b = F.normalize(torch.randn(3, 3, 16, generator=g), dim=-1)
    full = reconstruction_similarity(a, b)
    padded = torch.cat([b, F.normalize(torch.randn(3, 2, 16, generator=g), dim=-1)], 1)
    valid = torch.zeros(3, 5, dtype=torch.bool)
    valid[:, :3] = True
    assert torch.allclose(reconstruction_similarity(a, padded, b_valid=valid), full, atol=1e-6)


def test_joint_reconstruction_hand_computed():
    """Track [e1, e2]; detections [e1] and [e3], temperature 0.5 (k = e^2 per unit affinity).

    joint, track -> detections: cell e1 weighs (k, 1) / (k + 1) on (e1, e3), cell e2 (1, 1) / 2,
    so from detection 0 the track is rebuilt as [k/(k+1) e1, 1/2 e1]; its flattened cosine with
    [e1, e2] / sqrt(2) is (k/(k+1)) / (sqrt(2) sqrt((k/(k+1))^2 + 1/4)). Detection -> track
    (one track): e1 = (k e1 + e2) / (k + 1), cosine k / sqrt(k^2 + 1). Detection 1 is orthogonal
    to everything: 0. pair: each track cell is rebuilt from detection 0 alone (e1, e1), mean
    per-cell cosine 1/2."""
    e = torch.eye(3)
    track = torch.stack([e[0], e[1]])[None]
    dets = torch.stack([e[0][None], e[2][None]])  # (2, 1, 3)
    k = math.exp(2.0)
    w = k / (k + 1)
    back = k / math.sqrt(k * k + 1)
    joint = reconstruction_similarity(track, dets, temperature=0.5, mode="joint")
    pair = reconstruction_similarity(track, dets, temperature=0.5, mode="pair")
    assert joint[0, 0].item() == pytest.approx((w / (math.sqrt(2) * math.sqrt(w * w + 0.25)) + back) / 2, abs=1e-6)
    assert pair[0, 0].item() == pytest.approx((0.5 + back) / 2, abs=1e-6)
    assert joint[0, 1].item() == pytest.approx(0.0, abs=1e-6) == pair[0, 1].item()


def _joint_reference(a, b, temperature, av, bv):
    """A loop-by-loop reading of UniTrack's reconsdot_distance, with padding left out."""
    a_cells = [(p, i) for p in range(len(a)) for i in range(a.shape[1]) if av[p, i]]
    b_cells = [(q, j) for q in range(len(b)) for j in range(b.shape[1]) if bv[q, j]]
    aff = torch.tensor([[float(a[p, i] @ b[q, j]) for q, j in b_cells] for p, i in a_cells])
    w_ab = torch.softmax(aff / temperature, dim=1)
    w_ba = torch.softmax(aff / temperature, dim=0)
    out = torch.zeros(len(a), len(b))
    for p in range(len(a)):
        for q in range(len(b)):
            rows = [r for r, (pp, _) in enumerate(a_cells) if pp == p]
            cols = [c for c, (qq, _) in enumerate(b_cells) if qq == q]
            rec_a = torch.stack([sum(w_ab[r, c] * b[b_cells[c]] for c in cols) for r in rows])
            orig_a = torch.stack([a[a_cells[r]] for r in rows])
            rec_b = torch.stack([sum(w_ba[r, c] * a[a_cells[r]] for r in rows) for c in cols])
            orig_b = torch.stack([b[b_cells[c]] for c in cols])
            out[p, q] = (F.cosine_similarity(rec_a.flatten(), orig_a.flatten(), dim=0)
                         + F.cosine_similarity(rec_b.flatten(), orig_b.flatten(), dim=0)) / 2
    return out


def test_joint_reconstruction_matches_a_loop_reference_with_padding():
    g = torch.Generator().manual_seed(1)
    a = F.normalize(torch.randn(3, 4, 8, generator=g), dim=-1)
    b = F.normalize(torch.randn(2, 5, 8, generator=g), dim=-1)
    av = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    bv = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    for temperature in (0.01, 0.3):
        got = reconstruction_similarity(a, b, temperature, av, bv, mode="joint")
        assert torch.allclose(got, _joint_reference(a, b, temperature, av, bv), atol=1e-5)
    # joint: another detection competes for the track's cells; pair: it does not
    extra = torch.cat([b, torch.cat([a[0], a[0, :1]])[None]])  # a detection that looks like track 0
    ev = torch.cat([bv, torch.ones(1, 5, dtype=torch.bool)])
    pair = reconstruction_similarity(a, b, 0.3, av, bv, mode="pair")
    assert torch.allclose(reconstruction_similarity(a, extra, 0.3, av, ev, mode="pair")[:, :2], pair)
    joint = reconstruction_similarity(a, b, 0.3, av, bv, mode="joint")
    assert not torch.allclose(reconstruction_similarity(a, extra, 0.3, av, ev, mode="joint")[:, :2],
                              joint, atol=1e-3)


def test_linear_assignment_threshold_and_solvers_agree():
    cost = np.array([[0.1, 0.9, 0.5], [0.8, 0.2, 0.95], [0.75, 0.99, 0.72]])
    for solver in ("scipy", "lap"):
        m, ur, uc = linear_assignment(cost, 0.7, solver)
        assert sorted(m) == [(0, 0), (1, 1)] and ur == [2] and uc == [2]
    assert linear_assignment(np.zeros((0, 3)), 0.7) == ([], [], [0, 1, 2])


def test_gated_assignment_matches_lapjv_cost_limit():
    """A full assignment then a threshold takes (0, 1), (1, 0) (total 1.38) and keeps both;
    the gated problem (lapjv's cost_limit) prefers (0, 0) and leaves row 1 / column 1 out."""
    import lap

    cost = np.array([[0.0, 0.69], [0.69, 1e5]])
    _, x, _ = lap.lapjv(cost, extend_cost=True, cost_limit=0.7)
    assert x.tolist() == [0, -1]
    for solver in ("scipy", "lap"):
        assert linear_assignment(cost, 0.7, solver) == ([(0, 0)], [1], [1]), solver


@pytest.mark.parametrize("shape", [(4, 6), (7, 3), (5, 5)])
def test_gated_assignment_scipy_and_lap_agree_on_random_costs(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        cost = rng.uniform(0, 1.4, shape)
        cost[rng.random(shape) < 0.2] = 1e5  # gated-out pairs, as the motion gate makes
        a, b = (linear_assignment(cost, 0.7, s) for s in ("scipy", "lap"))
        assert sorted(a[0]) == sorted(b[0]) and a[1:] == b[1:]


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]])
    assert iou_matrix(a, b) == pytest.approx(np.array([[1.0, 50 / 150, 0.0]]))


def test_kalman_constant_velocity():
    kf = KalmanFilter()
    box = np.array([10.0, 20.0, 10.0, 20.0])
    mean, cov = kf.initiate(xywh_to_xyah(box))
    for t in range(1, 12):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, xywh_to_xyah(box + [3 * t, 0, 0, 0]))
    pred, pcov = kf.predict(mean, cov)
    assert xyah_to_xywh(pred[:4]) == pytest.approx(box + [36, 0, 0, 0], abs=0.5)
    d = kf.gating_distance(pred, pcov, xywh_to_xyah(np.array([box + [36, 0, 0, 0],
                                                              box + [80, 0, 0, 0]])))
    assert d[0] < 9.4877 < d[1]


def test_roi_and_mask_features_shapes():
    fmap = torch.randn(16, 8, 8)
    sets = roi_features(fmap, np.array([[0, 0, 32, 32], [16, 16, 16, 24]]), stride=8, size=3)
    assert sets.shape == (2, 9, 16) and torch.allclose(sets.norm(dim=-1), torch.ones(2, 9))
    masks = np.zeros((2, 64, 64), dtype=bool)
    masks[0, :16, :16] = True
    masks[1, 40:42, 40:42] = True  # smaller than a cell: keeps its best cell
    vecs, valid = mask_features(fmap, masks)
    assert vecs.shape == (2, 4, 16) and valid.sum(1).tolist() == [4, 1]


def _crossing_video(frames: int = 14, size: int = 64) -> tuple[np.ndarray, list[list]]:
    """A red and a blue square cross horizontally (overlapping at the crossing)."""
    video = np.full((frames, size, size, 3), 128, dtype=np.uint8)
    video[:, ::8] = 100  # a faint grid so the background is not flat
    boxes = []
    for t in range(frames):
        xa, xb = 4 + 3.5 * t, size - 20 - 3.5 * t
        rows = []
        for tid, x, y, color in ((1, xa, 20, (230, 30, 30)), (2, xb, 24, (30, 30, 230))):
            x0 = int(round(x))
            video[t, y:y + 16, x0:x0 + 16] = color
            rows.append((tid, np.array([x0, y, 16, 16], dtype=float)))
        boxes.append(rows)
    return video, boxes


@pytest.mark.parametrize("motion", ["full", "none"])
def test_scripted_crossing_keeps_identities(motion):
    video, boxes = _crossing_video()
    feats = build_adapter(pixels=True).encode_video(video)
    tracker = AssociationTracker(AssociationConfig(motion=motion))
    gt, hyp = {}, {}
    for t, rows in enumerate(boxes):
        det = np.stack([b for _, b in rows])
        out = tracker.step(det, np.ones(len(det)), roi_features(feats[t], det, 8, 4))
        gt[t + 1] = rows
        hyp[t + 1] = [(tid, b) for tid, b, _ in out]
    s = mot_summary({"x": mot_accumulator(gt, hyp, len(boxes))})["x"]
    assert s["num_switches"] == 0 and s["idf1"] == 1.0 and s["mota"] == 1.0


def test_lost_tracks_expire_and_new_tracks_need_confirmation():
    tracker = AssociationTracker(AssociationConfig(max_lost=2))
    feat = F.normalize(torch.ones(1, 4, 8), dim=-1)
    box = np.array([[10.0, 10, 10, 10]])
    assert [t for t, _, _ in tracker.step(box, [1.0], feat)] == [1]  # frame 1: confirmed at once
    for _ in range(3):
        assert tracker.step(np.zeros((0, 4)), [], feat[:0]) == []
    assert tracker.tracks == []  # lost for more than max_lost frames
    far = np.array([[40.0, 40, 10, 10]])
    assert tracker.step(far, [1.0], feat) == []  # a new track is tentative first
    assert [t for t, _, _ in tracker.step(far, [1.0], feat)] == [2]


def test_bad_association_config():
    with pytest.raises(ConfigError):
        AssociationConfig(solver="hungarian").validate()
    with pytest.raises(ConfigError):
        AssociationConfig(lambda_app=1.5).validate()
    with pytest.raises(ConfigError, match="reconstruction"):
        AssociationConfig(reconstruction="cross").validate()
    with pytest.raises(ConfigError, match="temperature"):
        AssociationConfig(temperature=0).validate()


@pytest.mark.parametrize("reconstruction", ["joint", "pair"])
def test_mots_mask_sets_keep_identities(reconstruction):
    """MOTS: the same crossing with mask-pooled feature sets (variable size, validity masks).
    As in MOTS annotations, masks do not overlap: the blue square, drawn second, occludes the
    red one, so the red mask loses the blue pixels."""
    video, boxes = _crossing_video()
    feats = build_adapter(pixels=True).encode_video(video)
    tracker = AssociationTracker(AssociationConfig(motion="none", reconstruction=reconstruction))
    gt, hyp = {}, {}
    for t, rows in enumerate(boxes):
        det = np.stack([b for _, b in rows])
        masks = np.zeros((len(det), 64, 64), dtype=bool)
        for i, (x, y, w, h) in enumerate(det.astype(int)):
            masks[i, y:y + h, x:x + w] = True
        masks[0] &= ~masks[1]
        sets, valid = mask_features(feats[t], masks)
        out = tracker.step(det, np.ones(len(det)), sets, valid)
        gt[t + 1] = rows
        hyp[t + 1] = [(tid, b) for tid, b, _ in out]
    s = mot_summary({"x": mot_accumulator(gt, hyp, len(boxes))})["x"]
    assert s["num_switches"] == 0 and s["idf1"] == 1.0
