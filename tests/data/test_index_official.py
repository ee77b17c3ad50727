"""Something-Something v2, Kinetics (official CSVs) and Diving48 on fake trees with the official
file names and annotation formats; partial downloads (missing list, hash of what was found).

Every video path hard-links one real tiny clip and the probe is the fast fake of test_index.py
(the formats and the file lookup are under test here, not decoding).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from tests.data.test_index import cache_dir, clips, fake_probe, put, write_csv  # noqa: F401 (fixtures)
from vidssl.data.index import DATASETS, build_index, dataset_arguments, diving48, kinetics, ssv2
from vidssl.data.index.datasets import vocabulary
from vidssl.data.index.kinetics import kinetics_version
from vidssl.data.index.ssv2 import ssv2_class_name
from vidssl.errors import ConfigError, DatasetError
from vidssl.provenance import records_hash


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text, text
    return text


# ------------------------------------------------------------------------------------ SSv2 --

SSV2_TEMPLATES = ["Approaching [something] with your camera", "Holding [something] next to [something]",
                  "Pretending to pick [something] up", "Pushing [something] from left to right",
                  "Putting [something] on a surface"]
SSV2_CLASSES = vocabulary("ssv2")   # the official labels.json order (alphabetical)


def ssv2_entry(vid: int, template: str) -> dict:
    n = template.count("[something]")
    objects = ["potato", "vicks vaporub bottle"][:n]
    label = template
    for obj in objects:
        label = label.replace("[something]", obj, 1)
    return {"id": str(vid), "label": label.lower(), "template": template, "placeholders": objects}


def write_ssv2(root: Path, clip: Path, prefixed: bool = False, missing: tuple[int, ...] = ()) -> dict:
    """labels.json (174 classes, ids as strings), train.json, validation.json, test.json and
    ``20bn-something-something-v2/<id>.webm``; returns the train/validation entries."""
    ann = root if prefixed else root / "labels"
    ann.mkdir(parents=True, exist_ok=True)
    name = (lambda f: f"something-something-v2-{f}") if prefixed else (lambda f: f)
    (ann / name("labels.json")).write_text(json.dumps({c: str(i) for i, c in enumerate(SSV2_CLASSES)}))
    train = [ssv2_entry(100 + i, SSV2_TEMPLATES[i % 5]) for i in range(10)]
    val = [ssv2_entry(200 + i, SSV2_TEMPLATES[(i + 2) % 5]) for i in range(4)]
    (ann / name("train.json")).write_text(json.dumps(train))
    (ann / name("validation.json")).write_text(json.dumps(val))
    (ann / name("test.json")).write_text(json.dumps([{"id": "300"}, {"id": "301"}]))
    for e in train + val:
        if int(e["id"]) not in missing:
            put(root / "20bn-something-something-v2" / f"{e['id']}.webm", clip)
    return {"train": train, "test": val}


def test_shipped_vocabularies_match_the_official_files():
    assert len(SSV2_CLASSES) == 174 and SSV2_CLASSES == sorted(SSV2_CLASSES)
    assert all(ssv2_class_name(t) in SSV2_CLASSES for t in SSV2_TEMPLATES)
    assert len(DIVING48_VOCAB) == 48 and all(len(v) == 4 for v in DIVING48_VOCAB)
    assert {v[0] for v in DIVING48_VOCAB} == {"Back", "Forward", "Inward", "Reverse"}


def test_ssv2_class_list_differing_from_the_official_one_is_a_warning(tmp_path, clips, fake_probe, caplog):
    root = tmp_path / "ssv2"
    write_ssv2(root, clips[".mp4"])
    labels = root / "labels" / "labels.json"
    doc = json.loads(labels.read_text())
    doc["Juggling something"] = str(len(doc))
    labels.write_text(json.dumps(doc))
    with caplog.at_level(logging.WARNING, "vidssl.data.index"):
        assert ssv2(root, cache=False).num_classes == 175
    assert any("1 class names are not in the official vocabulary" in r.getMessage() for r in caplog.records)


def test_ssv2_official_layout_labels_and_missing(tmp_path, clips, fake_probe, caplog):
    root = tmp_path / "ssv2"
    entries = write_ssv2(root, clips[".mp4"], missing=(103, 107))
    with caplog.at_level(logging.WARNING, "vidssl.data.index"):
        train = ssv2(root, subset="train", cache=False)
    assert train.num_classes == 174 and train.class_names == SSV2_CLASSES
    assert train.name == "ssv2/split1/train" and len(train) == 8
    assert all(Path(p).suffix == ".webm" for p in train.paths)
    want = [SSV2_CLASSES.index(ssv2_class_name(e["template"])) for e in entries["train"]
            if e["id"] not in ("103", "107")]
    assert train.labels.tolist() == want
    assert train.class_names[train.labels[1]] == "Holding something next to something"
    videos = root / "20bn-something-something-v2"
    assert train.report.missing == [str(videos / "103.webm"), str(videos / "107.webm")]
    assert train.report.listed == 10
    listed = Path(train.report.missing_list).read_text().splitlines()
    assert listed == ["103.webm", "107.webm"]
    warnings = [r.getMessage() for r in caplog.records if "missing" in r.getMessage()]
    assert len(warnings) == 1 and "2 of 10 listed files are missing" in warnings[0]
    test = ssv2(root, subset="test", cache=False)
    assert test.name == "ssv2/split1/test" and len(test) == 4 and test.class_names == SSV2_CLASSES
    assert ssv2(root, subset="validation", cache=False).paths == test.paths
    assert build_index("something-something-v2", root, split=1, subset="test", cache=False).paths == test.paths


def test_ssv2_20bn_file_names_in_root(tmp_path, clips, fake_probe):
    root = tmp_path / "ssv2"
    write_ssv2(root, clips[".mp4"], prefixed=True)
    index = ssv2(root, subset="train", cache=False, missing_list="none")
    assert len(index) == 10 and index.report.missing == [] and index.report.missing_list is None
    videos = root / "20bn-something-something-v2"
    os.rename(videos / "100.webm", videos / "100.mp4")        # a re-encoded copy is found too
    assert ssv2(root, subset="train", cache=False).path(0) == str(videos / "100.mp4")


@pytest.mark.parametrize("file, content, message", [
    ("labels.json", "{not json", r"labels.json: not valid JSON \(.* at line 1"),
    ("labels.json", '["a", "b"]', r"labels.json: expected an object"),
    ("labels.json", '{"a": "0", "b": "x"}', r"labels.json: class 'b' has id 'x'"),
    ("labels.json", '{"a": "0", "b": "2"}', r"labels.json: class ids must run 0..1"),
    ("train.json", '{"id": "1"}', r"train.json: expected a list"),
    ("train.json", '[{"id": "1"}]', r"train.json: entry 0 has no 'id' and 'template'"),
    ("train.json", '[{"id": "1", "template": "Juggling [something]"}]',
     r"train.json: entry 0 \(id 1\): template 'Juggling \[something\]' is not a class of labels.json"),
    ("train.json", '[{"id": "1", "template": "Putting [something] on a surface"},'
                   ' {"id": "1", "template": "Putting [something] on a surface"}]',
     r"train.json: id 1 is listed twice \(entries 0 and 1\)"),
])
def test_ssv2_bad_annotation_files_name_the_file(tmp_path, clips, file, content, message):
    root = tmp_path / "ssv2"
    write_ssv2(root, clips[".mp4"])
    (root / "labels" / file).write_text(content)
    with pytest.raises(DatasetError, match=message) as err:
        ssv2(root, subset="train", cache=False)
    assert str(root / "labels" / file) in one_line(err)


def test_ssv2_missing_annotation_files(tmp_path, clips):
    root = tmp_path / "ssv2"
    write_ssv2(root, clips[".mp4"])
    (root / "labels" / "validation.json").unlink()
    with pytest.raises(DatasetError, match=r"annotation file .*labels/validation.json does not exist") as err:
        ssv2(root, subset="test", cache=False)
    one_line(err)
    (root / "labels" / "labels.json").unlink()
    with pytest.raises(DatasetError, match=r"no Something-Something v2 annotation files found; "
                                           r"looked in .*labels, .*annotations") as err:
        ssv2(root, cache=False)
    one_line(err)
    with pytest.raises(ConfigError, match="split must be 1..1"):
        ssv2(root, split=2)
    with pytest.raises(ConfigError, match="subset must be"):
        ssv2(root, subset="holdout")


# -------------------------------------------------------------------------------- Kinetics --

K400 = vocabulary("kinetics400")
HEADER = ["label", "youtube_id", "time_start", "time_end", "split", "is_cc"]


def kinetics_rows(split: str, labels: list[str], n: int, prefix: str) -> list[list]:
    return [[labels[i % len(labels)], f"{prefix}{i:03d}xYz_-", 10 * i, 10 * i + 10, split, 0]
            for i in range(n)]


def kinetics_file(row: list) -> str:
    return f"{row[1]}_{int(row[2]):06d}_{int(row[3]):06d}.mp4"


def write_kinetics(root: Path, clip: Path, missing: tuple[str, ...] = (), ann: str = "annotations",
                   labels: list[str] = K400) -> dict[str, list[list]]:
    """train.csv / validate.csv / test.csv in ``root/<ann>/`` (every K400 class in train);
    train videos in per-label folders ``train/<label>/``, validation flat in ``val/`` (both
    conventions); rows whose youtube_id is in ``missing`` have no file."""
    (root / ann).mkdir(parents=True, exist_ok=True)
    rows = {"train": kinetics_rows("train", labels, len(labels) + 4, "t"),
            "val": kinetics_rows("val", labels[:5], 5, "v"),
            "test": [[r[0], r[1], r[2], r[3], "test", 0] for r in kinetics_rows("test", labels[:2], 2, "s")]}
    write_csv(root / ann / "train.csv", HEADER, rows["train"])
    write_csv(root / ann / "validate.csv", HEADER, rows["val"])
    write_csv(root / ann / "test.csv", HEADER, rows["test"])
    for r in rows["train"]:
        if r[1] not in missing:
            put(root / "train" / r[0] / kinetics_file(r), clip)
    for r in rows["val"] + rows["test"]:
        if r[1] not in missing:
            put(root / r[4] / kinetics_file(r), clip)
    return rows


def test_kinetics400_official_csvs_split1(tmp_path, clips, fake_probe):
    root = tmp_path / "data"
    rows = write_kinetics(root, clips[".mp4"])
    train = kinetics(root, subset="train", cache=False)
    assert train.name == "kinetics400/split1/train" and len(train) == 404
    assert train.class_names == K400 and train.num_classes == 400
    assert train.labels[:3].tolist() == [0, 1, 2]
    assert Path(train.path(0)).parent.name == K400[0]
    test = kinetics(root, subset="test", cache=False)
    assert test.name == "kinetics400/split1/test" and len(test) == 5
    assert test.class_names == K400 and test.labels.tolist() == [0, 1, 2, 3, 4]
    assert [Path(p).name for p in test.paths] == [kinetics_file(r) for r in rows["val"]]
    assert kinetics(root, subset="validate", cache=False).paths == test.paths
    official = kinetics(root, subset="official_test", version="k400", cache=False)
    assert official.name == "kinetics400/split1/official_test" and len(official) == 2
    assert test.report.missing == [] and test.report.listed == 5 and test.report.found_hash
    # a test CSV without labels (Kinetics-700-2020): label -1, the classes still from train/validate
    write_csv(root / "annotations" / "test.csv", ["youtube_id", "time_start", "time_end", "split"],
              [r[1:5] for r in rows["test"]])
    unlabelled = kinetics(root, subset="official_test", cache=False)
    assert unlabelled.labels.tolist() == [-1, -1] and unlabelled.class_names == K400
    with pytest.raises(ConfigError, match="subset must be one of train, test, val"):
        kinetics(root, subset="holdout")
    with pytest.raises(ConfigError, match="Kinetics version must be one of 400, 600, 700, 700_2020"):
        kinetics(root, version="800")


def test_kinetics_partial_download_missing_list_and_hash(tmp_path, clips, fake_probe, caplog):
    gone = ("t003xYz_-", "t250xYz_-", "t401xYz_-")
    root = tmp_path / "mine"
    write_kinetics(root, clips[".mp4"], missing=gone)
    out = tmp_path / "lists"
    out.mkdir()
    with caplog.at_level(logging.WARNING, "vidssl.data.index"):
        index = kinetics(root, subset="train", missing_list=out, cache=False)
    rep = index.report
    assert len(index) == 401 and rep.listed == 404 and len(rep.missing) == 3
    assert rep.missing_list == str(out / "kinetics400_split1_train.missing.txt")
    names = Path(rep.missing_list).read_text().splitlines()
    assert [Path(n).name.split("_0")[0] for n in names] == list(gone)
    assert names[0] == f"train/{K400[3]}/t003xYz_-_000030_000040.mp4"   # relative to the root
    warnings = [r.getMessage() for r in caplog.records if "missing" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "3 of 404 listed files are missing" in warnings[0] and rep.missing_list in warnings[0]
    assert rep.found_hash in warnings[0]
    # the hash is of (path relative to the root, label): another copy with the same videos agrees
    expected = records_hash([(os.path.relpath(p, root), int(lb)) for p, lb in zip(index.paths, index.labels)])
    assert rep.found_hash == expected
    theirs = tmp_path / "theirs"
    write_kinetics(theirs, clips[".mp4"], missing=gone)
    assert kinetics(theirs, subset="train", cache=False).report.found_hash == rep.found_hash
    other = tmp_path / "other"
    write_kinetics(other, clips[".mp4"], missing=gone[:2])
    assert kinetics(other, subset="train", cache=False).report.found_hash != rep.found_hash
    # default place: the index cache folder
    default = kinetics(root, subset="train", cache=False).report.missing_list
    assert default.startswith(os.environ["VIDSSL_CACHE_DIR"]) and Path(default).is_file()


def test_kinetics_version_inferred_and_chosen(tmp_path, clips, fake_probe):
    labels = [f"class {i:03d}" for i in range(700)]
    root = tmp_path / "data"
    write_kinetics(root, clips[".mp4"], ann="kinetics700_2020", labels=labels)
    index = kinetics(root, subset="test", cache=False)
    assert index.name == "kinetics700_2020/split1/test" and index.num_classes == 700
    flat = tmp_path / "flat"   # class count decides when no name says which release
    write_kinetics(flat, clips[".mp4"], labels=labels[:600])
    assert kinetics(flat, subset="test", cache=False).name == "kinetics600/split1/test"
    assert kinetics_version(400) == "400" and kinetics_version("Kinetics-700-2020") == "700_2020"
    # two releases in one folder: the version picks the files
    both = tmp_path / "both"
    write_kinetics(both, clips[".mp4"])
    for f in ("train", "validate"):
        os.rename(both / "annotations" / f"{f}.csv", both / "annotations" / f"kinetics-400_{f}.csv")
    write_csv(both / "annotations" / "kinetics-600_train.csv", HEADER, [])
    with pytest.raises(DatasetError, match=r"several Kinetics train CSVs in .*annotations "
                                           r"\(kinetics-400_train.csv, kinetics-600_train.csv\)"):
        kinetics(both, cache=False)
    assert len(kinetics(both, subset="test", version=400, cache=False)) == 5


def test_kinetics_bad_or_missing_csv_is_one_line(tmp_path, clips, fake_probe):
    root = tmp_path / "data"
    write_kinetics(root, clips[".mp4"])
    ann = root / "annotations"
    (ann / "validate.csv").write_text("label,youtube_id,time_start,time_end,split\nabseiling,x,1,two,val\n")
    with pytest.raises(DatasetError, match=r"validate.csv:2: time_start/time_end must be numbers") as err:
        kinetics(root, subset="test", cache=False)
    one_line(err)
    (ann / "validate.csv").write_text("name,file\n")
    with pytest.raises(DatasetError, match=r"validate.csv:1: unrecognised header") as err:
        kinetics(root, subset="test", cache=False)
    one_line(err)
    (ann / "validate.csv").write_text("label,youtube_id,time_start,time_end,split\nnot a class,x,1,2,val\n")
    with pytest.raises(DatasetError, match=r"validate.csv:2: label 'not a class' is not one of the 400"):
        kinetics(root, subset="test", version=400, cache=False)
    (ann / "validate.csv").unlink()
    with pytest.raises(DatasetError, match=r"Kinetics val CSV .*annotations/validate.csv does not exist "
                                           r"\(found: test.csv, train.csv\)") as err:
        kinetics(root, subset="test", cache=False)
    one_line(err)
    for f in ann.iterdir():
        f.unlink()
    with pytest.raises(DatasetError, match=r"no Kinetics \(train/validate CSV\) annotation files found"):
        kinetics(root, cache=False)


def test_kinetics_all_missing_names_the_list(tmp_path, clips, fake_probe):
    root = tmp_path / "data"
    rows = write_kinetics(root, clips[".mp4"])
    for r in rows["val"]:
        (root / "val" / kinetics_file(r)).unlink()
    with pytest.raises(DatasetError, match=r"kinetics400/split1/test: no usable videos .* "
                                           r"\(5 listed, 5 missing, 0 unreadable; missing list: ") as err:
        kinetics(root, subset="test", cache=False)
    one_line(err)


# -------------------------------------------------------------------------------- Diving48 --

DIVING48_VOCAB = [name.split(" ") for name in vocabulary("diving48")]   # Diving48_vocab.json


def write_diving48(root: Path, clip: Path | None, entries: int = 12, test_entries: int = 6,
                   missing: tuple[str, ...] = (), vocab=DIVING48_VOCAB) -> None:
    ann = root / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    (ann / "Diving48_vocab.json").write_text(json.dumps(vocab))
    for name, n, off in (("train", entries, 0), ("test", test_entries, 500)):
        lst = [{"vid_name": f"_8Vy3dlHg2w_{off + i:05d}", "label": (7 * i) % len(vocab),
                "start_frame": 0, "end_frame": 40 + i} for i in range(n)]
        (ann / f"Diving48_V2_{name}.json").write_text(json.dumps(lst))
        if clip is not None:
            for e in lst:
                if e["vid_name"] not in missing:
                    put(root / "rgb" / f"{e['vid_name']}.mp4", clip)


def test_diving48_v2_layout_vocab_names_and_missing(tmp_path, clips, fake_probe):
    assert len(DIVING48_VOCAB) == 48
    root = tmp_path / "Diving48"
    write_diving48(root, clips[".mp4"], missing=("_8Vy3dlHg2w_00004",))
    train = diving48(root, subset="train", cache=False)
    assert train.num_classes == 48 and train.class_names[0] == "Back 15som 05Twis FREE"
    assert train.name == "diving48/split1/train" and len(train) == 11
    assert train.labels.tolist() == [(7 * i) % 48 for i in range(12) if i != 4]
    assert train.report.missing == [str(root / "rgb" / "_8Vy3dlHg2w_00004.mp4")]
    assert Path(train.report.missing_list).read_text() == "_8Vy3dlHg2w_00004.mp4\n"
    test = diving48(root, subset="test", cache=False)
    assert len(test) == 6 and test.class_names == train.class_names
    assert build_index("diving48", root, split=1, subset="test", cache=False).paths == test.paths


@pytest.mark.parametrize("file, content, message", [
    ("Diving48_vocab.json", '[["Back", "15som"]]', r"Diving48_vocab.json: class 0: expected 4 attribute strings"),
    ("Diving48_vocab.json", '{"a": 1}', r"Diving48_vocab.json: expected a list"),
    ("Diving48_vocab.json", "[[", r"Diving48_vocab.json: not valid JSON"),
    ("Diving48_V2_train.json", '[{"vid_name": "a", "label": 48, "start_frame": 0, "end_frame": 3}]',
     r"Diving48_V2_train.json: entry 0 \(a\): label 48 is not a class id 0..47"),
    ("Diving48_V2_train.json", '[{"vid_name": "a"}]', r"Diving48_V2_train.json: entry 0 has no 'vid_name' and 'label'"),
    ("Diving48_V2_train.json", '[{"vid_name": "a", "label": 1, "start_frame": 9, "end_frame": 3}]',
     r"Diving48_V2_train.json: entry 0 \(a\): start_frame 9 / end_frame 3"),
])
def test_diving48_bad_annotation_files_name_the_file(tmp_path, clips, file, content, message):
    root = tmp_path / "Diving48"
    write_diving48(root, clips[".mp4"])
    (root / "annotations" / file).write_text(content)
    with pytest.raises(DatasetError, match=message) as err:
        diving48(root, cache=False)
    assert str(root / "annotations" / file) in one_line(err)


def test_diving48_missing_annotation_file(tmp_path, clips):
    root = tmp_path / "Diving48"
    write_diving48(root, clips[".mp4"])
    (root / "annotations" / "Diving48_V2_test.json").unlink()
    with pytest.raises(DatasetError, match=r"annotation file .*Diving48_V2_test.json does not exist") as err:
        diving48(root, subset="test", cache=False)
    one_line(err)


# ------------------------------------------------------------------------------- registry --

def test_registered_for_eval_with_one_official_split():
    for name in ("ssv2", "kinetics", "diving48"):
        info = DATASETS.info(name)
        assert info["eval"] and info["splits"] and info["max_split"] == 1
        assert {"split", "subset", "missing_list"} <= set(dataset_arguments(name))
    assert DATASETS.key("csv") == "kinetics_csv" and DATASETS.key("Something-Something-v2") == "ssv2"


def test_a_pretraining_config_reads_the_official_kinetics_split(tmp_path, clips, fake_probe):
    from vidssl.train.components import build_training_index
    from vidssl.train.config import DataConfig

    root = tmp_path / "k400"
    write_kinetics(root, clips[".mp4"])
    index = build_training_index(DataConfig(dataset="kinetics", root=str(root), subset="train",
                                            kwargs={"version": "400", "missing_list": "none"}))
    assert index.name == "kinetics400/split1/train" and len(index) == 404
