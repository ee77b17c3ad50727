"""``VideoIndex``: the list of videos a dataset reads, stored as compact columns.

Records are ``(path, label, num_frames, fps, group)``, plus each file's ``seek_token`` (see
:class:`~vidssl.data.decoders.VideoMeta`). They live in numpy arrays (paths as one
UTF-8 byte buffer plus offsets), not in per-record Python objects, so DataLoader workers that
fork the index share its pages instead of copying them on access (reference counts on millions
of small objects would dirty every page).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from vidssl.errors import DatasetError


@dataclass(frozen=True)
class VideoRecord:
    """One video as the samplers and the dataset see it.

    Attributes:
        path: absolute path of the file.
        label: 0-based class id (-1 when unlabelled).
        num_frames: decodable frame count.
        fps: average frame rate.
        group: 0-based source-group id (UCF101's ``gGG`` - 1), -1 when the dataset has none.
    """

    path: str
    label: int
    num_frames: int
    fps: float
    group: int


@dataclass(frozen=True)
class Failure:
    """A file an index could not use, and why (one line)."""

    path: str
    reason: str


@dataclass
class IndexReport:
    """What happened while building an index: counts to print, never a crash.

    Attributes:
        missing: files named by an annotation/split list that do not exist.
        failed: files that exist but could not be probed (corrupt, truncated, not a video).
        cached: records whose metadata came from the cache.
        probed: records whose metadata was read from the file this time.
        listed: entries the annotation files list for this index (0: not counted).
        missing_list: the file the full list of missing videos was written to, if any.
        found_hash: :func:`~vidssl.provenance.records_hash` of the videos the index holds
            (paths relative to the dataset root, labels), so two copies of a partially
            downloaded dataset can be compared; empty when the builder does not compute it.
    """

    missing: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    cached: int = 0
    probed: int = 0
    listed: int = 0
    missing_list: str | None = None
    found_hash: str = ""

    def summary_lines(self, max_items: int = 5) -> list[str]:
        lines = []
        if self.missing:
            shown = ", ".join(self.missing[:max_items])
            more = f" (+{len(self.missing) - max_items} more)" if len(self.missing) > max_items else ""
            of = f" of {self.listed}" if self.listed else ""
            notes = ([f"full list: {self.missing_list}"] if self.missing_list else []) + (
                [f"hash of the videos found: {self.found_hash}"] if self.found_hash else [])
            where = f" ({'; '.join(notes)})" if notes else ""
            lines.append(f"{len(self.missing)}{of} listed files are missing{where}: {shown}{more}")
        if self.failed:
            shown = "; ".join(f"{f.path}: {f.reason}" for f in self.failed[:max_items])
            more = f" (+{len(self.failed) - max_items} more)" if len(self.failed) > max_items else ""
            lines.append(f"{len(self.failed)} files could not be read: {shown}{more}")
        return lines


class VideoIndex:
    """Columnar list of videos.

    Args:
        paths: file paths (stored absolute).
        labels, num_frames, fps, groups: one value per path.
        class_names: label id -> class name.
        group_names: group id -> name (e.g. ``"g08"``); optional.
        name: dataset name for summaries (``"ucf101/split1/train"``).
        report: what building the index skipped.
        seek_tokens: per path, the ``VideoMeta.seek_token`` its probe gave (0: none); the
            loader hands it to the decoder so files read by counting can be sought in.
    """

    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int] | np.ndarray,
        num_frames: Sequence[int] | np.ndarray,
        fps: Sequence[float] | np.ndarray,
        groups: Sequence[int] | np.ndarray | None = None,
        class_names: Sequence[str] = (),
        group_names: Sequence[str] = (),
        name: str = "videos",
        report: IndexReport | None = None,
        seek_tokens: Sequence[int] | np.ndarray | None = None,
    ):
        n = len(paths)
        encoded = [os.path.abspath(p).encode("utf-8") for p in paths]
        self._offsets = np.zeros(n + 1, dtype=np.int64)
        if n:
            np.cumsum([len(b) for b in encoded], out=self._offsets[1:])
        self._path_bytes = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.num_frames = np.asarray(num_frames, dtype=np.int64).reshape(-1)
        self.fps = np.asarray(fps, dtype=np.float32).reshape(-1)
        self.groups = (np.full(n, -1, np.int64) if groups is None
                       else np.asarray(groups, dtype=np.int64).reshape(-1))
        self.seek_tokens = (np.zeros(n, np.int64) if seek_tokens is None
                            else np.asarray(seek_tokens, dtype=np.int64).reshape(-1))
        for col_name in ("labels", "num_frames", "fps", "groups", "seek_tokens"):
            if len(getattr(self, col_name)) != n:
                raise DatasetError(f"index column {col_name} has {len(getattr(self, col_name))} "
                                   f"values for {n} paths")
        self.class_names = list(class_names)
        self.group_names = list(group_names)
        self.name = name
        self.report = report or IndexReport()

    def __len__(self) -> int:
        return len(self.labels)

    def path(self, i: int) -> str:
        return bytes(self._path_bytes[self._offsets[i]:self._offsets[i + 1]]).decode("utf-8")

    def __getitem__(self, i: int) -> VideoRecord:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} videos")
        return VideoRecord(self.path(i), int(self.labels[i]), int(self.num_frames[i]),
                           float(self.fps[i]), int(self.groups[i]))

    def __iter__(self) -> Iterator[VideoRecord]:
        return (self[i] for i in range(len(self)))

    @property
    def paths(self) -> list[str]:
        return [self.path(i) for i in range(len(self))]

    @property
    def num_classes(self) -> int:
        if self.class_names:
            return len(self.class_names)
        return int(self.labels.max()) + 1 if len(self) else 0

    def subset(self, keep: np.ndarray | Sequence[int], name: str | None = None) -> "VideoIndex":
        """A new index holding the records at positions ``keep`` (or where ``keep`` is True)."""
        keep = np.asarray(keep)
        pos = np.flatnonzero(keep) if keep.dtype == bool else keep.astype(np.int64)
        return VideoIndex([self.path(int(i)) for i in pos], self.labels[pos], self.num_frames[pos],
                          self.fps[pos], self.groups[pos], self.class_names, self.group_names,
                          name or self.name, self.report, self.seek_tokens[pos])

    def summary(self) -> dict:
        """Counts for the ``vidssl index`` table."""
        nf = self.num_frames
        return {
            "name": self.name,
            "videos": len(self),
            "classes": self.num_classes,
            "groups": int(len(np.unique(self.groups[self.groups >= 0]))),
            "frames_total": int(nf.sum()) if len(self) else 0,
            "frames_min": int(nf.min()) if len(self) else 0,
            "frames_median": float(np.median(nf)) if len(self) else 0.0,
            "frames_max": int(nf.max()) if len(self) else 0,
            "fps_median": float(np.median(self.fps)) if len(self) else 0.0,
            "missing": len(self.report.missing),
            "failed": len(self.report.failed),
            "found_hash": self.report.found_hash,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the index to ``.npz`` (no pickled objects; loads with ``allow_pickle=False``)."""
        np.savez(
            path, path_bytes=self._path_bytes, offsets=self._offsets, labels=self.labels,
            num_frames=self.num_frames, fps=self.fps, groups=self.groups,
            seek_tokens=self.seek_tokens,
            class_names=np.array(self.class_names, dtype=str),
            group_names=np.array(self.group_names, dtype=str), name=np.array(self.name),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "VideoIndex":
        with np.load(path, allow_pickle=False) as z:
            index = cls.__new__(cls)
            index._path_bytes = z["path_bytes"]
            index._offsets = z["offsets"]
            index.labels = z["labels"]
            index.num_frames = z["num_frames"]
            index.fps = z["fps"]
            index.groups = z["groups"]
            index.seek_tokens = (z["seek_tokens"] if "seek_tokens" in z.files
                                 else np.zeros(len(index.labels), np.int64))
            index.class_names = [str(s) for s in z["class_names"]]
            index.group_names = [str(s) for s in z["group_names"]]
            index.name = str(z["name"])
            index.report = IndexReport()
        return index

    def __repr__(self) -> str:
        return f"VideoIndex({self.name!r}, videos={len(self)}, classes={self.num_classes})"
