"""Evaluation protocols named after their sources: each paper's released evaluation as a preset.

A preset is data plus a runner: a settings dataclass whose defaults are the authors' numbers
(clips and sampling, crops, augmentation, optimiser and schedule, test views, metric), the
released file(s) those numbers come from, the differences that remain between vidssl's run and
the released code (each with its source), and the runner that executes that kind of protocol:

========================  ==============================================================
kind                      runner
========================  ==============================================================
``linear`` / ``finetune``  :func:`vidssl.eval.clip_probe.run_trained_preset` (trains on
                          augmented clips every epoch, multi-view softmax-averaged test)
``retrieval``             :func:`vidssl.eval.retrieval.run_retrieval_preset` (cached features
                          with the preset's own views)
``attentive``             :func:`vidssl.eval.attentive.run_attentive_preset` (cached tokens)
``classify``              :func:`vidssl.eval.classify.run_classify` (the checkpoint's own head)
========================  ==============================================================

Presets register as protocols (``vidssl eval --protocol linear:coclr``); none is part of
``all``. Tests and small machines scale a preset down with overrides (``presets.linear:tclr.
epochs=1`` or, on the command line, ``linear:tclr.epochs=1``), never by changing its defaults;
``results.json`` records the preset, its resolved settings and the overrides.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vidssl.errors import ConfigError

__all__ = ["PRESETS", "Preset", "TrainedProbeSettings", "RetrievalSettings", "AttentiveSettings",
           "ClassifySettings", "preset_settings", "preset_record"]


# ---------------------------------------------------------------------- settings

@dataclass
class TrainedProbeSettings:
    """A probe (``train="head"``) or finetuning (``train="all"``) trained on augmented clips."""

    train: str = "head"                 # head: frozen encoder + trained head | all: finetune everything
    bn: str = "keep"                    # keep (eval mode) | train (BN layers in train mode) | recompute (precise BN first)
    # training clips: one random clip per video and epoch
    clip_len: int = 16
    stride: int = 2
    size: int = 112                     # crop side fed to the model
    resize_size: int = 128              # short side in the loader worker, before the random crop
    augment: str = "tclr_linear"        # a recipe of vidssl.eval.augment
    repeated_aug: int = 1               # augmented copies of each clip per batch (VideoMAE num_sample)
    mixup: float = 0.0                  # Beta alpha (0: off)
    cutmix: float = 0.0
    mix_prob: float = 1.0
    mix_switch_prob: float = 0.5
    label_smoothing: float = 0.0
    # head on the pooled feature
    l2_norm: bool = False               # L2-normalise the feature first
    head_bn: bool = False               # BatchNorm1d before the linear layer
    head_norm: bool = False             # LayerNorm before the linear layer (VideoMAE fc_norm)
    dropout: float = 0.0
    head_init_std: float = 0.01         # N(0, std) weights, zero bias
    # optimiser and schedule
    optimizer: str = "sgd"              # sgd | adam | adamw
    lr: float = 0.1
    lr_batch_base: Optional[int] = None  # lr x batch / this (VideoMAE: 256)
    weight_decay: float = 0.0
    decay_all: bool = True              # weight decay on every parameter (torch's default) vs weights only
    momentum: float = 0.9
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    backbone_lr_scale: float = 1.0      # encoder lr = lr x this (CoCLR finetune: 0.1)
    layer_decay: Optional[float] = None  # ViT layer-wise lr decay (VideoMAE)
    drop_path: float = 0.0              # ViT stochastic depth while finetuning (train="all"), rising over the blocks
    batch_size: int = 32
    epochs: int = 100
    schedule: str = "multistep"         # multistep | cosine | plateau
    milestones: list[int] = field(default_factory=list)   # multistep: epochs where lr x gamma
    gamma: float = 0.1
    warmup_epochs: float = 0.0          # cosine: linear warm-up from warmup_lr
    warmup_lr: float = 0.0
    min_lr: float = 0.0                 # cosine floor
    patience: int = 3                   # plateau: epochs whose train loss is above the best
    stop_lr: Optional[float] = None     # plateau: stop once lr falls below this
    clip_grad: Optional[float] = None
    # test: every view of every test video, softmax averaged
    test_clips: int = 10
    test_layout: str = "uniform"        # uniform | tclr | sliding
    test_window_step: int = 15          # sliding
    test_max_clips: int = 64            # sliding: cap
    test_crops: int = 1                 # 1 | 3 | 5 | 10
    test_size: int = 112
    test_resize_size: int = 128
    test_batch_size: int = 32
    # run
    num_workers: int = 2
    decoder: str = "torchcodec"
    amp: bool = True
    seed: int = 0


@dataclass
class RetrievalSettings:
    """Nearest-neighbour retrieval on frozen features with the preset's own views."""

    clip_len: int = 16
    stride: int = 2
    size: int = 112
    resize_size: int = 128
    num_clips: int = 10
    layout: str = "uniform"
    window_step: int = 15
    max_clips: int = 64
    num_crops: int = 1
    pooling: str = "mean"               # mean | temporal (map averaged over space, time kept, flattened)
    normalize_views: bool = False       # L2-normalise each view's feature before averaging
    center: str = "none"                # none | gallery | each
    ks: list[int] = field(default_factory=lambda: [1, 5, 10, 20, 50])


@dataclass
class AttentiveSettings:
    """The attentive probe on cached tokens (:mod:`vidssl.eval.attentive`)."""

    depth: int = 1
    num_queries: int = 1
    num_heads: Optional[int] = None
    mlp_ratio: float = 4.0
    lrs: list[float] = field(default_factory=lambda: [1e-3])
    weight_decays: list[float] = field(default_factory=lambda: [0.01])
    final_weight_decay: Optional[float] = None   # cosine weight-decay schedule to this (None: constant)
    epochs: int = 20
    batch_size: int = 256
    warmup_epochs: float = 0.0
    clip_grad: Optional[float] = None
    token_grid: list[int] = field(default_factory=lambda: [8, 16, 16])
    # views: segments (clips) concatenated per spatial view; views softmax-averaged at test
    clip_len: int = 16
    stride: int = 4
    size: int = 224
    resize_size: int = 224
    num_clips: int = 8
    num_crops: int = 3
    val_fraction: float = 0.2
    refit: bool = True
    seed: int = 0


@dataclass
class ClassifySettings:
    """The checkpoint's own classifier on every test view, softmax averaged (``None``: the
    encoder's preprocess)."""

    clip_len: Optional[int] = None
    stride: Optional[int] = None
    size: Optional[int] = None
    resize_size: Optional[int] = None
    num_clips: int = 5
    num_crops: int = 1
    layout: str = "uniform"
    batch_size: int = 32
    num_workers: int = 2
    decoder: str = "torchcodec"
    amp: bool = True


# ---------------------------------------------------------------------- presets

@dataclass(frozen=True)
class Preset:
    """One named protocol: its kind, settings (defaults = the source's), source files, the
    number(s) its authors report with it, and every known difference from the released code."""

    name: str
    kind: str                            # linear | finetune | retrieval | attentive | classify
    settings: Callable[[], Any]          # () -> the default settings dataclass
    source: str                          # repository and files
    summary: str                         # one line for vidssl eval --help
    reported: str = ""
    differences: tuple[str, ...] = ()
    runner: str = ""                     # "module:function"

    def defaults(self) -> Any:
        return self.settings()


def _trained(**kw: Any) -> Callable[[], TrainedProbeSettings]:
    return lambda: TrainedProbeSettings(**kw)


_TCLR_LINEAR = dict(
    train="head", bn="train", clip_len=16, stride=2, size=112, resize_size=128, augment="tclr_linear",
    optimizer="adam", lr=1e-2, weight_decay=0.0, batch_size=32, epochs=100, schedule="plateau",
    patience=3, gamma=0.1, stop_lr=1e-5, test_clips=10, test_layout="tclr", test_crops=1, test_size=112,
    test_resize_size=140)

PRESETS: dict[str, Preset] = {}


def _add(p: Preset) -> None:
    PRESETS[p.name] = p


_add(Preset(
    "linear:tclr", "linear", _trained(**_TCLR_LINEAR),
    source="DAVEISHAN/TCLR linear_eval/train.py, linear_eval/dl_linear.py, linear_eval/parameters_BL.py, "
           "linear_eval/model.py",
    summary="TCLR's linear evaluation: Adam 1e-2 on a linear layer over a frozen encoder whose BN runs in "
            "train mode, plateau schedule, 10 clips x centre crop, softmax mean",
    reported="UCF101 split 1, R3D-18 pretrained on UCF101: 69.9 (README)",
    differences=(
        "no test-set selection: vidssl reports the last epoch (train.py evaluates on the test split at "
        "epochs 6 and 11-49 and keeps the best)",
        "C outputs (TCLR: 102 with labels 1-101, index 0 never a target)",
        "augmentation differences of vidssl.eval.augment.tclr_linear (contrast slots independent, no gamma, "
        "crop position uniform)",
        "frames RGB; the TCLR importer swaps the first convolution's input channels (exact for TCLR's "
        "weights; a vidssl encoder sees RGB as trained)",
        "test crop: short side resized to 140 then centre 112 (TCLR: centre 192 of the 240-px frame, "
        "resized to 112: the same region)",
        "dl_linear.py's val dataset reads an undefined `split` (as released it does not run); split 1 "
        "assumed",
    ),
    runner="vidssl.eval.clip_probe:run_trained_preset"))

_add(Preset(
    "finetune:tclr", "finetune", _trained(**{**_TCLR_LINEAR, "train": "all"}),
    source="DAVEISHAN/TCLR linear_eval/train.py without --linear (every parameter trains), "
           "linear_eval/dl_linear.py, linear_eval/parameters_BL.py",
    summary="TCLR's train.py without --linear: every parameter, Adam 1e-2, plateau schedule, "
            "TCLR's augmentation and 10-clip test",
    reported="UCF101 82.0 (README) / 82.4 (paper), HMDB51 52.9, R3D-18 pretrained on UCF101",
    differences=(
        "the authors' finetuning numbers are not produced by this file: as released, validation only "
        "runs with --linear, and the author points to SEVERE-benchmark for finetuning (TCLR issue #3); "
        "this preset runs what the released file does",
        "no test-set selection; C outputs; augmentation and crop as linear:tclr",
    ),
    runner="vidssl.eval.clip_probe:run_trained_preset"))

_add(Preset(
    "linear:coclr", "linear", _trained(
        train="head", bn="keep", clip_len=32, stride=1, size=128, resize_size=137, augment="coclr_linear",
        l2_norm=True, head_bn=True, dropout=0.0, optimizer="sgd", lr=0.1, weight_decay=1e-3, decay_all=True,
        momentum=0.9, batch_size=64, epochs=100, schedule="multistep", milestones=[60, 80], gamma=0.1,
        test_layout="sliding", test_window_step=15, test_crops=1, test_size=128, test_resize_size=137),
    source="TengdaHan/CoCLR eval/main_classifier.py (--train_what last), model/classifier.py, "
           "dataset/lmdb_dataset.py, README.md",
    summary="CoCLR's linear probe: frozen S3D (BN eval), L2 -> BatchNorm1d -> linear, SGD 0.1 wd 1e-3, "
            "100 epochs (x0.1 at 60, 80), 32-frame windows every 15 frames, centre crop",
    reported="UCF101 split 1, S3D pretrained on UCF101 (RGB CoCLR): 70.2 (paper)",
    differences=(
        "no selection on a 30% 'val' subset of the test list (main_classifier.py picks the best epoch "
        "there); vidssl reports the last epoch",
        "no colour jitter at test (the released test transform keeps ColorJitter(0.2, 0.2, 0.2, 0.1, "
        "p=0.3))",
        "batch 64 = the README's 32 per GPU x 2 GPUs",
        "test windows capped at 64 per video (evenly thinned); crop region resampled once (see "
        "vidssl.eval.augment.coclr_linear)",
    ),
    runner="vidssl.eval.clip_probe:run_trained_preset"))

_add(Preset(
    "finetune:coclr", "finetune", _trained(
        train="all", bn="train", clip_len=32, stride=1, size=128, resize_size=137, augment="coclr_linear",
        l2_norm=False, head_bn=False, dropout=0.9, optimizer="adam", lr=1e-3, weight_decay=1e-3,
        backbone_lr_scale=0.1, batch_size=32, epochs=500, schedule="multistep", milestones=[400, 450],
        test_layout="sliding", test_window_step=15, test_crops=10, test_size=128, test_resize_size=137),
    source="TengdaHan/CoCLR eval/main_classifier.py (--train_what ft), README.md, issue #18",
    summary="CoCLR's finetuning: dropout 0.9 -> linear, Adam 1e-3 (encoder 1e-4) wd 1e-3, 500 epochs "
            "(x0.1 at 400, 450), sliding windows x ten crops",
    reported="UCF101, S3D pretrained on K400 (RGB CoCLR): 87.9 (README); on UCF101: 81.4 (paper)",
    differences=("no selection on the 30% test subset; no colour jitter at test; windows capped at 64",),
    runner="vidssl.eval.clip_probe:run_trained_preset"))

_add(Preset(
    "linear:cvrl", "linear", _trained(
        train="head", bn="keep", clip_len=32, stride=2, size=224, resize_size=256, augment="cvrl_linear",
        l2_norm=True, optimizer="sgd", lr=32.0, weight_decay=0.0, momentum=0.9, batch_size=1024, epochs=100,
        schedule="cosine", warmup_epochs=5.0, warmup_lr=0.0, min_lr=0.0, test_clips=10, test_layout="uniform",
        test_crops=3, test_size=256, test_resize_size=256),
    source="tensorflow/models official/projects/video_ssl/configs/experiments/cvrl_linear_eval_k600.yaml, "
           "dataloaders/video_ssl_input.py, modeling/video_ssl_model.py, tasks/linear_eval.py",
    summary="CVRL's linear evaluation: L2-normalised frozen features -> linear, SGD lr 32 (batch 1024) "
            "cosine with 5 warm-up epochs, 100 epochs, 10 clips x 3 crops of 256, softmax mean",
    reported="K400 R3D-50: 63.8 (200 ep) / 66.1 (800 ep) (README); the released YAML is the K600 one",
    differences=(
        "epochs instead of steps: the YAML's 35,744 steps (1,787 warm-up) at batch 1024 are ~100 (5) "
        "epochs of Kinetics-600; for another dataset vidssl keeps the epochs",
        "no Kinetics-400 YAML exists; the K600 values are used (the K400 factory's projection_dim=600 "
        "looks copied)",
        "test crops: 3 along the long side after resizing the short side to 256 (TF: 3 crops of 256 "
        "after resize_smallest(256), the same)",
        "the warm-up rises from lr / W (the runtime's warmup_cosine) instead of from 0",
    ),
    runner="vidssl.eval.clip_probe:run_trained_preset"))

_add(Preset(
    "finetune:videomae", "finetune", _trained(
        train="all", bn="train", clip_len=16, stride=4, size=224, resize_size=256, augment="videomae_finetune",
        repeated_aug=2, mixup=0.8, cutmix=1.0, mix_prob=1.0, mix_switch_prob=0.5, label_smoothing=0.1,
        head_norm=True, dropout=0.5, head_init_std=0.001 * 0.02, optimizer="adamw", lr=5e-4, lr_batch_base=256,
        weight_decay=0.05, decay_all=False, betas=[0.9, 0.999], layer_decay=0.7, drop_path=0.2, batch_size=128,
        epochs=100,
        schedule="cosine", warmup_epochs=5.0, warmup_lr=1e-8, min_lr=1e-5, test_clips=5, test_layout="uniform",
        test_crops=3, test_size=224, test_resize_size=224),
    source="MCG-NJU/VideoMAE run_class_finetuning.py, scripts/ucf101/"
           "videomae_vit_base_patch16_224_tubemasking_ratio_0.75_epoch_3200/finetune.sh, kinetics.py, "
           "engine_for_finetuning.py",
    summary="VideoMAE's UCF101 finetuning: AdamW 5e-4 x batch/256, layer decay 0.7, 100 epochs cosine "
            "(5 warm-up), mixup 0.8 / cutmix 1.0, smoothing 0.1, RandAugment, erasing, 5 clips x 3 crops",
    reported="UCF101 ViT-B (3200 ep UCF101 pretraining): 91.3 (MODEL_ZOO)",
    differences=(
        "drop path and layer decay apply to ViT encoders (another encoder: "
        "presets.finetune:videomae.drop_path=0, layer_decay=null)",
        "RandAugment: torchvision's RandAugment(4, 7) (timm's rand-m7-n4-mstd0.5-inc1 adds magnitude "
        "noise and its own op set)",
        "head init N(0, 2e-5) (timm trunc_normal(0.02) x init_scale 0.001)",
        "no DeepSpeed / fp16 loss scaling; AMP bf16 on CUDA",
        "the warm-up rises from lr / W (the runtime's warmup_cosine) instead of warmup_lr 1e-8",
    ),
    runner="vidssl.eval.clip_probe:run_trained_preset"))

_add(Preset(
    "retrieval:coclr", "retrieval", lambda: RetrievalSettings(
        clip_len=32, stride=1, size=128, resize_size=137, layout="sliding", window_step=15, num_crops=1,
        pooling="mean", normalize_views=True, center="each", ks=[1, 5, 10, 20, 50]),
    source="TengdaHan/CoCLR eval/main_classifier.py (--test ckpt --retrieval), dataset/lmdb_dataset.py",
    summary="CoCLR's retrieval: L2 per 32-frame window (every 15 frames) -> mean -> each set centred by its "
            "own mean -> L2, test queries train, R@1/5/10/20/50",
    reported="UCF101 split 1 R@1: UCF101-pretrained RGB CoCLR 51.8, K400 RGB 45.6 (README)",
    differences=("no colour jitter at test (released: ColorJitter(0.2, 0.2, 0.2, 0.1, p=0.3) on the "
                 "centre crop)", "windows capped at 64 per video"),
    runner="vidssl.eval.retrieval:run_retrieval_preset"))

_add(Preset(
    "retrieval:tclr", "retrieval", lambda: RetrievalSettings(
        clip_len=16, stride=2, size=112, resize_size=140, num_clips=9, layout="tclr", num_crops=1,
        pooling="temporal", normalize_views=False, center="none", ks=[1, 5, 10, 20, 50]),
    source="DAVEISHAN/TCLR nn_retrieval/complete_retrieval.py, nn_retrieval/dl_ret.py, "
           "nn_retrieval/parameters_BL.py, nn_retrieval/model.py",
    summary="TCLR's retrieval: last feature map averaged over space with time kept (512 x T'), mean over "
            "9 clips, L2, no centring, test queries train",
    reported="UCF101 split 1 R@1: 56.1 (README) / 56.2 (paper), R3D-18 pretrained on UCF101",
    differences=("test crop: short side 140 then centre 112 (TCLR: centre 192 of 240, resized to 112)",),
    runner="vidssl.eval.retrieval:run_retrieval_preset"))

_add(Preset(
    "attentive:vjepa", "attentive", lambda: AttentiveSettings(
        depth=1, num_queries=1, lrs=[1e-3], weight_decays=[0.01], final_weight_decay=1e-6, epochs=20,
        batch_size=256, warmup_epochs=0.0, clip_grad=1.0, clip_len=16, stride=4, size=224, resize_size=224,
        num_clips=8, num_crops=3, token_grid=[8, 14, 14]),
    source="facebookresearch/jepa configs/evals/vitl16_k400_16x8x3.yaml, "
           "evals/video_classification_frozen/eval.py, src/models/attentive_pooler.py",
    summary="V-JEPA's frozen attentive probe: 1 cross-attention block, 1 query, AdamW 1e-3 cosine, wd 0.01 "
            "cosine to 1e-6, 20 epochs, 8 segments x 3 views of 16 frames (step 4)",
    reported="K400 ViT-L/16: 80.8 (README)",
    differences=(
        "cached tokens: no training augmentation (V-JEPA: RandAugment, random resized crop, erasing per "
        "epoch); each epoch draws one of the cached spatial views per video",
        "tokens average-pooled to at most token_grid cells per clip (ViT-L/16 at 224: 8 x 14 x 14 = all)",
        "the probe is chosen on a validation part of train and refitted (V-JEPA reports its single head)",
        "AMP bf16 on CUDA (V-JEPA: float16 with a GradScaler)",
        "which epoch V-JEPA reports is not confirmed in the released eval.py (it logs every epoch); "
        "vidssl reports the last",
    ),
    runner="vidssl.eval.attentive:run_attentive_preset"))

_add(Preset(
    "attentive:vjepa2", "attentive", lambda: AttentiveSettings(
        depth=4, num_queries=1, lrs=[5e-3, 3e-3, 1e-3, 3e-4, 1e-4], weight_decays=[0.01, 0.1, 0.4, 0.8],
        final_weight_decay=None, epochs=20, batch_size=256, warmup_epochs=0.0, clip_len=16, stride=4, size=256,
        resize_size=256, num_clips=8, num_crops=3, token_grid=[8, 16, 16]),
    source="facebookresearch/vjepa2 configs/eval/vitl/k400-area-attn.yaml (based on k400.yaml), "
           "evals/video_classification_frozen/eval.py; transformers models/vjepa2 (VJEPA2AttentivePooler: "
           "self-attention blocks before the cross-attention)",
    summary="V-JEPA 2's attentive probe: 3 self-attention + 1 cross-attention block, 20 heads (lr x wd grid) "
            "in one pass, 20 epochs, 8 segments x 3 views at 256",
    reported="SSv2 ViT-L/16: 73.7; Diving48 89.0 (README); K400 (paper, not re-read)",
    differences=(
        "the best of the 20 heads is chosen on a validation part of train and refitted (V-JEPA 2 reports "
        "the maximum over heads on the evaluation set)",
        "cached tokens: no training augmentation; token grid as attentive:vjepa",
        "official k400.yaml not in the index: values from k400-area-attn.yaml, whose header says it is "
        "based on it",
    ),
    runner="vidssl.eval.attentive:run_attentive_preset"))

_add(Preset(
    "classify", "classify", ClassifySettings,
    source="the checkpoint's own classifier (torchvision Kinetics-400 heads, transformers "
           "VideoMAE / V-JEPA 2 classification checkpoints)",
    summary="the checkpoint's own classification head on every test view, softmax averaged (classes "
            "matched to the dataset's by name)",
    runner="vidssl.eval.classify:run_classify"))


# ---------------------------------------------------------------------- settings with overrides

def preset_settings(name: str, overrides: dict[str, Any] | None = None) -> Any:
    """The preset's settings dataclass with ``overrides`` merged over its defaults (unknown keys
    and wrong types are one-line :class:`ConfigError` s naming the preset)."""
    preset = PRESETS[name]
    base = OmegaConf.structured(preset.defaults())
    try:
        if overrides:
            base = OmegaConf.merge(base, OmegaConf.create(dict(overrides)))
        return OmegaConf.to_object(base)
    except OmegaConfBaseException as err:
        msg = " ".join(str(err).split("\n")[0].split())
        key = getattr(err, "full_key", None)
        raise ConfigError(f"invalid settings for preset {name}" + (f" at key '{key}'" if key else "")
                          + f": {msg}") from None


def preset_record(name: str, settings: Any, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """What results.json stores about a preset run."""
    p = PRESETS[name]
    return {"kind": p.kind, "source": p.source, "settings": dataclasses.asdict(settings),
            "overrides": dict(overrides or {}), "reported": p.reported, "differences": list(p.differences)}


def _runner(name: str) -> Callable[[Any], dict]:
    def run(split: Any) -> dict:
        from vidssl.registry import import_path

        overrides = split.config.presets.get(name) or {}
        settings = preset_settings(name, overrides)
        split.context.info.setdefault("presets", {})[name] = preset_record(name, settings, overrides)
        return import_path(PRESETS[name].runner)(split, PRESETS[name], settings)

    run.__name__ = f"run_{name.replace(':', '_')}"
    return run


def _note(name: str) -> Callable[[Any], str]:
    def note(cfg: Any) -> str:
        p = PRESETS[name]
        extra = cfg.presets.get(name)
        return f"{name}: {p.summary}; source {p.source}" + (f"; overrides {dict(extra)}" if extra else "")
    return note


def register_presets(register: Callable[..., Any]) -> None:
    """Register every preset as a protocol (called once by :mod:`vidssl.eval.protocols`)."""
    for name, p in PRESETS.items():
        register(name, _runner(name), in_all=False, note=_note(name), summary=p.summary,
                 test_only=p.kind == "classify")
