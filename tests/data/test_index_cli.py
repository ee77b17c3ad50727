"""``vidssl index DATASET``: per-dataset help and flags from the builder's signature, unknown
arguments rejected, one-line errors, the missing count and the hash of what was found."""

from __future__ import annotations

import pytest

from tests.data.test_index import cache_dir, clips, fake_probe  # noqa: F401 (fixtures)
from tests.data.test_index_official import write_diving48, write_kinetics, write_ssv2
from vidssl.cli import build_parser, main
from vidssl.data.index import DATASETS


@pytest.mark.parametrize("dataset, flags", [
    ("ssv2", ["--annotations", "--videos", "--missing-list", "labels.json"]),
    ("kinetics", ["--version", "--annotations", "--classes", "--missing-list", "official_test"]),
    ("diving48", ["--annotations", "--missing-list", "Diving48_V2_train.json"]),
    ("kinetics_csv", ["--csv", "--classes"]),
    ("ucf101", ["--split", "--annotations"]),
])
def test_index_dataset_help(dataset, flags, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["index", dataset, "--help"])
    assert info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"usage: vidssl index {dataset}" in out and "--root" in out
    for flag in flags:
        assert flag in out, flag


def test_index_help_lists_every_dataset(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["index", "--help"])
    out = capsys.readouterr().out
    for name in DATASETS.names():
        assert f"    {name}" in out, name


@pytest.mark.parametrize("argv", [
    ["index", "kinetics", "--root", "r", "--csv", "train.csv"],        # kinetics_csv's flag
    ["index", "ssv2", "--root", "r", "--split", "2"],                  # one official split
    ["index", "diving48", "--root", "r", "--subset", "val"],
    ["index", "kinetics400", "--root", "r"],
])
def test_index_rejects_what_the_dataset_does_not_take(argv, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2


def test_index_kinetics_partial_download(tmp_path, clips, fake_probe, capsys):
    root = tmp_path / "k400"
    write_kinetics(root, clips[".mp4"], missing=("v001xYz_-", "v004xYz_-"))
    listed = tmp_path / "missing.txt"
    assert main(["index", "kinetics", "--root", str(root), "--subset", "test", "--missing-list",
                 str(listed), "--quiet", "--no-cache"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "kinetics400/split1/test" in out and "2 of 5 listed files are missing" in out
    assert "hash of the videos found:" in out and "(3 videos of 5 listed)" in out
    # reported under the first place looked in: root/<split>/<label>/
    assert listed.read_text().splitlines() == ["val/air drumming/v001xYz_-_000010_000020.mp4",
                                               "val/applying cream/v004xYz_-_000040_000050.mp4"]


def test_index_ssv2_and_diving48_run(tmp_path, clips, fake_probe, capsys):
    write_ssv2(tmp_path / "ssv2", clips[".mp4"])
    assert main(["index", "ssv2", "--root", str(tmp_path / "ssv2"), "--subset", "validation",
                 "--quiet", "--no-cache"]) == 0
    write_diving48(tmp_path / "d48", clips[".mp4"])
    assert main(["index", "diving48", "--root", str(tmp_path / "d48"), "--quiet", "--no-cache",
                 "--extensions", "mp4,mkv"]) == 0
    out = capsys.readouterr().out
    assert "ssv2/split1/test" in out and "diving48/split1/train" in out


def test_index_bad_annotation_is_one_line(tmp_path, clips, capsys):
    root = tmp_path / "d48"
    write_diving48(root, clips[".mp4"])
    (root / "annotations" / "Diving48_V2_train.json").write_text("[{")
    assert main(["index", "diving48", "--root", str(root), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Diving48_V2_train.json: not valid JSON" in err
    assert main(["index", "kinetics_csv", "--root", str(root)]) == 2
    assert "needs --csv PATH" in capsys.readouterr().err
