"""``vidssl eval --protocol zeroshot``: a CLIP-temporal encoder and an LSS checkpoint of another
encoder, checked against the classifier and features computed by hand; one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from vidssl.cli import main
from vidssl.errors import ConfigError
from vidssl.eval import EvalConfig, evaluate, resolve_protocols
from vidssl.eval.features import extract_features
from vidssl.eval.zeroshot import (ZeroShotEncoder, class_weights, topk_accuracy, zeroshot_logits,
                                  zeroshot_spec_from_checkpoint, zeroshot_spec_from_encoder)
from vidssl.data.index import build_index
from vidssl.models.encoders import create_encoder

from tests.eval.conftest import CLIPS

FEATS = ["features.num_clips=2", "features.clip_len=4", "features.stride=2", "features.size=32",
         "features.resize_size=32", "features.num_workers=0"]


def _cfg(*extra: str) -> EvalConfig:
    from vidssl.config import load_config

    return load_config(EvalConfig, None, [*FEATS, *extra])


def _by_hand(model, spec, root, split=1, **kw):
    test = build_index("synthetic", root, split=split, subset="test", progress=False)
    fs = extract_features(model, test, num_clips=2, num_workers=0, progress=False, **CLIPS)
    w = class_weights(list(test.class_names), spec, **kw)
    return topk_accuracy(zeroshot_logits(fs.features, w), fs.labels), len(fs)


def test_all_does_not_include_zeroshot():
    assert "zeroshot" not in resolve_protocols("all")
    assert resolve_protocols("all,zeroshot")[-1] == "zeroshot"
    assert resolve_protocols("zeroshot") == ["zeroshot"]


def test_clip_temporal_zeroshot_matches_hand_computation(small_synthetic, tmp_path):
    torch.manual_seed(0)
    enc = create_encoder("clip_temporal_tiny")
    res = evaluate(enc, dataset="synthetic", root=small_synthetic, splits=[1, 2], protocols="zeroshot",
                   config=_cfg(), device="cpu", progress=False)
    spec = zeroshot_spec_from_encoder(enc)
    assert spec.clip_model == "vidssl-tiny-clip" and isinstance(spec.head, torch.nn.Identity)
    for split in (1, 2):
        expected, n = _by_hand(enc, spec, small_synthetic, split)
        got = res.per_split[split]["zeroshot"]
        assert got == pytest.approx(expected) and res.info["videos"][str(split)]["zeroshot_test_used"] == n
    assert "zeroshot" in res.to_markdown() and res.info["zeroshot"]["text_tower"] == "vidssl-tiny-clip/random-init"
    # with attributes: a different classifier (pooled prompts), still a valid result
    from vidssl.data.synthetic.classes import SYNTHETIC_CLASSES

    attrs = tmp_path / "attrs.json"
    attrs.write_text(json.dumps({"classes": {c: [f"a {c.lower()} shape", "a plain scene"] for c in SYNTHETIC_CLASSES}}))
    res_a = evaluate(enc, dataset="synthetic", root=small_synthetic, splits=[1], protocols="zeroshot",
                     config=_cfg(f"zeroshot.attributes={attrs}"), device="cpu", progress=False)
    expected, _ = _by_hand(enc, spec, small_synthetic, 1, attributes=str(attrs))
    names = list(SYNTHETIC_CLASSES[:3])
    assert not torch.allclose(class_weights(names, spec, attributes=str(attrs)), class_weights(names, spec))
    assert res_a.per_split[1]["zeroshot"] == pytest.approx(expected)


def test_zeroshot_needs_a_concept_space(small_synthetic):
    with pytest.raises(ConfigError, match="not a CLIP-temporal") as err:
        evaluate(create_encoder("r3d_tiny"), dataset="synthetic", root=small_synthetic, splits=[1],
                 protocols="zeroshot", config=_cfg(), device="cpu", progress=False)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="zeroshot.templates"):
        _cfg("zeroshot.templates=[no placeholder]").validate()
    with pytest.raises(ConfigError, match="zeroshot.templates"):  # another field: KeyError at format time
        _cfg("zeroshot.templates=['a {} of {x}']").validate()
    _cfg("zeroshot.templates=['a video of {}', 'a {{literal}} {}']").validate()


def test_lss_checkpoint_of_any_encoder_zeroshot_cli(small_synthetic, tmp_path, capsys):
    """Pretrain LSS (r3d_tiny + MLP head) one step, then evaluate its checkpoint zero-shot."""
    from vidssl.config import load_config
    from vidssl.train.config import PretrainConfig
    from vidssl.train.loop import pretrain

    cfg = load_config(PretrainConfig, None, [
        "encoder.name=r3d_tiny", "method.name=lss", "method.params.crop_size=32",
        "method.params.global_frames=4", "method.params.global_stride=2", "method.params.num_local=1",
        "method.params.local_frames=2", "method.params.head_hidden_dim=16",
        "method.params.clip_model=vidssl-tiny-clip", "method.params.clip_pretrained=null",
        "method.params.vocabulary=synthetic", "method.params.concept_mode=classes",
        "method.params.attributes=null", "method.params.alignment=entropy", f"data.root={small_synthetic}", "data.batch_size=4",
        "data.num_workers=0", f"train.out_dir={tmp_path / 'run'}", "train.max_steps=1",
        "train.progress=false", "train.tensorboard=false"])
    torch.manual_seed(0)
    ckpt = pretrain(cfg).checkpoint
    spec = zeroshot_spec_from_checkpoint(ckpt)
    assert isinstance(spec.head, torch.nn.Sequential) and spec.clip_model == "vidssl-tiny-clip"
    from vidssl.models.checkpoint import load_checkpoint, load_encoder

    full = load_checkpoint(ckpt)
    state = full["model"]
    # export: teacher (default): the checkpoint's encoder and the zero-shot head are the EMA
    # teacher's, not the student's (which one SGD step has moved away from it)
    torch.testing.assert_close(spec.head[0].weight, state["head_t.0.weight"])
    assert not torch.equal(state["head_t.0.weight"], state["head.0.weight"])
    for k, v in full["encoder"].items():
        torch.testing.assert_close(v, state[f"encoder_t.{k}"])
    assert any(not torch.equal(v, state[f"encoder.{k}"]) for k, v in full["encoder"].items())
    out = tmp_path / "eval"
    rc = main(["eval", "--checkpoint", ckpt, "--dataset", "synthetic", "--root", str(small_synthetic),
               "--protocol", "zeroshot", "--splits", "1", "--out", str(out), "--quiet", "--", *FEATS])
    assert rc == 0
    data = json.loads((out / "results.json").read_text())
    got = data["per_split"]["1"]["zeroshot"]
    enc = load_encoder(ckpt)
    model = ZeroShotEncoder(enc, spec.head, 32)
    expected, _ = _by_hand(model, spec, small_synthetic, 1)
    assert got == pytest.approx(expected)
    assert "zeroshot" in capsys.readouterr().out
