"""Encoders shared as Hub-style folders: ``vidssl export`` -> config.json + model.safetensors +
README.md; ``pretrained=FOLDER`` / ``hf:ORG/NAME`` load them back to the same weights."""

from __future__ import annotations

import json
import time

import pytest
import torch

from tests.train.test_pretrain import tiny_config
from vidssl.errors import ConfigError, VidsslError
from vidssl.models.encoders import create_encoder, encoder_spec
from vidssl.models.export import export_encoder, load_exported_encoder
from vidssl.models.hub import EXPORT_FORMAT, is_export_folder, read_export_config


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_export_writes_config_safetensors_and_card(tmp_path):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    enc = create_encoder("r3d_tiny", temporal_dilation_last_stage=True)
    out = export_encoder(enc, tmp_path / "mine", card={"method": "tclr", "steps": 12, "seed": 3,
                                                       "command": "vidssl pretrain --config x.yaml"})
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["format"] == EXPORT_FORMAT and cfg["encoder"] == encoder_spec(enc)
    assert cfg["num_features"] == enc.num_features and cfg["preprocess"]["crop_size"] == enc.preprocess.crop_size
    weights = load_file(str(out / "model.safetensors"))
    assert weights.keys() == enc.state_dict().keys()
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: vidssl") and "- tclr" in card
    assert "vidssl pretrain --config x.yaml" in card and "| steps | 12 |" in card
    assert is_export_folder(out) and read_export_config(out)["encoder"]["name"] == "r3d_tiny"
    with pytest.raises(VidsslError, match="exists"):
        export_encoder(enc, out)
    export_encoder(enc, out, overwrite=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary folder left behind"


def test_pretrained_folder_round_trips_to_the_same_encoder(tmp_path):
    torch.manual_seed(1)
    enc = create_encoder("r3d_tiny", temporal_dilation_last_stage=True)
    folder = export_encoder(enc, tmp_path / "mine")
    by_name = create_encoder("r3d_tiny", pretrained=str(folder), temporal_dilation_last_stage=True)
    by_folder = load_exported_encoder(folder)
    assert _same_weights(enc, by_name) and _same_weights(enc, by_folder)
    assert encoder_spec(by_folder) == encoder_spec(enc)
    x = torch.rand(2, 3, 8, 32, 32)
    for m in (enc, by_folder):
        m.eval()
    assert torch.equal(enc.forward_features(x), by_folder.forward_features(x))
    with pytest.raises(ConfigError, match="temporal_dilation_last_stage"):  # other architecture args
        create_encoder("r3d_tiny", pretrained=str(folder))
    with pytest.raises(ConfigError, match="holds encoder 'r3d_tiny'"):
        create_encoder("r2plus1d_tiny", pretrained=str(folder))


def test_damaged_exports_are_one_line_errors(tmp_path):
    enc = create_encoder("r3d_tiny")
    folder = export_encoder(enc, tmp_path / "mine")
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(VidsslError, match="cannot read weights") as info:
        load_exported_encoder(folder)
    assert "\n" not in str(info.value)
    (folder / "config.json").write_text("{")
    with pytest.raises(VidsslError, match="cannot read"):
        load_exported_encoder(folder)
    with pytest.raises(VidsslError, match="not found"):
        load_exported_encoder(tmp_path / "absent")


def test_hf_reference_downloads_through_huggingface_hub(tmp_path, monkeypatch):
    import huggingface_hub

    enc = create_encoder("r3d_tiny")
    folder = export_encoder(enc, tmp_path / "mine")
    calls = []

    def fake_snapshot(repo_id, revision=None, **kw):
        calls.append((repo_id, revision, kw.get("allow_patterns")))
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    assert _same_weights(enc, load_exported_encoder("hf:someone/tiny-r3d@v1"))
    assert _same_weights(enc, create_encoder("r3d_tiny", pretrained="hf:someone/tiny-r3d"))
    assert calls[0][:2] == ("someone/tiny-r3d", "v1") and "model.safetensors" in calls[0][2]
    with pytest.raises(ConfigError, match="hf:ORG/NAME"):
        load_exported_encoder("hf:no-slash")


def test_hf_reference_offline_fails_fast_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    t0 = time.monotonic()
    with pytest.raises(VidsslError, match="cannot fetch hf:someone/absent") as info:
        create_encoder("r3d_tiny", pretrained="hf:someone/absent")
    assert "\n" not in str(info.value) and "download the folder elsewhere" in str(info.value)
    assert time.monotonic() - t0 < 60  # a bound against retry storms, not a speed claim


def test_export_cli_then_eval_with_the_folder_gives_identical_features(tiny_synthetic, tmp_path, capsys):
    """vidssl pretrain -> vidssl export -> the exported folder's encoder gives the checkpoint
    encoder's features exactly; vidssl eval --pretrained FOLDER runs and writes its table."""
    from vidssl.cli import main
    from vidssl.data.index import build_index
    from vidssl.eval.features import extract_features
    from vidssl.models.checkpoint import load_encoder
    from vidssl.train.loop import pretrain

    result = pretrain(tiny_config(tiny_synthetic, tmp_path / "run", "train.max_steps=2"))
    export = tmp_path / "export"
    assert main(["export", "--checkpoint", result.checkpoint, "--out", str(export)]) == 0
    card = (export / "README.md").read_text()
    assert "`cvrl`" in card and "| steps | 2 |" in card and "## How it was trained" in card
    index = build_index("synthetic", tiny_synthetic, split=1, subset="test", progress=False)
    kw = dict(num_clips=2, clip_len=4, size=32, resize_size=32, device="cpu", progress=False)
    a = extract_features(load_encoder(result.checkpoint), index, **kw)
    b = extract_features(load_exported_encoder(export), index, **kw)
    assert torch.equal(a.features, b.features)
    out = tmp_path / "eval"
    assert main(["eval", "--pretrained", str(export), "--dataset", "synthetic", "--root", str(tiny_synthetic),
                 "--protocol", "knn", "--splits", "1", "--out", str(out), "--quiet", "--device", "cpu",
                 "features.num_clips=2", "features.clip_len=4", "features.size=32",
                 "features.resize_size=32"]) == 0
    assert json.loads((out / "results.json").read_text())["protocols"] == ["knn"]
    assert main(["eval", "--dataset", "synthetic", "--root", str(tiny_synthetic)]) == 2
    assert "--pretrained EXPORTED_FOLDER" in capsys.readouterr().err
