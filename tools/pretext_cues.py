#!/usr/bin/env python
"""Can the order pretexts' questions be answered from a plain pixel statistic on this data?

    python tools/pretext_cues.py --root data/synthetic_large --videos 200

Draws questions with the methods' own samplers (O3N's odd-one-out, Shuffle & Learn's frame
tuples, default parameters) from videos under --root and answers them without any network, from
grey-level frames:

- O3N, *path ratio*: for each element, the summed frame-to-frame change over the change from
  its first to its last frame (a permuted element wanders: its path is long for where it ends);
  the answer is the element with the largest ratio. *roughness*: the largest mean
  frame-to-frame change.
- Shuffle & Learn, *detour*: ``(d(a, b) + d(b, c)) / d(a, c)`` for the tuple ``(a, b, c)``
  (a middle frame from outside the span is a detour); in order when below a threshold, chosen
  on half of the questions and scored on the other half.

With ``--encoder NAME`` (random init, seed 0; ``--encoder-kwargs`` JSON, e.g.
``'{"input_mode": "differences"}'``) it also asks whether the untrained network's pooled features
point at O3N's odd element: *farthest element*, the element whose standardised feature is
farthest from the mean of the other five (no training at all; BatchNorm on the question's own
batch, as at the first training step).

Accuracies come with 95% bootstrap intervals over videos. A statistic far above chance says the
question is answerable from the pixels (a network that stays at chance is held back by its
recipe, not by the data); one at chance says the cue a method needs is not in the frames at the
sampled spacing. docs/compare.md uses it for the order pretexts' ablation. Unreadable files are
skipped and counted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vidssl.data.decoders import open_video
from vidssl.data.index.datasets import VIDEO_EXTENSIONS
from vidssl.data.samplers import OddOneOutSampler
from vidssl.data.samplers.order import ShuffleLearnSampler
from vidssl.errors import VidsslError
from vidssl.eval.intervals import bootstrap_interval


def _frames(path: Path) -> torch.Tensor:
    """``(T, C, H, W)`` uint8 frames of one video."""
    with open_video(path) as dec:
        return dec.get_frames(np.arange(dec.metadata.num_frames))


def _dist(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.abs(x - y).mean())


def answer_questions(frames: np.ndarray, rng: np.random.Generator, questions: int,
                     o3n: OddOneOutSampler, sl: ShuffleLearnSampler,
                     encode: Callable[[list[np.ndarray]], torch.Tensor] | None = None) -> dict[str, list]:
    """Per-question outcomes on one video's grey frames ``(T, H, W)``; ``encode(views)`` (the
    element indices) -> ``(elements, D)`` features adds them under ``o3n_features``/``o3n_odd``."""
    out: dict[str, list] = {"o3n_path_ratio": [], "o3n_roughness": [], "sl_detour": [], "sl_label": [],
                            "o3n_features": [], "o3n_odd": []}
    for _ in range(questions):
        q = o3n(len(frames), 0.0, rng)
        if encode is not None:
            out["o3n_features"].append(encode(list(q.views)))
            out["o3n_odd"].append(q.targets["odd"])
        steps = [np.abs(np.diff(frames[v], axis=0)).mean(axis=(1, 2)) for v in q.views]
        ends = [_dist(frames[v[-1]], frames[v[0]]) for v in q.views]
        ratio = [s.sum() / (e + 1e-6) for s, e in zip(steps, ends)]
        out["o3n_path_ratio"].append(float(np.argmax(ratio) == q.targets["odd"]))
        out["o3n_roughness"].append(float(np.argmax([s.mean() for s in steps]) == q.targets["odd"]))
        t = sl(len(frames), 0.0, rng)
        a, b, c = (frames[v[0]] for v in t.views[:3])
        out["sl_detour"].append((_dist(a, b) + _dist(b, c)) / (_dist(a, c) + 1e-6))
        out["sl_label"].append(t.targets["in_order"])
    return out


def _interval(per_video: list[list[float]]) -> dict:
    means = np.array([np.mean(v) for v in per_video])
    lo, hi = bootstrap_interval(means)
    return {"acc": float(means.mean()), "interval": [lo, hi]}


def _element_encoder(name: str, kwargs: dict) -> Callable[[torch.Tensor, list[np.ndarray]], torch.Tensor]:
    """``encode(rgb, views)``: the random-init (seed 0) encoder's pooled features of the elements."""
    from vidssl.models.encoders import create_encoder

    torch.manual_seed(0)
    enc = create_encoder(name, **kwargs).train()      # BatchNorm on each question's own batch
    mean = torch.tensor(enc.preprocess.mean).view(1, 3, 1, 1, 1)
    std = torch.tensor(enc.preprocess.std).view(1, 3, 1, 1, 1)

    def encode(rgb: torch.Tensor, views: list[np.ndarray]) -> torch.Tensor:
        x = torch.stack([rgb[torch.from_numpy(np.array(v, dtype=np.int64))] for v in views])
        x = x.permute(0, 2, 1, 3, 4).float() / 255
        try:
            with torch.no_grad():
                return enc.forward_features((x - mean) / std).float()
        except (RuntimeError, ValueError) as err:
            raise VidsslError(f"encoder {name} cannot take O3N's elements {tuple(x.shape)}: "
                              f"{' '.join(str(err).split())[:160]}") from None

    return encode


def _farthest(per_video: list[dict]) -> dict:
    feats = torch.stack([f for v in per_video for f in v["o3n_features"]])       # (Q, n, D)
    flat = feats.flatten(0, 1)
    feats = (feats - flat.mean(0)) / (flat.std(0) + 1e-6)
    n = feats.shape[1]
    others = (feats.sum(1, keepdim=True) - feats) / (n - 1)
    pick = (feats - others).norm(dim=2).argmax(1).tolist()
    hits, k = [], 0
    for v in per_video:
        hits.append([float(pick[k + i] == odd) for i, odd in enumerate(v["o3n_odd"])])
        k += len(v["o3n_odd"])
    return _interval(hits)


def measure(root: str | Path, videos: int = 200, questions: int = 8, seed: int = 0,
            encoder: str | None = None, encoder_kwargs: dict | None = None) -> dict:
    """The statistics' accuracies on ``videos`` files drawn from ``root`` (see the module doc)."""
    root = Path(root)
    if not root.is_dir():
        raise VidsslError(f"--root {root}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS)
    if not files:
        raise VidsslError(f"--root {root}: no video files ({', '.join(VIDEO_EXTENSIONS)}) under it")
    rng = np.random.default_rng(seed)
    picked = [files[i] for i in rng.choice(len(files), min(videos, len(files)), replace=False)]
    o3n, sl = OddOneOutSampler(), ShuffleLearnSampler()
    element_encoder = _element_encoder(encoder, encoder_kwargs or {}) if encoder else None
    per_video: list[dict] = []
    skipped: list[str] = []
    for path in picked:
        try:
            rgb = _frames(path)
        except (VidsslError, RuntimeError, ValueError) as err:
            skipped.append(f"{path}: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
            continue
        if len(rgb) < 2:
            skipped.append(f"{path}: {len(rgb)} frame(s), a question needs 2 or more")
            continue
        encode = (lambda views, rgb=rgb: element_encoder(rgb, views)) if element_encoder else None
        per_video.append(answer_questions(rgb.float().mean(dim=1).numpy(), rng, questions, o3n, sl, encode))
    if len(per_video) < 2:
        raise VidsslError(f"--root {root}: only {len(per_video)} readable videos of {len(picked)} "
                          f"(first problem: {skipped[0] if skipped else 'none'})")
    # Shuffle & Learn's threshold: fitted on the first half of the videos, scored on the second
    half = len(per_video) // 2
    fit = np.concatenate([v["sl_detour"] for v in per_video[:half]])
    fit_label = np.concatenate([v["sl_label"] for v in per_video[:half]]).astype(bool)
    grid = np.quantile(fit, np.linspace(0.02, 0.98, 49))
    threshold = float(max(grid, key=lambda th: np.mean((fit < th) == fit_label)))
    sl_scored = [list((np.array(v["sl_detour"]) < threshold) == np.array(v["sl_label"], dtype=bool))
                 for v in per_video[half:]]
    o3n_out = {"chance": 1.0 / o3n.num_elements, "path_ratio": _interval([v["o3n_path_ratio"] for v in per_video]),
               "roughness": _interval([v["o3n_roughness"] for v in per_video])}
    if encoder:
        o3n_out["farthest_element"] = {**_farthest(per_video), "encoder": encoder,
                                       "encoder_kwargs": encoder_kwargs or {}}
    return {
        "root": str(root), "videos": len(per_video), "questions_per_video": questions, "seed": seed,
        "skipped": skipped, "o3n": o3n_out,
        "shuffle_learn": {"chance": 0.5, "detour": {**_interval([[float(x) for x in s] for s in sl_scored]),
                                                    "threshold": threshold, "scored_videos": len(sl_scored)}},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, help="folder of videos (searched recursively)")
    p.add_argument("--videos", type=int, default=200, help="videos drawn (%(default)s)")
    p.add_argument("--questions", type=int, default=8, help="questions per video and pretext (%(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encoder", help="also score an untrained encoder's features (a registered name)")
    p.add_argument("--encoder-kwargs", default="{}", help="its architecture arguments as JSON (%(default)s)")
    p.add_argument("--out", help="also write the result as JSON here")
    args = p.parse_args(argv)
    try:
        try:
            kwargs = json.loads(args.encoder_kwargs)
        except json.JSONDecodeError as err:
            raise VidsslError(f"--encoder-kwargs is not JSON: {err}") from None
        if not isinstance(kwargs, dict):
            raise VidsslError(f"--encoder-kwargs must be a JSON object, got {args.encoder_kwargs!r}")
        result = measure(args.root, args.videos, args.questions, args.seed, args.encoder, kwargs)
    except VidsslError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if result["skipped"]:
        print(f"skipped {len(result['skipped'])} unreadable videos", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
