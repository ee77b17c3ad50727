"""Appearance of a synthetic clip, drawn independently of its action class (by default).

Two levels, like UCF101 where the clips of one group ``gGG`` are cut from one source video:

* the **source** appearance of a group (background kind and colours, object shape, colour,
  texture, size) is drawn once per ``(class, group)``;
* each **clip** jitters it a little (colour shift, background brightness, size) and draws its own
  start position, direction, orientation and speed (time scale of the dynamics).

With probability ``appearance_correlation`` a group takes its background and object colour from
a fixed per-class palette instead (scene bias, SYNTHETIC.md lesson 4). That decision uses its own
random stream, so the groups that are not switched look the same at every correlation value.

Every random draw comes from ``numpy.random.SeedSequence([seed, stream, class, group, clip])``:
results do not depend on worker count or generation order.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from vidssl.data.synthetic.render import BACKGROUNDS, SHAPES, TEXTURES, Style

# Random-stream tags (the second SeedSequence word), one per purpose.
STREAM_SOURCE, STREAM_PALETTE_CHOICE, STREAM_PALETTE, STREAM_CLIP, STREAM_DYNAMICS = 1, 2, 3, 4, 5
STREAM_TRACKING = 6

SPEED_RANGE = (0.8, 1.25)
SIZE_RANGE = (0.085, 0.13)


def stream(seed: int, *key: int) -> np.random.Generator:
    """The generator for one purpose: ``SeedSequence([seed, *key])``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), *map(int, key)]))


@dataclass(frozen=True)
class Appearance:
    """Everything about a clip except its class dynamics (JSON-serialisable via :meth:`to_dict`).

    Colours are RGB 0..255, lengths fractions of the frame side, angles radians.

    Attributes:
        shape, color, texture, texture_color, texture_freq, texture_angle: the object's fill.
        background: ``solid``, ``gradient`` or ``noise``; ``bg_color``/``bg_color2`` its colours,
            ``bg_angle`` the gradient direction, ``bg_noise_seed``/``bg_noise_cells`` the noise.
        bg_brightness: per-clip offset added to the background.
        size: object radius (equal-area circle).
        speed: time scale of the dynamics (1 = nominal; 1.25 = events happen 25% sooner).
        start_x, start_y: start position (each class reads what it needs).
        direction: +1 or -1 (left/right, clockwise/anticlockwise).
        angle0: initial orientation.
        palette: True when background and colour came from the class palette.
    """

    shape: str
    color: tuple[int, int, int]
    texture: str
    texture_color: tuple[int, int, int]
    texture_freq: float
    texture_angle: float
    background: str
    bg_color: tuple[int, int, int]
    bg_color2: tuple[int, int, int]
    bg_angle: float
    bg_noise_seed: int
    bg_noise_cells: int
    bg_brightness: float
    size: float
    speed: float
    start_x: float
    start_y: float
    direction: int
    angle0: float
    palette: bool = False

    def style(self) -> Style:
        return Style(self.shape, tuple(map(float, self.color)), self.texture,
                     tuple(map(float, self.texture_color)), self.texture_freq, self.texture_angle)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("color", "texture_color", "bg_color", "bg_color2"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Appearance":
        names = {f.name for f in fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        return cls(**kw)


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (round(r * 255), round(g * 255), round(b * 255))


def _dist(a, b) -> float:
    return float(np.linalg.norm(np.subtract(a, b, dtype=np.float64)))


def _mean(a, b) -> tuple[float, float, float]:
    return tuple((np.asarray(a, np.float64) + np.asarray(b, np.float64)) / 2)


def texture_color(color, tone: str) -> tuple[int, int, int]:
    """The second texture colour: a darker or a lighter version of the body colour."""
    if tone == "dark":
        return tuple(round(c * 0.4) for c in color)
    return tuple(round(c + (255 - c) * 0.65) for c in color)


def sample_background(rng: np.random.Generator) -> dict:
    """Background kind and colours (dark or light, low saturation)."""
    dark_bg = bool(rng.random() < 0.5)
    h = float(rng.random())
    bg_v = rng.uniform(0.08, 0.35) if dark_bg else rng.uniform(0.7, 0.95)
    bg_s = rng.uniform(0.0, 0.55)
    return {
        "background": BACKGROUNDS[rng.integers(len(BACKGROUNDS))],
        "bg_color": _hsv(h, bg_s, bg_v),
        "bg_color2": _hsv(h + rng.uniform(-0.12, 0.12), bg_s + rng.uniform(-0.2, 0.2),
                          bg_v + (rng.uniform(0.1, 0.25) if dark_bg else -rng.uniform(0.1, 0.25))),
        "bg_angle": float(rng.uniform(0, 2 * math.pi)),
        "bg_noise_seed": int(rng.integers(2**31 - 1)),
        "bg_noise_cells": int(rng.integers(3, 8)),
    }


def sample_source(rng: np.random.Generator, background: dict | None = None) -> dict:
    """A group's source appearance: background (drawn, or the given one) and the object's shape,
    colour (contrasting with the background), texture and size."""
    bg = sample_background(rng) if background is None else dict(background)
    bg_mean = _mean(bg["bg_color"], bg["bg_color2"])
    dark_bg = float(np.dot(bg_mean, (0.299, 0.587, 0.114))) < 128
    color = None
    for _ in range(50):  # object colour contrasting with the background (rejection sampling)
        v = rng.uniform(0.7, 1.0) if dark_bg else rng.uniform(0.3, 0.7)
        color = _hsv(rng.random(), rng.uniform(0.5, 1.0), v)
        if _dist(color, bg_mean) > 130:
            break
    tone = "dark" if rng.random() < 0.5 else "light"
    return {
        "shape": SHAPES[rng.integers(len(SHAPES))],
        "color": color,
        "texture": TEXTURES[rng.integers(len(TEXTURES))],
        "texture_tone": tone,
        "texture_color": texture_color(color, tone),
        "texture_freq": float(rng.uniform(1.2, 2.2)),
        "texture_angle": float(rng.uniform(0, math.pi)),
        "size": float(rng.uniform(*SIZE_RANGE)),
        **bg,
    }


def class_palette(class_index: int, rng: np.random.Generator) -> dict:
    """Background kind/colours and object colour fixed by the class (with a little jitter)."""
    h = class_index * 0.381966 % 1.0  # golden-angle hues: neighbours are far apart
    dark = class_index % 2 == 0
    j = lambda: float(rng.uniform(-0.02, 0.02))  # noqa: E731
    bg1 = _hsv(h + j(), 0.55, (0.25 if dark else 0.85) + j())
    bg2 = _hsv(h + 0.08 + j(), 0.45, (0.4 if dark else 0.7) + j())
    color = _hsv(h + 0.5 + j(), 0.9, (0.95 if dark else 0.45) + j())
    return {
        "background": BACKGROUNDS[class_index % len(BACKGROUNDS)],
        "bg_color": bg1,
        "bg_color2": bg2,
        "color": color,
    }


def sample_clip(source: dict, rng: np.random.Generator, palette: bool = False) -> Appearance:
    """Jitter a source appearance for one clip and draw its start state and speed."""
    shift = rng.uniform(-8, 8, size=3)
    color = tuple(int(np.clip(round(c + s), 0, 255)) for c, s in zip(source["color"], shift))
    tex = tuple(int(np.clip(round(c + s), 0, 255)) for c, s in zip(source["texture_color"], shift))
    lo, hi = SPEED_RANGE
    return Appearance(
        shape=source["shape"], color=color, texture=source["texture"], texture_color=tex,
        texture_freq=source["texture_freq"],
        texture_angle=float(source["texture_angle"] + rng.normal(0, 0.1)),
        background=source["background"], bg_color=tuple(source["bg_color"]),
        bg_color2=tuple(source["bg_color2"]), bg_angle=source["bg_angle"],
        bg_noise_seed=source["bg_noise_seed"], bg_noise_cells=source["bg_noise_cells"],
        bg_brightness=float(rng.uniform(-10, 10)),
        size=float(source["size"] * rng.uniform(0.92, 1.08)),
        speed=float(math.exp(rng.uniform(math.log(lo), math.log(hi)))),
        start_x=float(rng.uniform(0.3, 0.7)), start_y=float(rng.uniform(0.3, 0.7)),
        direction=int(rng.choice([-1, 1])), angle0=float(rng.uniform(0, 2 * math.pi)),
        palette=palette,
    )


def group_source(seed: int, class_index: int, group: int, correlation: float) -> tuple[dict, bool]:
    """The source appearance of ``(class_index, group)`` and whether the class palette was used."""
    source = sample_source(stream(seed, STREAM_SOURCE, class_index, group))
    use_palette = bool(stream(seed, STREAM_PALETTE_CHOICE, class_index, group).random()
                       < correlation)
    if use_palette:
        source.update(class_palette(class_index, stream(seed, STREAM_PALETTE, class_index, group)))
        source["texture_color"] = texture_color(source["color"], source["texture_tone"])
    return source, use_palette


def clip_appearance(seed: int, class_index: int, group: int, clip: int,
                    correlation: float = 0.0) -> Appearance:
    """The appearance of clip ``clip`` of group ``group`` of class ``class_index`` (0-based ids)."""
    source, use_palette = group_source(seed, class_index, group, correlation)
    return sample_clip(source, stream(seed, STREAM_CLIP, class_index, group, clip), use_palette)
