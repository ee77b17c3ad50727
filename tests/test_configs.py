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
