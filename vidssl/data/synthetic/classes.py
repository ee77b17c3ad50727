"""The action classes: each one is a *temporal structure*, rendered with any appearance.

A class is a function ``dynamics(appearance, t, rng, instance) -> Motion`` where ``t`` holds the
normalised time of every frame (``0 .. 1`` over the clip, so the event fits at any frame count)
and ``rng`` draws the class-specific parameters (restitution, split axis, number of fragments, ...).
Positions are fractions of the frame side, ``y`` points down.

Design rules (docs/design SYNTHETIC.md lessons 2 and 3): the dynamics are physically
irreversible (gravity with losses, friction, break-up, fading, dissipation), no class is the time
reversal of another (there is no Launch, SpinUp, Merge, FadeIn, SpiralOut, Solidify or Erase),
and the local appearance changes over time (speed, size, shape, number of pieces, opacity, trail
length), so the arrow of time is visible without absolute positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, NamedTuple

import numpy as np

from vidssl.data.synthetic.appearance import Appearance
from vidssl.data.synthetic.render import Part, Scene, Stroke, Style, make_background, render_scene


@dataclass
class Motion:
    """What a class contributes to a scene: parts, strokes and the parameters it drew."""

    parts: list[Part]
    strokes: list[Stroke] = field(default_factory=list)
    params: dict = field(default_factory=dict)


Dynamics = Callable[[Appearance, np.ndarray, np.random.Generator, int], Motion]


def _full(T: int, value: float) -> np.ndarray:
    return np.full(T, value, np.float64)


def _part(style: Style, inst: int, cx, cy, rx, ry, angle, alpha=1.0, roundness=None) -> Part:
    T = max(np.size(a) for a in (cx, cy, rx, ry, angle, alpha))
    b = lambda a: np.broadcast_to(np.asarray(a, np.float64), (T,)).copy()  # noqa: E731
    return Part(style, inst, b(cx), b(cy), b(rx), b(ry), b(angle), b(alpha),
                None if roundness is None else b(roundness))


def _fold(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect ``x`` into ``[lo, hi]`` (a ball bouncing off two walls)."""
    span = max(hi - lo, 1e-6)
    z = np.mod(x - lo, 2 * span)
    return lo + np.where(z > span, 2 * span - z, z)


def _ease_out(s: np.ndarray) -> np.ndarray:
    """Constant deceleration to rest: position fraction for time fraction ``s`` in [0, 1]."""
    s = np.clip(s, 0.0, 1.0)
    return 1.0 - (1.0 - s) ** 2


def _r(x: float) -> float:
    return round(float(x), 5)


# ----------------------------------------------------------------------------------- classes --

def bounce(app: Appearance, t: np.ndarray, rng: np.random.Generator, inst: int) -> Motion:
    """Dropped under gravity, bounces on the floor losing energy each time, rolls sideways."""
    T, r = len(t), app.size
    floor = 0.93 - r
    y0 = 0.06 + r + rng.uniform(0.0, 0.12)
    e = rng.uniform(0.55, 0.72)  # restitution
    t1 = min(rng.uniform(0.2, 0.26) / app.speed, 0.3)  # first impact
    g = 2 * (floor - y0) / t1**2
    y = np.full(T, floor)
    y[t < t1] = y0 + 0.5 * g * t[t < t1] ** 2
    start, v = t1, e * g * t1
    while v > 0.02 * g * t1 and start < 1.0:  # successive parabolic hops
        dur = 2 * v / g
        m = (t >= start) & (t < start + dur)
        dt = t[m] - start
        y[m] = floor - (v * dt - 0.5 * g * dt**2)
        start, v = start + dur, v * e
    vx = app.direction * rng.uniform(0.12, 0.3)
    x_free = app.start_x + vx * t
    x = _fold(x_free, r + 0.02, 0.98 - r)
    near = np.clip(1.0 - (floor - y) / (0.35 * r), 0.0, 1.0)  # squash at impacts
    speed = np.abs(np.gradient(y, t)) / (g * t1)
    squash = 0.22 * near * np.clip(speed, 0.0, 1.0)
    rx, ry = r * (1 + squash), r * (1 - squash)
    y = y + r * squash  # keep the squashed bottom on the floor
    angle = app.angle0 + (x_free - app.start_x) / r  # rolling
    return Motion([_part(app.style(), inst, x, y, rx, ry, angle)],
                  params={"restitution": _r(e), "first_impact": _r(t1), "drop_y": _r(y0),
                          "vx": _r(vx)})


def slide_stop(app: Appearance, t: np.ndarray, rng: np.random.Generator, inst: int) -> Motion:
    """Pushed from rest, friction slows it (constant deceleration) until it stops and stays."""
    r = app.size
    d = rng.uniform(0.32, 0.46)
    t_push = rng.uniform(0.0, 0.12)
    t_stop = min(t_push + rng.uniform(0.4, 0.6) / app.speed, 0.95)
    x0 = 0.5 - app.direction * d / 2 + (app.start_x - 0.5) * 0.1
    s = _ease_out((t - t_push) / (t_stop - t_push))
    x = x0 + app.direction * d * s
    y = 0.25 + 0.5 * app.start_y
    angle = app.angle0 + app.direction * d * s / r  # it rolls as it slides: texture slows too
    return Motion([_part(app.style(), inst, x, y, r, r, angle)],
                  params={"distance": _r(d), "push": _r(t_push), "stop": _r(t_stop)})


def spin_down(app: Appearance, t: np.ndarray, rng: np.random.Generator, inst: int) -> Motion:
    """An elongated, marked object spinning in place, slowed by friction until it stops."""
    T, r = len(t), app.size
    t_stop = min(rng.uniform(0.55, 0.8) / app.speed, 0.95)
    total = rng.uniform(1.5, 2.5) * 2 * math.pi
    total = min(total, 0.6 * t_stop * (T - 1))  # peak <= 1.2 rad/frame: no wagon-wheel effect
    angle = app.angle0 + app.direction * total * _ease_out(t / t_stop)
    cx = 0.5 + (app.start_x - 0.5) * 0.5
    cy = 0.5 + (app.start_y - 0.5) * 0.5
    rx, ry = 1.55 * r, 0.6 * r
    body = _part(app.style(), inst, cx, cy, rx, ry, angle)
    mark = Style("circle", app.style().texture_color)
    dot = _part(mark, inst, cx + np.cos(angle) * rx * 0.62, cy + np.sin(angle) * rx * 0.62,
                0.32 * ry * 1.6, 0.32 * ry * 1.6, angle)
    return Motion([body, dot], params={"stop": _r(t_stop), "turns": _r(total / (2 * math.pi))})


def split(app: Appearance, t: np.ndarray, rng: np.random.Generator, inst: int) -> Motion:
    """One object stretches, pinches and divides into two halves that drift apart and slow."""
    r = app.size
    ts = min(rng.uniform(0.3, 0.42) / app.speed, 0.6)
    axis = app.angle0
    dist = rng.uniform(0.16, 0.24)
    tau = 0.15 / app.speed
    piece = r / math.sqrt(2)
    reach = 0.55 * r + dist + piece * 1.6 + 0.02
    mx, my = abs(math.cos(axis)) * reach + 0.02, abs(math.sin(axis)) * reach + 0.02
    cx = float(np.clip(app.start_x, min(mx, 0.5), max(1 - mx, 0.5)))
    cy = float(np.clip(app.start_y, min(my, 0.5), max(1 - my, 0.5)))
    pinch = np.clip((t - (ts - 0.15)) / 0.15, 0.0, 1.0)
    before = (t < ts).astype(np.float64)
    whole = _part(app.style(), inst, cx, cy, r * (1 + 0.4 * pinch), r * (1 - 0.22 * pinch),
                  axis, before)
    after = 1.0 - before
    off = 0.55 * r + dist * (1 - np.exp(-np.maximum(t - ts, 0.0) / tau))
    spin = app.direction * 0.8 * (1 - np.exp(-np.maximum(t - ts, 0.0) / tau))
    parts = [whole]
    for sign in (-1.0, 1.0):
        parts.append(_part(app.style(), inst, cx + sign * off * math.cos(axis),
                           cy + sign * off * math.sin(axis), piece, piece,
                           axis + sign * spin, after))
    return Motion(parts, params={"split_time": _r(ts), "axis": _r(axis), "distance": _r(dist)})


def pop(app: Appearance, t: np.ndarray, rng: np.random.Generator, inst: int) -> Motion:
    """Inflates slowly (with a slight wobble), then bursts into small fragments that fly, fade."""
    r = app.size
    tp = min(rng.uniform(0.45, 0.6) / app.speed, 0.8)
    grow = rng.uniform(0.55, 0.75)
    big = r * (1 + grow)
    cx = float(np.clip(app.start_x, big + 0.03, 1 - big - 0.03))
    cy = float(np.clip(app.start_y, big + 0.03, 1 - big - 0.03))
    infl = np.clip(t / tp, 0.0, 1.0) ** 1.5
    wob = 1 + 0.04 * np.sin(2 * math.pi * 5 * t) * infl
    alive = (t < tp).astype(np.float64)
    parts = [_part(app.style(), inst, cx, cy, r * (1 + grow * infl) * wob,
                   r * (1 + grow * infl) / wob, app.angle0, alive)]
    n = int(rng.integers(6, 11))
    fade = rng.uniform(0.2, 0.3) / app.speed
    dt = np.maximum(t - tp, 0.0)
    alpha = np.where(t >= tp, np.clip(1 - dt / fade, 0.0, 1.0), 0.0)
    for k in range(n):
        phi = 2 * math.pi * k / n + rng.uniform(-0.25, 0.25)
        v = rng.uniform(0.14, 0.3)
        fr = r * rng.uniform(0.22, 0.32) * (1 + grow)
        dist = big * 0.6 + v * (1 - np.exp(-dt / 0.1))
        shrink = fr * np.clip(1 - 0.4 * dt / fade, 0.3, None)
        parts.append(_part(app.style(), inst, cx + dist * math.cos(phi), cy + dist * math.sin(phi),
                           shrink, shrink, app.angle0 + rng.uniform(-6, 6) * dt, alpha))
    return Motion(parts, params={"pop_time": _r(tp), "fragments": n, "growth": _r(grow)})


def fade_out(app: Appearance, t: np.ndarray, rng: np.random.Generator, inst: int) -> Motion:
    """Drifts slowly while its opacity falls to zero (it dims into the background and is gone)."""
    r = app.size
    t0 = rng.uniform(0.1, 0.25) / app.speed
    dur = rng.uniform(0.35, 0.5) / app.speed
    alpha = np.clip(1 - (t - t0) / dur, 0.0, 1.0)
    x = app.start_x + app.direction * 0.08 * t
    return Motion([_part(app.style(), inst, x, app.start_y, r, r, app.angle0, alpha)],
                  params={"fade_start": _r(t0), "fade_duration": _r(dur)})


def spiral_in(app: Appearance, t: np.ndarray, rng: np.random.Generator, inst: int) -> Motion:
    """Orbits a centre on a shrinking radius, speeding up (angular momentum), shrinking into it."""
    T, r = len(t), app.size
    cx = 0.5 + (app.start_x - 0.5) * 0.15
    cy = 0.5 + (app.start_y - 0.5) * 0.15
    r0 = min(cx, cy, 1 - cx, 1 - cy) - r - 0.03
    tend = min(rng.uniform(0.7, 0.9) / app.speed, 0.98)
    rad = r0 * (1 - np.clip(t / tend, 0.0, 1.0)) ** 0.8
    w0 = 2 * math.pi * rng.uniform(0.9, 1.3) * app.speed / max(T - 1, 1)  # rad per frame
    w = np.minimum(w0 * r0 / np.maximum(rad, 0.15 * r0), 0.8)
    theta = app.angle0 + app.direction * np.concatenate([[0.0], np.cumsum(w[:-1])])
    scale = 0.4 + 0.6 * np.sqrt(rad / r0)
    return Motion([_part(app.style(), inst, cx + rad * np.cos(theta), cy + rad * np.sin(theta),
                         r * scale, r * scale, theta)],
                  params={"radius0": _r(r0), "end": _r(tend), "omega0": _r(w0)})


def pendulum(app: Appearance, t: np.ndarray, rng: np.random.Generator, inst: int) -> Motion:
    """Hangs from a rod and swings along an arc whose amplitude decays (damping)."""
    r = app.size
    length = rng.uniform(0.45, 0.58)
    theta0 = app.direction * rng.uniform(0.55, 0.85)
    period = rng.uniform(0.3, 0.42) / app.speed
    gamma = -math.log(rng.uniform(0.12, 0.3)) * app.speed
    slack = max(0.0, 0.5 - r - length * math.sin(abs(theta0)) - 0.02)
    px, py = 0.5 + (app.start_x - 0.5) * 2 * slack, 0.06
    theta = theta0 * np.exp(-gamma * t) * np.cos(2 * math.pi * t / period)
    x, y = px + length * np.sin(theta), py + length * np.cos(theta)
    rod_color = tuple(0.5 * c + 0.5 * 128 for c in app.color)
    rod = Stroke("rod", np.stack([x, y], 1), 0.025, rod_color, 1.0, anchor=(px, py))
    return Motion([_part(app.style(), inst, x, y, r, r, app.angle0 - theta)], [rod],
                  params={"length": _r(length), "amplitude": _r(theta0), "period": _r(period),
                          "damping": _r(gamma)})


def melt(app: Appearance, t: np.ndarray, rng: np.random.Generator, inst: int) -> Motion:
    """Standing on the floor, it loses height and spreads sideways into a rounded puddle."""
    r = app.size
    t0 = rng.uniform(0.1, 0.25) / app.speed
    dur = rng.uniform(0.45, 0.6) / app.speed
    s = np.clip((t - t0) / dur, 0.0, 1.0)
    m = s * s * (3 - 2 * s)
    h = 1 - 0.78 * m
    w_end = min(0.22 ** -0.8, 0.44 / (0.85 * r))
    w = 1 + (w_end - 1) * (1 - h) / 0.78
    rx, ry = 0.85 * r * w, 1.25 * r * h
    cx = float(np.clip(app.start_x, 0.85 * r * w_end + 0.03, 1 - 0.85 * r * w_end - 0.03))
    floor = 0.92
    return Motion([_part(app.style(), inst, cx, floor - ry, rx, ry, 0.0, 1.0, roundness=m)],
                  params={"melt_start": _r(t0), "melt_duration": _r(dur), "spread": _r(w_end)})


def draw_trail(app: Appearance, t: np.ndarray, rng: np.random.Generator, inst: int) -> Motion:
    """A small object wanders on a curving path and leaves a persistent trail behind it."""
    T, r = len(t), app.size * 0.75
    length = rng.uniform(0.9, 1.4) * app.speed
    k1 = rng.choice([-1, 1]) * rng.uniform(1.0, 3.0)
    k2, f, ph = rng.uniform(0.5, 1.5), rng.uniform(0.8, 1.6), rng.uniform(0, 2 * math.pi)
    heading = app.angle0 + k1 * t + k2 * np.sin(2 * math.pi * f * t + ph)
    dt = 1.0 / max(T - 1, 1)
    step = length * dt
    x = app.start_x + np.concatenate([[0.0], np.cumsum(step * np.cos(heading[:-1]))])
    y = app.start_y + np.concatenate([[0.0], np.cumsum(step * np.sin(heading[:-1]))])
    lo, hi = r + 0.03, 0.97 - r
    x, y = _fold(x, lo, hi), _fold(y, lo, hi)
    trail = Stroke("trail", np.stack([x, y], 1), 0.8 * r, tuple(float(c) for c in app.color), 0.8)
    return Motion([_part(app.style(), inst, x, y, r, r, heading)], [trail],
                  params={"path_length": _r(length), "turn_rate": _r(k1), "wiggle": _r(k2)})


# ------------------------------------------------------------------------------------ registry --

CLASS_DYNAMICS: dict[str, Dynamics] = {
    "Bounce": bounce,
    "SlideStop": slide_stop,
    "SpinDown": spin_down,
    "Split": split,
    "Pop": pop,
    "FadeOut": fade_out,
    "SpiralIn": spiral_in,
    "Pendulum": pendulum,
    "Melt": melt,
    "DrawTrail": draw_trail,
}

SYNTHETIC_CLASSES: list[str] = list(CLASS_DYNAMICS)

# Classes whose object stays one compact piece: the ones used for the tracking sequences (an
# object that divides or shatters has no single box).
TRACKING_CLASSES: list[str] = [c for c in SYNTHETIC_CLASSES if c not in ("Split", "Pop")]


def class_motion(class_name: str, app: Appearance, t: np.ndarray, rng: np.random.Generator,
                 instance: int = 1) -> Motion:
    """Run one class's dynamics (``KeyError`` message lists the classes)."""
    try:
        fn = CLASS_DYNAMICS[class_name]
    except KeyError:
        raise KeyError(f"unknown synthetic class {class_name!r}; choose one of "
                       f"{SYNTHETIC_CLASSES}") from None
    return fn(app, t, rng, instance)


def scaled(app: Appearance, factor: float) -> Appearance:
    """The same appearance with the object size scaled (tracking scenes use smaller objects)."""
    return replace(app, size=app.size * factor)


# ---------------------------------------------------------------------------------- rendering --

class RenderedClip(NamedTuple):
    """A rendered clip: ``frames`` uint8 ``(T, H, W, 3)``, ``masks`` uint8 ``(T, H, W)`` (1 where
    the object covers more than half a pixel, else 0) and the dynamics ``params`` drawn."""

    frames: np.ndarray
    masks: np.ndarray
    params: dict


def background(app: Appearance, size: int) -> np.ndarray:
    """The clip's static background, ``(size, size, 3)`` float32."""
    return make_background(app.background, app.bg_color, app.bg_color2, app.bg_angle,
                           app.bg_noise_seed, app.bg_noise_cells, size, app.bg_brightness)


def clip_times(num_frames: int) -> np.ndarray:
    """Normalised time of each frame: ``0 .. 1`` over the clip."""
    return np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)


def render_clip(class_name: str, appearance: Appearance, num_frames: int = 48, size: int = 64,
                rng: np.random.Generator | None = None) -> RenderedClip:
    """Render one clip of ``class_name`` with ``appearance`` - no files involved.

    ``rng`` draws the class-specific parameters (default: ``numpy.random.default_rng(0)``); the
    same arguments always give identical frames.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    motion = class_motion(class_name, appearance, clip_times(num_frames), rng, 1)
    scene = Scene(background(appearance, size), motion.parts, motion.strokes)
    frames, masks = render_scene(scene, num_frames, size)
    return RenderedClip(frames, masks, motion.params)
