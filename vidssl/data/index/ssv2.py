"""Something-Something v2 from its official JSON annotations.

The annotation download holds four files, named ``labels.json``, ``train.json``,
``validation.json``, ``test.json`` (in ``labels/``) or, in the original 20BN release,
``something-something-v2-<that name>``:

* ``labels.json``: ``{"<class name>": "<id>", ...}``, 174 classes; a class name is a template
  without its placeholder brackets (``"Putting something on a surface"``);
* ``train.json`` / ``validation.json``: a list of ``{"id": "78687", "label": "<the template with
  the objects filled in>", "template": "Putting [something] on a surface", "placeholders": [...]}``;
* ``test.json``: ``[{"id": "..."}]`` without labels (not indexed here).

Videos are ``<id>.webm`` (the archive extracts to ``20bn-something-something-v2/``). There is one
official split: train (168,913 videos) and validation (24,777), used as split 1's train / test.
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

SSV2_ANNOTATION_DIRS = ("labels", "annotations", ".")
SSV2_VIDEO_DIRS = ("20bn-something-something-v2", "videos")
SSV2_PREFIX = "something-something-v2-"
#: subset -> annotation file (``val``/``validation`` are accepted for ``test``)
SSV2_FILES = {"labels": "labels.json", "train": "train.json", "test": "validation.json"}
VALIDATION_ALIASES = ("val", "validate", "validation")


def ssv2_class_name(template: str) -> str:
    """``"Putting [something] on a surface"`` -> ``"Putting something on a surface"``: the
    official loaders' normalisation (brackets removed), which gives the ``labels.json`` keys."""
    return template.replace("[", "").replace("]", "")


def _annotation_file(ann: str, key: str) -> str:
    """``ann/<name>``, else ``ann/something-something-v2-<name>``; the plain name when neither
    exists (so the error names the file the documentation asks for)."""
    plain = os.path.join(ann, SSV2_FILES[key])
    prefixed = os.path.join(ann, SSV2_PREFIX + SSV2_FILES[key])
    return prefixed if not os.path.isfile(plain) and os.path.isfile(prefixed) else plain


def read_ssv2_labels(path: str) -> list[str]:
    """Class names in label order from ``labels.json`` (``{name: "<id>"}``, ids 0..N-1)."""
    doc = read_json(path, "Something-Something v2")
    if not isinstance(doc, dict) or not doc:
        raise DatasetError(f"{path}: expected an object {{class name: id}}, got "
                           f"{type(doc).__name__}{' (empty)' if not doc else ''}")
    by_id: dict[int, str] = {}
    for name, value in doc.items():
        try:
            cid = int(value)
        except (TypeError, ValueError):
            raise DatasetError(f"{path}: class {name!r} has id {value!r}, not an integer") from None
        if cid in by_id:
            raise DatasetError(f"{path}: id {cid} given to {by_id[cid]!r} and {name!r}")
        by_id[cid] = name
    if sorted(by_id) != list(range(len(by_id))):
        raise DatasetError(f"{path}: class ids must run 0..{len(by_id) - 1} without gaps")
    return [by_id[i] for i in range(len(by_id))]


def ssv2(root: str | os.PathLike, split: int = 1, subset: str = "train",
         annotations: str | os.PathLike | None = None, videos: str | os.PathLike | None = None,
         missing_list: MissingListArg = None, *, extensions: Sequence[str] = VIDEO_EXTENSIONS,
         backend: str = DEFAULT_BACKEND, cache: CacheArg = None, workers: int | None = None,
         pool: str = "thread", progress: bool | None = None) -> VideoIndex:
    """Something-Something v2 (174 classes) from the official JSON files.

    Args:
        root: dataset folder.
        split: 1 (the one official split).
        subset: ``"train"`` (train.json) or ``"test"`` (validation.json; ``"val"`` and
            ``"validation"`` are accepted too).
        annotations: folder of labels.json, train.json, validation.json (or their
            ``something-something-v2-`` names); default: the first of ``root/labels/``,
            ``root/annotations/``, ``root/`` holding a labels file.
        videos: folder of the ``<id>.webm`` files; default: ``root/20bn-something-something-v2/``,
            else ``root/videos/``, else ``root``.
        missing_list: where the list of missing videos is written (default: the index cache
            folder; ``none``: not written).
        extensions: other extensions accepted when ``<id>.webm`` is absent (re-encoded copies).
        backend, cache, workers, pool, progress: see :func:`probe_files`.

    Labels are the ``labels.json`` ids; an entry's class is its template with the brackets
    removed. Groups are -1.
    """
    if isinstance(subset, str) and subset.lower() in VALIDATION_ALIASES:
        subset = "test"
    check_split_subset(split, subset, max_split=1)
    root = check_root(root, "Something-Something v2")
    ann = find_annotation_dir(
        root, annotations, SSV2_ANNOTATION_DIRS,
        lambda d: os.path.isfile(_annotation_file(d, "labels")), "Something-Something v2")
    class_names = read_ssv2_labels(_annotation_file(ann, "labels"))
    label_of = {c: i for i, c in enumerate(class_names)}
    if videos is not None:
        video_root = check_root(videos, "Something-Something v2 videos")
    else:
        video_root = next((os.path.join(root, d) for d in SSV2_VIDEO_DIRS
                           if os.path.isdir(os.path.join(root, d))), root)
    list_path = _annotation_file(ann, subset)
    entries = read_json(list_path, "Something-Something v2")
    if not isinstance(entries, list):
        raise DatasetError(f"{list_path}: expected a list of {{id, label, template, placeholders}}, "
                           f"got {type(entries).__name__}")
    locator = Locator(video_root, as_extensions(extensions, first=".webm"))
    items: list[tuple[str, int, int]] = []
    missing: list[str] = []
    seen: dict[str, int] = {}
    for n, entry in enumerate(entries):
        if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
            raise DatasetError(f"{list_path}: entry {n} has no 'id' and 'template': {str(entry)[:80]}")
        vid, template = str(entry["id"]).strip(), entry["template"]
        if not vid or not isinstance(template, str):
            raise DatasetError(f"{list_path}: entry {n}: empty id or template not a string")
        label = label_of.get(ssv2_class_name(template))
        if label is None:
            raise DatasetError(f"{list_path}: entry {n} (id {vid}): template {template!r} is not "
                               f"a class of {os.path.basename(_annotation_file(ann, 'labels'))}")
        if vid in seen:
            raise DatasetError(f"{list_path}: id {vid} is listed twice (entries {seen[vid]} and {n})")
        seen[vid] = n
        path = locator.find(vid + ".webm")
        if path is None:
            missing.append(os.path.join(video_root, vid + ".webm"))
        else:
            items.append((path, label, -1))
    index = finish(f"ssv2/split{split}/{subset}", f"{list_path} (videos under {video_root})",
                   items, missing, class_names, (),
                   probe_options(backend, cache, workers, pool, progress),
                   root=video_root, missing_list=missing_list)
    warn_vocabulary("ssv2", index.class_names)
    return index
