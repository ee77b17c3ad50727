"""The data section of a pretraining config: a registered dataset, its builder's own arguments
in ``data.kwargs`` (so a Kinetics CSV index trains from a config), checked before anything is
built or read; a missing root is reported as such."""

from __future__ import annotations

import csv
import os

import pytest

from tests.train.test_pretrain import TINY_CVRL
from vidssl.cli import main
from vidssl.config import load_config
from vidssl.data.index import build_index
from vidssl.errors import ConfigError
from vidssl.train.components import index_arguments
from vidssl.train.config import PretrainConfig
from vidssl.train.run import run


def config(*extra: str) -> PretrainConfig:
    return load_config(PretrainConfig, None, [*TINY_CVRL, *extra])


def test_a_kinetics_csv_index_pretrains_from_a_config(tiny_synthetic, tmp_path):
    videos = build_index("synthetic", tiny_synthetic, split=1, subset="train", progress=False)
    table = tmp_path / "train.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        for i in range(len(videos)):
            w.writerow([os.path.relpath(videos.path(i), tiny_synthetic), videos.class_names[videos.labels[i]],
                        "train" if i % 4 else "val"])
    cfg = config("data.dataset=kinetics_csv", f"data.root={tiny_synthetic}",
                 f"data.kwargs={{csv: {table}, subset: train}}", f"train.out_dir={tmp_path / 'run'}",
                 "train.max_steps=2")
    assert index_arguments(cfg.data) == ("kinetics_csv", {"progress": False, "csv": str(table), "subset": "train"})
    result = run(cfg)
    assert result.steps == 2 and len(result.losses) == 2


@pytest.mark.parametrize("extra,match", [
    (["data.dataset=kinetics400"], r"data.dataset: unknown dataset 'kinetics400'; known: .*kinetics_csv"),
    (["data.dataset=kinetics_csv"], r"data.kwargs: dataset 'kinetics_csv' needs argument\(s\) \['csv'\]"),
    (["data.dataset=folder", "data.kwargs={extension: [.mp4]}"], r"data.kwargs: unknown argument\(s\) \['extension'\]"),
    (["data.kwargs={split: 2}"], r"data.kwargs: \['split'\] of dataset 'synthetic' are data.split / data.subset"),
])
def test_a_bad_data_section_is_a_one_line_error_before_anything_is_built(tmp_path, extra, match):
    cfg = config(*extra, f"data.root={tmp_path / 'absent'}", f"train.out_dir={tmp_path / 'run'}")
    with pytest.raises(ConfigError, match=match) as err:
        run(cfg)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


def test_split_datasets_take_split_and_subset_others_only_their_kwargs():
    assert index_arguments(config("data.split=2", "data.subset=test").data) == (
        "synthetic", {"progress": False, "split": 2, "subset": "test"})
    assert index_arguments(config("data.dataset=folder", "data.split=2").data) == ("folder", {"progress": False})
    assert index_arguments(config("data.dataset=csv", "data.kwargs={csv: a.csv}").data)[0] == "kinetics_csv"


def test_the_shipped_dpc_k400_config_reaches_the_data_check(tmp_path, capsys):
    """It named a dataset that does not exist; now a missing root is what it reports."""
    missing = tmp_path / "kinetics400"
    assert main(["pretrain", "--config", "configs/pretrain/dpc_k400.yaml", f"data.root={missing}",
                 f"train.out_dir={tmp_path / 'run'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"data.root {missing} does not exist") and "\n" not in err
