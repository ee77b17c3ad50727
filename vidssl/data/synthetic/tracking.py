"""Multi-object tracking sequences with exact ground truth, in DAVIS-2017 and MOT17 layouts.

Each sequence shows 2-4 objects on one background; every object follows one action class's
dynamics (from :data:`TRACKING_CLASSES`: the classes whose object stays one piece) and objects
may occlude each other (random depth order). Frames are ``2 * size`` pixels square.

Written under ``<out>/tracking/``::

    davis/JPEGImages/480p/<seq>/00000.jpg ...   frames (the folder is called 480p by DAVIS
    davis/Annotations/480p/<seq>/00000.png ...  convention; frames are small). 'P'-mode PNGs
                                                with the DAVIS palette, value k = object k
    davis/ImageSets/2017/val.txt                sequence names
    mot/<seq>/img1/000001.jpg ...               the same frames, 1-based
    mot/<seq>/gt/gt.txt                         frame,id,x,y,w,h,1,1,visibility (MOT17)
    mot/<seq>/det/det.txt                       frame,-1,x,y,w,h,score,-1,-1,-1
    mot/<seq>/seqinfo.ini
    mot/seqmap.txt                              "name" + sequence names (TrackEval seqmap)
    videos/<seq>.mp4                            H.264
    metadata.jsonl                              one object per sequence: objects, classes, ...

Ground truth comes from the renderer's coverage, not from geometry: the DAVIS mask is the
instance whose *visible* coverage exceeds 0.5 at a pixel; the MOT box is the box of the pixels an
object covers by more than 0.5 with nothing in front of it (amodal, clipped to the frame), in
MOTChallenge's 1-based pixel coordinates (``x = leftmost column + 1``); ``visibility`` is the
visible fraction of those pixels. An object with no such pixel in a frame has no gt row there.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np

from vidssl.data.synthetic.appearance import (
    STREAM_TRACKING,
    sample_background,
    sample_clip,
    sample_source,
    stream,
)
from vidssl.data.synthetic.classes import TRACKING_CLASSES, class_motion, clip_times, scaled
from vidssl.data.synthetic.render import Scene, amodal_masks, make_background, render_scene
from vidssl.data.video_io import encode_video

TRACKING_SCALE = 2  # tracking frames are TRACKING_SCALE * size pixels square
OBJECT_SCALE = 0.65  # objects are smaller than in the action clips (several share a frame)
DAVIS_RESOLUTION = "480p"


def davis_palette() -> list[int]:
    """The 256-colour DAVIS/PASCAL VOC palette (0 black, 1 (128,0,0), 2 (0,128,0), ...)."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def sequence_name(index: int) -> str:
    return f"synth-{index + 1:02d}"


def tracking_scene(seq_index: int, seed: int, num_frames: int, size: int
                   ) -> tuple[Scene, list[dict]]:
    """The scene of sequence ``seq_index`` at ``size`` pixels, and a description per object."""
    rng = stream(seed, STREAM_TRACKING, seq_index)
    bg = sample_background(rng)
    num_objects = int(rng.integers(2, 5))
    t = clip_times(num_frames)
    motions, objects, strokes = [], [], []
    for k in range(1, num_objects + 1):
        orng = stream(seed, STREAM_TRACKING, seq_index, k)
        cls = TRACKING_CLASSES[int(orng.integers(len(TRACKING_CLASSES)))]
        app = scaled(sample_clip(sample_source(orng, bg), orng), OBJECT_SCALE)
        motion = class_motion(cls, app, t, orng, instance=k)
        motions.append(motion)
        strokes += motion.strokes
        objects.append({"id": k, "class": cls, "appearance": app.to_dict(),
                        "dynamics": motion.params})
    depth = rng.permutation(num_objects)  # back to front
    parts = [p for i in depth for p in motions[i].parts]
    for rank, i in enumerate(depth):
        objects[i]["depth"] = int(rank)  # 0 = farthest back
    image = make_background(bg["background"], bg["bg_color"], bg["bg_color2"], bg["bg_angle"],
                            bg["bg_noise_seed"], bg["bg_noise_cells"], size)
    return Scene(image, parts, strokes), objects


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """0-based inclusive ``(x0, y0, x1, y1)`` of a non-empty boolean mask."""
    rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def gt_rows(masks: np.ndarray, amodal: dict[int, np.ndarray]) -> list[tuple]:
    """MOT17 gt rows ``(frame, id, x, y, w, h, 1, 1, visibility)``, sorted by id then frame."""
    rows = []
    for k in sorted(amodal):
        full = amodal[k]
        for f in range(full.shape[0]):
            area = int(full[f].sum())
            if area == 0:
                continue
            x0, y0, x1, y1 = _bbox(full[f])
            vis = int(((masks[f] == k) & full[f]).sum()) / area
            rows.append((f + 1, k, x0 + 1, y0 + 1, x1 - x0 + 1, y1 - y0 + 1, 1, 1, round(vis, 4)))
    return rows


def det_rows(gt: list[tuple], rng: np.random.Generator, num_frames: int, size: int) -> list[tuple]:
    """Fake detections: gt boxes jittered, some dropped (more when occluded), some false ones."""
    dets = []
    for f, _k, x, y, w, h, _c, _cls, vis in gt:
        if vis < 0.2 or rng.random() < 0.08:
            continue
        jx, jy = rng.normal(0, 0.05 * w), rng.normal(0, 0.05 * h)
        sw, sh = np.exp(rng.normal(0, 0.05, size=2))
        score = float(np.clip(0.55 + 0.45 * vis - abs(rng.normal(0, 0.1)), 0.05, 1.0))
        dets.append((f, x + jx, y + jy, w * sw, h * sh, score))
    for f in range(1, num_frames + 1):
        if rng.random() < 0.06:
            w, h = rng.uniform(0.06, 0.18, size=2) * size
            dets.append((f, rng.uniform(1, size - w), rng.uniform(1, size - h), w, h,
                         float(rng.uniform(0.2, 0.6))))
    dets.sort(key=lambda d: (d[0], d[1]))
    return [(f, -1, round(x, 2), round(y, 2), round(w, 2), round(h, 2), round(s, 3), -1, -1, -1)
            for f, x, y, w, h, s in dets]


def _lines(rows: list[tuple]) -> str:
    return "".join(",".join(str(v) for v in r) + "\n" for r in rows)


def write_tracking_sequence(tracking_dir: str | os.PathLike, seq_index: int, seed: int,
                            num_frames: int, size: int, fps: float) -> dict:
    """Render sequence ``seq_index`` and write it in every layout; returns its description."""
    from PIL import Image

    name = sequence_name(seq_index)
    side = TRACKING_SCALE * size
    scene, objects = tracking_scene(seq_index, seed, num_frames, side)
    frames, masks = render_scene(scene, num_frames, side)
    amodal = amodal_masks(scene, num_frames, side)

    root = str(tracking_dir)
    davis_img = os.path.join(root, "davis", "JPEGImages", DAVIS_RESOLUTION, name)
    davis_ann = os.path.join(root, "davis", "Annotations", DAVIS_RESOLUTION, name)
    mot = os.path.join(root, "mot", name)
    for d in (davis_img, davis_ann, os.path.join(mot, "img1"), os.path.join(mot, "gt"),
              os.path.join(mot, "det"), os.path.join(root, "videos")):
        os.makedirs(d, exist_ok=True)
    palette = davis_palette()
    for f in range(num_frames):
        buf = io.BytesIO()
        Image.fromarray(frames[f]).save(buf, format="JPEG", quality=95)
        data = buf.getvalue()
        with open(os.path.join(davis_img, f"{f:05d}.jpg"), "wb") as fh:
            fh.write(data)
        with open(os.path.join(mot, "img1", f"{f + 1:06d}.jpg"), "wb") as fh:
            fh.write(data)
        ann = Image.fromarray(masks[f]).convert("L")
        ann.putpalette(palette)  # L + palette -> 'P' mode
        ann.save(os.path.join(davis_ann, f"{f:05d}.png"))

    gt = gt_rows(masks, amodal)
    det = det_rows(gt, stream(seed, STREAM_TRACKING, seq_index, 0), num_frames, side)
    with open(os.path.join(mot, "gt", "gt.txt"), "w") as fh:
        fh.write(_lines(gt))
    with open(os.path.join(mot, "det", "det.txt"), "w") as fh:
        fh.write(_lines(det))
    rate = int(fps) if float(fps).is_integer() else fps
    with open(os.path.join(mot, "seqinfo.ini"), "w") as fh:
        fh.write(f"[Sequence]\nname={name}\nimDir=img1\nframeRate={rate}\nseqLength={num_frames}\n"
                 f"imWidth={side}\nimHeight={side}\nimExt=.jpg\n")
    encode_video(frames, os.path.join(root, "videos", f"{name}.mp4"), fps)
    return {"name": name, "num_frames": num_frames, "width": side, "height": side, "fps": fps,
            "seed": seed, "num_objects": len(objects), "gt_rows": len(gt), "det_rows": len(det),
            "objects": objects}


def write_tracking_index(tracking_dir: str | os.PathLike, sequences: list[dict]) -> None:
    """Write the DAVIS ImageSets list, the MOT seqmap and ``tracking/metadata.jsonl``."""
    root = str(tracking_dir)
    names = [s["name"] for s in sequences]
    sets = os.path.join(root, "davis", "ImageSets", "2017")
    os.makedirs(sets, exist_ok=True)
    with open(os.path.join(sets, "val.txt"), "w") as fh:
        fh.write("".join(f"{n}\n" for n in names))
    with open(os.path.join(root, "mot", "seqmap.txt"), "w") as fh:
        fh.write("name\n" + "".join(f"{n}\n" for n in names))
    with open(os.path.join(root, "metadata.jsonl"), "w") as fh:
        for s in sequences:
            fh.write(json.dumps(s) + "\n")
