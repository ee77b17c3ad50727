"""Index builders on fake trees with the real layouts and split-file formats, and the cache.

The big trees (UCF101's 13,320 clips, HMDB51's 51 x ~104) hard-link one real tiny video to every
path and replace the probe with a fast fake; the real-probe tests use small trees of real files.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import torch

import vidssl.data.index.metadata as metadata
from vidssl.data.decoders.base import VideoMeta, check_readable
from vidssl.data.index import (
    DATASETS,
    MetadataCache,
    VideoIndex,
    build_index,
    folder,
    hmdb51,
    kinetics_csv,
    probe_files,
    synthetic,
    ucf101,
)
from vidssl.data.index.datasets import vocabulary
from vidssl.errors import ConfigError, DatasetError, MissingDependencyError

UCF_CLASSES = vocabulary("ucf101")
HMDB_CLASSES = vocabulary("hmdb51")
FAKE_META = VideoMeta(16, 25.0, 32, 32)


# ------------------------------------------------------------------------------ fixtures --

def encode(path: Path, num_frames: int, ext_codec: str) -> Path:
    from torchcodec.encoders import VideoEncoder

    path.parent.mkdir(parents=True, exist_ok=True)
    frames = torch.randint(0, 255, (num_frames, 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(num_frames))
    VideoEncoder(frames, frame_rate=8).to_file(str(path), codec=ext_codec)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """One real .mp4 (H.264, 8 frames) and one real .avi (MPEG-4, 12 frames)."""
    d = tmp_path_factory.mktemp("clips")
    return {".mp4": encode(d / "a.mp4", 8, "libx264"), ".avi": encode(d / "a.avi", 12, "mpeg4")}


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    """Never touch the user's ~/.cache: the default cache goes to a per-test directory."""
    d = tmp_path / "cache"
    monkeypatch.setenv("VIDSSL_CACHE_DIR", str(d))
    return d


@pytest.fixture
def probes(monkeypatch) -> list[str]:
    """Count real probes: the list of paths probed, in order."""
    calls: list[str] = []
    real = metadata.probe_video

    def counting(path, backend="torchcodec"):
        calls.append(os.fspath(path))
        return real(path, backend)

    monkeypatch.setattr(metadata, "probe_video", counting)
    return calls


@pytest.fixture
def fake_probe(monkeypatch) -> list[str]:
    """A fast stand-in probe (for the 13k-file trees): checks the file, returns FAKE_META."""
    calls: list[str] = []

    def fake(path, backend="torchcodec"):
        calls.append(os.fspath(path))
        check_readable(os.fspath(path))
        return FAKE_META

    monkeypatch.setattr(metadata, "probe_video", fake)
    return calls


def put(path: Path, source: Path, link: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    (os.link if link else shutil.copyfile)(source, path)


# --------------------------------------------------------------------------- UCF101 tree --

def ucf_counts() -> dict[tuple[int, int], int]:
    """Clips per (class, group 1..25), 5 or 6 each, so that split 1 has exactly 9,537 train
    (groups 8-25) and 3,783 test (groups 1-7) clips, as in the official lists."""
    counts = {}
    test_slots = [(c, g) for c in range(101) for g in range(1, 8)]
    train_slots = [(c, g) for c in range(101) for g in range(8, 26)]
    for slots, total in ((test_slots, 3783), (train_slots, 9537)):
        extra = total - 5 * len(slots)  # slots that get a 6th clip, spread by a bijection
        for j, slot in enumerate(slots):
            counts[slot] = 5 + ((j * 37) % len(slots) < extra)
    return counts


def ucf_file(cls: str, g: int, c: int, ext: str = ".avi") -> str:
    # The real dataset spells this one folder's files "HandStandPushups".
    stem = "HandStandPushups" if cls == "HandstandPushups" else cls
    return f"{cls}/v_{stem}_g{g:02d}_c{c:02d}{ext}"


def write_ucf_lists(ann: Path, classes: list[str], entries: list[tuple[int, int, str]],
                    splits=(1, 2, 3), groups_per_split: int = 7) -> None:
    """Official formats, CRLF line ends: classInd ``id Class``, trainlist ``rel id``,
    testlist ``rel``. ``entries`` are ``(class index, group, relative path)``; split k tests
    groups ``g (k-1) + 1 .. g k`` for ``g = groups_per_split``."""
    ann.mkdir(parents=True, exist_ok=True)
    (ann / "classInd.txt").write_bytes(
        "".join(f"{i + 1} {c}\r\n" for i, c in enumerate(classes)).encode())
    for k in splits:
        g = groups_per_split
        test_groups = range(g * (k - 1) + 1, g * k + 1)
        train = [f"{rel} {ci + 1}\r\n" for ci, g, rel in entries if g not in test_groups]
        test = [f"{rel}\r\n" for ci, g, rel in entries if g in test_groups]
        (ann / f"trainlist{k:02d}.txt").write_bytes("".join(train).encode())
        (ann / f"testlist{k:02d}.txt").write_bytes("".join(test).encode())


@pytest.fixture(scope="module")
def ucf_tree(tmp_path_factory, clips) -> Path:
    """All 101 classes, 25 groups, 13,320 hard links to one real .avi, official lists."""
    root = tmp_path_factory.mktemp("UCF101")
    entries = []
    for (ci, g), n in sorted(ucf_counts().items()):
        for c in range(1, n + 1):
            rel = ucf_file(UCF_CLASSES[ci], g, c)
            entries.append((ci, g, rel))
    for cls in UCF_CLASSES:
        (root / cls).mkdir()
    src = clips[".avi"]
    for _, _, rel in entries:
        os.link(src, root / rel)
    write_ucf_lists(root / "ucfTrainTestlist", UCF_CLASSES, entries)
    return root


def test_ucf101_official_counts_labels_and_groups(ucf_tree, fake_probe):
    train = ucf101(ucf_tree, split=1, subset="train")
    test = ucf101(ucf_tree, split=1, subset="test")
    assert (len(train), len(test)) == (9537, 3783)
    assert len(fake_probe) == 13320  # every hard-linked path probed once
    # Rebuilding from the cache (13k keys, several lookup batches) probes nothing.
    again = ucf101(ucf_tree, split=1, subset="train")
    assert len(fake_probe) == 13320 and again.report.cached == 9537
    assert again.paths == train.paths
    assert train.class_names == UCF_CLASSES and train.num_classes == 101
    assert not train.report.missing and not train.report.failed
    # Labels are 0-based classInd ids and agree with the class folder.
    for index in (train, test):
        for i in range(0, len(index), 97):
            folder_name = Path(index.path(i)).parent.name
            assert index.class_names[index.labels[i]] == folder_name
    assert set(np.unique(train.labels)) == set(range(101))
    assert train.labels.min() == 0 and train.labels.max() == 100
    # Groups: gGG -> GG - 1; split 1 tests g01-g07.
    i = next(i for i in range(len(train)) if "_g08_" in train.path(i))
    assert train.groups[i] == 7 and train.group_names[7] == "g08"
    assert set(np.unique(test.groups)) == set(range(7))
    assert set(np.unique(train.groups)) == set(range(7, 25))
    assert train.group_names == [f"g{g:02d}" for g in range(1, 26)]
    assert train.summary()["groups"] == 18 and test.summary()["groups"] == 7
    assert train.num_frames[0] == FAKE_META.num_frames and train.fps[0] == FAKE_META.fps


@pytest.mark.parametrize("split", [2, 3])
def test_ucf101_other_splits_are_group_disjoint(ucf_tree, fake_probe, split):
    train = ucf101(ucf_tree, split=split, subset="train", cache=False)
    test = ucf101(ucf_tree, split=split, subset="test", cache=False)
    assert len(train) + len(test) == 13320
    assert set(np.unique(test.groups)) == set(range(7 * (split - 1), 7 * split))
    assert not set(train.groups.tolist()) & set(test.groups.tolist())


def small_ucf(root: Path, clips, classes=("ApplyEyeMakeup", "Archery", "HandstandPushups"),
              groups=range(1, 10), per_group=1, ext=".avi", ann="ucfTrainTestlist",
              link=True) -> list[tuple[int, int, str]]:
    """A few classes, groups 1..9 (so every split has train and test), real files."""
    entries = []
    for ci, cls in enumerate(classes):
        for g in groups:
            for c in range(1, per_group + 1):
                rel = ucf_file(cls, g, c, ext)
                put(root / rel, clips[ext], link)
                entries.append((ci, g, rel.replace(ext, ".avi")))  # lists always say .avi
    write_ucf_lists(root / ann, list(classes), entries)
    return entries


def test_ucf101_real_probe_small_tree_and_save_load(tmp_path, clips, probes):
    small_ucf(tmp_path / "UCF101", clips)
    train = ucf101(tmp_path / "UCF101", split=1, subset="train")
    assert len(train) == 3 * 2 and len(probes) == 6
    assert set(train.num_frames.tolist()) == {12} and set(train.fps.tolist()) == {8.0}
    assert train.name == "ucf101/split1/train"
    # HandStandPushups files sit in the HandstandPushups folder (as in the real dataset).
    assert train.labels.tolist().count(2) == 2
    train.save(tmp_path / "index.npz")
    loaded = VideoIndex.load(tmp_path / "index.npz")
    assert loaded.paths == train.paths and loaded.name == train.name
    for col in ("labels", "num_frames", "fps", "groups", "seek_tokens"):
        np.testing.assert_array_equal(getattr(loaded, col), getattr(train, col))
    assert loaded.class_names == train.class_names and loaded.group_names == train.group_names
    assert list(loaded) == list(train)


def test_seek_tokens_are_kept_by_subset_save_and_load_and_default_to_zero(tmp_path):
    index = VideoIndex(["/a.avi", "/b.avi", "/c.mp4"], [0, 1, 0], [10, 20, 30], [25.0] * 3,
                       seek_tokens=[7, 0, 9])
    assert index.subset([2, 0]).seek_tokens.tolist() == [9, 7]
    index.save(tmp_path / "i.npz")
    assert VideoIndex.load(tmp_path / "i.npz").seek_tokens.tolist() == [7, 0, 9]
    with np.load(tmp_path / "i.npz", allow_pickle=False) as z:  # an index saved before tokens
        np.savez(tmp_path / "old.npz", **{k: z[k] for k in z.files if k != "seek_tokens"})
    assert VideoIndex.load(tmp_path / "old.npz").seek_tokens.tolist() == [0, 0, 0]
    assert VideoIndex(["/a.avi"], [0], [1], [1.0]).seek_tokens.tolist() == [0]


def test_ucf101_mp4_tree_with_avi_lists_and_ucf101_subfolder(tmp_path, clips, probes):
    # The official archive extracts to UCF-101/; a converted tree holds .mp4 files.
    small_ucf(tmp_path / "UCF-101", clips, ext=".mp4", ann="../ucfTrainTestlist")
    test = ucf101(tmp_path, split=1, subset="test")
    assert len(test) == 21 and all(p.endswith(".mp4") for p in test.paths)
    assert all("/UCF-101/" in p for p in test.paths)


@pytest.mark.parametrize("where", ["ucfTrainTestlist", "splits", "."])
def test_ucf101_annotation_search_order(tmp_path, clips, fake_probe, where):
    small_ucf(tmp_path, clips, ann=where)
    assert len(ucf101(tmp_path, 1, "train", cache=False)) == 6


def test_ucf101_annotation_precedence(tmp_path, clips, fake_probe):
    small_ucf(tmp_path, clips, ann="ucfTrainTestlist")  # 3 classes
    line = "Archery/v_Archery_g08_c01.avi 1\r\n"
    for d, class_ind in (("splits", "1 Archery\r\n"), (".", "1 Archery\r\n2 Boxing\r\n")):
        (tmp_path / d).mkdir(exist_ok=True)
        (tmp_path / d / "classInd.txt").write_text(class_ind)
        (tmp_path / d / "trainlist01.txt").write_text(line)
    assert ucf101(tmp_path, cache=False).num_classes == 3
    assert ucf101(tmp_path, annotations=tmp_path / "splits", cache=False).num_classes == 1
    shutil.rmtree(tmp_path / "ucfTrainTestlist")
    assert ucf101(tmp_path, cache=False).num_classes == 1
    shutil.rmtree(tmp_path / "splits")
    assert ucf101(tmp_path, cache=False).num_classes == 2


def test_ucf101_missing_annotations_and_bad_root(tmp_path, clips):
    with pytest.raises(DatasetError, match="does not exist"):
        ucf101(tmp_path / "nope")
    (tmp_path / "Archery").mkdir()
    with pytest.raises(DatasetError, match="ucfTrainTestlist") as err:
        ucf101(tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(DatasetError, match="custom"):
        ucf101(tmp_path, annotations=tmp_path / "custom")
    small_ucf(tmp_path, clips)
    os.remove(tmp_path / "ucfTrainTestlist" / "testlist02.txt")
    with pytest.raises(DatasetError, match="testlist02.txt does not exist"):
        ucf101(tmp_path, split=2, subset="test")


@pytest.mark.parametrize("bad_line, message", [
    ("Archery/v_Archery_g01_c01.avi 1\r\n", r"trainlist01.txt:2: class id 1 disagrees"),
    ("Nope/v_Nope_g01_c01.avi 1\r\n", r"trainlist01.txt:2: class folder 'Nope' is not in"),
    ("Archery/archery_01.avi 2\r\n", r"trainlist01.txt:2: file name 'archery_01.avi' is not"),
    ("Archery/v_Boxing_g01_c01.avi 2\r\n", r"trainlist01.txt:2: file 'v_Boxing_g01_c01.avi'"),
    ("Archery/v_Archery_g01_c01.avi x\r\n", r"trainlist01.txt:2: class id 'x'"),
    ("v_Archery_g01_c01.avi 2\r\n", r"trainlist01.txt:2: expected '<Class>/<file>'"),
    ("Archery/v_Archery_g01_c01.avi 2 extra\r\n", r"trainlist01.txt:2: expected"),
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n", r"trainlist01.txt:2: .* listed twice"),
])
def test_ucf101_malformed_lines_name_file_and_line(tmp_path, clips, bad_line, message):
    small_ucf(tmp_path, clips)
    path = tmp_path / "ucfTrainTestlist" / "trainlist01.txt"
    lines = path.read_bytes().decode().splitlines(keepends=True)
    lines.insert(1, bad_line)
    path.write_bytes("".join(lines).encode())
    with pytest.raises(DatasetError, match=message):
        ucf101(tmp_path, cache=False)


@pytest.mark.parametrize("class_ind, message", [
    ("1 Archery\n1 Boxing\n", "classInd.txt:2: class id 1 or name"),
    ("1 Archery\nBoxing\n", "classInd.txt:2: expected '<id> <ClassName>'"),
    ("1 Archery\n3 Boxing\n", "class ids must run 1..2"),
    ("\n", "no classes listed"),
])
def test_ucf101_malformed_class_ind(tmp_path, clips, class_ind, message):
    small_ucf(tmp_path, clips)
    (tmp_path / "ucfTrainTestlist" / "classInd.txt").write_text(class_ind)
    with pytest.raises(DatasetError, match=message):
        ucf101(tmp_path, cache=False)


def test_bad_split_and_subset_are_config_errors(tmp_path):
    for kwargs in ({"split": 4}, {"split": 0}, {"split": "1"}, {"subset": "val"}):
        with pytest.raises(ConfigError):
            ucf101(tmp_path, **kwargs)
        with pytest.raises(ConfigError):
            hmdb51(tmp_path, **kwargs)


# ------------------------------------------------------------------- missing and failed --

def test_missing_files_are_reported_and_the_rest_indexed(tmp_path, clips, fake_probe):
    entries = small_ucf(tmp_path, clips, per_group=3)  # 3 classes x 9 groups x 3 clips
    gone = [rel for _, g, rel in entries if g >= 8][:7]
    for rel in gone:
        os.remove(tmp_path / rel)
    index = ucf101(tmp_path, 1, "train", cache=False)
    assert len(index) == 3 * 2 * 3 - 7
    assert sorted(index.report.missing) == sorted(str(tmp_path / rel) for rel in gone)
    lines = index.report.summary_lines()
    assert lines[0].startswith("7 listed files are missing: ") and "(+2 more)" in lines[0]
    assert index.summary()["missing"] == 7


def test_all_missing_is_a_dataset_error(tmp_path, clips, fake_probe):
    entries = small_ucf(tmp_path, clips)
    for _, g, rel in entries:
        if g <= 7:
            os.remove(tmp_path / rel)
    with pytest.raises(DatasetError) as err:
        ucf101(tmp_path, 1, "test", cache=False)
    msg = str(err.value)
    assert "ucf101/split1/test" in msg and "testlist01.txt" in msg and str(tmp_path) in msg
    assert "21 listed, 21 missing, 0 unreadable" in msg and "\n" not in msg


@pytest.fixture
def bad_videos(clips) -> dict[str, bytes]:
    data = clips[".mp4"].read_bytes()
    return {"zero": b"", "truncated": data[: len(data) // 3], "text": b"not a video\n",
            "random": np.random.default_rng(0).bytes(4096)}


def test_corrupt_files_are_reported_with_reasons(tmp_path, clips, bad_videos, probes):
    root = tmp_path / "tree"
    put(root / "good" / "a.mp4", clips[".mp4"])
    for name, data in bad_videos.items():
        (root / "bad").mkdir(parents=True, exist_ok=True)
        (root / "bad" / f"{name}.mp4").write_bytes(data)
    index = folder(root)
    assert len(index) == 1 and index.class_names == ["bad", "good"] and index.labels[0] == 1
    reasons = {Path(f.path).stem: f.reason for f in index.report.failed}
    assert set(reasons) == set(bad_videos)
    assert "empty file" in reasons["zero"]
    assert all(r and "\n" not in r for r in reasons.values())
    assert "4 files could not be read" in index.report.summary_lines()[0]
    # every failure is cached: the second build probes nothing
    probes.clear()
    again = folder(root)
    assert probes == [] and len(again.report.failed) == 4
    assert {Path(f.path).stem: f.reason for f in again.report.failed} == reasons
    os.remove(root / "good" / "a.mp4")
    with pytest.raises(DatasetError, match="0 missing, 4 unreadable"):
        folder(root)


# ------------------------------------------------------------------------------- HMDB51 --

def hmdb_video(cls: str, j: int) -> str:
    return f"Clip_{j:03d}_{cls}_f_cm_np1_ri_med_{j % 3}.avi"


@pytest.fixture(scope="module")
def hmdb_tree(tmp_path_factory, clips) -> Path:
    """51 classes; per class 100 videos used by every split plus 2-6 unused ones; split s
    tests videos j with (j + 30 (s - 1)) mod 100 < 30. Official lines: ``name flag `` (with the
    trailing space of the real files)."""
    root = tmp_path_factory.mktemp("hmdb51")
    ann = root / "testTrainMulti_7030_splits"
    ann.mkdir()
    src = clips[".avi"]
    for ci, cls in enumerate(HMDB_CLASSES):
        (root / cls).mkdir()
        n = 100 + 2 + ci % 5
        for j in range(n):
            os.link(src, root / cls / hmdb_video(cls, j))
        for s in (1, 2, 3):
            lines = []
            for j in range(n):
                flag = 0 if j >= 100 else (2 if (j + 30 * (s - 1)) % 100 < 30 else 1)
                lines.append(f"{hmdb_video(cls, j)} {flag} \n")
            (ann / f"{cls}_test_split{s}.txt").write_text("".join(lines))
    return root


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb51_official_counts(hmdb_tree, fake_probe, split):
    train = hmdb51(hmdb_tree, split=split, subset="train", cache=False)
    test = hmdb51(hmdb_tree, split=split, subset="test", cache=False)
    assert (len(train), len(test)) == (3570, 1530)
    assert train.class_names == HMDB_CLASSES == sorted(HMDB_CLASSES)
    assert set(train.groups.tolist()) == {-1} and train.group_names == []
    assert np.bincount(train.labels).tolist() == [70] * 51
    assert np.bincount(test.labels).tolist() == [30] * 51
    assert not set(train.paths) & set(test.paths)
    for index in (train, test):
        for i in range(0, len(index), 101):
            assert Path(index.path(i)).parent.name == index.class_names[index.labels[i]]


def small_hmdb(root: Path, clips, classes=("brush_hair", "cartwheel"), ann="splits") -> None:
    (root / ann).mkdir(parents=True, exist_ok=True)
    for cls in classes:
        lines = []
        for j, flag in enumerate((1, 1, 2, 0)):
            put(root / cls / hmdb_video(cls, j), clips[".avi"])
            lines.append(f"{hmdb_video(cls, j)} {flag}\n")
        (root / ann / f"{cls}_test_split1.txt").write_text("".join(lines))


def test_hmdb51_small_tree_real_probe(tmp_path, clips, probes):
    small_hmdb(tmp_path, clips)
    train = hmdb51(tmp_path, 1, "train")
    assert len(train) == 4 and len(probes) == 4 and train.class_names == ["brush_hair", "cartwheel"]
    assert set(train.num_frames.tolist()) == {12}
    with pytest.raises(DatasetError, match="split 2"):
        hmdb51(tmp_path, 2, "train")


@pytest.mark.parametrize("line, message", [
    ("x.avi 3\n", r"brush_hair_test_split1.txt:5: expected '<video> <0\|1\|2>'"),
    ("lonely\n", r"brush_hair_test_split1.txt:5: expected"),
    (f"{hmdb_video('brush_hair', 0)} 1\n", r"brush_hair_test_split1.txt:5: .* listed twice"),
])
def test_hmdb51_malformed_lines(tmp_path, clips, line, message):
    small_hmdb(tmp_path, clips)
    with open(tmp_path / "splits" / "brush_hair_test_split1.txt", "a") as f:
        f.write(line)
    with pytest.raises(DatasetError, match=message):
        hmdb51(tmp_path, 1, "train", cache=False)


def test_hmdb51_missing_annotations(tmp_path):
    (tmp_path / "brush_hair").mkdir()
    with pytest.raises(DatasetError, match="testTrainMulti_7030_splits"):
        hmdb51(tmp_path)


# ----------------------------------------------------------------------------- Kinetics --

def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_kinetics_official_csv_layouts(tmp_path, clips, probes):
    root = tmp_path / "k400"
    mp4 = clips[".mp4"]
    put(root / "train" / "abseiling" / "aaa_000010_000020.mp4", mp4)          # split/label
    put(root / "passing_American_football_(in_game)" / "bbb_000000_000010.mp4", mp4)  # label_
    put(root / "train" / "ccc_000005_000015.mkv", mp4)                         # split, .mkv
    put(root / "val" / "zumba" / "ddd_000001_000011.mp4", mp4)                 # validate->val
    put(root / "eee_000100_000110.mp4", mp4)                                   # flat
    rows = [["abseiling", "aaa", 10, 20, "train"],
            ["passing American football (in game)", "bbb", 0, 10, "train"],
            ["abseiling", "ccc", 5, 15, "train"],
            ["zumba", "ddd", 1, 11, "validate"],
            ["air drumming", "eee", 100, 110, "train"],
            ["air drumming", "fff", 3, 13, "train"]]                            # missing
    path = write_csv(tmp_path / "train.csv",
                     ["label", "youtube_id", "time_start", "time_end", "split"], rows)
    index = kinetics_csv(root, path, subset="train")
    assert index.class_names == ["abseiling", "air drumming",
                                 "passing American football (in game)", "zumba"]
    assert [Path(p).name for p in index.paths] == [
        "aaa_000010_000020.mp4", "bbb_000000_000010.mp4", "ccc_000005_000015.mkv",
        "eee_000100_000110.mp4"]
    assert index.labels.tolist() == [0, 2, 0, 1]
    assert index.report.missing == [str(root / "train" / "air drumming" / "fff_000003_000013.mp4")]
    assert index.name == "kinetics/train/train"
    val = kinetics_csv(root, path, subset="val")
    assert len(val) == 1 and val.labels.tolist() == [3] and val.num_classes == 4
    everything = kinetics_csv(root, path)
    assert len(everything) == 5
    fixed = kinetics_csv(root, path, subset="val", classes="kinetics400")
    assert fixed.num_classes == 400 and fixed.class_names[fixed.labels[0]] == "zumba"


def test_kinetics_plain_csv(tmp_path, clips, fake_probe):
    root = tmp_path / "data"
    for rel in ("x/1.mp4", "x/2.avi", "y/3.mp4"):
        put(root / rel, clips[".mp4"])
    outside = tmp_path / "elsewhere" / "4.mp4"
    put(outside, clips[".mp4"])
    rows = [["x/1.mp4", "walk"], ["y/3.mp4", "run"], [str(outside), "walk"],
            ["x/2.avi", "jump"], ["x/gone.mp4", "run"]]
    index = kinetics_csv(root, write_csv(tmp_path / "list.csv", ["path", "label"], rows),
                         cache=False)
    assert index.class_names == ["walk", "run", "jump"]  # first appearance
    assert index.labels.tolist() == [0, 1, 0, 2]
    assert index.path(2) == str(outside)
    assert index.report.missing == [str(root / "x" / "gone.mp4")]
    ints = kinetics_csv(root, write_csv(tmp_path / "ints.csv", ["path", "label"],
                                        [["x/1.mp4", "3"], ["y/3.mp4", "0"]]), cache=False)
    assert ints.labels.tolist() == [3, 0] and ints.class_names == [] and ints.num_classes == 4
    split = write_csv(tmp_path / "s.csv", ["path", "label", "split"],
                      [["x/1.mp4", "a", "train"], ["y/3.mp4", "b", "val"]])
    assert kinetics_csv(root, split, subset="validation", cache=False).labels.tolist() == [1]


@pytest.mark.parametrize("content, message", [
    ("name,class\nx.mp4,a\n", r"s.csv:1: unrecognised header"),
    ("path,label\nx.mp4,a,extra\n", r"s.csv:2: 3 fields, the header has 2"),
    ("label,youtube_id,time_start,time_end,split\na,b,x,3,train\n", r"s.csv:2: time_start"),
    ("", "empty CSV"),
])
def test_kinetics_malformed_csv(tmp_path, content, message):
    (tmp_path / "s.csv").write_text(content)
    with pytest.raises(DatasetError, match=message):
        kinetics_csv(tmp_path, tmp_path / "s.csv", cache=False)


def test_kinetics_csv_errors(tmp_path):
    with pytest.raises(DatasetError, match="nope.csv does not exist"):
        kinetics_csv(tmp_path, "nope.csv")
    write_csv(tmp_path / "p.csv", ["path", "label"], [["a.mp4", "x"]])
    with pytest.raises(DatasetError, match="no split column"):
        kinetics_csv(tmp_path, "p.csv", subset="train")  # relative to root
    with pytest.raises(DatasetError, match=r"p.csv:2: label 'x' is not one of the 2"):
        kinetics_csv(tmp_path, "p.csv", classes=["a", "b"])


# --------------------------------------------------------------------- folder, synthetic --

def test_folder_tree(tmp_path, clips, probes):
    root = tmp_path / "tree"
    put(root / "zebra" / "deep" / "er" / "1.MP4", clips[".mp4"])
    put(root / "apple" / "2.avi", clips[".avi"])
    put(root / "apple" / "3.mp4", clips[".mp4"])
    (root / "apple" / "notes.txt").write_text("x")
    put(root / ".hidden" / "4.mp4", clips[".mp4"])
    put(root / "loose.mp4", clips[".mp4"])
    (root / "empty_class").mkdir()
    index = folder(root)
    assert index.class_names == ["apple", "empty_class", "zebra"]
    assert [Path(p).name for p in index.paths] == ["2.avi", "3.mp4", "1.MP4"]
    assert index.labels.tolist() == [0, 0, 2] and index.num_frames.tolist() == [12, 8, 8]
    assert set(index.groups.tolist()) == {-1}
    only_avi = folder(root, extensions=("avi",))
    assert only_avi.paths == [str(root / "apple" / "2.avi")]
    with pytest.raises(DatasetError, match="no class sub-directories"):
        folder(root / "apple")


def test_synthetic_layout_mixed_extensions(tmp_path, clips, probes):
    root = tmp_path / "synth"
    entries = []
    classes = ["Drop", "Toss", "Bounce"]
    for ci, cls in enumerate(classes):
        for g in (1, 2, 3):
            ext = ".avi" if (ci + g) % 2 else ".mp4"
            rel = f"{cls}/v_{cls}_g{g:02d}_c01{ext}"
            put(root / "videos" / rel, clips[ext])
            entries.append((ci, g, rel))
    write_ucf_lists(root / "splits", classes, entries, splits=(1,), groups_per_split=1)
    train = synthetic(root, split=1, subset="train")
    test = synthetic(root, 1, "test")
    assert (len(train), len(test)) == (6, 3) and train.class_names == classes
    assert test.groups.tolist() == [0, 0, 0] and set(train.groups.tolist()) == {1, 2}
    frames = {Path(p).suffix: int(n) for p, n in zip(train.paths, train.num_frames)}
    assert frames == {".avi": 12, ".mp4": 8}
    assert train.name == "synthetic/split1/train"
    shutil.rmtree(root / "splits")
    with pytest.raises(DatasetError, match="no splits/ directory"):
        synthetic(root)


# -------------------------------------------------------------------------------- cache --

@pytest.fixture
def copies(tmp_path, clips) -> Path:
    """Independent files (not hard links: touching one must not touch the others)."""
    root = tmp_path / "tree"
    for i in range(3):
        put(root / "a" / f"{i}.mp4", clips[".mp4"], link=False)
        put(root / "b" / f"{i}.avi", clips[".avi"], link=False)
    (root / "b" / "broken.avi").write_bytes(b"garbage" * 100)
    return root


def test_second_build_probes_nothing(copies, probes, cache_dir):
    first = folder(copies)
    assert len(probes) == 7 and first.report.probed == 7 and first.report.cached == 0
    assert (cache_dir / "metadata.sqlite").exists()
    probes.clear()
    second = folder(copies)
    assert probes == [] and second.report.cached == 7 and second.report.probed == 0
    assert second.paths == first.paths
    np.testing.assert_array_equal(second.num_frames, first.num_frames)
    assert [f.reason for f in second.report.failed] == [f.reason for f in first.report.failed]


def test_changed_file_is_probed_again(copies, probes):
    folder(copies)
    probes.clear()
    target = copies / "a" / "1.mp4"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert len(folder(copies)) == 6 and probes == [str(target)]
    probes.clear()
    with open(copies / "b" / "2.avi", "ab") as f:  # size change, mtime kept
        f.write(b"\0" * 10)
    os.utime(copies / "b" / "2.avi", ns=(st.st_atime_ns, st.st_mtime_ns))
    folder(copies)
    assert probes == [str(copies / "b" / "2.avi")]
    probes.clear()
    # A repaired file is re-probed and now succeeds.
    shutil.copyfile(copies / "a" / "0.mp4", copies / "b" / "broken.avi")
    index = folder(copies)
    assert probes == [str(copies / "b" / "broken.avi")] and len(index) == 7
    assert index.report.failed == []


def test_cache_disabled_path_and_instance(copies, probes, cache_dir, tmp_path):
    folder(copies, cache=False)
    folder(copies, cache=False)
    assert len(probes) == 14 and not cache_dir.exists()
    probes.clear()
    db = tmp_path / "elsewhere" / "m.sqlite"
    folder(copies, cache=str(db))
    folder(copies, cache=db)
    assert len(probes) == 7 and db.exists()
    with MetadataCache(db) as cache:
        probes.clear()
        folder(copies, cache=cache)
        assert probes == [] and len(cache) == 7
        with closing(sqlite3.connect(db)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    dir_cache = MetadataCache(tmp_path / "elsewhere")  # a directory -> metadata.sqlite inside
    assert dir_cache.path.endswith("elsewhere/metadata.sqlite")
    with pytest.raises(ConfigError):
        folder(copies, cache=3)


def test_cache_key_includes_backend(copies, probes):
    folder(copies)
    probes.clear()
    index = folder(copies, backend="pyav")
    assert len(probes) == 7 and len(index) == 6
    probes.clear()
    folder(copies, backend="pyav")
    folder(copies)
    assert probes == []
    with pytest.raises(ConfigError, match="unknown decoder backend"):
        folder(copies, backend="nope")


def test_unusable_cache_file_warns_and_builds(copies, probes, cache_dir):
    cache_dir.mkdir()
    (cache_dir / "metadata.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.warns(UserWarning, match="metadata cache"):
        index = folder(copies)
    assert len(index) == 6 and len(probes) == 7


def test_interrupted_build_keeps_what_was_probed(copies, monkeypatch, probes):
    real = metadata.probe_video
    calls = []

    def dies_on_third(path, backend="torchcodec"):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path, backend)

    monkeypatch.setattr(metadata, "probe_video", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        folder(copies)
    monkeypatch.setattr(metadata, "probe_video", real)
    probes_before = len(calls)
    result = probe_files(sorted(str(p) for p in copies.rglob("*.*")))
    assert probes_before == 3 and result.cached == 2 and result.probed == 5


def test_missing_backend_is_raised_not_reported(copies, monkeypatch):
    def missing(path, backend="torchcodec"):
        raise MissingDependencyError("torchcodec", "torchcodec", "the torchcodec decoder")

    monkeypatch.setattr(metadata, "probe_video", missing)
    with pytest.raises(MissingDependencyError):
        folder(copies, cache=False)


def test_thread_pool_and_progress_match_serial(tmp_path, clips, probes, monkeypatch):
    root = tmp_path / "many"
    for i in range(40):
        put(root / "c" / f"{i:02d}.mp4", clips[".mp4"])
    (root / "c" / "zz.mp4").write_bytes(b"")
    serial = folder(root, workers=1, cache=False)
    monkeypatch.setattr(metadata, "POOL_MIN_FILES", 4)
    pooled = folder(root, workers=2, cache=False, progress=True)
    assert pooled.paths == serial.paths and len(pooled) == 40
    assert [f.path for f in pooled.report.failed] == [str(root / "c" / "zz.mp4")]
    assert len(probes) == 82


@pytest.mark.slow
def test_process_pool(tmp_path, clips):
    root = tmp_path / "many"
    for i in range(40):
        put(root / "c" / f"{i:02d}.mp4", clips[".mp4"])
    index = folder(root, workers=2, pool="process", cache=False)
    assert len(index) == 40 and set(index.num_frames.tolist()) == {8}


def _writer(db: str, offset: int) -> None:
    cache = MetadataCache(db)
    for chunk in range(20):
        keys = [(metadata.FileKey(f"/v/{offset}/{chunk}/{i}", i, i), FAKE_META)
                for i in range(50)]
        cache.put_many(keys, "torchcodec")
    cache.close()


def test_two_processes_share_the_cache(tmp_path):
    db = str(tmp_path / "shared.sqlite")
    with MetadataCache(db) as cache:  # create it before the writers race
        assert len(cache) == 0
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(db, k)) for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    with MetadataCache(db) as cache:
        assert len(cache) == 2 * 20 * 50
        key = metadata.FileKey("/v/1/3/7", 7, 7)
        assert cache.get_many([key], "torchcodec") == {"/v/1/3/7": FAKE_META}
        assert cache.get_many([metadata.FileKey("/v/1/3/7", 7, 8)], "torchcodec") == {}
        assert cache.get_many([key], "pyav") == {}


def test_probe_files_reports_missing(tmp_path, clips):
    result = probe_files([clips[".mp4"], tmp_path / "gone.mp4"], cache=False)
    assert result.metas[0] == VideoMeta(8, 8.0, 32, 32) and result.metas[1] is None
    assert result.missing == [str(tmp_path / "gone.mp4")]


# ---------------------------------------------------------------------------- dispatcher --

def test_build_index_dispatch(tmp_path, clips, fake_probe):
    small_ucf(tmp_path, clips)
    index = build_index("ucf101", tmp_path, split=1, subset="test", cache=False)
    assert len(index) == 21
    assert set(DATASETS) == {"ucf101", "hmdb51", "kinetics_csv", "folder", "synthetic", "ssv2",
                             "kinetics", "diving48"}
    tree = build_index("folder", tmp_path, cache=False)  # ucfTrainTestlist/ is a class too
    assert len(tree) == 27 and tree.num_classes == 4
    with pytest.raises(ConfigError, match="unknown dataset 'ucf102'"):
        build_index("ucf102", tmp_path)
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) \['splt'\]"):
        build_index("ucf101", tmp_path, splt=1)
    with pytest.raises(ConfigError, match=r"needs argument\(s\) \['csv'\]"):
        build_index("csv", tmp_path)
    with pytest.raises(ConfigError, match="split must be"):
        build_index("ucf101", tmp_path, split=9)


def test_a_stuck_backend_stops_the_index_build_instead_of_caching_failures(monkeypatch):
    """One hung probe is a per-file failure (not cached, see TIMEOUT_REASON); past the overrun
    limit the build stops with DecoderStuckError rather than recording more 'failures'."""
    import time

    from vidssl.data.deadline import TIMEOUT_REASON, DecodeDeadline
    from vidssl.data.index import metadata
    from vidssl.errors import DecoderStuckError

    monkeypatch.setattr(metadata, "probe_video", lambda path, backend: time.sleep(2))
    monkeypatch.setattr(metadata._probe_deadlines, "deadline", DecodeDeadline(0.05, max_abandoned=1),
                        raising=False)
    assert metadata._probe_task("a.mp4", "torchcodec").startswith(TIMEOUT_REASON)
    with pytest.raises(DecoderStuckError, match="appears stuck"):
        metadata._probe_task("b.mp4", "torchcodec")
