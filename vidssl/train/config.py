"""The pretraining config schema (``vidssl pretrain --config configs/pretrain/X.yaml``).

YAML files are merged over these defaults by :func:`vidssl.config.load_config`; unknown keys
are errors. ``method.params`` is validated by the method's own dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class DataConfig:
    dataset: str = "synthetic"        # build_index name: synthetic | ucf101 | hmdb51 | folder | kinetics_csv
    root: str = "data/synthetic"
    split: int = 1
    subset: str = "train"
    decoder: str = "torchcodec"       # a backend (vidssl.data.decoders) or auto: timed on the first clips
    fallback_decoder: Optional[str] = None  # reads files the decoder cannot (GPU decoders: torchcodec)
    loader: str = "auto"              # workers (DataLoader processes) | device (DeviceLoader, needed by
                                      # GPU decoders) | auto: device for GPU decoders, else workers
    resize: Optional[int] = None      # short side resized per clip on the CPU (default: data.crop)
    crop: Optional[int] = None        # centre crop x crop after the resize: any mix of sizes batches
    batch_size: int = 16              # global batch: divided by the world size under torchrun
    num_workers: int = 2
    drop_last: bool = True
    paired_root: Optional[str] = None  # a second video per sample at the same relative path
                                       # (precomputed flow, tools/precompute_flow.py)
    decode_timeout_s: Optional[float] = 60.0  # per-sample decode deadline: a hung file is skipped
    max_frame_pixels: Optional[int] = 8192 * 4320  # larger frames: the file is skipped


@dataclass
class EncoderConfig:
    name: str = "r3d_tiny"
    pretrained: Optional[str] = None  # None | "default" (published weights) | path | HF id
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class MethodConfig:
    name: str = "cvrl"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    name: str = "adamw"               # adamw | sgd
    lr: float = 1e-3                  # for the global batch
    weight_decay: float = 0.05
    momentum: float = 0.9             # sgd only
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0         # cosine floor, as a fraction of lr
    clip_grad: Optional[float] = 1.0  # max global grad norm; None = off
    fused: Optional[bool] = None      # fused AdamW/SGD kernels; None = on for CUDA, off elsewhere


@dataclass
class TrainConfig:
    epochs: int = 1
    max_steps: Optional[int] = None   # stop early after this many optimizer steps
    seed: int = 0
    device: str = "auto"              # auto | cpu | cuda | cuda:N
    amp: str = "auto"                 # auto (bf16 where supported) | bf16 | off
    deterministic: bool = False
    freeze_bn: bool = False           # BatchNorm uses running statistics (eval mode), no updates
    channels_last: bool = False       # encoder weights and inputs in channels_last_3d memory format
    compile: bool = False             # torch.compile the encoder (heads and losses stay eager)
    log_every: int = 10
    ckpt_every: int = 0               # steps; 0 = end of every epoch only
    out_dir: str = "runs/pretrain"
    tensorboard: bool = True
    progress: bool = True


@dataclass
class PretrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
