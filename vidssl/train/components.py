"""The parts a pretraining run is built from, outside the loop: the index a data config
describes (checked before anything is read), the decoder choice, the encoder's step options.
:func:`vidssl.train.loop.build_components` assembles them with the method and the loader.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from vidssl.data.index import DATASETS, VideoIndex, build_index, check_dataset_arguments
from vidssl.errors import ConfigError, VidsslError
from vidssl.runtime import dist
from vidssl.train.config import DataConfig

__all__ = ["index_arguments", "build_training_index", "resolve_decoder", "apply_step_options"]


def index_arguments(data: DataConfig) -> tuple[str, dict]:
    """The registered dataset name and its builder's keyword arguments for ``data``: ``split``
    and ``subset`` for datasets with official splits, then ``data.kwargs`` (the builder's own
    arguments: ``csv`` for ``kinetics_csv``, ``annotations``, ``extensions``, ...). Checked
    against the builder's signature; nothing is read.

    Raises:
        ConfigError: unknown dataset, unknown or missing argument (one line naming the key).
    """
    try:
        name = DATASETS.key(data.dataset)
    except ConfigError as err:
        raise ConfigError(f"data.dataset: {err}") from None
    kw = {"progress": False, **data.kwargs}
    if DATASETS.info(name)["splits"]:
        clash = sorted({"split", "subset"} & set(data.kwargs))
        if clash:
            raise ConfigError(f"data.kwargs: {clash} of dataset {name!r} are data.split / data.subset")
        kw.update(split=data.split, subset=data.subset)
    try:
        check_dataset_arguments(name, kw)
    except ConfigError as err:
        raise ConfigError(f"data.kwargs: {err}") from None
    return name, kw


def build_training_index(data: DataConfig) -> VideoIndex:
    """The index of ``data`` (:func:`index_arguments`), after checking its root exists."""
    name, kw = index_arguments(data)
    if not os.path.exists(data.root):
        hint = " (run `vidssl make-synthetic` first)" if name == "synthetic" else ""
        raise VidsslError(f"data.root {data.root} does not exist{hint}")
    return build_index(name, data.root, **kw)


def resolve_decoder(name: str, make_dataset, device: torch.device, num_workers: int) -> str:
    """``data.decoder``, with ``auto`` measured on the run's first clips (rank 0's choice is
    broadcast, so every rank decodes alike)."""
    if name != "auto":
        return name
    from vidssl.data.decoders.calibrate import choose_decoder

    choice: list = [None]
    if dist.is_main():
        try:
            choice = [choose_decoder(make_dataset, device=device.type, num_workers=num_workers).decoder]
        except VidsslError as err:  # sent to the other ranks too, instead of leaving them waiting
            choice = [err]
    if dist.is_distributed():
        torch.distributed.broadcast_object_list(choice, src=0)
    if isinstance(choice[0], BaseException):
        raise VidsslError(str(choice[0]))
    return choice[0]


ENCODER_ENTRY_POINTS = ("forward", "forward_features", "forward_feature_map")


def apply_step_options(encoder: nn.Module, t) -> None:
    """``train.channels_last`` (weights and 5-D inputs in channels_last_3d) and ``train.compile``
    (``torch.compile``) on the encoder's entry points; methods call ``forward_features`` /
    ``forward_feature_map`` directly, so those are wrapped, not ``__call__``. Weights and
    state-dict keys are unchanged."""
    if t.channels_last:
        encoder.to(memory_format=torch.channels_last_3d)
    for name in ENCODER_ENTRY_POINTS:
        fn = getattr(encoder, name, None)
        if fn is None:
            continue
        if t.channels_last:
            fn = _channels_last(fn)
        if t.compile:
            fn = torch.compile(fn)
        if t.channels_last or t.compile:
            setattr(encoder, name, fn)


def _channels_last(fn):
    def wrapped(x, *args, **kwargs):
        if isinstance(x, torch.Tensor) and x.dim() == 5:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return fn(x, *args, **kwargs)

    return wrapped
