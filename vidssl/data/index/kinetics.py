"""Kinetics-style CSV index builder (official annotation CSVs, or plain ``path,label`` lists)."""

from __future__ import annotations

import csv as csvlib
import os
import re
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
    log,
    probe_options,
    vocabulary,
)
from vidssl.data.index.metadata import CacheArg
from vidssl.data.index.partial import MissingListArg
from vidssl.errors import ConfigError, DatasetError

OFFICIAL_COLUMNS = ("youtube_id", "time_start", "time_end")
_SPLIT_ALIASES = {"val": "val", "valid": "val", "validate": "val", "validation": "val",
                  "train": "train", "training": "train", "test": "test", "testing": "test"}
_SPLIT_DIRS = {"val": ("val", "validate", "validation", "valid"), "train": ("train",),
               "test": ("test",)}


def _norm_split(value: str) -> str:
    v = value.strip().lower()
    return _SPLIT_ALIASES.get(v, v)


def _resolve_classes(classes: Sequence[str] | str | None) -> list[str] | None:
    if classes is None:
        return None
    if isinstance(classes, (str, os.PathLike)):
        if os.path.isfile(classes):
            with open(classes, encoding="utf-8-sig") as f:
                return [ln.strip() for ln in f if ln.strip()]
        return vocabulary(os.fspath(classes))
    names = [str(c) for c in classes]
    if len(set(names)) != len(names):
        raise ConfigError("classes contains duplicate names")
    return names


def kinetics_csv(root: str | os.PathLike, csv: str | os.PathLike, subset: str | None = None,
                 classes: Sequence[str] | str | None = None, missing_list: MissingListArg = None, *,
                 extensions: Sequence[str] = VIDEO_EXTENSIONS, backend: str = DEFAULT_BACKEND,
                 cache: CacheArg = None, workers: int | None = None, pool: str = "thread",
                 progress: bool | None = None) -> VideoIndex:
    """Index videos listed by a CSV; the format is detected from the header.

    **Official Kinetics CSV** (header with ``youtube_id,time_start,time_end``, usually
    ``label,youtube_id,time_start,time_end,split[,is_cc]``): each row is the file
    ``<youtube_id>_<time_start:06d>_<time_end:06d>.<ext>``, looked for in, in order,
    ``root/<split>/<label>/``, ``root/<label>/``, ``root/<split>/``, ``root/`` (``<label>`` as
    written or with spaces replaced by ``_``; ``<split>`` as written, ``val`` also as
    ``validate``/``validation``; ``<ext>`` ``.mp4`` then the other ``extensions``). Class names
    are the CSV's labels sorted alphabetically (the Kinetics convention). A CSV without a
    ``label`` column gives label -1.

    **Plain CSV** (header with ``path`` and optionally ``label``, ``split``): ``path`` is
    relative to ``root`` or absolute; ``label`` is a class name or an integer id. If every label
    is an integer the ids are used as given (``class_names`` empty), else class names are
    numbered in order of first appearance.

    Args:
        root: dataset root.
        csv: the CSV file (a relative path not found from the working directory is tried
            under ``root``).
        subset: keep only rows whose ``split`` column matches (``"train"``, ``"val"`` (aliases
            ``validate``/``validation``), ``"test"``); default all rows.
        classes: fix the class list (a list of names, a shipped vocabulary name such as
            ``"kinetics400"``, or a text file with one name per line) so that separately built
            train/val indices share label ids even when one CSV lacks a class.
        missing_list: where the list of missing videos is written (default: the index cache
            folder; ``none``: not written); see :mod:`.partial`.
        extensions: file extensions tried for official-format rows.
        backend, cache, workers, pool, progress: see :func:`probe_files`.
    """
    root = check_root(root, "Kinetics")
    csv_path = os.path.abspath(os.path.expanduser(os.fspath(csv)))
    if not os.path.isfile(csv_path) and not os.path.isabs(os.fspath(csv)):
        csv_path = os.path.join(root, os.fspath(csv))
    if not os.path.isfile(csv_path):
        raise DatasetError(f"Kinetics CSV {csv_path} does not exist")
    want = _norm_split(subset) if subset is not None else None
    fixed = _resolve_classes(classes)
    rows, header, fmt = _read_csv(csv_path)
    if want is not None and "split" not in header:
        raise DatasetError(f"{csv_path}: subset={subset!r} given but the CSV has no split column")
    exts = as_extensions(extensions, first=".mp4")
    col = {c: header.index(c) for c in header}
    reader = _official if fmt == "official" else _plain
    items, missing, class_names = reader(root, csv_path, rows, col, want, fixed, exts)
    name = f"kinetics/{os.path.splitext(os.path.basename(csv_path))[0]}"
    return finish(name + (f"/{want}" if want else ""), f"{csv_path} (videos under {root})",
                  items, missing, class_names, (),
                  probe_options(backend, cache, workers, pool, progress),
                  root=root, missing_list=missing_list)


def _read_csv(path: str) -> tuple[list[tuple[int, list[str]]], list[str], str]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csvlib.reader(f)
            rows = []
            header = None
            for row in reader:
                if not row or not any(x.strip() for x in row):
                    continue
                if header is None:
                    header = [x.strip().lower() for x in row]
                    continue
                rows.append((reader.line_num, [x.strip() for x in row]))
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except csvlib.Error as err:
        raise DatasetError(f"{path}: malformed CSV ({err})") from None
    if header is None:
        raise DatasetError(f"{path}: empty CSV (no header)")
    if all(c in header for c in OFFICIAL_COLUMNS):
        fmt = "official"
    elif "path" in header:
        fmt = "plain"
    else:
        raise DatasetError(f"{path}:1: unrecognised header {','.join(header)!r}; expected "
                           "'label,youtube_id,time_start,time_end,split' or 'path,label'")
    for n, row in rows:
        if len(row) != len(header):
            raise DatasetError(f"{path}:{n}: {len(row)} fields, the header has {len(header)}")
    return rows, header, fmt


def _label_ids(labels: list[tuple[str, int]], path: str,
               fixed: list[str] | None) -> tuple[dict[str, int], list[str]]:
    """Map label strings to ids given a fixed class list; raise on an unknown one."""
    ids = {c: i for i, c in enumerate(fixed)}
    for label, n in labels:
        if label and label not in ids:
            if label.isdigit() and int(label) < len(fixed):
                continue
            raise DatasetError(f"{path}:{n}: label {label!r} is not one of the "
                               f"{len(fixed)} given classes")
    return ids, fixed


def _official(root: str, path: str, rows, col, want, fixed, exts, default_split: str = ""):
    labels = [(row[col["label"]], n) for n, row in rows] if "label" in col else []
    if fixed is not None:
        ids, class_names = _label_ids(labels, path, fixed)
    else:
        class_names = sorted({lb for lb, _ in labels if lb})
        ids = {c: i for i, c in enumerate(class_names)}
    locator = Locator(root, exts)
    items, missing, seen = [], [], set()
    for n, row in rows:
        split = row[col["split"]] if "split" in col else default_split
        if want is not None and _norm_split(split) != want:
            continue
        label = row[col["label"]] if "label" in col else ""
        try:
            start, end = int(float(row[col["time_start"]])), int(float(row[col["time_end"]]))
        except ValueError:
            raise DatasetError(f"{path}:{n}: time_start/time_end must be numbers, got "
                               f"{row[col['time_start']]!r}, {row[col['time_end']]!r}") from None
        youtube_id = row[col["youtube_id"]]
        if not youtube_id:
            raise DatasetError(f"{path}:{n}: empty youtube_id")
        stem = f"{youtube_id}_{start:06d}_{end:06d}"
        split_dirs = _SPLIT_DIRS.get(_norm_split(split), (split,)) if split else ()
        if split and split not in split_dirs:
            split_dirs = (split,) + split_dirs
        label_dirs = tuple(dict.fromkeys(x for x in (label, label.replace(" ", "_")) if x))
        candidates = ([os.path.join(s, lb) for s in split_dirs for lb in label_dirs]
                      + list(label_dirs) + list(split_dirs) + [""])
        found = None
        for d in candidates:  # Locator tries the other extensions when .mp4 is absent
            found = locator.find(os.path.join(d, stem + ".mp4"))
            if found is not None:
                break
        lid = ids.get(label, int(label) if label.isdigit() else -1) if label else -1
        if found is None:
            missing.append(os.path.join(root, candidates[0], stem + ".mp4"))
        elif found in seen:
            log.warning("%s:%d: %s listed again; kept once", path, n, found)
        else:
            seen.add(found)
            items.append((found, lid, -1))
    return items, missing, class_names


def _plain(root: str, path: str, rows, col, want, fixed, exts):
    has_label = "label" in col
    labels = [(row[col["label"]], n) for n, row in rows] if has_label else []
    if fixed is not None:
        ids, class_names = _label_ids(labels, path, fixed)
    elif labels and all(lb.lstrip("-").isdigit() or not lb for lb, _ in labels):
        for lb, n in labels:
            if lb and int(lb) < 0:
                raise DatasetError(f"{path}:{n}: integer label {lb} must be >= 0")
        ids, class_names = {}, []
    else:
        class_names = list(dict.fromkeys(lb for lb, _ in labels if lb))
        ids = {c: i for i, c in enumerate(class_names)}
    rel_locator, abs_locator = Locator(root), Locator(os.sep)
    items, missing, seen = [], [], set()
    for n, row in rows:
        if want is not None and _norm_split(row[col["split"]]) != want:
            continue
        file = row[col["path"]]
        if not file:
            raise DatasetError(f"{path}:{n}: empty path")
        label = row[col["label"]] if has_label else ""
        lid = ids.get(label, int(label) if label.isdigit() else -1) if label else -1
        full = os.path.join(root, file) if not os.path.isabs(file) else file
        found = (abs_locator if os.path.isabs(file) else rel_locator).find(file)
        if found is None:
            missing.append(os.path.normpath(full))
        elif found in seen:
            log.warning("%s:%d: %s listed again; kept once", path, n, found)
        else:
            seen.add(found)
            items.append((found, lid, -1))
    return items, missing, class_names


# ------------------------------------------------------------- official Kinetics releases --

#: Kinetics releases: 400 (2017), 600 (2018), 700 (2019), 700_2020 (same 700 classes, more clips).
KINETICS_VERSIONS = ("400", "600", "700", "700_2020")
KINETICS_SUBSETS = {"train": "train", "test": "val", "val": "val", "validate": "val",
                    "validation": "val", "official_test": "test"}
_ROLE = {"train": "train", "val": "val", "valid": "val", "validate": "val", "validation": "val",
         "test": "test"}


def kinetics_version(value: object) -> str:
    """``400``, ``"k600"``, ``"kinetics-700"``, ``"700-2020"`` ... -> one of
    :data:`KINETICS_VERSIONS`; :class:`ConfigError` otherwise."""
    text = str(value).strip().lower().replace("-", "_")
    for prefix in ("kinetics", "k"):
        if text.startswith(prefix):
            text = text[len(prefix):].lstrip("_")
            break
    if text not in KINETICS_VERSIONS:
        raise ConfigError(f"Kinetics version must be one of {', '.join(KINETICS_VERSIONS)}, "
                          f"not {value!r}")
    return text


def named_version(name: str) -> str | None:
    """The release a file or folder name gives: ``k400`` / ``kinetics-600_val`` / ``kinetics700_2020``."""
    low = name.lower()
    found = re.findall(r"(?<![0-9])(400|600|700)(?![0-9])", low)
    if not found:
        return None
    if found[-1] == "700" and re.search(r"(?<![0-9])2020(?![0-9])", low):
        return "700_2020"
    return found[-1]


def _csv_role_and_version(filename: str) -> tuple[str | None, str | None]:
    """``validate.csv`` -> ``("val", None)``, ``kinetics_700_2020_train.csv`` -> ``("train",
    "700_2020")``: the subset a CSV holds, and the release its name gives."""
    stem = os.path.splitext(filename)[0]
    tokens = [t for t in re.split(r"[^a-z0-9]+", stem.lower()) if t]
    return (_ROLE.get(tokens[-1]) if tokens else None), named_version(stem)


def find_kinetics_csvs(ann: str, version: str | None) -> dict[str, str]:
    """``{"train"|"val"|"test": path}`` of the official CSVs in ``ann`` (names such as
    ``train.csv``, ``validate.csv``, ``kinetics-400_val.csv``); with ``version``, files naming
    another release are ignored. Several candidates for one subset is an error."""
    found: dict[str, list[str]] = {}
    try:
        names = sorted(os.listdir(ann))
    except OSError:
        return {}
    for name in names:
        if not name.lower().endswith(".csv") or not os.path.isfile(os.path.join(ann, name)):
            continue
        role, named = _csv_role_and_version(name)
        if role is None or (version is not None and named is not None and named != version):
            continue
        found.setdefault(role, []).append(os.path.join(ann, name))
    for role, paths in found.items():
        if len(paths) > 1:
            raise DatasetError(f"several Kinetics {role} CSVs in {ann} "
                               f"({', '.join(os.path.basename(p) for p in paths)}): pass version= "
                               f"({'|'.join(KINETICS_VERSIONS)}) or annotations=DIR")
    return {role: paths[0] for role, paths in found.items()}


def _read_official(path: str) -> tuple[list[tuple[int, list[str]]], list[str]]:
    rows, header, fmt = _read_csv(path)
    if fmt != "official":
        raise DatasetError(f"{path}:1: not an official Kinetics CSV (header needs "
                           f"{','.join(OFFICIAL_COLUMNS)})")
    return rows, header


def _labels(rows: list[tuple[int, list[str]]], header: list[str]) -> set[str]:
    if "label" not in header:
        return set()
    i = header.index("label")
    return {row[i] for _, row in rows if row[i]}


def kinetics(root: str | os.PathLike, split: int = 1, subset: str = "train",
             version: str | int | None = None, annotations: str | os.PathLike | None = None,
             classes: Sequence[str] | str | None = None, missing_list: MissingListArg = None, *,
             extensions: Sequence[str] = VIDEO_EXTENSIONS, backend: str = DEFAULT_BACKEND,
             cache: CacheArg = None, workers: int | None = None, pool: str = "thread",
             progress: bool | None = None) -> VideoIndex:
    """Kinetics-400/600/700 from the official CSVs, with its train/validation split as split 1.

    Args:
        root: dataset folder; each row's ``<youtube_id>_<start:06d>_<end:06d>.mp4`` is looked for
            in ``root/<split>/<label>/``, ``root/<label>/``, ``root/<split>/``, ``root/`` (see
            :func:`kinetics_csv`).
        split: 1 (the official split).
        subset: ``"train"`` (train.csv), ``"test"`` (validate.csv, the set papers report on;
            ``"val"``/``"validate"``/``"validation"`` are the same), ``"official_test"``
            (test.csv; rows without a label get label -1).
        version: ``400``, ``600``, ``700`` or ``700_2020``; default: inferred from the CSV or
            folder names, else from the number of classes. Picks the CSVs when several
            releases share a folder and names the index (``kinetics400/split1/train``).
        annotations: folder of the CSVs; default: the first of ``root/annotations/``, ``root/``,
            ``root/kinetics<version>/`` holding a train or validation CSV.
        classes: the class list (names, a shipped vocabulary or a file, see
            :func:`kinetics_csv`); default: the sorted labels of the train and validation CSVs
            together, so both subsets share label ids.
        missing_list: where the list of missing videos is written (default: the index cache
            folder; ``none``: not written). Partial downloads are the norm: the count goes to
            one warning line, the report holds the list file and a hash of the videos found.
        extensions: other extensions accepted when the ``.mp4`` is absent.
        backend, cache, workers, pool, progress: see :func:`probe_files`.
    """
    role = KINETICS_SUBSETS.get(str(subset).strip().lower())
    if role is None:
        raise ConfigError(f"subset must be one of {', '.join(KINETICS_SUBSETS)}, not {subset!r}")
    check_split_subset(split, "train", max_split=1)
    wanted = kinetics_version(version) if version is not None else None
    root = check_root(root, "Kinetics")
    dirs = ["annotations", "."] + [f"kinetics{v}" for v in ((wanted,) if wanted else KINETICS_VERSIONS)]
    ann = find_annotation_dir(root, annotations, dirs,
                              lambda d: bool({"train", "val"} & set(find_kinetics_csvs(d, wanted))),
                              "Kinetics (train/validate CSV)")
    csvs = find_kinetics_csvs(ann, wanted)
    if role not in csvs:
        expected = {"train": "train.csv", "val": "validate.csv", "test": "test.csv"}[role]
        raise DatasetError(f"Kinetics {role} CSV {os.path.join(ann, expected)} does not exist "
                           f"(found: {', '.join(sorted(os.path.basename(p) for p in csvs.values())) or 'none'})")
    csv_path = csvs[role]
    named = {_csv_role_and_version(os.path.basename(p))[1] for p in csvs.values()}
    named |= {named_version(os.path.basename(ann)), named_version(os.path.basename(root))}
    named.discard(None)
    fixed = _resolve_classes(classes)
    if fixed is None and wanted in ("400", "600"):
        fixed = vocabulary(f"kinetics{wanted}")
    parsed = {role: _read_official(csv_path)}   # each CSV is read once
    class_names = fixed
    if class_names is None:
        for r in ("train", "val"):
            if r in csvs and r not in parsed:
                parsed[r] = _read_official(csvs[r])
        class_names = sorted(set().union(*(_labels(*parsed[r]) for r in ("train", "val") if r in parsed)))
    if wanted is None:
        if len(named) == 1:
            wanted = named.pop()
        elif len(class_names) in (400, 600, 700):
            wanted = str(len(class_names))
    if fixed is None and wanted in ("400", "600"):
        shipped = vocabulary(f"kinetics{wanted}")
        if set(class_names) != set(shipped):
            log.warning("kinetics%s: the CSVs' %d classes differ from the official %d (e.g. %s)",
                        wanted, len(class_names), len(shipped),
                        ", ".join(sorted(set(class_names) ^ set(shipped))[:3]))
    rows, header = parsed[role]
    col = {c: header.index(c) for c in header}
    items, missing, _ = _official(root, csv_path, rows, col, None, list(class_names),
                                  as_extensions(extensions, first=".mp4"), default_split=role)
    subset_name = {"train": "train", "val": "test", "test": "official_test"}[role]
    name = f"kinetics{wanted or ''}/split{split}/{subset_name}"
    return finish(name, f"{csv_path} (videos under {root})", items, missing, list(class_names), (),
                  probe_options(backend, cache, workers, pool, progress),
                  root=root, missing_list=missing_list)
