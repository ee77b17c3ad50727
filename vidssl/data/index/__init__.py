"""Video indices: which files a dataset holds, with labels, frame counts and groups.

``build_index("ucf101", "/data/UCF101", split=1, subset="train")`` dispatches to the builders
in :data:`DATASETS`; see ``docs/datasets.md`` for the layouts each one expects.
"""

from __future__ import annotations

import inspect
import os
from typing import Callable

from vidssl.data.index.core import Failure, IndexReport, VideoIndex, VideoRecord
from vidssl.data.index.datasets import VIDEO_EXTENSIONS, folder, hmdb51, synthetic, ucf101
from vidssl.data.index.diving48 import diving48
from vidssl.data.index.kinetics import KINETICS_SUBSETS, kinetics, kinetics_csv
from vidssl.data.index.ssv2 import ssv2
from vidssl.data.index.metadata import (
    MetadataCache,
    ProbeResult,
    default_cache_path,
    probe_files,
)
from vidssl.errors import ConfigError
from vidssl.registry import Registry


def _normalize(name: str) -> str:
    return name.strip().lower().replace("-", "_")


#: Dataset builders by name, with the capabilities each declares:
#: ``splits`` (official train/test splits: ``data.split`` / ``data.subset`` are passed),
#: ``max_split`` (highest split number, ``None``: any positive), ``eval`` (``vidssl eval`` can use
#: it; its official split 1 is what single-split datasets such as ssv2, kinetics, diving48 have),
#: ``subsets`` (the ``subset`` values the builder takes), ``factors`` (per-video factor metadata
#: for the diagnostics' probes). The builder's own further arguments (``annotations``, ``csv``, ``extensions``, ...) are
#: its keyword parameters (:func:`dataset_arguments`); configs pass them in ``data.kwargs``.
DATASETS: Registry[Callable[..., VideoIndex]] = Registry(
    "dataset", aliases={"csv": "kinetics_csv", "something_something_v2": "ssv2"},
    normalize=_normalize)
DATASETS.register("ucf101", ucf101, splits=True, max_split=3, eval=True, subsets=("train", "test"))
DATASETS.register("hmdb51", hmdb51, splits=True, max_split=3, eval=True, subsets=("train", "test"))
DATASETS.register("ssv2", ssv2, splits=True, max_split=1, eval=True,
                  subsets=("train", "test", "val", "validation"))
DATASETS.register("kinetics", kinetics, splits=True, max_split=1, eval=True,
                  subsets=tuple(KINETICS_SUBSETS))
DATASETS.register("diving48", diving48, splits=True, max_split=1, eval=True, subsets=("train", "test"))
DATASETS.register("synthetic", synthetic, splits=True, max_split=None, eval=True, factors=True,
                  subsets=("train", "test"))
DATASETS.register("kinetics_csv", kinetics_csv, splits=False, max_split=None, eval=False)
DATASETS.register("folder", folder, splits=False, max_split=None, eval=False)

#: Arguments a caller supplies for every dataset (how to probe files), not dataset settings.
PROBE_ARGUMENTS: tuple[str, ...] = ("backend", "cache", "workers", "pool", "progress")


def dataset_arguments(dataset: str) -> dict[str, object]:
    """The builder's keyword arguments besides ``root`` and their defaults
    (``inspect.Parameter.empty`` for a required one)."""
    params = inspect.signature(DATASETS[dataset]).parameters
    return {k: p.default for k, p in params.items() if k != "root"}


def check_dataset_arguments(dataset: str, kwargs: dict) -> str:
    """Validate ``kwargs`` for ``dataset`` without reading anything; returns the registered name.

    Raises:
        ConfigError: unknown dataset name, unknown or missing keyword argument.
    """
    key = DATASETS.key(dataset)
    accepted = dataset_arguments(key)
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown:
        raise ConfigError(f"unknown argument(s) {unknown} for dataset {key!r}; "
                          f"accepted: {list(accepted)}")
    absent = [k for k, d in accepted.items() if d is inspect.Parameter.empty and k not in kwargs]
    if absent:
        raise ConfigError(f"dataset {key!r} needs argument(s) {absent}")
    return key


def build_index(dataset: str, root: str | os.PathLike, **kwargs) -> VideoIndex:
    """Build the index of a registered dataset: ``DATASETS[dataset](root, **kwargs)``.

    Raises:
        ConfigError: unknown dataset name, unknown or missing keyword argument, bad value.
        DatasetError: bad root, missing/malformed annotations, no usable video.
    """
    key = check_dataset_arguments(dataset, kwargs)
    return DATASETS[key](root, **kwargs)


__all__ = [
    "DATASETS",
    "PROBE_ARGUMENTS",
    "VIDEO_EXTENSIONS",
    "Failure",
    "IndexReport",
    "MetadataCache",
    "ProbeResult",
    "VideoIndex",
    "VideoRecord",
    "build_index",
    "check_dataset_arguments",
    "dataset_arguments",
    "default_cache_path",
    "diving48",
    "folder",
    "hmdb51",
    "kinetics",
    "kinetics_csv",
    "probe_files",
    "ssv2",
    "synthetic",
    "ucf101",
]
