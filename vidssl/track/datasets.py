"""Tracking datasets: DAVIS-2017 (VOS), MOT16/17 (MOT), OTB-style (SOT), and the synthetic set.

Layouts read (``root`` is what ``vidssl track --data`` gets):

- **DAVIS-2017**: ``JPEGImages/<res>/<seq>/*.jpg``, ``Annotations/<res>/<seq>/*.png`` ('P'-mode
  palette PNGs, value k = object k), ``ImageSets/2017/<split>.txt``.
- **MOT16/17**: ``<seq>/img1/*.jpg``, ``<seq>/gt/gt.txt`` (``frame,id,x,y,w,h,consider,class,
  visibility``), ``<seq>/det/det.txt`` (``frame,-1,x,y,w,h,score,...``), optional
  ``seqinfo.ini``; ``root`` is a folder of sequences (e.g. ``MOT17/train``) or one sequence.
  ``gt/gt.txt`` is required (scoring needs it) and so is ``det/det.txt`` unless the
  ground-truth boxes are the detections: a missing one is a one-line DatasetError naming it.
  Ground truth keeps rows with ``consider == 1`` and class 1 (pedestrian) when those columns
  exist, as the MOT17 evaluation does (its distractor-class handling is not reproduced).
- **OTB**: ``<seq>/img/*.jpg`` and ``<seq>/groundtruth_rect.txt`` (``x,y,w,h`` per frame;
  comma, tab or space separated). OTB-100's quirks: a sequence with several targets ships one
  ``groundtruth_rect.<N>.txt`` per target (Jogging, Skating2; Human4 has an empty ``.1``), each
  read as its own sequence ``<seq>.<N>`` (an empty file is skipped with a warning); and a few
  sequences' ground truth covers only part of ``img/`` (:data:`OTB_FRAME_RANGES`: David's starts
  at frame 300), so their frames are cut to that range.
- **synthetic** (``vidssl make-synthetic``): ``<root>/tracking/davis`` and
  ``<root>/tracking/mot`` are read as above; SOT sequences are derived from the MOT ground
  truth, one per object (``<seq>-obj<k>``, starting at the object's first frame; frames where
  the object is not visible have a NaN box and are not scored).

Frames are read lazily: ``seq.lazy_frames()`` is a :class:`FrameSequence` that decodes a frame
file when it is indexed (nothing is cached), so a sequence is never held whole in memory;
``seq.read_frames()`` still stacks every frame (small sequences, tests). DAVIS annotations are
read one frame at a time the same way (``VosSequence.label(t)``).

Boxes are kept in 0-based continuous pixel coordinates ``(x, y, w, h)`` (a box covering pixel
columns ``x0 .. x1`` is ``[x0, x1 + 1)``): MOT/OTB files' 1-based ``x`` becomes ``x - 1`` on
reading and ``x + 1`` again on writing.
"""

from __future__ import annotations

import configparser
import glob
import logging
import os
import re
from dataclasses import dataclass, field

import numpy as np

from vidssl.errors import DatasetError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
log = logging.getLogger("vidssl")
# OTB-100 sequences whose ground truth covers frames first..last (1-based, inclusive) of img/,
# per the benchmark's sequence configuration (the got10k toolkit applies the same ranges)
OTB_FRAME_RANGES = {"david": (300, 770), "football1": (1, 74), "freeman3": (1, 460),
                    "freeman4": (1, 283), "diving": (1, 215)}
_OTB_GT = re.compile(r"groundtruth_rect(?:\.(\d+))?\.txt")


@dataclass
class VosSequence:
    """A DAVIS-style sequence: frame paths and (possibly partial) annotation paths."""

    name: str
    frames: list[str]
    annotations: list[str | None]
    _label_shape: tuple[int, int] | None = field(default=None, init=False, repr=False,
                                                 compare=False)

    def __len__(self) -> int:
        return len(self.frames)

    def lazy_frames(self) -> "FrameSequence":
        return FrameSequence(self.frames)

    def read_frames(self) -> np.ndarray:
        """Every frame, stacked (the whole sequence in memory; see :meth:`lazy_frames`)."""
        return read_frames(self.frames)

    def label(self, t: int) -> np.ndarray:
        """``int64 (H, W)`` label map of frame ``t`` (all 0 when it has no annotation)."""
        path = self.annotations[t]
        if path is not None:
            return read_label(path)
        if self._label_shape is None:
            self._label_shape = read_label(self.annotations[0]).shape
        return np.zeros(self._label_shape, dtype=np.int64)

    def read_labels(self) -> np.ndarray:
        """``int64 (T, H, W)`` label maps (frames without an annotation are all 0)."""
        first = read_label(self.annotations[0])
        out = np.zeros((len(self.frames), *first.shape), dtype=np.int64)
        for t, path in enumerate(self.annotations):
            if path is not None:
                out[t] = read_label(path)
        return out


@dataclass
class MotSequence:
    """A MOTChallenge sequence. ``gt`` rows: ``(frame, id, x, y, w, h, visibility)``; ``det``
    rows: ``(frame, x, y, w, h, score)``; boxes 0-based (see the module docstring)."""

    name: str
    frames: list[str]
    gt: np.ndarray
    det: np.ndarray
    fps: float = 30.0

    def __len__(self) -> int:
        return len(self.frames)

    def lazy_frames(self) -> "FrameSequence":
        return FrameSequence(self.frames)

    def read_frames(self) -> np.ndarray:
        """Every frame, stacked (the whole sequence in memory; see :meth:`lazy_frames`)."""
        return read_frames(self.frames)

    def frame_rows(self, table: str, frame: int) -> np.ndarray:
        """Rows of ``gt`` or ``det`` for 1-based ``frame``."""
        rows = getattr(self, table)
        return rows[rows[:, 0] == frame]


@dataclass
class SotSequence:
    """One target: frame paths and ``(T, 4)`` boxes ``(x, y, w, h)`` (NaN = not visible)."""

    name: str
    frames: list[str]
    boxes: np.ndarray
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.frames)

    def lazy_frames(self) -> "FrameSequence":
        return FrameSequence(self.frames)

    def read_frames(self) -> np.ndarray:
        """Every frame, stacked (the whole sequence in memory; see :meth:`lazy_frames`)."""
        return read_frames(self.frames)


# ---------------------------------------------------------------------------------- I/O --
def read_frame(path: str) -> np.ndarray:
    """``uint8 (H, W, 3)`` RGB frame of one image file (one-line :class:`DatasetError` on a
    bad file)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as err:
        raise DatasetError(f"cannot read frame {path}: {' '.join(str(err).split())}") from None


class FrameSequence:
    """The frames of one sequence, decoded from their files when indexed.

    ``frames[t]`` reads file ``t`` (``uint8 (H, W, 3)`` RGB), ``frames[a:b]`` reads and stacks
    those files; nothing is cached, so holding a ``FrameSequence`` costs only its paths. Every
    frame must have the size of frame 0 (a one-line :class:`DatasetError` names the first
    that does not; frame 0's size is read once, from the file, when first needed).
    """

    def __init__(self, paths: list[str]):
        self.paths = list(paths)
        self._size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def __iter__(self):
        for t in range(len(self.paths)):
            yield self[t]

    def __getitem__(self, t):
        if isinstance(t, slice):
            idx = range(*t.indices(len(self.paths)))
            if not idx:
                raise DatasetError("an empty slice of frames")
            return np.stack([self[i] for i in idx])
        t = int(t)
        if not -len(self.paths) <= t < len(self.paths):
            raise IndexError(f"frame {t} of a {len(self.paths)}-frame sequence")
        t %= len(self.paths)
        frame = read_frame(self.paths[t])
        if self._size is None:
            self._size = tuple(frame.shape[:2]) if t == 0 else self.frame_size
        if tuple(frame.shape[:2]) != self._size:
            raise DatasetError(f"frame {self.paths[t]} is {frame.shape[1]}x{frame.shape[0]}, "
                               f"the sequence's first frame {self._size[1]}x{self._size[0]}")
        return frame

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(H, W)`` of frame 0 (from its file's header when no frame was decoded yet)."""
        if self._size is None:
            from PIL import Image

            try:
                with Image.open(self.paths[0]) as im:
                    self._size = (im.height, im.width)
            except (OSError, ValueError) as err:
                raise DatasetError(f"cannot read frame {self.paths[0]}: "
                                   f"{' '.join(str(err).split())}") from None
        return self._size


def read_frames(paths: list[str]) -> np.ndarray:
    """``uint8 (T, H, W, 3)`` RGB frames, all in memory (one-line :class:`DatasetError` on a
    bad file or a frame whose size differs from the first's); :class:`FrameSequence` reads
    them one at a time instead."""
    return FrameSequence(paths)[:]


def read_label(path: str) -> np.ndarray:
    """A DAVIS annotation: palette indices of a 'P' PNG (an 'L' PNG is read as is)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise DatasetError(f"annotation {path} is a {im.mode!r} image; DAVIS annotations "
                                   f"are palette ('P') PNGs whose index is the object id")
            return np.asarray(im).astype(np.int64)
    except OSError as err:
        raise DatasetError(f"cannot read annotation {path}: {' '.join(str(err).split())}") from None


def _images(folder: str) -> list[str]:
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTS))
    return [os.path.join(folder, f) for f in files]


def _table(path: str, min_cols: int) -> np.ndarray:
    """A numeric text table (comma, tab or space separated); ``(0, min_cols)`` when empty."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = [p for p in re.split(r"[,\s]+", line) if p]
            try:
                values = [float(p) for p in parts]
            except ValueError:
                raise DatasetError(f"{path}:{n}: not a row of numbers: {line[:60]!r}") from None
            if len(values) < min_cols:
                raise DatasetError(f"{path}:{n}: expected at least {min_cols} values, got "
                                   f"{len(values)}")
            rows.append(values[:max(min_cols, 10)])
    if not rows:
        return np.zeros((0, min_cols))
    width = min(len(r) for r in rows)
    return np.array([r[:width] for r in rows], dtype=np.float64)


# ---------------------------------------------------------------------------------- DAVIS --
def load_davis(root: str, split: str = "val", year: str = "2017", resolution: str = "480p",
               sequences: list[str] | None = None) -> list[VosSequence]:
    """The sequences of ``ImageSets/<year>/<split>.txt`` (or ``sequences``) under ``root``."""
    img_root = os.path.join(root, "JPEGImages", resolution)
    ann_root = os.path.join(root, "Annotations", resolution)
    for d in (img_root, ann_root):
        if not os.path.isdir(d):
            raise DatasetError(f"not a DAVIS folder: {d} is missing (expected JPEGImages/"
                               f"{resolution} and Annotations/{resolution} under {root})")
    if sequences is None:
        listing = os.path.join(root, "ImageSets", year, f"{split}.txt")
        if not os.path.isfile(listing):
            raise DatasetError(f"DAVIS split list not found: {listing}")
        with open(listing, encoding="utf-8") as f:
            sequences = [s.strip() for s in f if s.strip()]
    out = []
    for name in sequences:
        folder = os.path.join(img_root, name)
        if not os.path.isdir(folder):
            raise DatasetError(f"DAVIS sequence {name!r} has no frames folder {folder}")
        frames = _images(folder)
        anns = []
        for p in frames:
            a = os.path.join(ann_root, name, os.path.splitext(os.path.basename(p))[0] + ".png")
            anns.append(a if os.path.isfile(a) else None)
        if not frames or anns[0] is None:
            raise DatasetError(f"DAVIS sequence {name!r} needs frames and a first-frame "
                               f"annotation under {ann_root}/{name}")
        out.append(VosSequence(name, frames, anns))
    return out


# ---------------------------------------------------------------------------------- MOT --
def _mot_dirs(root: str) -> list[str]:
    if os.path.isdir(os.path.join(root, "img1")):
        return [root]
    dirs = sorted(d for d in glob.glob(os.path.join(root, "*")) if os.path.isdir(os.path.join(d, "img1")))
    if not dirs:
        raise DatasetError(f"no MOT sequences under {root} (expected <seq>/img1/ folders)")
    return dirs


def load_mot_sequence(folder: str, detections: str | None = "det", need_gt: bool = True
                      ) -> MotSequence:
    """One MOT sequence folder (``img1/``, ``gt/gt.txt``, ``det/<detections>.txt``).

    Args:
        detections: the detection file's stem under ``det/``; ``None``: not read (e.g. when the
            ground-truth boxes are fed as detections), ``det`` is then empty.
        need_gt: ``gt/gt.txt`` must exist (scoring needs it); else a missing one is empty.

    Raises:
        DatasetError: no images; a missing ``det/<detections>.txt`` or (``need_gt``)
            ``gt/gt.txt``, naming the path; a malformed row.
    """
    name = os.path.basename(os.path.normpath(folder))
    frames = _images(os.path.join(folder, "img1"))
    if not frames:
        raise DatasetError(f"MOT sequence {folder} has no images in img1/")
    fps = 30.0
    ini = os.path.join(folder, "seqinfo.ini")
    if os.path.isfile(ini):
        cp = configparser.ConfigParser()
        cp.read(ini)
        fps = float(cp.get("Sequence", "frameRate", fallback=fps))
    gt = np.zeros((0, 7))
    gt_path = os.path.join(folder, "gt", "gt.txt")
    if need_gt and not os.path.isfile(gt_path):
        raise DatasetError(f"MOT sequence {name}: ground truth {gt_path} not found (scoring "
                           f"needs it; test splits without ground truth are not supported)")
    if os.path.isfile(gt_path):
        raw = _table(gt_path, 6)
        if raw.shape[1] >= 8:
            raw = raw[(raw[:, 6] != 0) & (raw[:, 7] == 1)]
        vis = raw[:, 8] if raw.shape[1] >= 9 else np.ones(len(raw))
        gt = np.column_stack([raw[:, 0], raw[:, 1], raw[:, 2] - 1, raw[:, 3] - 1, raw[:, 4],
                              raw[:, 5], vis])
    det = np.zeros((0, 6))
    if detections is not None:
        det_path = os.path.join(folder, "det", f"{detections}.txt")
        if not os.path.isfile(det_path):
            raise DatasetError(f"MOT sequence {name}: detections {det_path} not found (or "
                               f"use mot_detections=gt to feed the ground-truth boxes)")
        raw = _table(det_path, 7)
        det = np.column_stack([raw[:, 0], raw[:, 2] - 1, raw[:, 3] - 1, raw[:, 4], raw[:, 5],
                               raw[:, 6]])
    return MotSequence(name, frames, gt, det, fps)


def load_mot(root: str, detections: str | None = "det", need_gt: bool = True
             ) -> list[MotSequence]:
    """Every MOT sequence under ``root`` (or ``root`` itself when it holds ``img1/``); see
    :func:`load_mot_sequence`."""
    return [load_mot_sequence(d, detections, need_gt) for d in _mot_dirs(root)]


def write_mot_results(path: str, rows: list[tuple[int, int, np.ndarray]]) -> None:
    """MOTChallenge result file: ``frame,id,x,y,w,h,1,-1,-1,-1`` (1-based ``x, y``)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for frame, tid, b in rows:
            f.write(f"{frame},{tid},{b[0] + 1:.2f},{b[1] + 1:.2f},{b[2]:.2f},{b[3]:.2f},1,-1,-1,-1\n")


# ---------------------------------------------------------------------------------- OTB --
def _otb_annotations(d: str) -> list[tuple[str, str]]:
    """``(name, path)`` of each ground-truth file of OTB folder ``d``: ``groundtruth_rect.txt``
    (named after the folder) and ``groundtruth_rect.<N>.txt`` (``<folder>.<N>``)."""
    if not os.path.isdir(os.path.join(d, "img")):
        return []
    seq = os.path.basename(os.path.normpath(d))
    out = []
    for f in sorted(os.listdir(d)):
        m = _OTB_GT.fullmatch(f)
        if m:
            out.append((seq if m.group(1) is None else f"{seq}.{int(m.group(1))}",
                        os.path.join(d, f)))
    return sorted(out)


def load_otb(root: str) -> list[SotSequence]:
    """OTB-style sequences: every ``<seq>/`` under ``root`` (or ``root`` itself) holding
    ``img/`` and ``groundtruth_rect.txt`` or ``groundtruth_rect.<N>.txt`` (one sequence per
    target, ``<seq>.<N>``); frames cut to :data:`OTB_FRAME_RANGES` where listed."""
    dirs = [root] if _otb_annotations(root) else sorted(
        d for d in glob.glob(os.path.join(root, "*")) if _otb_annotations(d))
    if not dirs:
        raise DatasetError(f"no OTB sequences under {root} (expected <seq>/img/ and "
                           f"<seq>/groundtruth_rect.txt)")
    out = []
    for d in dirs:
        all_frames = _images(os.path.join(d, "img"))
        first, last = OTB_FRAME_RANGES.get(os.path.basename(os.path.normpath(d)).lower(),
                                           (1, len(all_frames)))
        frames = all_frames[first - 1:last]
        for name, path in _otb_annotations(d):
            boxes = _table(path, 4)[:, :4]
            if len(boxes) == 0:
                log.warning("OTB: %s is empty; no sequence %s", path, name)
                continue
            if len(frames) < len(boxes):
                span = f" (frames {first}-{last} of img/)" if first > 1 or last < len(all_frames) else ""
                raise DatasetError(f"OTB sequence {name}: {len(boxes)} boxes in {path} for "
                                   f"{len(frames)} frames{span}")
            boxes = boxes.copy()
            boxes[:, :2] -= 1
            out.append(SotSequence(name, frames[:len(boxes)], boxes, {"first_frame": first}))
    if not out:
        raise DatasetError(f"no OTB sequences under {root}: every ground-truth file is empty")
    return out


def sot_from_mot(seq: MotSequence, min_frames: int = 2) -> list[SotSequence]:
    """One single-object sequence per ground-truth id of ``seq``: from the id's first frame to
    its last, NaN boxes where it has no row."""
    out = []
    for k in np.unique(seq.gt[:, 1]).astype(int):
        rows = seq.gt[seq.gt[:, 1] == k]
        first, last = int(rows[:, 0].min()), int(rows[:, 0].max())
        if last - first + 1 < min_frames:
            continue
        boxes = np.full((last - first + 1, 4), np.nan)
        boxes[rows[:, 0].astype(int) - first] = rows[:, 2:6]
        out.append(SotSequence(f"{seq.name}-obj{k}", seq.frames[first - 1:last], boxes,
                               {"source": seq.name, "object": int(k), "first_frame": first}))
    return out


# ---------------------------------------------------------------------------------- resolve --
def resolve_dataset(task: str, root: str, mot_detections: str = "det") -> tuple[str, list]:
    """``(layout, sequences)`` for ``task`` in ``("vos", "sot", "mot")`` under ``root``: the
    synthetic set (``<root>/tracking``), DAVIS, MOT or OTB, found by what the folder holds.
    ``mot_detections``: ``"det"`` (MOT reads ``det/det.txt``, which must exist) or ``"gt"``
    (the ground-truth boxes are the detections; ``det/`` is not read)."""
    det = "det" if task == "mot" and mot_detections == "det" else None
    if not os.path.isdir(root):
        raise DatasetError(f"tracking data folder {root} does not exist (make one with "
                           f"`vidssl make-synthetic --out {root}`)")
    synth = os.path.join(root, "tracking")
    if task == "vos":
        if os.path.isdir(os.path.join(synth, "davis")):
            return "synthetic-davis", load_davis(os.path.join(synth, "davis"))
        return "davis", load_davis(root)
    if task == "mot":
        if os.path.isdir(os.path.join(synth, "mot")):
            return "synthetic-mot", load_mot(os.path.join(synth, "mot"), det)
        return "mot", load_mot(root, det)
    if task == "sot":
        if os.path.isdir(os.path.join(synth, "mot")):
            seqs = [s for m in load_mot(os.path.join(synth, "mot"), None) for s in sot_from_mot(m)]
            return "synthetic-sot", seqs
        return "otb", load_otb(root)
    raise DatasetError(f"unknown tracking task {task!r}; expected vos, sot or mot")
