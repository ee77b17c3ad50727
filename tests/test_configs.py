"""Every pretraining config in ``configs/pretrain`` loads against the schema (unknown keys are
errors) and its method parameters validate against the method's dataclass."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidssl.config import load_config
from vidssl.methods import method_params
from vidssl.models.encoders import encoder_defaults
from vidssl.train.config import PretrainConfig

PRETRAIN_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "pretrain").glob("*.yaml"))


def test_pretrain_configs_exist():
    names = {p.stem for p in PRETRAIN_CONFIGS}
    assert {"cvrl_synthetic", "tclr_synthetic", "cvrl_k400", "tclr_ucf101"} <= names


@pytest.mark.parametrize("path", PRETRAIN_CONFIGS, ids=lambda p: p.stem)
def test_pretrain_config_is_valid(path):
    cfg = load_config(PretrainConfig, path)
    params = method_params(cfg.method.name, cfg.method.params)
    unknown = set(cfg.encoder.kwargs) - set(encoder_defaults(cfg.encoder.name))
    assert not unknown, f"{path.name}: unknown encoder kwargs {sorted(unknown)}"
    if cfg.method.name == "tclr":
        assert cfg.encoder.kwargs.get("temporal_dilation_last_stage") is True, (
            f"{path.name}: TCLR needs the dilated last stage to keep num_local temporal slices")
    assert cfg.data.batch_size >= 2, "contrastive methods need negatives"
    assert cfg.optim.name in ("adamw", "sgd")
    assert params is not None


def test_demo_and_synthetic_configs_match_their_schemas():
    from vidssl.data.synthetic.options import SyntheticOptions
    from vidssl.demo import DemoConfig

    root = Path(__file__).resolve().parents[1] / "configs"
    demo = load_config(DemoConfig, root / "demo.yaml")
    assert demo == DemoConfig(), "configs/demo.yaml documents the defaults; keep them equal"
    from vidssl.demo import DEMO_METHOD_PARAMS

    for name, params in DEMO_METHOD_PARAMS.items():
        method_params(name, params)
    for name in ("synthetic.yaml", "synthetic_scene_bias.yaml"):
        load_config(SyntheticOptions, root / name)


TRACK_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "track").glob("*.yaml"))


@pytest.mark.parametrize("path", TRACK_CONFIGS, ids=lambda p: p.stem)
def test_track_configs_are_valid(path):
    from vidssl.track.run import TrackConfig

    cfg = load_config(TrackConfig, path).validate()
    assert cfg.propagation.topk >= 1


def test_unitrack_track_config_documents_the_defaults():
    from vidssl.track.run import TrackConfig

    root = Path(__file__).resolve().parents[1] / "configs" / "track"
    assert load_config(TrackConfig, root / "unitrack.yaml") == TrackConfig()


def test_shipped_configs_resolve_by_path_or_name(tmp_path, monkeypatch):
    from vidssl.config import list_shipped_configs, resolve_config_path, shipped_configs_dir
    from vidssl.errors import ConfigError

    shipped = list_shipped_configs()
    assert "pretrain/tclr_synthetic.yaml" in shipped and "demo.yaml" in shipped
    want = str(shipped_configs_dir() / "pretrain" / "tclr_synthetic.yaml")
    monkeypatch.chdir(tmp_path)  # outside the checkout: the docs' paths still resolve
    for name in ("configs/pretrain/tclr_synthetic.yaml", "pretrain/tclr_synthetic", "tclr_synthetic"):
        assert resolve_config_path(name) == want
    (tmp_path / "tclr_synthetic.yaml").write_text("train: {seed: 3}\n")
    assert resolve_config_path("tclr_synthetic.yaml") == "tclr_synthetic.yaml"  # a real file wins
    with pytest.raises(ConfigError, match="not found: nope"):
        resolve_config_path("nope")
    with pytest.raises(ConfigError, match="not found"):
        resolve_config_path(str(tmp_path / "absent.yaml"))


def test_configs_command_lists_prints_and_copies(tmp_path, capsys):
    from vidssl.cli import main

    assert main(["configs"]) == 0
    assert "pretrain/dpc_synthetic.yaml" in capsys.readouterr().out
    assert main(["configs", "dpc_synthetic"]) == 0
    assert "method:" in capsys.readouterr().out
    out = tmp_path / "mine.yaml"
    assert main(["configs", "dpc_synthetic", "--out", str(out)]) == 0
    assert "method:" in out.read_text()
    assert main(["configs", "dpc_synthetic", "--out", str(out)]) == 2  # no silent overwrite
    assert "exists" in capsys.readouterr().err
