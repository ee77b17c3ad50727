"""``vidssl eval``: argument parsing, one-line errors, a real run writing results.json/.md."""

from __future__ import annotations

import argparse
import json

import pytest

from tests.eval.conftest import make_tiny_encoder
from vidssl.eval.command import add_eval_parser, cmd_eval
from vidssl.errors import ConfigError, VidsslError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vidssl")
    add_eval_parser(p.add_subparsers(dest="command", required=True))
    return p


def test_parse_arguments():
    args = parser().parse_args(["eval", "--encoder", "r3d_tiny", "--dataset", "ucf101", "--root",
                                "/data/UCF101", "knn.k=10", "--protocol", "linear,knn",
                                "--protocol", "retrieval", "--splits", "1", "3"])
    assert args.func is cmd_eval and args.encoder == "r3d_tiny" and args.checkpoint is None
    assert args.protocol == ["linear,knn", "retrieval"] and args.splits == [1, 3]
    assert args.overrides == ["knn.k=10"] and args.out is None and args.seed == 0
    args = parser().parse_args(["eval", "--checkpoint", "c.pt", "--dataset", "synthetic",
                                "--root", "r", "--splits", "2", "--", "features.num_crops=3"])
    assert args.checkpoint == "c.pt" and args.overrides == ["features.num_crops=3"]
    assert args.protocol is None and args.splits == [2]


@pytest.mark.parametrize("argv", [   # (no source at all is a one-line ConfigError: tests/models/test_hub.py)
    ["eval", "--encoder", "a", "--checkpoint", "b", "--dataset", "synthetic", "--root", "r"],
    ["eval", "--encoder", "a", "--dataset", "kinetics", "--root", "r"],
])
def test_bad_command_lines_exit(argv, capsys):
    with pytest.raises(SystemExit) as info:
        parser().parse_args(argv)
    assert info.value.code == 2


def test_help(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["eval", "--help"])
    out = capsys.readouterr().out
    assert "--checkpoint" in out
    from vidssl.eval.presets import PRESETS

    for name in [*PRESETS, "attentive", "linear:fast"]:        # every preset and the attentive probe
        assert f"  {name} " in out, name
    assert "bn.mode=keep" in out and "linear:tclr.epochs=2" in out


def _args(small_synthetic, tmp_path, *extra: str) -> argparse.Namespace:
    return parser().parse_args(["eval", "--checkpoint", str(tmp_path / "c.pt"), "--dataset",
                                "synthetic", "--root", str(small_synthetic), "--out",
                                str(tmp_path / "out"), "--quiet", "--protocol", "knn,retrieval",
                                "--device", "cpu", "features.num_clips=2", "features.clip_len=4",
                                "features.size=32", "features.resize_size=32",
                                "features.num_workers=0", *extra, "--splits", "1"])


def test_one_line_errors(small_synthetic, tmp_path):
    with pytest.raises(VidsslError, match="checkpoint not found") as info:
        cmd_eval(_args(small_synthetic, tmp_path))
    assert "\n" not in str(info.value)
    (tmp_path / "c.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match="bogus") as info:
        cmd_eval(_args(small_synthetic, tmp_path, "knn.bogus=1"))
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="num_crops"):
        cmd_eval(_args(small_synthetic, tmp_path, "features.num_crops=2"))
    args = _args(small_synthetic, tmp_path)
    args.root = str(tmp_path / "missing")
    with pytest.raises(VidsslError, match="missing"):
        cmd_eval(args)


def test_preset_shorthand_reaches_the_preset(small_synthetic, tmp_path, monkeypatch):
    import vidssl.models.checkpoint as checkpoint

    checkpoint.save_checkpoint({"step": 3, "config": {"train": {"out_dir": str(tmp_path / "run")}}}, tmp_path / "c.pt")
    monkeypatch.setattr(checkpoint, "load_encoder", lambda path, map_location="cpu": make_tiny_encoder())
    args = parser().parse_args(["eval", "--checkpoint", str(tmp_path / "c.pt"), "--dataset", "synthetic",
                                "--root", str(small_synthetic), "--out", str(tmp_path / "out"), "--quiet",
                                "--protocol", "retrieval:tclr", "--device", "cpu", "bn.mode=recompute",
                                "bn.batch_size=4", "retrieval:tclr.clip_len=4", "retrieval:tclr.size=32",
                                "retrieval:tclr.resize_size=32", "retrieval:tclr.num_clips=2",
                                "features.num_clips=2", "features.clip_len=4", "features.size=32",
                                "features.resize_size=32", "features.num_workers=0", "--splits", "1"])
    assert cmd_eval(args) == 0
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["protocols"] == ["retrieval:tclr"]
    assert data["info"]["presets"]["retrieval:tclr"]["settings"]["num_clips"] == 2
    assert data["info"]["bn"]["recomputed"] is True and "retrieval:tclr" in data["intervals"]["mean"]
    with pytest.raises(ConfigError, match="retrieval:tclr"):
        cmd_eval(parser().parse_args(["eval", "--checkpoint", str(tmp_path / "c.pt"), "--dataset", "synthetic",
                                      "--root", str(small_synthetic), "--protocol", "retrieval:tclr",
                                      "retrieval:tclr.bogus=1", "--splits", "1"]))


def test_checkpoint_run_writes_results(small_synthetic, tmp_path, monkeypatch, capsys):
    import vidssl.models.checkpoint as checkpoint

    from vidssl.models.checkpoint import save_checkpoint

    save_checkpoint({"step": 7, "config": {"train": {"out_dir": str(tmp_path / "runs" / "cvrl_x")},
                                           "method": {"name": "cvrl"}}}, tmp_path / "c.pt")
    seen = []

    def fake_load_encoder(path, map_location="cpu"):
        seen.append((path, map_location))
        return make_tiny_encoder()

    monkeypatch.setattr(checkpoint, "load_encoder", fake_load_encoder)
    assert cmd_eval(_args(small_synthetic, tmp_path)) == 0
    assert seen == [(str(tmp_path / "c.pt"), "cpu")]
    out = tmp_path / "out"
    data = json.loads((out / "results.json").read_text())
    assert data["encoder"] == "cvrl_x_step7" and data["protocols"] == ["knn", "retrieval"]
    prov = data["info"]["provenance"]
    assert prov["run"] == "cvrl_x" and prov["checkpoint_step"] == 7 and prov["seed"] == 0
    assert prov["vidssl"] and prov["torch"] and set(prov["split_hash"]) == {"1"}
    assert data["info"]["config"]["features"]["num_clips"] == 2
    md = (out / "results.md").read_text()
    assert "run cvrl_x, step 7" in md and "split hash 1:" in md
    assert "| knn | top1 (%) |" in md and md.strip() in capsys.readouterr().out.replace("\r", "")


def test_wired_into_the_vidssl_cli(tmp_path, capsys):
    from vidssl.cli import build_parser, main

    try:
        build_parser().parse_args(["eval", "--help"])
    except SystemExit:
        pass
    if "--checkpoint" not in capsys.readouterr().out:
        pytest.skip("vidssl.cli does not wire `eval` yet")
    assert main(["eval", "--checkpoint", str(tmp_path / "none.pt"), "--dataset", "synthetic",
                 "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "none.pt" in err and "\n" not in err


def test_classify_with_published_weights_on_a_folder_dataset(small_synthetic, tmp_path, monkeypatch):
    """--pretrained torchvision:r3d_18 (the download faked with torchvision's own random weights)
    on a dataset without splits: the plumbing up to the class match, which fails in one line
    because the synthetic classes are not Kinetics classes."""
    import torch
    import torchvision

    import vidssl.offline

    state = torchvision.models.video.r3d_18().state_dict()
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda url, **kw: state)
    monkeypatch.setattr(vidssl.offline, "host_reachable", lambda *a, **k: True)
    args = parser().parse_args(["eval", "--pretrained", "torchvision:r3d_18", "--dataset", "folder", "--root",
                                str(small_synthetic / "videos"), "--index-arg", "extensions=avi",
                                "--protocol", "classify", "--quiet", "--device", "cpu", "--out", str(tmp_path)])
    with pytest.raises(ConfigError, match="no class for") as info:
        cmd_eval(args)
    assert "\n" not in str(info.value) and "Kinetics" not in str(info.value)
    bad = parser().parse_args(["eval", "--encoder", "r3d_tiny", "--dataset", "folder", "--root", str(small_synthetic),
                               "--index-arg", "nope=1", "--protocol", "classify"])
    with pytest.raises(ConfigError, match="nope"):
        cmd_eval(bad)


def test_random_init_eval_repeats_names_its_folder_and_never_overwrites(small_synthetic, tmp_path, monkeypatch):
    from vidssl.cli import main

    monkeypatch.chdir(tmp_path)
    args = ["eval", "--encoder", "r3d_tiny", "--dataset", "synthetic", "--root", str(small_synthetic), "--quiet",
            "--protocol", "knn", "--device", "cpu", "--splits", "1", "features.num_clips=2",
            "features.clip_len=4", "features.size=32", "features.resize_size=32", "features.num_workers=0"]
    assert main(args) == 0 and main(args) == 0
    runs = tmp_path / "runs" / "eval"
    a, b = (json.loads((runs / n / "results.json").read_text()) for n in ("r3d_tiny_seed0", "r3d_tiny_seed0_v2"))
    assert a["per_split"] == b["per_split"]  # seeded random init: the same numbers
    assert a["encoder"] == "r3d_tiny_seed0" and a["info"]["provenance"]["seed"] == 0
    assert main([*args, "--overwrite"]) == 0 and not (runs / "r3d_tiny_seed0_v3").exists()
