"""Every config in ``configs/`` is checked: it loads against its schema (unknown keys are errors),
and a pretraining config is built as far as is possible without its data: the dataset is
registered and its builder accepts the arguments, every stage's method parameters validate, the
encoder (without weights) and the method are built, and the method runs on a tiny input (for the
paper-scale configs in the slow target, at their full crop sizes)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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


# ------------------------------------------------------- every shipped config, built without data

def _schema(name: str) -> type:
    from vidssl.data.synthetic.options import SyntheticOptions
    from vidssl.demo import DemoConfig
    from vidssl.eval.config import EvalConfig
    from vidssl.track.run import TrackConfig

    for prefix, schema in (("pretrain/", PretrainConfig), ("track/", TrackConfig), ("demo.yaml", DemoConfig),
                           ("synthetic", SyntheticOptions), ("eval/", EvalConfig)):
        if name.startswith(prefix):
            return schema
    raise AssertionError(f"configs/{name}: no schema known to tests/test_configs.py; add one so it is checked")


def _shipped(prefix: str = "") -> list[str]:
    from vidssl.config import list_shipped_configs

    return [n for n in list_shipped_configs() if n.startswith(prefix)]


@pytest.mark.parametrize("name", _shipped())
def test_every_shipped_config_loads_against_its_schema(name):
    load_config(_schema(name), f"configs/{name}")


def _stand_in_concept_space(vocabulary, attributes="curated", *, mode="separate", model="ViT-B-16", **_):
    """The concept space an LSS config describes, laid out exactly (classes, attribute concepts, widths)
    but with random vectors: the real one needs the CLIP text weights, which are data."""
    import open_clip

    from vidssl.language.attributes import VOCABULARIES, load_attributes, resolve_vocabulary
    from vidssl.language.clip_models import load_clip
    from vidssl.language.concept_space import ConceptSpace, concept_prompts

    classes = resolve_vocabulary(vocabulary)
    attrs = None
    if attributes and mode != "classes":
        attrs = load_attributes(vocabulary if attributes == "curated" and vocabulary in VOCABULARIES
                                else attributes)["classes"]
    names, index, _ = concept_prompts(classes, attrs, mode=mode)
    config = open_clip.get_model_config(model)
    dim = config["embed_dim"] if config else load_clip(model, None).text_projection.shape[1]
    vectors = torch.nn.functional.normalize(torch.randn(len(names), dim), dim=1)
    return ConceptSpace(vectors, names, torch.as_tensor(index), list(classes), {"stand_in": True})


def _build(cfg: PretrainConfig, monkeypatch):
    """Encoder (no weights: those are data) and method of a config, as the trainer builds them."""
    from vidssl.methods import create_method
    from vidssl.models.encoders import create_encoder

    monkeypatch.setattr("vidssl.methods.lss.vocabulary_concept_space", _stand_in_concept_space)
    torch.manual_seed(0)
    encoder = create_encoder(cfg.encoder.name, **cfg.encoder.kwargs)
    return encoder, create_method(cfg.method.name, encoder, cfg.method.params)


def _tiny_batch(method, paired: bool, batch: int = 2, size: int = 40) -> dict:
    """Random uint8 frames in the method's sampler's layout, its targets from real draws."""
    import numpy as np

    draws = [method.sampler(1000, 25.0, np.random.default_rng(i)) for i in range(batch)]
    views = [torch.randint(0, 256, (batch, n, 3, size, size), dtype=torch.uint8)
             for n in method.sampler.view_lengths]
    targets = {k: torch.as_tensor(np.stack([np.asarray(d.targets[k]) for d in draws])) for k in draws[0].targets}
    return {"views": views + (views if paired else []), "targets": targets,
            "label": torch.zeros(batch, dtype=torch.long), "index": torch.arange(batch),
            "group": torch.arange(batch)}


def _check_pretrain_config(name: str, monkeypatch, forward: bool) -> None:
    from vidssl.methods import method_params
    from vidssl.train.components import index_arguments
    from vidssl.train.run import config_stages

    cfg = load_config(PretrainConfig, f"configs/{name}")
    index_arguments(cfg.data)                    # dataset registered, its builder's arguments accepted
    for _, stage in config_stages(cfg):          # every stage of a multi-stage config is valid
        method_params(stage.method.name, stage.method.params)
    encoder, method = _build(cfg, monkeypatch)
    # what the trainer saves: method.encoder, or what the method exports instead (LSS's teacher)
    assert encoder is getattr(method, "exported_encoder", method.encoder)
    if forward:
        method.train()
        out = method(_tiny_batch(method, paired=cfg.data.paired_root is not None))
        assert torch.isfinite(out["loss"]), f"{name}: loss {out['loss']}"


SYNTHETIC_SCALE = [n for n in _shipped("pretrain/") if n.endswith("_synthetic.yaml")]
PAPER_SCALE = [n for n in _shipped("pretrain/") if n not in SYNTHETIC_SCALE]


@pytest.mark.parametrize("name", SYNTHETIC_SCALE)
def test_synthetic_pretrain_config_builds_and_runs_a_step_on_a_tiny_input(name, monkeypatch):
    _check_pretrain_config(name, monkeypatch, forward=True)


@pytest.mark.parametrize("name", PAPER_SCALE)
def test_paper_scale_pretrain_config_builds_without_its_data(name, monkeypatch):
    _check_pretrain_config(name, monkeypatch, forward=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER_SCALE)
def test_paper_scale_pretrain_config_runs_on_a_tiny_input(name, monkeypatch):
    _check_pretrain_config(name, monkeypatch, forward=True)


EVAL_CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "eval").glob("*.yaml"))


@pytest.mark.parametrize("path", EVAL_CONFIGS, ids=lambda p: p.stem)
def test_eval_configs_are_valid(path):
    """Eval configs load against EvalConfig (preset overrides merged into each preset's settings)."""
    from vidssl.eval.config import EvalConfig
    from vidssl.eval.presets import PRESETS

    cfg = load_config(EvalConfig, path).validate()
    assert set(cfg.presets) <= set(PRESETS)
    assert {p.stem for p in EVAL_CONFIGS} >= {"synthetic_presets", "attentive_paper"}
