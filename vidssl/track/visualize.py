"""PNG visualisations of tracking results: masks blended over frames, boxes drawn with ids.

Each picture is a strip of a few evenly spaced frames of one sequence (frame numbers on top).
"""

from __future__ import annotations

import os

import numpy as np

from vidssl.data.synthetic.tracking import davis_palette

_PALETTE = np.array(davis_palette(), dtype=np.uint8).reshape(256, 3)


def id_color(track_id: int) -> tuple[int, int, int]:
    """A stable, saturated colour per id (the DAVIS palette, skipping black)."""
    return tuple(int(c) for c in _PALETTE[1 + (int(track_id) - 1) % 255])


def overlay_mask(frame: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``uint8 (H, W, 3)`` frame with label map ``(H, W)`` blended in (0 = background)."""
    out = frame.astype(np.float32).copy()
    fg = labels > 0
    out[fg] = (1 - alpha) * out[fg] + alpha * _PALETTE[labels[fg] % 256]
    return out.clip(0, 255).astype(np.uint8)


def draw_boxes(frame: np.ndarray, boxes: list[tuple[int, np.ndarray]],
               gt: list[np.ndarray] | None = None) -> np.ndarray:
    """Frame with ``(id, (x, y, w, h))`` boxes in their id's colour (ground truth in white)."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(frame)
    draw = ImageDraw.Draw(im)
    for b in gt or []:
        if np.isfinite(b).all():
            draw.rectangle([b[0], b[1], b[0] + b[2], b[1] + b[3]], outline=(255, 255, 255))
    for tid, b in boxes:
        color = id_color(tid)
        draw.rectangle([b[0], b[1], b[0] + b[2], b[1] + b[3]], outline=color, width=2)
        draw.text((b[0] + 2, b[1] + 1), str(tid), fill=color)
    return np.asarray(im)


def pick_frames(num_frames: int, count: int) -> list[int]:
    """``count`` evenly spaced frame indices including the first and the last."""
    if num_frames <= count:
        return list(range(num_frames))
    return sorted({int(round(i)) for i in np.linspace(0, num_frames - 1, count)})


def save_strip(frames: list[np.ndarray], indices: list[int], path: str) -> str:
    """Frames side by side with their index above each; returns ``path``."""
    from PIL import Image, ImageDraw

    h, w = frames[0].shape[:2]
    pad = 14
    strip = Image.new("RGB", (len(frames) * (w + 4) - 4, h + pad), (0, 0, 0))
    draw = ImageDraw.Draw(strip)
    for i, (f, t) in enumerate(zip(frames, indices)):
        strip.paste(Image.fromarray(f), (i * (w + 4), pad))
        draw.text((i * (w + 4) + 2, 1), f"frame {t}", fill=(255, 255, 255))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    strip.save(path)
    return path
