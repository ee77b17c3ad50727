"""The pretraining config schema (``vidssl pretrain --config configs/pretrain/X.yaml``).

YAML files are merged over these defaults by :func:`vidssl.config.load_config`; unknown keys
are errors. ``method.params`` is validated by the method's own dataclass, ``data.kwargs`` by
the dataset builder's signature, ``encoder.kwargs`` by the encoder factory's. ``optim`` is
:class:`vidssl.runtime.optim.OptimConfig` (finetuning uses the same optimiser builder).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from vidssl.runtime.optim import OptimConfig


@dataclass
class DataConfig:
    dataset: str = "synthetic"        # a registered dataset: synthetic | ucf101 | hmdb51 | folder | kinetics_csv
    root: str = "data/synthetic"
    split: int = 1                    # datasets with official splits (synthetic, ucf101, hmdb51)
    subset: str = "train"
    kwargs: dict[str, Any] = field(default_factory=dict)  # the dataset builder's own arguments, e.g.
                                      # {csv: train.csv, subset: train} for kinetics_csv
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
class WandbConfig:
    """Weights & Biases logging next to TensorBoard (``pip install wandb``): the same scalars
    (``train/<name>`` per step) and the same resolved config reach both."""

    enabled: bool = False
    project: str = "vidssl"
    entity: Optional[str] = None
    name: Optional[str] = None        # default: the run directory's name
    mode: Optional[str] = None        # online | offline | disabled; None: WANDB_MODE, else online
    tags: list[str] = field(default_factory=list)


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
    activation_checkpointing: bool = False  # recompute transformer blocks' activations in backward (ViTs)
    strategy: str = "ddp"             # under torchrun: ddp (replicas) | fsdp (fully_shard: parameters,
                                      # gradients and optimiser state split over the ranks)
    compile: bool = False             # torch.compile the encoder (heads and losses stay eager)
    log_every: int = 10
    ckpt_every: int = 0               # steps; 0 = end of every epoch only
    out_dir: str = "runs/pretrain"
    if_exists: str = "version"        # out_dir holds another run: version (-> OUT_v2) | error | overwrite
    tensorboard: bool = True
    wandb: WandbConfig = field(default_factory=WandbConfig)
    progress: bool = True


@dataclass
class PretrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def recipe_name(method: str) -> str:
    """The shipped config holding ``method``'s small-scale recipe: ``pretrain/<method>_synthetic``."""
    return f"pretrain/{method}_synthetic"


def has_recipe(method: str) -> bool:
    from vidssl.config import list_shipped_configs

    return recipe_name(method) + ".yaml" in list_shipped_configs()


def load_recipe(method: str) -> PretrainConfig:
    """``method``'s small-scale recipe (``configs/pretrain/<method>_synthetic.yaml``): the one
    home of its synthetic-dataset sizes, read by ``vidssl pretrain``, the demo and ``vidssl
    compare`` alike."""
    from vidssl.config import load_config

    return load_config(PretrainConfig, recipe_name(method))
