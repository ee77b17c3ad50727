"""Diving48 (V2 annotations): 48 dive classes, each a 4-tuple of attributes.

Official files (from the dataset's page):

* ``Diving48_vocab.json``: a list of 48 lists ``[takeoff, somersault, twist, flight position]``,
  e.g. ``["Back", "15som", "05Twis", "FREE"]``; list position = label;
* ``Diving48_V2_train.json`` / ``Diving48_V2_test.json``: a list of ``{"vid_name": "...",
  "label": 0..47, "start_frame": ..., "end_frame": ...}`` (V2 cleaned the labels of V1);
* ``Diving48_rgb.tar.gz`` extracts to ``rgb/<vid_name>.mp4`` (already trimmed clips).
"""

from __future__ import annotations

import os
from typing import Sequence

from vidssl.data.decoders.base import DEFAULT_BACKEND
from vidssl.data.index.core import VideoIndex
from vidssl.data.index.datasets import (
    VIDEO_EXTENSIONS,
    Locator,
    as_extensions,
    check_root,
    check_split_subset,
    find_annotation_dir,
    finish,
    probe_options,
    read_json,
    warn_vocabulary,
)
from vidssl.data.index.metadata import CacheArg
from vidssl.data.index.partial import MissingListArg
from vidssl.errors import DatasetError

DIVING48_ANNOTATION_DIRS = ("annotations", "labels", ".")
DIVING48_VIDEO_DIRS = ("rgb", "videos")
DIVING48_VOCAB = "Diving48_vocab.json"
DIVING48_LISTS = {"train": "Diving48_V2_train.json", "test": "Diving48_V2_test.json"}
DIVING48_ATTRIBUTES = ("takeoff", "somersault", "twist", "flight position")


def read_diving48_vocab(path: str) -> list[tuple[str, ...]]:
    """The attribute 4-tuples of ``Diving48_vocab.json`` in label order."""
    doc = read_json(path, "Diving48")
    if not isinstance(doc, list) or not doc:
        raise DatasetError(f"{path}: expected a list of [takeoff, somersault, twist, flight] lists")
    out = []
    for i, entry in enumerate(doc):
        if (not isinstance(entry, list) or len(entry) != len(DIVING48_ATTRIBUTES)
                or not all(isinstance(a, str) and a.strip() for a in entry)):
            raise DatasetError(f"{path}: class {i}: expected 4 attribute strings, got {str(entry)[:80]}")
        out.append(tuple(a.strip() for a in entry))
    if len(set(out)) != len(out):
        raise DatasetError(f"{path}: an attribute tuple is listed twice")
    return out


def diving48_class_name(attributes: Sequence[str]) -> str:
    """``("Back", "15som", "05Twis", "FREE")`` -> ``"Back 15som 05Twis FREE"``."""
    return " ".join(attributes)


def diving48(root: str | os.PathLike, split: int = 1, subset: str = "train",
             annotations: str | os.PathLike | None = None, missing_list: MissingListArg = None, *,
             extensions: Sequence[str] = VIDEO_EXTENSIONS, backend: str = DEFAULT_BACKEND,
             cache: CacheArg = None, workers: int | None = None, pool: str = "thread",
             progress: bool | None = None) -> VideoIndex:
    """Diving48 from the V2 JSON annotations.

    Args:
        root: dataset folder; videos in ``root/rgb/`` (the archive's folder), else
            ``root/videos/``, else ``root``, as ``<vid_name>.mp4``.
        split: 1 (the one official split).
        subset: ``"train"`` (Diving48_V2_train.json) or ``"test"`` (Diving48_V2_test.json).
        annotations: folder of Diving48_vocab.json and the V2 lists; default: the first of
            ``root/annotations/``, ``root/labels/``, ``root/`` holding Diving48_vocab.json.
        missing_list: where the list of missing videos is written (default: the index cache
            folder; ``none``: not written).
        extensions: other extensions accepted when ``<vid_name>.mp4`` is absent.
        backend, cache, workers, pool, progress: see :func:`probe_files`.

    Labels are the JSON ``label`` (= the vocab position); class names join each class's four
    attributes (``"Back 15som 05Twis FREE"``). Groups are -1.
    """
    check_split_subset(split, subset, max_split=1)
    root = check_root(root, "Diving48")
    ann = find_annotation_dir(root, annotations, DIVING48_ANNOTATION_DIRS,
                              lambda d: os.path.isfile(os.path.join(d, DIVING48_VOCAB)), "Diving48")
    class_names = [diving48_class_name(a) for a in read_diving48_vocab(os.path.join(ann, DIVING48_VOCAB))]
    video_root = next((os.path.join(root, d) for d in DIVING48_VIDEO_DIRS
                       if os.path.isdir(os.path.join(root, d))), root)
    list_path = os.path.join(ann, DIVING48_LISTS[subset])
    entries = read_json(list_path, "Diving48")
    if not isinstance(entries, list):
        raise DatasetError(f"{list_path}: expected a list of {{vid_name, label, start_frame, "
                           f"end_frame}}, got {type(entries).__name__}")
    locator = Locator(video_root, as_extensions(extensions, first=".mp4"))
    items: list[tuple[str, int, int]] = []
    missing: list[str] = []
    seen: dict[str, int] = {}
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or not {"vid_name", "label"} <= set(entry):
            raise DatasetError(f"{list_path}: entry {n} has no 'vid_name' and 'label': {str(entry)[:80]}")
        name, label = entry["vid_name"], entry["label"]
        if not isinstance(name, str) or not name.strip():
            raise DatasetError(f"{list_path}: entry {n}: vid_name {name!r} is not a file name")
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(class_names):
            raise DatasetError(f"{list_path}: entry {n} ({name}): label {label!r} is not a class id "
                               f"0..{len(class_names) - 1} of {DIVING48_VOCAB}")
        start, end = entry.get("start_frame", 0), entry.get("end_frame", 0)
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end)) or end < start:
            raise DatasetError(f"{list_path}: entry {n} ({name}): start_frame {start!r} / end_frame "
                               f"{end!r} are not frame numbers with start <= end")
        if name in seen:
            raise DatasetError(f"{list_path}: {name} is listed twice (entries {seen[name]} and {n})")
        seen[name] = n
        path = locator.find(name + ".mp4")
        if path is None:
            missing.append(os.path.join(video_root, name + ".mp4"))
        else:
            items.append((path, label, -1))
    index = finish(f"diving48/split{split}/{subset}", f"{list_path} (videos under {video_root})",
                   items, missing, class_names, (),
                   probe_options(backend, cache, workers, pool, progress),
                   root=video_root, missing_list=missing_list)
    warn_vocabulary("diving48", index.class_names)
    return index
