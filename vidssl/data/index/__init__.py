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
from vidssl.data.index.kinetics import kinetics_csv
from vidssl.data.index.metadata import (
    MetadataCache,
    ProbeResult,
    default_cache_path,
    probe_files,
)
from vidssl.errors import ConfigError

DATASETS: dict[str, Callable[..., VideoIndex]] = {
    "ucf101": ucf101,
    "hmdb51": hmdb51,
    "kinetics_csv": kinetics_csv,
    "folder": folder,
    "synthetic": synthetic,
}
_ALIASES = {"kinetics": "kinetics_csv", "csv": "kinetics_csv"}


def build_index(dataset: str, root: str | os.PathLike, **kwargs) -> VideoIndex:
    """Build the index of a registered dataset: ``DATASETS[dataset](root, **kwargs)``.

    Raises:
        ConfigError: unknown dataset name, unknown or missing keyword argument, bad value.
        DatasetError: bad root, missing/malformed annotations, no usable video.
    """
    key = str(dataset).strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}")
    builder = DATASETS[key]
    params = inspect.signature(builder).parameters
    unknown = sorted(k for k in kwargs if k not in params or k == "root")
    if unknown:
        accepted = [p for p in params if p != "root"]
        raise ConfigError(f"unknown argument(s) {unknown} for dataset {key!r}; "
                          f"accepted: {accepted}")
    absent = [p.name for p in params.values() if p.default is inspect.Parameter.empty
              and p.name != "root" and p.name not in kwargs]
    if absent:
        raise ConfigError(f"dataset {key!r} needs argument(s) {absent}")
    return builder(root, **kwargs)


__all__ = [
    "DATASETS",
    "VIDEO_EXTENSIONS",
    "Failure",
    "IndexReport",
    "MetadataCache",
    "ProbeResult",
    "VideoIndex",
    "VideoRecord",
    "build_index",
    "default_cache_path",
    "folder",
    "hmdb51",
    "kinetics_csv",
    "probe_files",
    "synthetic",
    "ucf101",
]
