"""The papers' evaluation protocols as presets: every preset end to end on the synthetic set
(scaled down by overrides, never by changing defaults), their defaults pinned to the sources'
numbers, the schedules against hand-computed rules, override errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vidssl.config import load_config
from vidssl.errors import ConfigError
from vidssl.eval import EvalConfig, evaluate
from vidssl.eval.command import preset_overrides
from vidssl.eval.presets import PRESETS, TrainedProbeSettings, preset_settings
from vidssl.eval.protocols import PROTOCOLS, resolve_protocols

# The documented scale-down for CPU tests: configs/eval/synthetic_presets.yaml (run sizes only).
SMALL_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "eval" / "synthetic_presets.yaml"
SMALL = {k: dict(v) for k, v in load_config(EvalConfig, SMALL_CONFIG).presets.items()}
TRAINED_SMALL = SMALL["linear:tclr"]


class WithHead(nn.Module):
    """A tiny encoder carrying a classifier over the synthetic classes (named, reordered)."""

    def __init__(self, encoder: nn.Module, class_names: list[str]):
        super().__init__()
        self.encoder = encoder
        self.num_features, self.preprocess = encoder.num_features, encoder.preprocess
        self.fc = nn.Linear(encoder.num_features, len(class_names))
        self.class_names = class_names

    def forward_features(self, x):
        return self.encoder.forward_features(x)

    def forward_feature_map(self, x):
        return self.encoder.forward_feature_map(x)

    def forward_logits(self, x):
        return self.fc(self.forward_features(x))


def small_config() -> EvalConfig:
    cfg = load_config(EvalConfig, SMALL_CONFIG)
    cfg.device = "cpu"
    return cfg


def test_every_preset_and_the_attentive_probe_run_end_to_end(small_synthetic, tiny_encoder):
    from vidssl.data.index import build_index

    names = [n for n in PROTOCOLS.names(sort=False)
             if n not in ("finetune", "diagnostics", "counterfactual", "zeroshot")]   # tested on their own
    assert set(PRESETS) <= set(names) and "attentive" in names
    classes = list(build_index("synthetic", small_synthetic, split=1, subset="test", progress=False).class_names)
    encoder = WithHead(tiny_encoder, [c.upper() for c in reversed(classes)] + ["NotInTheDataset"])
    defaults = {n: p.defaults() for n, p in PRESETS.items()}
    res = evaluate(encoder, dataset="synthetic", root=small_synthetic, splits=[1], protocols=names,
                   config=small_config(), progress=False)
    s1 = res.per_split[1]
    for name in names:
        assert 0.0 <= s1[name].get("top1", s1[name].get("hit@1", -1)) <= 1.0, name
        pv = res.info["per_video"]["1"][name]
        assert len(pv["videos"]) == 6 and all(len(v) == 6 for v in pv["outcomes"].values()), name
        assert res.interval(name, "top1" if "top1" in s1[name] else "hit@1", 1) is not None
    for name in PRESETS:
        rec = res.info["presets"][name]
        assert rec["overrides"] == SMALL[name] and rec["source"] == PRESETS[name].source
        assert PRESETS[name].defaults() == defaults[name]          # overrides never touch the defaults
    assert res.info["presets"]["linear:tclr"]["settings"]["epochs"] == 1
    assert res.info["preset_runs"]["1"]["linear:tclr"]["bn"] == "train"
    assert s1["attentive:vjepa2"]["lr"] in (1e-3, 1e-4)
    md = res.to_markdown()
    assert "| linear:coclr | top1 (%) |" in md and any(n.startswith("linear:tclr: TCLR") for n in res.info["notes"])
    json.dumps(res.to_dict(), allow_nan=False)                      # strict JSON


def test_defaults_are_the_sources_numbers():
    t = PRESETS["linear:tclr"].defaults()
    assert (t.optimizer, t.lr, t.batch_size, t.epochs, t.schedule, t.patience, t.stop_lr, t.bn) == \
        ("adam", 1e-2, 32, 100, "plateau", 3, 1e-5, "train")
    assert (t.clip_len, t.stride, t.size, t.test_clips, t.test_layout, t.augment) == (16, 2, 112, 10, "tclr", "tclr_linear")
    c = PRESETS["linear:coclr"].defaults()
    assert (c.optimizer, c.lr, c.weight_decay, c.epochs, c.milestones, c.l2_norm, c.head_bn, c.bn) == \
        ("sgd", 0.1, 1e-3, 100, [60, 80], True, True, "keep")
    assert (c.clip_len, c.stride, c.size, c.test_layout, c.test_window_step) == (32, 1, 128, "sliding", 15)
    v = PRESETS["linear:cvrl"].defaults()
    assert (v.lr, v.batch_size, v.epochs, v.warmup_epochs, v.weight_decay, v.l2_norm) == (32.0, 1024, 100, 5.0, 0.0, True)
    assert (v.clip_len, v.stride, v.test_clips, v.test_crops, v.test_size) == (32, 2, 10, 3, 256)
    m = PRESETS["finetune:videomae"].defaults()
    assert (m.lr, m.lr_batch_base, m.layer_decay, m.epochs, m.batch_size, m.mixup, m.cutmix, m.label_smoothing) == \
        (5e-4, 256, 0.7, 100, 128, 0.8, 1.0, 0.1)
    assert (m.test_clips, m.test_crops, m.dropout, m.min_lr, m.repeated_aug) == (5, 3, 0.5, 1e-5, 2)
    assert m.drop_path == 0.2
    f = PRESETS["finetune:coclr"].defaults()
    assert (f.dropout, f.backbone_lr_scale, f.epochs, f.milestones, f.test_crops) == (0.9, 0.1, 500, [400, 450], 10)
    r = PRESETS["retrieval:coclr"].defaults()
    assert (r.center, r.normalize_views, r.layout) == ("each", True, "sliding")
    r = PRESETS["retrieval:tclr"].defaults()
    assert (r.center, r.pooling, r.num_clips, r.layout) == ("none", "temporal", 9, "tclr")
    j = PRESETS["attentive:vjepa2"].defaults()
    assert (j.depth, len(j.lrs) * len(j.weight_decays), j.epochs, j.num_clips, j.num_crops, j.size) == (4, 20, 20, 8, 3, 256)
    j = PRESETS["attentive:vjepa"].defaults()
    assert (j.depth, j.lrs, j.weight_decays, j.final_weight_decay, j.num_clips, j.num_crops) == (1, [1e-3], [0.01], 1e-6, 8, 3)
    assert all(p.source and p.summary for p in PRESETS.values())


def test_overrides_are_checked_and_the_cli_shorthand():
    assert preset_settings("linear:tclr", {"epochs": 2}).epochs == 2
    with pytest.raises(ConfigError, match="linear:tclr") as info:
        preset_settings("linear:tclr", {"epoch": 2})
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="linear:cvrl"):
        preset_settings("linear:cvrl", {"lr": "fast"})
    assert preset_overrides(["linear:tclr.epochs=2", "knn.k=5", "presets.linear:coclr.lr=1"]) == \
        ["presets.linear:tclr.epochs=2", "knn.k=5", "presets.linear:coclr.lr=1"]
    assert resolve_protocols("linear:fast,linear:coclr") == ["linear", "linear:coclr"]


def test_plateau_multistep_and_cosine_schedules():
    from vidssl.eval.clip_probe import _Schedule

    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1e-2)
    s = TrainedProbeSettings(schedule="plateau", lr=1e-2, patience=3, gamma=0.1, stop_lr=1e-5, epochs=100)
    sched = _Schedule(opt, s, 1e-2, 10)
    # TCLR's rule: count epochs whose loss is above the best (never reset but by a drop); drop at patience
    losses = [5, 4, 4.5, 4.6, 4.7, 3, 3.5, 3.6, 3.7, 3.8, 3.9, 4, 4, 4, 4, 4, 4, 4, 4, 4]
    lrs, stopped = [], None
    for epoch, loss in enumerate(losses):
        sched.start_epoch(epoch)
        lrs.append(sched.lr)
        if not sched.end_epoch(loss):
            stopped = epoch
            break
    assert lrs[:6] == pytest.approx([1e-2] * 5 + [1e-3])
    assert lrs[9] == pytest.approx(1e-4) and lrs[12] == pytest.approx(1e-5) and lrs[15] == pytest.approx(1e-6)
    assert stopped == 15                                     # trained once below 1e-5, then stops
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = _Schedule(opt, TrainedProbeSettings(schedule="multistep", milestones=[60, 80], epochs=100), 0.1, 5)
    got = []
    for e in (0, 59, 60, 79, 80, 99):
        sched.start_epoch(e)
        got.append(opt.param_groups[0]["lr"])
    assert got == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=32.0)
    s = TrainedProbeSettings(schedule="cosine", epochs=10, warmup_epochs=1, min_lr=0.0)
    sched = _Schedule(opt, s, 32.0, 4)
    seen = []
    for _ in range(40):
        seen.append(opt.param_groups[0]["lr"])
        sched.step()
    assert seen[0] == pytest.approx(8.0) and seen[3] == pytest.approx(32.0) and max(seen) == pytest.approx(32.0)
    assert seen[-1] < 0.2 and all(a >= b for a, b in zip(seen[3:], seen[4:]))


def test_finetune_videomae_layer_decay_on_a_vit(small_synthetic):
    from vidssl.eval.clip_probe import ProbeHead, ProbeModel, param_groups_for
    from vidssl.models.encoders import create_encoder

    enc = create_encoder("videomae_tiny", num_frames=4, image_size=32)
    model = ProbeModel(enc, ProbeHead(enc.num_features, 3, layer_norm=True), frozen=False)
    s = PRESETS["finetune:videomae"].defaults()
    groups = param_groups_for(model, s, 1.0)
    scales = sorted({round(g["lr_scale"], 6) for g in groups})
    # 2 layers: embeddings 0.7^3, block 0 0.7^2, block 1 0.7, the rest (final norm, head) 1
    assert scales == pytest.approx(sorted([0.343, 0.49, 0.7, 1.0]))
    no_decay = [g for g in groups if g["weight_decay"] == 0]
    assert all(p.ndim == 1 for g in no_decay for p in g["params"])
    with pytest.raises(ConfigError, match="layer_decay"):
        cnn = ProbeModel(nn.Sequential(nn.Conv3d(3, 4, 1)), ProbeHead(4, 3), frozen=False)
        param_groups_for(cnn, s, 1.0)
    cfg = EvalConfig(device="cpu")
    cfg.presets = {"finetune:videomae": {**TRAINED_SMALL, "clip_len": 4, "batch_size": 2, "test_crops": 1}}
    res = evaluate(enc, dataset="synthetic", root=small_synthetic, splits=[1], protocols="finetune:videomae",
                   config=cfg, progress=False)
    assert np.isfinite(res.per_split[1]["finetune:videomae"]["train_loss"])


def test_classify_runs_on_a_dataset_without_splits(small_synthetic, tiny_encoder):
    """The checkpoint's own head needs no train videos: a folder-per-class tree (or Kinetics'
    validation CSV) is evaluated as one test set; other protocols are refused there."""
    from vidssl.data.index import build_index
    from vidssl.eval.classify import classify_views

    root = small_synthetic / "videos"
    index = build_index("folder", root, progress=False)
    names = list(index.class_names)
    encoder = WithHead(tiny_encoder, names[::-1])
    cfg = small_config()
    res = evaluate(encoder, dataset="folder", root=root, protocols="classify", config=cfg, progress=False)
    probs, pos, _ = classify_views(encoder, index, preset_settings("classify", SMALL["classify"]), device="cpu",
                                   progress=False)
    want = (np.asarray(names[::-1])[probs.argmax(1).numpy()] == np.asarray(names)[index.labels[pos]]).mean()
    assert res.per_split[1]["classify"]["top1"] == pytest.approx(want)
    assert res.info["videos"]["1"]["test"] == len(index) == 18 and res.info["videos"]["1"]["train"] == 0
    with pytest.raises(ConfigError, match="official train/test splits"):
        evaluate(encoder, dataset="folder", root=root, protocols="knn", config=cfg, progress=False)
    with pytest.raises(ConfigError, match="class names"):          # r3d_tiny built without a head
        evaluate(tiny_encoder, dataset="folder", root=root, protocols="classify", config=cfg, progress=False)
    from tests.eval.conftest import TinyTestEncoder

    with pytest.raises(ConfigError, match="carries no classifier"):
        evaluate(TinyTestEncoder(), dataset="folder", root=root, protocols="classify", config=cfg, progress=False)


def test_docs_name_every_preset_and_the_harness_table_has_one_command_per_row():
    root = Path(__file__).resolve().parents[2] / "docs"
    evaluation = (root / "evaluation.md").read_text()
    for name, p in PRESETS.items():
        assert f"`{name}`" in evaluation, name
        flat = " ".join(evaluation.split())
        for difference in p.differences:                 # every listed difference is documented, verbatim
            assert " ".join(difference.split()) in flat, (name, difference[:50])
    text = (root / "reproduction.md").read_text()
    table = text[text.index("## Check the harness first"):text.index("Why these tolerances")]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| released")]
    assert len(rows) >= 14
    for row in rows:
        assert row.count("`vidssl eval ") == 1, row[:60]
        command = row.split("`vidssl eval ")[1].split("`")[0]
        source = command.split("--pretrained ")[1].split(":")[0]
        from vidssl.models.importers import IMPORTERS
        assert source in IMPORTERS.names(), row[:60]
        for preset in command.split("--protocol ")[1].split()[0].split(","):
            assert preset in PROTOCOLS, preset
