"""Tracking dataset readers: the synthetic set (DAVIS + MOT layouts, derived SOT) and OTB."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from vidssl.errors import DatasetError
from vidssl.track.datasets import load_mot, load_otb, resolve_dataset, write_mot_results


def test_synthetic_vos_mot_sot(tiny_tracking):
    layout, vos = resolve_dataset("vos", str(tiny_tracking))
    assert layout == "synthetic-davis" and len(vos) == 2
    labels = vos[0].read_labels()
    frames = vos[0].read_frames()
    assert labels.shape == (16, 128, 128) and frames.shape == (16, 128, 128, 3)
    assert labels[0].max() >= 1
    layout, mot = resolve_dataset("mot", str(tiny_tracking))
    assert layout == "synthetic-mot" and len(mot[0]) == 16
    assert mot[0].gt.shape[1] == 7 and mot[0].det.shape[1] == 6
    assert (mot[0].gt[:, 2:4] >= 0).all()  # 1-based files, 0-based boxes
    layout, sot = resolve_dataset("sot", str(tiny_tracking))
    ids = sum(len(np.unique(m.gt[:, 1])) for m in mot)
    assert layout == "synthetic-sot" and 0 < len(sot) <= ids
    s = sot[0]
    assert len(s.frames) == len(s.boxes) and np.isfinite(s.boxes[0]).all()


def test_mot_boxes_cover_the_davis_masks(tiny_tracking):
    _, vos = resolve_dataset("vos", str(tiny_tracking))
    _, mot = resolve_dataset("mot", str(tiny_tracking))
    labels = vos[0].read_labels()
    row = mot[0].gt[(mot[0].gt[:, 0] == 1)][0]
    k, (x, y, w, h) = int(row[1]), row[2:6]
    ys, xs = np.nonzero(labels[0] == k)
    assert xs.min() >= x and xs.max() < x + w and ys.min() >= y and ys.max() < y + h


def write_otb(root, name="Toy", frames=3, sep=","):
    img = root / name / "img"
    img.mkdir(parents=True)
    for i in range(frames):
        Image.fromarray(np.full((24, 32, 3), 40 * i, dtype=np.uint8)).save(img / f"{i + 1:04d}.jpg")
    lines = [sep.join(str(v) for v in (5 + i, 6, 10, 8)) for i in range(frames)]
    (root / name / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("sep", [",", "\t", " "])
def test_otb_layout(tmp_path, sep):
    write_otb(tmp_path, sep=sep)
    seqs = load_otb(str(tmp_path))
    assert [s.name for s in seqs] == ["Toy"]
    assert seqs[0].boxes[1].tolist() == [5.0, 5.0, 10.0, 8.0]  # 1-based x, y -> 0-based
    assert seqs[0].read_frames().shape == (3, 24, 32, 3)
    layout, again = resolve_dataset("sot", str(tmp_path))
    assert layout == "otb" and len(again) == 1


def test_mot_results_roundtrip(tmp_path, tiny_tracking):
    seq = load_mot(str(tiny_tracking / "tracking" / "mot"))[0]
    rows = [(int(r[0]), int(r[1]), r[2:6]) for r in seq.gt]
    write_mot_results(str(tmp_path / "res.txt"), rows)
    first = (tmp_path / "res.txt").read_text().splitlines()[0].split(",")
    gt_first = (tiny_tracking / "tracking" / "mot" / seq.name / "gt" / "gt.txt").read_text().split("\n")[0].split(",")
    assert float(first[2]) == pytest.approx(float(gt_first[2]))


def test_bad_layouts_are_one_line_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        resolve_dataset("vos", str(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="not a DAVIS folder"):
        resolve_dataset("vos", str(tmp_path))
    with pytest.raises(DatasetError, match="no MOT sequences"):
        resolve_dataset("mot", str(tmp_path))
    with pytest.raises(DatasetError, match="no OTB sequences"):
        resolve_dataset("sot", str(tmp_path))
    write_otb(tmp_path)
    (tmp_path / "Toy" / "groundtruth_rect.txt").write_text("1,2,3,4\n1,2,x,4\n")
    with pytest.raises(DatasetError, match="groundtruth_rect.txt:2"):
        load_otb(str(tmp_path))


def write_mot(root, name="MOT-01", frames=3, gt=True, det=True, scores=(0.9, 0.8)):
    """A minimal MOTChallenge sequence: two boxes per frame in gt and det."""
    seq = root / name
    (seq / "img1").mkdir(parents=True)
    for i in range(frames):
        Image.fromarray(np.zeros((24, 32, 3), dtype=np.uint8)).save(seq / "img1" / f"{i + 1:06d}.jpg")
    if gt:
        (seq / "gt").mkdir()
        (seq / "gt" / "gt.txt").write_text("".join(
            f"{f},{k},{2 + 10 * k},3,6,8,1,1,1\n" for f in range(1, frames + 1) for k in (1, 2)))
    if det:
        (seq / "det").mkdir()
        (seq / "det" / "det.txt").write_text("".join(
            f"{f},-1,{2 + 10 * k},3,6,8,{scores[k - 1]},-1,-1,-1\n"
            for f in range(1, frames + 1) for k in (1, 2)))
    return seq


def test_mot_missing_detections_is_a_one_line_error(tmp_path):
    seq = write_mot(tmp_path, det=False)
    with pytest.raises(DatasetError, match="detections .*det.txt not found") as err:
        resolve_dataset("mot", str(tmp_path))
    assert str(seq / "det" / "det.txt") in str(err.value) and "\n" not in str(err.value)
    # feeding the ground-truth boxes (mot_detections=gt) and SOT need no det.txt
    _, seqs = resolve_dataset("mot", str(tmp_path), mot_detections="gt")
    assert len(seqs[0].gt) == 6 and len(seqs[0].det) == 0
    assert len(load_mot(str(tmp_path), detections=None)[0].gt) == 6


def test_mot_missing_ground_truth_is_a_one_line_error(tmp_path):
    seq = write_mot(tmp_path, gt=False)
    with pytest.raises(DatasetError, match="ground truth .*gt.txt not found") as err:
        resolve_dataset("mot", str(tmp_path))
    assert str(seq / "gt" / "gt.txt") in str(err.value) and "\n" not in str(err.value)
    assert len(load_mot(str(tmp_path), need_gt=False)[0].det) == 6


def test_mot_warns_once_when_thresholds_drop_every_detection(tmp_path, caplog):
    from vidssl.track import TrackConfig, run_tracking

    write_mot(tmp_path / "neg", scores=(-0.5, -2.0))  # MOT17-DPM-like negative scores
    write_mot(tmp_path / "low", scores=(0.1, 0.2))  # kept, but below det_threshold 0.3
    write_mot(tmp_path / "ok", scores=(0.9, 0.1))
    for case, needle in (("neg", "below association.min_score=0.0"),
                         ("low", "det_threshold=0.3")):
        caplog.clear()
        with caplog.at_level("WARNING", logger="vidssl"):
            res = run_tracking("mot", str(tmp_path / case), pixels=True, config=TrackConfig())
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and needle in warnings[0] and "MOT-01" in warnings[0], warnings
        assert res["summary"]["idf1"] == 0  # what the warning announces
    caplog.clear()
    with caplog.at_level("WARNING", logger="vidssl"):
        res = run_tracking("mot", str(tmp_path / "ok"), pixels=True, config=TrackConfig())
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert res["summary"]["idf1"] > 0
    cfg = TrackConfig()
    cfg.association.min_score = -1.0
    cfg.association.det_threshold = -1.0
    caplog.clear()
    with caplog.at_level("WARNING", logger="vidssl"):
        res = run_tracking("mot", str(tmp_path / "neg"), pixels=True, config=cfg)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert res["summary"]["idf1"] > 0  # with thresholds that admit them, the same boxes track


def write_otb_tree(root, name, frames, annotations):
    """An OTB folder with ``frames`` tiny images (0001.jpg ...) and ``annotations``:
    ``{file name: list of (x, y, w, h)}``."""
    img = root / name / "img"
    img.mkdir(parents=True)
    tiny = Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8))
    for i in range(frames):
        tiny.save(img / f"{i + 1:04d}.jpg")
    for fname, rows in annotations.items():
        (root / name / fname).write_text("".join(",".join(map(str, r)) + "\n" for r in rows))


def test_otb_david_starts_at_frame_300(tmp_path):
    """OTB-100's David: 770 images, ground truth for frames 300-770 (471 boxes)."""
    write_otb_tree(tmp_path, "David", 770, {"groundtruth_rect.txt": [(1 + t, 2, 3, 4) for t in range(471)]})
    write_otb_tree(tmp_path, "Diving", 231, {"groundtruth_rect.txt": [(1, 2, 3, 4)] * 215})
    david, diving = load_otb(str(tmp_path))
    assert david.name == "David" and len(david.frames) == len(david.boxes) == 471
    assert david.frames[0].endswith("0300.jpg") and david.frames[-1].endswith("0770.jpg")
    assert david.boxes[0, 0] == 0 and david.meta["first_frame"] == 300
    assert len(diving.frames) == 215 and diving.frames[-1].endswith("0215.jpg")


def test_otb_range_mismatch_is_a_one_line_error(tmp_path):
    write_otb_tree(tmp_path, "David", 400, {"groundtruth_rect.txt": [(1, 2, 3, 4)] * 471})
    with pytest.raises(DatasetError, match=r"471 boxes .* for 101 frames \(frames 300-770") as err:
        load_otb(str(tmp_path))
    assert "\n" not in str(err.value)


def test_otb_multi_target_sequences(tmp_path, caplog):
    """Jogging ships groundtruth_rect.1.txt and .2.txt (two people); Human4's .1 is empty."""
    write_otb_tree(tmp_path, "Jogging", 5, {"groundtruth_rect.1.txt": [(11, 2, 3, 4)] * 5,
                                            "groundtruth_rect.2.txt": [(21, 2, 3, 4)] * 5})
    write_otb_tree(tmp_path, "Human4", 5, {"groundtruth_rect.1.txt": [],
                                           "groundtruth_rect.2.txt": [(31, 2, 3, 4)] * 5})
    with caplog.at_level("WARNING", logger="vidssl"):
        seqs = load_otb(str(tmp_path))
    assert [s.name for s in seqs] == ["Human4.2", "Jogging.1", "Jogging.2"]
    assert [s.boxes[0, 0] for s in seqs] == [30, 10, 20]
    assert seqs[1].frames == seqs[2].frames and len(seqs[1].frames) == 5
    assert any("groundtruth_rect.1.txt is empty" in r.getMessage() for r in caplog.records)
    one = load_otb(str(tmp_path / "Jogging"))  # a sequence folder as the root
    assert [s.name for s in one] == ["Jogging.1", "Jogging.2"]
