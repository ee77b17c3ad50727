"""Index builders for UCF101, HMDB51, a folder-per-class tree and the embedded synthetic dataset.

Every builder reads the official annotation files where a dataset has them, locates the videos,
probes their metadata through :func:`vidssl.data.index.metadata.probe_files` (cached), and
returns a :class:`VideoIndex` whose ``report`` lists what was skipped:

* ``report.missing``: files an annotation/split list names that are not on disk;
* ``report.failed``: files that exist but could not be probed (corrupt, truncated, 0 bytes, not
  a video), each with a one-line reason.

Skipped files are reported (and logged as a warning), not fatal; only an index with nothing left
raises :class:`DatasetError`. A missing root or annotation file, or a malformed line
(``DatasetError`` naming ``file:line``), is an error straight away. Bad arguments (``split=4``,
``subset="val"``) raise :class:`ConfigError`. Kinetics CSVs live in :mod:`.kinetics`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from importlib import resources
from typing import Callable, Sequence

from vidssl.data.decoders.base import DEFAULT_BACKEND
from vidssl.data.index.core import IndexReport, VideoIndex
from vidssl.data.index.metadata import CacheArg, probe_files
from vidssl.data.index.partial import MissingListArg, found_hash, missing_list_path, write_missing_list
from vidssl.errors import ConfigError, DatasetError

log = logging.getLogger("vidssl.data.index")

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov")
UCF101_ANNOTATION_DIRS = ("ucfTrainTestlist", "splits", ".")
HMDB51_ANNOTATION_DIRS = ("testTrainMulti_7030_splits", "splits", ".")
# ``v_<Class>_gGG_cCC.<ext>``; the class part may differ in case from the folder
# (UCF101's HandstandPushups folder holds v_HandStandPushups_*.avi).
UCF_FILE_RE = re.compile(r"^v_(?P<cls>.+)_g(?P<group>\d+)_c(?P<clip>\d+)\.(?P<ext>[A-Za-z0-9]+)$")
HMDB_SPLIT_RE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>\d+)\.txt$")


# --------------------------------------------------------------------------------- helpers --

def vocabulary(name: str) -> list[str]:
    """A shipped class vocabulary (``ucf101``, ``hmdb51``, ``kinetics400``, ``kinetics600``,
    ``ssv2``, ``diving48``), in the dataset's label order."""
    ref = resources.files("vidssl") / "resources" / "vocabularies" / f"{name}.txt"
    try:
        text = ref.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no shipped vocabulary named {name!r}") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def check_root(root: str | os.PathLike, what: str) -> str:
    root = os.path.abspath(os.path.expanduser(os.fspath(root)))
    if not os.path.isdir(root):
        raise DatasetError(f"{what} root {root} does not exist or is not a directory")
    return root


def check_split_subset(split: object, subset: object, max_split: int | None = 3) -> None:
    if isinstance(split, bool) or not isinstance(split, int) or split < 1 or (
            max_split is not None and split > max_split):
        allowed = f"1..{max_split}" if max_split else "a positive integer"
        raise ConfigError(f"split must be {allowed}, not {split!r}")
    if subset not in ("train", "test"):
        raise ConfigError(f"subset must be 'train' or 'test', not {subset!r}")


def read_lines(path: str) -> list[tuple[int, str]]:
    """``(line number, stripped text)`` of the non-blank lines (CRLF and a BOM tolerated)."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except FileNotFoundError:
        raise DatasetError(f"annotation file {path} does not exist") from None
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise DatasetError(f"cannot read annotation file {path}: {err.strerror or err}") from None
    return [(n, ln.strip()) for n, ln in enumerate(text.splitlines(), 1) if ln.strip()]


def as_extensions(extensions: Sequence[str] | str, first: str | None = None) -> tuple[str, ...]:
    """Extensions as ``(".webm", ".mp4", ...)``: a string is comma-separated (``"mp4,mkv"``, as
    from the command line); ``first`` is tried before the others."""
    if isinstance(extensions, str):
        extensions = [e for e in extensions.split(",") if e.strip()]
    exts = [e.strip().lower() if e.strip().startswith(".") else "." + e.strip().lower()
            for e in extensions]
    if first is not None:
        exts = [first] + [e for e in exts if e != first]
    if not exts:
        raise ConfigError("extensions must name at least one file extension")
    return tuple(dict.fromkeys(exts))


def read_json(path: str, what: str) -> object:
    """The parsed JSON of an annotation file; one-line :class:`DatasetError` naming the file."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"{what} annotation file {path} does not exist") from None
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise DatasetError(f"{path}: not valid JSON ({err.msg} at line {err.lineno} "
                           f"column {err.colno})") from None
    except OSError as err:
        raise DatasetError(f"cannot read annotation file {path}: {err.strerror or err}") from None


def find_annotation_dir(root: str, given: str | os.PathLike | None, defaults: Sequence[str],
                        has: Callable[[str], bool], what: str) -> str:
    """The annotation directory: ``given`` if set, else the first of ``root/<default>`` for
    which ``has(dir)`` is true."""
    if given is not None:
        ann = os.path.abspath(os.path.expanduser(os.fspath(given)))
        if not os.path.isdir(ann):
            raise DatasetError(f"{what} annotation directory {ann} does not exist")
        return ann
    tried = [os.path.normpath(os.path.join(root, d)) for d in defaults]
    for ann in tried:
        if os.path.isdir(ann) and has(ann):
            return ann
    raise DatasetError(f"no {what} annotation files found; looked in {', '.join(tried)} "
                       "(pass annotations=DIR)")


class Locator:
    """Find listed files under a root, reading each directory once (no ``stat`` per file).

    A relative path resolves component by component: the exact name, else a unique
    case-insensitive match; the file name may also be found with another video extension
    (a tree converted from ``.avi`` to ``.mp4`` keeps working with the official lists).
    """

    def __init__(self, root: str, extensions: Sequence[str] = VIDEO_EXTENSIONS):
        self.root = root
        self.extensions = tuple(extensions)
        self._listings: dict[str, tuple[set[str], dict[str, str]]] = {}

    def _listing(self, d: str) -> tuple[set[str], dict[str, str]]:
        if d not in self._listings:
            try:
                names = set(os.listdir(d))
            except OSError:
                names = set()
            lower: dict[str, str] = {}
            for n in names:
                lower[n.lower()] = n if n.lower() not in lower else ""  # "" = ambiguous
            self._listings[d] = (names, lower)
        return self._listings[d]

    def _child(self, d: str, name: str) -> str | None:
        names, lower = self._listing(d)
        if name in names:
            return name
        return lower.get(name.lower()) or None

    def find(self, rel: str) -> str | None:
        parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts:
            return None
        d = self.root
        for part in parts[:-1]:
            child = self._child(d, part)
            if child is None:
                return None
            d = os.path.join(d, child)
        name = self._child(d, parts[-1])
        if name is None:
            stem, ext = os.path.splitext(parts[-1])
            for alt in self.extensions:
                if alt.lower() != ext.lower():
                    name = self._child(d, stem + alt)
                    if name is not None:
                        break
        return os.path.join(d, name) if name is not None else None


def finish(name: str, where: str, items: list[tuple[str, int, int]], missing: list[str],
           class_names: Sequence[str], group_names: Sequence[str], probe: dict, *,
           root: str | None = None, missing_list: MissingListArg = False) -> VideoIndex:
    """Probe the located files and assemble the index; raise if nothing is usable.

    With ``root``, the report also holds the number of listed entries, the hash of the videos
    found (:mod:`.partial`) and, unless ``missing_list`` is ``False``, the file listing the
    missing ones."""
    result = probe_files([p for p, _, _ in items], **probe)
    report = IndexReport(missing=list(missing) + result.missing, failed=result.failed,
                         cached=result.cached, probed=result.probed)
    keep = [i for i, m in enumerate(result.metas) if m is not None]
    listed = len(items) + len(missing)
    if root is not None:
        report.listed = listed
        report.found_hash = found_hash([items[i][:2] for i in keep], root)
        report.missing_list = write_missing_list(
            report.missing, root, missing_list_path(missing_list, name, root))
    if not keep:
        saved = f"; missing list: {report.missing_list}" if report.missing_list else ""
        raise DatasetError(f"{name}: no usable videos in {where} ({listed} listed, "
                           f"{len(report.missing)} missing, {len(report.failed)} unreadable{saved})")
    for line in report.summary_lines():
        log.warning("%s: %s", name, line)
    metas = [result.metas[i] for i in keep]
    return VideoIndex(
        [items[i][0] for i in keep], [items[i][1] for i in keep], [m.num_frames for m in metas],
        [m.fps for m in metas], [items[i][2] for i in keep], class_names, group_names, name,
        report, [m.seek_token for m in metas])


def probe_options(backend: str, cache: CacheArg, workers: int | None, pool: str,
                  progress: bool | None) -> dict:
    return dict(backend=backend, cache=cache, workers=workers, pool=pool, progress=progress)


def warn_vocabulary(dataset: str, class_names: Sequence[str]) -> None:
    vocab = vocabulary(dataset)
    unknown = [c for c in class_names if c not in set(vocab)]
    if unknown:
        log.warning("%s: %d class names are not in the official vocabulary (e.g. %s)",
                    dataset, len(unknown), ", ".join(unknown[:3]))
    elif list(class_names) != vocab and len(class_names) == len(vocab):
        log.warning("%s: class order differs from the official label order", dataset)


# ---------------------------------------------------------------------------------- UCF101 --

def ucf101(root: str | os.PathLike, split: int = 1, subset: str = "train",
           annotations: str | os.PathLike | None = None, *, backend: str = DEFAULT_BACKEND,
           cache: CacheArg = None, workers: int | None = None, pool: str = "thread",
           progress: bool | None = None) -> VideoIndex:
    """UCF101 from the official ``classInd.txt`` / ``trainlist0N.txt`` / ``testlist0N.txt``.

    Args:
        root: the directory holding ``<Class>/v_<Class>_gGG_cCC.avi`` (or holding ``UCF-101/``,
            the folder the official archive extracts to, which is then used).
        split: 1, 2 or 3.
        subset: ``"train"`` or ``"test"``.
        annotations: directory with the split lists; default: the first of
            ``root/ucfTrainTestlist/``, ``root/splits/``, ``root/`` holding ``classInd.txt``.
        backend, cache, workers, pool, progress: see :func:`probe_files`.

    Labels are ``classInd id - 1``; ``group = GG - 1`` (clips of one class with the same group
    are cut from the same source video; the official splits never share a group between train
    and test).
    """
    check_split_subset(split, subset)
    root = check_root(root, "UCF101")
    video_root = os.path.join(root, "UCF-101") if os.path.isdir(
        os.path.join(root, "UCF-101")) else root
    ann = find_annotation_dir(root, annotations, UCF101_ANNOTATION_DIRS,
                              lambda d: os.path.isfile(os.path.join(d, "classInd.txt")), "UCF101")
    index = ucf_layout(video_root, ann, split, subset, f"ucf101/split{split}/{subset}",
                       probe_options(backend, cache, workers, pool, progress))
    warn_vocabulary("ucf101", index.class_names)
    return index


def read_class_ind(path: str) -> list[str]:
    """Class names in label order from ``classInd.txt`` (``<1-based id> <ClassName>`` lines)."""
    by_id: dict[int, str] = {}
    for n, line in read_lines(path):
        tokens = line.split()
        if len(tokens) != 2 or not tokens[0].isdigit():
            raise DatasetError(f"{path}:{n}: expected '<id> <ClassName>', got {line!r}")
        cid, cname = int(tokens[0]), tokens[1]
        if cid in by_id or cname in by_id.values():
            raise DatasetError(f"{path}:{n}: class id {cid} or name {cname!r} given twice")
        by_id[cid] = cname
    if not by_id:
        raise DatasetError(f"{path}: no classes listed")
    if sorted(by_id) != list(range(1, len(by_id) + 1)):
        raise DatasetError(f"{path}: class ids must run 1..{len(by_id)}, got "
                           f"{min(by_id)}..{max(by_id)} with gaps")
    return [by_id[i] for i in range(1, len(by_id) + 1)]


def ucf_layout(video_root: str, ann: str, split: int, subset: str, name: str,
               probe: dict) -> VideoIndex:
    """Index ``video_root/<Class>/v_<Class>_gGG_cCC.<ext>`` with the UCF101 lists in ``ann``."""
    class_names = read_class_ind(os.path.join(ann, "classInd.txt"))
    label_of = {c: i for i, c in enumerate(class_names)}
    label_of_lower = {c.lower(): i for i, c in enumerate(class_names)}
    list_path = os.path.join(ann, f"{subset}list{split:02d}.txt")
    locator = Locator(video_root)
    items: list[tuple[str, int, int]] = []
    missing: list[str] = []
    seen: dict[str, int] = {}
    for n, line in read_lines(list_path):
        where = f"{list_path}:{n}"
        tokens = line.split()
        if len(tokens) > 2:
            raise DatasetError(f"{where}: expected '<Class>/<file> [id]', got {line!r}")
        rel = tokens[0].replace("\\", "/")
        parts = rel.split("/")
        if len(parts) != 2:
            raise DatasetError(f"{where}: expected '<Class>/<file>', got {tokens[0]!r}")
        folder, fname = parts
        label = label_of.get(folder, label_of_lower.get(folder.lower()))
        if label is None:
            raise DatasetError(f"{where}: class folder {folder!r} is not in classInd.txt")
        if len(tokens) == 2:
            if not tokens[1].isdigit():
                raise DatasetError(f"{where}: class id {tokens[1]!r} is not an integer")
            if int(tokens[1]) - 1 != label:
                raise DatasetError(
                    f"{where}: class id {tokens[1]} disagrees with folder {folder!r} "
                    f"(classInd.txt gives it id {label + 1})")
        m = UCF_FILE_RE.match(fname)
        if m is None:
            raise DatasetError(f"{where}: file name {fname!r} is not v_<Class>_gGG_cCC.<ext>")
        if m["cls"].lower() != folder.lower():
            raise DatasetError(f"{where}: file {fname!r} names class {m['cls']!r} but sits in "
                               f"folder {folder!r}")
        group = int(m["group"]) - 1
        if group < 0:
            raise DatasetError(f"{where}: group g{m['group']} must be >= 1")
        if rel in seen:
            raise DatasetError(f"{where}: {rel} is listed twice (first at line {seen[rel]})")
        seen[rel] = n
        path = locator.find(rel)
        if path is None:
            missing.append(os.path.join(video_root, *parts))
        else:
            items.append((path, label, group))
    groups = [g for _, _, g in items]
    group_names = [f"g{g + 1:02d}" for g in range(max(groups) + 1)] if groups else []
    return finish(name, f"{list_path} (videos under {video_root})", items, missing,
                  class_names, group_names, probe)


# ---------------------------------------------------------------------------------- HMDB51 --

def hmdb51(root: str | os.PathLike, split: int = 1, subset: str = "train",
           annotations: str | os.PathLike | None = None, *, backend: str = DEFAULT_BACKEND,
           cache: CacheArg = None, workers: int | None = None, pool: str = "thread",
           progress: bool | None = None) -> VideoIndex:
    """HMDB51 from the official ``<class>_test_split<N>.txt`` files.

    Args:
        root: the directory holding ``<class>/<video>.avi``.
        split: 1, 2 or 3.
        subset: ``"train"`` (lines flagged 1) or ``"test"`` (flagged 2); 0 = unused.
        annotations: directory of the split files; default: the first of
            ``root/testTrainMulti_7030_splits/``, ``root/splits/``, ``root/`` holding a
            ``*_test_split<N>.txt``.
        backend, cache, workers, pool, progress: see :func:`probe_files`.

    Classes are the split-file class names sorted alphabetically (the official label order);
    HMDB51 has no source-video groups, so every ``group`` is -1.
    """
    check_split_subset(split, subset)
    root = check_root(root, "HMDB51")

    def split_files(d: str) -> dict[str, str]:
        found = {}
        for fname in os.listdir(d):
            m = HMDB_SPLIT_RE.match(fname)
            if m and int(m["split"]) == split:
                found[m["cls"]] = os.path.join(d, fname)
        return found

    ann = find_annotation_dir(root, annotations, HMDB51_ANNOTATION_DIRS,
                              lambda d: bool(split_files(d)), f"HMDB51 split {split}")
    files = split_files(ann)
    if not files:
        raise DatasetError(f"no HMDB51 split files <class>_test_split{split}.txt in {ann}")
    class_names = sorted(files)
    want = "1" if subset == "train" else "2"
    locator = Locator(root)
    items: list[tuple[str, int, int]] = []
    missing: list[str] = []
    for label, cname in enumerate(class_names):
        seen: dict[str, int] = {}
        for n, line in read_lines(files[cname]):
            tokens = line.rsplit(None, 1)
            if len(tokens) != 2 or tokens[1] not in ("0", "1", "2"):
                raise DatasetError(f"{files[cname]}:{n}: expected '<video> <0|1|2>', got {line!r}")
            video, flag = tokens
            if video in seen:
                raise DatasetError(f"{files[cname]}:{n}: {video} is listed twice "
                                   f"(first at line {seen[video]})")
            seen[video] = n
            if flag != want:
                continue
            path = locator.find(f"{cname}/{video}")
            if path is None:
                missing.append(os.path.join(root, cname, video))
            else:
                items.append((path, label, -1))
    index = finish(f"hmdb51/split{split}/{subset}", f"{ann} (videos under {root})", items,
                   missing, class_names, (), probe_options(backend, cache, workers, pool, progress))
    warn_vocabulary("hmdb51", class_names)
    return index


# ---------------------------------------------------------------------------------- folder --

def folder(root: str | os.PathLike, extensions: Sequence[str] = VIDEO_EXTENSIONS, *,
           backend: str = DEFAULT_BACKEND, cache: CacheArg = None, workers: int | None = None,
           pool: str = "thread", progress: bool | None = None) -> VideoIndex:
    """A folder-per-class tree: ``root/<class>/**/<video>.<ext>``.

    Classes are the sorted names of ``root``'s sub-directories (hidden ones skipped; empty
    ones still get a label); videos are the files anywhere inside a class folder whose
    extension (case-insensitive) is in ``extensions``. Files directly in ``root`` are ignored.
    Groups are -1.
    """
    root = check_root(root, "folder")
    exts = as_extensions(extensions)
    class_names = sorted(e.name for e in os.scandir(root)
                         if e.is_dir() and not e.name.startswith("."))
    if not class_names:
        raise DatasetError(f"folder root {root} has no class sub-directories")
    items: list[tuple[str, int, int]] = []
    for label, cname in enumerate(class_names):
        seen_dirs: set[str] = set()
        for d, dirs, files in os.walk(os.path.join(root, cname), followlinks=True):
            real = os.path.realpath(d)
            if real in seen_dirs:  # a symlink loop
                dirs[:] = []
                continue
            seen_dirs.add(real)
            dirs[:] = sorted(x for x in dirs if not x.startswith("."))
            for fname in sorted(files):
                if not fname.startswith(".") and os.path.splitext(fname)[1].lower() in exts:
                    items.append((os.path.join(d, fname), label, -1))
    if not items:
        raise DatasetError(f"folder root {root}: no files with extensions {', '.join(exts)} "
                           "inside its class folders")
    return finish(f"folder/{os.path.basename(root)}", root, items, [], class_names, (),
                  probe_options(backend, cache, workers, pool, progress))


# ------------------------------------------------------------------------------- synthetic --

def synthetic(root: str | os.PathLike, split: int = 1, subset: str = "train", *,
              backend: str = DEFAULT_BACKEND, cache: CacheArg = None,
              workers: int | None = None, pool: str = "thread",
              progress: bool | None = None) -> VideoIndex:
    """The embedded synthetic dataset, written in the UCF101 layout.

    ``root/videos/<Class>/v_<Class>_gGG_cCC.{avi,mp4}`` with ``root/splits/classInd.txt``,
    ``trainlist0N.txt`` and ``testlist0N.txt`` (lines name the real extension). Labels and
    groups follow the UCF101 rules.
    """
    check_split_subset(split, subset, max_split=None)
    root = check_root(root, "synthetic")
    videos, splits = os.path.join(root, "videos"), os.path.join(root, "splits")
    for d in (videos, splits):
        if not os.path.isdir(d):
            raise DatasetError(f"synthetic dataset {root} has no {os.path.basename(d)}/ directory")
    return ucf_layout(videos, splits, split, subset, f"synthetic/split{split}/{subset}",
                      probe_options(backend, cache, workers, pool, progress))
