"""Counterfactual triplets: does an encoder group clips by their action or by their look?

The synthetic classes are defined by motion and the appearance is drawn independently of the
class, so the generator can render what no real dataset has: the same action with another look,
and another action with the same look. Triplet ``i`` holds

* ``anchor``: class ``a`` with appearance ``A``;
* ``motion``: class ``a`` with an independent appearance ``B`` (same action, other look);
* ``look``: another class ``b`` with appearance ``A`` (same look, other action).

"Appearance" is everything :class:`~vidssl.data.synthetic.appearance.Appearance` holds: shape,
colours, texture, background, size, and the start position, direction and speed. The
appearances come from groups the dataset never uses (``group >= FIRST_GROUP``), so the clips are
new to any encoder trained on it. Frames, size, fps and ``time_cue`` follow the dataset's
manifest. The `counterfactual` protocol (:mod:`vidssl.eval.counterfactual`) measures it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidssl.data.synthetic.appearance import STREAM_DYNAMICS, clip_appearance, stream
from vidssl.data.synthetic.classes import SYNTHETIC_CLASSES, render_clip
from vidssl.data.synthetic.generate import dusk
from vidssl.data.video_io import encode_video
from vidssl.errors import ConfigError, DatasetError

STREAM_COUNTERFACTUAL = 7
FIRST_GROUP = 100_000          # appearance groups far beyond any dataset's
ROLES = ("anchor", "motion", "look")


@dataclass(frozen=True)
class Triplet:
    """One triplet's files (relative to the folder it was written to) and classes."""

    anchor: str
    motion: str
    look: str
    anchor_class: str
    look_class: str


def dataset_params(root: str | os.PathLike) -> dict:
    """The generator parameters of the synthetic dataset at ``root`` (its ``synthetic.json``)."""
    path = Path(root) / "synthetic.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DatasetError(f"{path}: not a vidssl synthetic dataset manifest ({err})") from None
    if manifest.get("generator") != "vidssl.synthetic" or "params" not in manifest:
        raise DatasetError(f"{path}: not written by vidssl make-synthetic")
    return dict(manifest["params"])


def write_counterfactual(out: str | os.PathLike, params: dict, *, num_triplets: int = 100,
                         seed: int = 0) -> list[Triplet]:
    """Render ``num_triplets`` triplets as ``out/<Class>/cfNNNN_<role>.avi`` (a folder-per-class
    tree) with the dataset generator ``params`` (``num_frames``, ``size``, ``fps``, ``seed``,
    ``num_classes``, ``time_cue``); the same arguments always give the same files."""
    if num_triplets < 1:
        raise ConfigError(f"num_triplets must be at least 1, got {num_triplets}")
    num_classes = int(params.get("num_classes", len(SYNTHETIC_CLASSES)))
    if num_classes < 2:
        raise ConfigError("counterfactual triplets need at least 2 classes")
    data_seed, cue = int(params.get("seed", 0)), float(params.get("time_cue", 0.0))
    frames, size, fps = int(params["num_frames"]), int(params["size"]), float(params["fps"])
    out = Path(out)
    triplets = []
    for i in range(num_triplets):
        rng = stream(seed, STREAM_COUNTERFACTUAL, i)
        a, b = (int(c) for c in rng.choice(num_classes, size=2, replace=False))
        look_a = clip_appearance(data_seed, a, FIRST_GROUP + 2 * i, 0)
        look_b = clip_appearance(data_seed, a, FIRST_GROUP + 2 * i + 1, 0)
        names = {}
        for k, (role, ci, app) in enumerate(zip(ROLES, (a, a, b), (look_a, look_b, look_a))):
            cname = SYNTHETIC_CLASSES[ci]
            dyn = np.random.default_rng(np.random.SeedSequence(
                [seed, STREAM_COUNTERFACTUAL, STREAM_DYNAMICS, i, k]))
            clip = render_clip(cname, app, frames, size, dyn)
            rel = f"{cname}/cf{i:04d}_{role}.avi"
            (out / cname).mkdir(parents=True, exist_ok=True)
            encode_video(dusk(clip.frames, cue), out / rel, fps)
            names[role] = rel
        triplets.append(Triplet(names["anchor"], names["motion"], names["look"],
                                SYNTHETIC_CLASSES[a], SYNTHETIC_CLASSES[b]))
    return triplets
