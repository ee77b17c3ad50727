"""evaluate() end to end on real synthetic videos; results JSON / markdown round trip."""

from __future__ import annotations

import json
import math

import pytest

from tests.eval.conftest import CLIPS
from vidssl.eval import EvalConfig, EvalResults, evaluate, resolve_protocols
from vidssl.eval.config import FeatureConfig, FinetuneConfig
from vidssl.errors import ConfigError


def small_config(**finetune) -> EvalConfig:
    feats = FeatureConfig(num_clips=2, batch_size=16, num_workers=0, **CLIPS)
    ft = FinetuneConfig(epochs=1, batch_size=4, test_clips=2, test_crops=1, num_workers=0,
                        **CLIPS, **finetune)
    cfg = EvalConfig(features=feats, finetune=ft, device="cpu")
    cfg.linear.max_iter = cfg.diagnostics.max_iter = 100
    return cfg


def test_evaluate_all_but_finetune(small_synthetic, tiny_encoder):
    res = evaluate(tiny_encoder, dataset="synthetic", root=small_synthetic, splits=[1],
                   protocols="linear,knn,retrieval,diagnostics", config=small_config(),
                   progress=False)
    assert res.splits == [1] and res.protocols == ["linear", "knn", "retrieval", "diagnostics"]
    s1 = res.per_split[1]
    assert 0 <= s1["linear"]["top1"] <= 1 and s1["linear"]["weight_decay"] > 0
    assert set(s1["retrieval"]) == {f"hit@{k}" for k in (1, 5, 10, 20, 50)}
    assert s1["retrieval"]["hit@50"] == 1.0            # the 12-video gallery holds every class
    d = s1["diagnostics"]
    assert 0 <= d["alignment"] <= 4 and -4 <= d["uniformity"] <= 0
    assert "probe/action/acc" in d and "probe/shape/chance" in d and "probe/size/r2" in d
    assert res.info["videos"]["1"] == {"train": 12, "test": 6, "train_used": 12, "test_used": 6}
    assert res.mean["knn"]["top1"] == s1["knn"]["top1"]
    assert any("not mean-centred" in n for n in res.info["notes"])


def test_features_are_extracted_once_for_all_splits(small_synthetic, tiny_encoder, monkeypatch):
    import vidssl.eval.cache as cache

    calls = []
    real = cache.extract_features

    def counting(encoder, index, **kw):
        calls.append(len(index))
        return real(encoder, index, **kw)

    monkeypatch.setattr(cache, "extract_features", counting)
    res = evaluate(tiny_encoder, dataset="synthetic", root=small_synthetic, splits=[1, 2, 3],
                   protocols=["knn"], config=small_config(), progress=False)
    assert calls == [18]                               # 3 x 18 split videos, 18 distinct
    assert sorted(res.per_split) == [1, 2, 3] and "knn" in res.mean
    md = res.to_markdown()
    assert "| knn | top1 (%) |" in md and "± " in md and "split 3" in md


def test_evaluate_with_finetune(small_synthetic, tiny_encoder):
    res = evaluate(tiny_encoder, dataset="synthetic", root=small_synthetic, splits=[2],
                   protocols=["finetune"], config=small_config(), progress=False)
    assert set(res.per_split[2]["finetune"]) == {"top1", "top5", "train_loss"}
    assert "features" not in res.info["timings_s"]     # finetune alone extracts no features


def test_bad_arguments_are_one_line_errors(small_synthetic, tiny_encoder):
    for kwargs, word in [({"dataset": "kinetics"}, "kinetics"), ({"protocols": "probe"}, "probe"),
                         ({"splits": [4], "dataset": "ucf101"}, "4"), ({"splits": [0]}, "0")]:
        args = {"dataset": "synthetic", "root": small_synthetic, **kwargs}
        with pytest.raises(ConfigError) as info:
            evaluate(tiny_encoder, progress=False, **args)
        assert word in str(info.value) and "\n" not in str(info.value)
    cfg = EvalConfig()
    cfg.features.num_crops = 2
    with pytest.raises(ConfigError, match="num_crops"):
        evaluate(tiny_encoder, dataset="synthetic", root=small_synthetic, config=cfg)
    assert resolve_protocols("all") == ["linear", "knn", "retrieval", "finetune", "diagnostics"]
    assert resolve_protocols(["knn", "linear,knn"]) == ["linear", "knn"]


def test_results_json_and_markdown_round_trip(tmp_path):
    res = EvalResults("ucf101", "r3d_tiny", [1, 2], ["linear", "diagnostics"], {
        1: {"linear": {"top1": 0.5, "top5": 0.75, "weight_decay": 1e-4},
            "diagnostics": {"alignment": float("nan"), "effective_rank": 10.0}},
        2: {"linear": {"top1": 0.7, "top5": 0.95, "weight_decay": 1e-2},
            "diagnostics": {"alignment": 0.3, "effective_rank": 12.0}},
    }, {"notes": ["retrieval: features not mean-centred"]})
    path = res.to_json(tmp_path / "out" / "results.json")
    raw = json.loads(path.read_text())                 # strict JSON: NaN stored as null
    assert raw["per_split"]["1"]["diagnostics"]["alignment"] is None
    assert raw["mean"]["linear"]["top1"] == pytest.approx(0.6)
    assert "weight_decay" not in raw["mean"]["linear"]   # hyper-parameters are not averaged
    back = EvalResults.from_json(path)
    assert back.splits == [1, 2] and back.protocols == res.protocols
    assert math.isnan(back.per_split[1]["diagnostics"]["alignment"])
    assert back.per_split[2] == res.per_split[2]
    assert back.mean == res.mean and back.to_markdown() == res.to_markdown()
    md = res.to_markdown()
    assert "| linear | top1 (%) | 50.0 | 70.0 | 60.0 ± 10.0 |" in md
    assert "| linear | weight_decay | 1e-04 | 1e-02 | – |" in md
    assert "| diagnostics | alignment | – | 0.3 | 0.3 ± 0 |" in md
    assert "- retrieval: features not mean-centred" in md


def test_feature_cache_on_disk_is_reused(small_synthetic, tiny_encoder, tmp_path, monkeypatch):
    """features.cache_dir: the second evaluation reads the first one's features (no decoding);
    other weights or other views miss the cache."""
    import torch

    import vidssl.eval.cache as cache

    cfg = small_config()
    cfg.features.cache_dir = str(tmp_path / "cache")
    first = evaluate(tiny_encoder, dataset="synthetic", root=small_synthetic, splits=[1], protocols="knn",
                     config=cfg, progress=False)
    assert len(list((tmp_path / "cache").glob("features-*.pt"))) == 1

    def no_decoding(*a, **k):
        raise AssertionError("features were extracted again")

    monkeypatch.setattr(cache, "extract_features", no_decoding)
    again = evaluate(tiny_encoder, dataset="synthetic", root=small_synthetic, splits=[1], protocols="knn",
                     config=cfg, progress=False)
    assert again.per_split == first.per_split
    with torch.no_grad():
        next(tiny_encoder.parameters()).add_(0.1)           # other weights: another key
    with pytest.raises(AssertionError, match="extracted again"):
        evaluate(tiny_encoder, dataset="synthetic", root=small_synthetic, splits=[1], protocols="knn",
                 config=cfg, progress=False)
