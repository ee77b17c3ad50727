"""The synthetic dataset generator: real files, UCF101 layout, determinism, classes, tracking."""

from __future__ import annotations

import configparser
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidssl.data.decoders import open_video
from vidssl.data.synthetic import (
    SYNTHETIC_CLASSES,
    Appearance,
    clip_appearance,
    make_synthetic,
    render_clip,
)
from vidssl.data.synthetic.classes import background
from vidssl.data.synthetic.tracking import davis_palette
from vidssl.errors import ConfigError, DatasetError

SMALL = dict(num_classes=3, groups_per_class=3, clips_per_group=2, num_frames=16, size=32,
             fps=16, container="mixed", tracking_sequences=2, seed=0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("synthetic") / "ds"
    summary = make_synthetic(out, **SMALL, workers=1, progress=False)
    return out, summary


def _records(root: Path) -> list[dict]:
    with open(root / "metadata.jsonl") as f:
        return [json.loads(line) for line in f]


def _decode_all(path: Path) -> np.ndarray:
    with open_video(path) as dec:
        return dec.get_frames(np.arange(dec.metadata.num_frames)).numpy()


# ------------------------------------------------------------------------------ files/splits --

def test_videos_decode_with_both_containers(dataset):
    from torchcodec.decoders import VideoDecoder

    root, summary = dataset
    records = _records(root)
    assert summary.num_videos == len(records) == 3 * 3 * 2
    assert summary.containers == {"avi": 9, "mp4": 9}
    codecs = {}
    for r in records:
        path = root / r["path"]
        assert path.parent.name == r["class"] and path.suffix == "." + r["container"]
        with open_video(path) as dec:
            meta = dec.metadata
            assert (meta.num_frames, meta.fps, meta.width, meta.height) == (16, 16.0, 32, 32)
        codecs[r["container"]] = VideoDecoder(str(path)).metadata.codec
    assert codecs == {"avi": "mpeg4", "mp4": "h264"}


def test_metadata_reproduces_the_clip(dataset):
    root, _ = dataset
    for r in _records(root)[:2]:  # one avi, one mp4
        clip = render_clip(r["class"], Appearance.from_dict(r["appearance"]), r["num_frames"],
                           r["width"], np.random.default_rng(np.random.SeedSequence(r["rng_key"])))
        decoded = _decode_all(root / r["path"]).transpose(0, 2, 3, 1).astype(np.float64)
        assert clip.params == r["dynamics"]
        assert np.abs(decoded - clip.frames).mean() < 6.0  # lossy yuv420p codec, but the same clip


def test_metadata_is_complete(dataset):
    root, _ = dataset
    records = _records(root)
    assert len({r["path"] for r in records}) == len(records)
    keys = {"path", "class", "label", "class_id", "group", "clip", "seed", "rng_key", "container",
            "codec", "num_frames", "fps", "width", "height", "appearance", "dynamics", "palette"}
    app_keys = {"shape", "color", "texture", "background", "bg_color", "size", "speed",
                "start_x", "start_y", "direction"}
    for r in records:
        assert keys <= set(r) and app_keys <= set(r["appearance"])
        assert r["class"] == SYNTHETIC_CLASSES[r["label"]] and r["class_id"] == r["label"] + 1
        assert r["path"] == (f"videos/{r['class']}/v_{r['class']}_g{r['group']:02d}"
                             f"_c{r['clip']:02d}.{r['container']}")
        assert r["seed"] == 0 and r["palette"] is False
    manifest = json.loads((root / "synthetic.json").read_text())
    assert manifest["status"] == "complete" and manifest["params"]["num_frames"] == 16


def test_splits_follow_ucf101_and_are_group_disjoint(dataset):
    root, _ = dataset
    splits = root / "splits"
    class_ind = (splits / "classInd.txt").read_text().split("\n")
    assert class_ind[:3] == ["1 Bounce", "2 SlideStop", "3 SpinDown"]
    ids = {name: int(i) for i, name in (line.split() for line in class_ind if line)}
    all_videos = {r["path"].split("/", 1)[1] for r in _records(root)}
    tested_groups = []
    for k in (1, 2, 3):
        train = [line.split() for line in (splits / f"trainlist0{k}.txt").read_text().splitlines()]
        test = (splits / f"testlist0{k}.txt").read_text().splitlines()
        assert (len(train), len(test)) == (12, 6)
        train_paths = {p for p, _ in train}
        assert train_paths | set(test) == all_videos and not train_paths & set(test)
        for p, label in train:
            assert ids[p.split("/")[0]] == int(label)
            assert (splits.parent / "videos" / p).is_file()  # lines name the real extension
        group = lambda p: (p.split("/")[0], p.split("_g")[1][:2])  # noqa: E731
        test_groups = {group(p) for p in test}
        assert not test_groups & {group(p) for p in train_paths}
        tested_groups.append({g for _, g in test_groups})
    assert tested_groups == [{"01"}, {"02"}, {"03"}]  # each split tests a different third


# ------------------------------------------------------------------------------- determinism --

def test_same_seed_identical_different_seed_differs(dataset, tmp_path):
    root, _ = dataset
    again = make_synthetic(tmp_path / "again", **{**SMALL, "tracking_sequences": 0}, workers=2,
                           progress=False)
    assert again.num_videos == 18
    for r in _records(root):
        np.testing.assert_array_equal(_decode_all(root / r["path"]),
                                      _decode_all(tmp_path / "again" / r["path"]))
    other = make_synthetic(tmp_path / "other", **{**SMALL, "num_classes": 1, "seed": 1,
                                                   "tracking_sequences": 0},
                           workers=1, progress=False)
    name = "videos/Bounce/v_Bounce_g01_c01.avi"
    assert other.num_videos == 6
    assert not np.array_equal(_decode_all(root / name), _decode_all(tmp_path / "other" / name))


def test_rerun_is_idempotent_and_conflicts_raise(dataset):
    root, _ = dataset
    stamp = os.path.getmtime(root / "metadata.jsonl")
    again = make_synthetic(root, **SMALL, progress=False)
    assert again.already_generated
    assert os.path.getmtime(root / "metadata.jsonl") == stamp
    with pytest.raises(DatasetError, match="num_frames=8.*--overwrite") as err:
        make_synthetic(root, **{**SMALL, "num_frames": 8}, progress=False)
    assert "\n" not in str(err.value)


def test_foreign_directory_and_overwrite(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("not a dataset")
    tiny = dict(num_classes=1, groups_per_class=3, clips_per_group=1, num_frames=8, size=16,
                container="avi", tracking_sequences=0, progress=False, workers=1)
    with pytest.raises(DatasetError, match="--overwrite"):
        make_synthetic(out, **tiny)
    summary = make_synthetic(out, **tiny, overwrite=True)
    assert summary.containers == {"avi": 3, "mp4": 0}
    assert (out / "notes.txt").read_text() == "not a dataset"  # only our outputs are replaced


@pytest.mark.parametrize("bad", [{"size": 33}, {"groups_per_class": 2}, {"container": "mkv"},
                                 {"num_classes": 11}, {"appearance_correlation": 1.5},
                                 {"time_cue": 1.0}, {"time_cue": -0.1}])
def test_invalid_arguments(tmp_path, bad):
    with pytest.raises(ConfigError):
        make_synthetic(tmp_path / "x", **{**SMALL, **bad}, progress=False)
    assert not (tmp_path / "x").exists()


def test_time_cue_dims_every_frame_by_its_time_and_keeps_old_manifests(dataset, tmp_path):
    """The order pretexts' knob: frame k of a T-frame clip is dimmed by ``time_cue * k / (T-1)``,
    the same for every class; without it the manifest (and so an existing dataset) is unchanged."""
    from vidssl.data.synthetic.generate import dusk

    frames = np.full((5, 4, 4, 3), 200, np.uint8)
    np.testing.assert_array_equal(dusk(frames, 0.0), frames)
    dimmed = dusk(frames, 0.5)
    assert dimmed[:, 0, 0, 0].tolist() == [200, 175, 150, 125, 100]
    root, _ = dataset
    assert "time_cue" not in json.loads((root / "synthetic.json").read_text())["params"]
    small = {**SMALL, "num_classes": 1, "tracking_sequences": 0}
    cued = make_synthetic(tmp_path / "cue", **small, time_cue=0.5, workers=1, progress=False)
    assert json.loads((tmp_path / "cue" / "synthetic.json").read_text())["params"]["time_cue"] == 0.5
    name = "videos/Bounce/v_Bounce_g01_c01.avi"
    plain, cue = _decode_all(root / name).astype(float), _decode_all(tmp_path / "cue" / name).astype(float)
    ratio = cue.mean(axis=(1, 2, 3)) / plain.mean(axis=(1, 2, 3))
    assert cued.num_videos == 6
    assert abs(ratio[0] - 1.0) < 0.03 and abs(ratio[-1] - 0.5) < 0.03   # lossy codecs: a few %
    assert np.all(np.diff(ratio) < 0.01)


# ------------------------------------------------------------------------------ class design --

def _nearest_centroid_accuracy(correlation: float) -> float:
    """Predict the class from colours alone (object + background), held-out groups."""
    def feats(ci: int, g: int) -> np.ndarray:
        a = clip_appearance(0, ci, g, 0, correlation)
        return np.r_[a.color, a.bg_color, a.bg_color2].astype(np.float64)

    n = len(SYNTHETIC_CLASSES)
    train = np.array([[feats(ci, g) for g in range(20)] for ci in range(n)])
    test = np.array([[feats(ci, g) for g in range(20, 40)] for ci in range(n)])
    centroids = train.mean(1)
    d = ((test[:, :, None, :] - centroids[None, None]) ** 2).sum(-1)
    return float((d.argmin(-1) == np.arange(n)[:, None]).mean())


def test_appearance_is_independent_of_class_unless_asked():
    assert _nearest_centroid_accuracy(0.0) < 0.3  # chance is 0.1
    assert _nearest_centroid_accuracy(1.0) > 0.9  # the class palette is a scene bias
    shapes = {clip_appearance(0, ci, g, 0).shape for ci in range(2) for g in range(30)}
    assert len(shapes) >= 5


def _motion_signature(frames: np.ndarray, masks: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Six per-frame statistics, resampled to 12 time bins: ink (pixels off the background),
    object area, centroid speed, mask change, elongation and dispersion (pieces spreading)."""
    T, S = masks.shape[0], masks.shape[1]
    m = masks > 0
    area = m.sum((1, 2)).astype(np.float64)
    ink = (np.abs(frames.astype(np.float64) - bg[None]).max(-1) > 24).mean((1, 2))
    ys, xs = np.mgrid[0:S, 0:S]
    a = np.maximum(area, 1)
    cx, cy = (m * xs).sum((1, 2)) / a, (m * ys).sum((1, 2)) / a
    vxx = (m * xs**2).sum((1, 2)) / a - cx**2
    vyy = (m * ys**2).sum((1, 2)) / a - cy**2
    vxy = (m * xs * ys).sum((1, 2)) / a - cx * cy
    empty = area == 0
    if empty.any() and not empty.all():  # a vanished object keeps its nearest known position
        ok = np.nonzero(~empty)[0]
        cx, cy = np.interp(np.arange(T), ok, cx[ok]), np.interp(np.arange(T), ok, cy[ok])
    vxx[empty] = vyy[empty] = vxy[empty] = 0
    tr = vxx + vyy
    disc = np.sqrt(np.maximum(tr**2 / 4 - (vxx * vyy - vxy**2), 0))
    elong = np.log(np.maximum(tr / 2 + disc, 0.05) / np.maximum(tr / 2 - disc, 0.05))
    series = [ink / max(ink.max(), 1e-6), area / max(area.max(), 1),
              np.hypot(np.diff(cx), np.diff(cy)) / S * (T - 1),
              (m[1:] ^ m[:-1]).sum((1, 2)) / max(area.max(), 1), elong, np.sqrt(tr / a)]
    grid = np.linspace(0, 1, 12)
    return np.stack([np.interp(grid, np.linspace(0, 1, len(s)), s) for s in series])


def test_no_class_is_the_time_reversal_of_another():
    T, S, N = 24, 32, 6
    sig = {}  # class -> (forward set A, reversed set A, forward set B, reversed set B)
    for ci, name in enumerate(SYNTHETIC_CLASSES):
        sets = []
        for offset in (0, 100):  # two independent samples of the class
            fwd, rev = [], []
            for g in range(offset, offset + N):
                app = clip_appearance(7, ci, g, 0)
                clip = render_clip(name, app, T, S, np.random.default_rng(g))
                bg = background(app, S)
                fwd.append(_motion_signature(clip.frames, clip.masks, bg))
                rev.append(_motion_signature(clip.frames[::-1], clip.masks[::-1], bg))
            sets += [np.array(fwd), np.array(rev)]
        sig[name] = sets
    scale = np.concatenate([s[0] for s in sig.values()]).std((0, 2))[None, :, None] + 1e-3

    def dist(x: np.ndarray, y: np.ndarray) -> float:  # mean pairwise distance of two sets
        diff = (x[:, None] - y[None]) / scale[None]
        return float(np.sqrt((diff**2).mean((2, 3))).mean())

    spread = {c: dist(s[0], s[2]) for c, s in sig.items()}  # two samples of the same class
    for a in SYNTHETIC_CLASSES:
        # Calibration: a class that *were* the reversal of A ("reversed A" sampled again) sits
        # at ratio ~1. Every real class must be much farther from reversed A than that.
        assert dist(sig[a][1], sig[a][3]) / spread[a] < 1.1
        for b in SYNTHETIC_CLASSES:
            ratio = dist(sig[a][1], sig[b][0]) / spread[b]
            assert ratio > 1.25, f"reversed {a} looks like {b} (ratio {ratio:.2f})"


def test_render_clip_without_files():
    for ci, name in enumerate(SYNTHETIC_CLASSES):
        clip = render_clip(name, clip_appearance(0, ci, 0, 0), 12, 32, np.random.default_rng(0))
        assert clip.frames.shape == (12, 32, 32, 3) and clip.frames.dtype == np.uint8
        assert clip.masks.shape == (12, 32, 32) and set(np.unique(clip.masks)) <= {0, 1}
        assert clip.masks[0].sum() > 0
        again = render_clip(name, clip_appearance(0, ci, 0, 0), 12, 32, np.random.default_rng(0))
        np.testing.assert_array_equal(clip.frames, again.frames)


# ---------------------------------------------------------------------------------- tracking --

def _sequences(root: Path) -> list[dict]:
    with open(root / "tracking" / "metadata.jsonl") as f:
        return [json.loads(line) for line in f]


def test_tracking_davis_layout(dataset):
    root, summary = dataset
    davis = root / "tracking" / "davis"
    seqs = _sequences(root)
    assert summary.num_tracking_sequences == len(seqs) == 2
    names = (davis / "ImageSets" / "2017" / "val.txt").read_text().split()
    assert names == [s["name"] for s in seqs]
    for s in seqs:
        jpgs = sorted((davis / "JPEGImages" / "480p" / s["name"]).iterdir())
        pngs = sorted((davis / "Annotations" / "480p" / s["name"]).iterdir())
        assert [p.name for p in jpgs][:2] == ["00000.jpg", "00001.jpg"] and len(jpgs) == 16
        assert [p.stem for p in pngs] == [p.stem for p in jpgs]
        assert 2 <= s["num_objects"] <= 4
        seen = set()
        for p in pngs:
            im = Image.open(p)
            assert im.mode == "P" and im.size == (64, 64)
            assert im.getpalette()[:12] == davis_palette()[:12] == [0, 0, 0, 128, 0, 0, 0, 128, 0,
                                                                    128, 128, 0]
            seen |= set(np.unique(np.array(im)).tolist())
        assert seen <= set(range(s["num_objects"] + 1)) and len(seen) >= 2
        with open_video(root / "tracking" / "videos" / f"{s['name']}.mp4") as dec:
            assert dec.metadata.num_frames == 16 and dec.metadata.width == 64


def test_tracking_mot_boxes_match_masks(dataset):
    root, _ = dataset
    for s in _sequences(root):
        mot = root / "tracking" / "mot" / s["name"]
        ini = configparser.ConfigParser()
        ini.read(mot / "seqinfo.ini")
        seq = ini["Sequence"]
        assert (seq["name"], seq["imDir"], seq["imExt"]) == (s["name"], "img1", ".jpg")
        assert (int(seq["seqLength"]), int(seq["frameRate"]), int(seq["imWidth"])) == (16, 16, 64)
        assert len(list((mot / "img1").glob("*.jpg"))) == 16
        assert (mot / "img1" / "000001.jpg").exists()
        masks = np.stack([np.array(Image.open(p)) for p in sorted(
            (root / "tracking" / "davis" / "Annotations" / "480p" / s["name"]).iterdir())])
        gt = np.loadtxt(mot / "gt" / "gt.txt", delimiter=",", ndmin=2)
        assert gt.shape[1] == 9 and (gt[:, 6] == 1).all() and (gt[:, 7] == 1).all()
        rows = {(int(r[0]), int(r[1])): r for r in gt}
        full = 0
        for (frame, k), r in rows.items():
            x, y, w, h, vis = r[2], r[3], r[4], r[5], r[8]
            m = masks[frame - 1] == k
            if not m.any():
                assert vis == 0
                continue
            ys, xs = np.nonzero(m)
            # 1-based MOT coordinates: the visible mask lies inside the (amodal) box ...
            assert xs.min() + 1 >= x and ys.min() + 1 >= y
            assert xs.max() + 1 <= x + w - 1 and ys.max() + 1 <= y + h - 1
            if vis == 1.0:  # ... and spans it exactly when nothing occludes the object
                full += 1
                assert abs(xs.min() + 1 - x) <= 1 and abs(ys.min() + 1 - y) <= 1
                assert abs(xs.max() - xs.min() + 1 - w) <= 1
                assert abs(ys.max() - ys.min() + 1 - h) <= 1
        assert full > 0
        for frame in range(16):  # every visible instance has a gt row
            for k in np.unique(masks[frame]):
                assert k == 0 or (frame + 1, int(k)) in rows
        det = np.loadtxt(mot / "det" / "det.txt", delimiter=",", ndmin=2)
        assert det.shape[1] == 10 and (det[:, 1] == -1).all() and (det[:, 7:] == -1).all()
        assert det[:, 0].min() >= 1 and det[:, 0].max() <= 16 and (det[:, 4:6] > 0).all()
        assert ((det[:, 6] > 0) & (det[:, 6] <= 1)).all()
