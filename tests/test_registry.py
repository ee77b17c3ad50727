"""The one registry helper (``vidssl.registry``) and the registries built on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidssl.errors import ConfigError
from vidssl.registry import Registry

ROOT = Path(__file__).resolve().parents[1]


def test_objects_lazy_paths_info_and_listing():
    reg = Registry("widget", aliases={"w": "wide"}, normalize=str.lower)
    assert reg.register("wide", dict, colour="red") is dict
    reg.register("late", lazy="collections:OrderedDict", colour="blue")

    @reg.register("deco", colour="red")
    def made() -> None: ...

    assert reg["WIDE"] is dict and reg.get("w") is dict and reg.key("W") == "wide"
    from collections import OrderedDict

    assert reg.entry("late").obj is None and reg["late"] is OrderedDict  # imported on first use
    assert reg.info("late") == {"colour": "blue"} and reg["deco"] is made
    assert reg.names() == ["deco", "late", "wide"] and reg.names(sort=False) == ["wide", "late", "deco"]
    assert reg.names(colour="red") == ["deco", "wide"] and reg.names("d*") == ["deco"]
    assert set(reg) == {"wide", "late", "deco"} and len(reg) == 3 and "W" in reg and "nope" not in reg
    assert reg.pop("deco").obj is made and "deco" not in reg


def test_unknown_names_and_taken_names_are_one_line_errors():
    reg = Registry("gadget")
    reg.register("a", int)
    reg.register("a", int)                       # the same object again: no-op
    with pytest.raises(ConfigError, match="gadget name 'a' is already registered"):
        reg.register("a", float)
    with pytest.raises(ConfigError, match=r"^unknown gadget 'b'; known: a$"):
        reg["b"]
    with pytest.raises(ConfigError, match="unknown gadget"):
        reg.info("b")


def test_methods_and_encoders_are_discovered_from_their_packages():
    """A new method or encoder is one file: every module of the package is imported on the
    first lookup and registers itself; no list to keep in step."""
    from vidssl.methods import METHODS
    from vidssl.models.encoders import ENCODERS

    method_files = {p.stem for p in (ROOT / "vidssl" / "methods").glob("*.py")} - {"__init__", "common"}
    modules = {METHODS[n].__module__ for n in METHODS}      # (other tests may register their own)
    assert {m.rsplit(".", 1)[1] for m in modules if m.startswith("vidssl.methods.")} == method_files
    encoder_files = {ENCODERS[n].__module__.rsplit(".", 1)[1] for n in ENCODERS}
    files = {p.stem for p in (ROOT / "vidssl" / "models" / "encoders").glob("*.py")} - {"__init__", "base", "weights"}
    assert encoder_files == files == {"resnet3d", "s3d", "video_vit", "clip_temporal", "torchvision_video", "vjepa2"}


def test_every_registry_of_vidssl_is_a_registry():
    from vidssl.data.decoders import DECODERS
    from vidssl.data.index import DATASETS
    from vidssl.data.samplers import SAMPLERS
    from vidssl.eval.protocols import PROTOCOLS
    from vidssl.methods import METHODS
    from vidssl.models.encoders import ENCODERS

    from vidssl.models.importers import IMPORTERS

    for reg, known in ((DECODERS, "pyav"), (DATASETS, "kinetics_csv"), (SAMPLERS, "tclr"),
                       (PROTOCOLS, "linear"), (METHODS, "coclr"), (ENCODERS, "r3d_tiny"), (IMPORTERS, "tclr")):
        assert isinstance(reg, Registry) and known in reg
        with pytest.raises(ConfigError, match=f"unknown {reg.kind} 'nope'; known: "):
            reg["nope"]


def test_datasets_declare_their_capabilities():
    from vidssl.data.index import DATASETS, dataset_arguments

    assert DATASETS.names(eval=True) == ["hmdb51", "synthetic", "ucf101"]
    assert DATASETS.names(splits=False) == ["folder", "kinetics_csv"]
    assert DATASETS.info("ucf101")["max_split"] == 3 and DATASETS.info("synthetic")["max_split"] is None
    assert DATASETS.info("synthetic")["factors"] and not DATASETS.info("ucf101").get("factors")
    assert "csv" in dataset_arguments("kinetics") and "annotations" in dataset_arguments("hmdb51")


def test_a_protocol_registered_by_path_runs_through_evaluate(tiny_synthetic):
    """What adding a protocol takes: a runner and one registration (here by lazy path)."""
    from vidssl.eval import EvalConfig, evaluate
    from vidssl.eval.protocols import PROTOCOLS, register_protocol
    from vidssl.models.encoders import create_encoder

    cfg = EvalConfig()
    cfg.features.num_clips, cfg.features.clip_len, cfg.features.size = 2, 4, 32
    cfg.features.resize_size, cfg.features.num_workers = 32, 0
    register_protocol("count", lazy="tests.test_registry:count_videos", features=True,
                      note=lambda c: "count: videos with features")
    try:
        res = evaluate(create_encoder("r3d_tiny"), dataset="synthetic", root=tiny_synthetic, splits=[1],
                       protocols="count", config=cfg, progress=False)
    finally:
        PROTOCOLS.pop("count")
    assert res.per_split[1]["count"]["test_videos"] == res.info["videos"]["1"]["test_used"] > 0
    assert "count: videos with features" in res.info["notes"]


def count_videos(split) -> dict[str, float]:
    return {"test_videos": float(len(split.test_features))}
