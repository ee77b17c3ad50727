"""``run_tracking``: one appearance model, one task (VOS / SOT / MOT), every sequence of a
dataset, metrics, results JSON and a few PNG visualisations.

    from vidssl.track import run_tracking
    res = run_tracking("vos", data="data/synthetic", encoder="r3d_tiny", out="runs/track")
    res["summary"]["J&F"]

Settings: :class:`TrackConfig` (YAML ``configs/track/*.yaml``, CLI ``KEY=VALUE``), sections
``adapter``, ``propagation``, ``association``, ``sot``.

Each sequence is streamed: frames are decoded from their files as the adapter needs them
(:class:`~vidssl.track.datasets.FrameSequence`), encoded one clip at a time
(:meth:`AppearanceAdapter.iter_features`), and every head takes one frame's map at a time, so
memory does not grow with a sequence's length; the PNG strips re-read the frames they draw.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from vidssl.errors import ConfigError
from vidssl.runtime.device import resolve_device
from vidssl.runtime.progress import progress_bar
from vidssl.track.adapter import AppearanceAdapter, build_adapter
from vidssl.track.association import AssociationConfig, AssociationTracker, roi_features
from vidssl.track.datasets import resolve_dataset, write_mot_results
from vidssl.track.metrics import (SequenceJF, mot_accumulator, mot_summary, precision_at,
                                  success_auc, summarize_jf)
from vidssl.track.propagation import PropagationConfig, iter_propagate_masks
from vidssl.track.sot import SotConfig, track_object
from vidssl.track.visualize import draw_boxes, overlay_mask, pick_frames, save_strip

TASKS = ("vos", "sot", "mot")
log = logging.getLogger("vidssl")


@dataclass
class AdapterSettings:
    """How the encoder becomes per-frame maps (see :mod:`vidssl.track.adapter`)."""

    layer: str = "layer3"
    stride: int = 8
    window: int = 0  # frames per 3D / ViT clip; 0 = the encoder's clip length
    context: int = 4
    vit_layer: int = -1


@dataclass
class TrackConfig:
    """``vidssl track`` settings."""

    adapter: AdapterSettings = field(default_factory=AdapterSettings)
    propagation: PropagationConfig = field(default_factory=PropagationConfig)
    association: AssociationConfig = field(default_factory=AssociationConfig)
    sot: SotConfig = field(default_factory=SotConfig)
    mot_detections: str = "det"  # det: det/det.txt; gt: ground-truth boxes as detections
    frame_scale: int = 1  # upsample frames by this factor before the adapter (small frames)
    device: str = "cpu"  # auto | cpu | cuda | cuda:N
    max_sequences: int = 0  # 0 = all
    visualize: int = 3  # sequences drawn as PNG strips
    vis_frames: int = 4

    def validate(self) -> "TrackConfig":
        self.propagation.validate()
        self.association.validate()
        self.sot.validate()
        if self.mot_detections not in ("det", "gt"):
            raise ConfigError(f"mot_detections must be 'det' or 'gt', got {self.mot_detections!r}")
        if not isinstance(self.frame_scale, int) or not 1 <= self.frame_scale <= 8:
            raise ConfigError(f"frame_scale must be an integer in 1..8, got {self.frame_scale!r}")
        for key in ("max_sequences", "visualize", "vis_frames"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self, key)}")
        return self


class ScaledFrames:
    """``frames`` upsampled bilinearly ``scale`` times, one frame at a time when indexed
    (``uint8 (H*scale, W*scale, 3)``): the maps are then at ``adapter.stride / scale`` pixels
    of the original frames."""

    def __init__(self, frames, scale: int):
        self.frames, self.scale = frames, scale

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, t: int) -> torch.Tensor:
        f = self.frames[t]
        f = f if isinstance(f, torch.Tensor) else torch.from_numpy(np.array(f))  # writable copy
        x = f[None].permute(0, 3, 1, 2).float()
        x = torch.nn.functional.interpolate(x, scale_factor=self.scale, mode="bilinear",
                                            align_corners=False)
        return x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1)[0]


def stream_features(frames, adapter: AppearanceAdapter, scale: int, device):
    """One feature map ``(C, h, w)`` per frame of ``frames`` (upsampled ``scale`` times first),
    in order, streamed (:meth:`AppearanceAdapter.iter_features`)."""
    return adapter.iter_features(frames if scale == 1 else ScaledFrames(frames, scale), device)


def _vis_frames(seq, cfg, visualize: bool) -> set[int]:
    return set(pick_frames(len(seq), cfg.vis_frames)) if visualize else set()


def _run_vos(seq, adapter, cfg, device, visualize: bool = False) -> tuple[dict, Any]:
    frames, s = seq.lazy_frames(), cfg.frame_scale
    first_gt = seq.label(0)
    ids = np.unique(first_gt)
    first = np.kron(first_gt, np.ones((s, s), dtype=first_gt.dtype)) if s > 1 else first_gt
    jf = SequenceJF(len(seq), ids)
    keep, drawn = _vis_frames(seq, cfg, visualize), {}
    masks = iter_propagate_masks(stream_features(frames, adapter, s, device), first,
                                 cfg.propagation)
    for t, pred in enumerate(masks):
        pred = first_gt if t == 0 else pred[s // 2::s, s // 2::s]
        jf.add(t, pred, first_gt if t == 0 else seq.label(t))
        if t in keep:
            drawn[t] = pred
    result = {"objects": {str(k): v for k, v in jf.result().items()}, "frames": len(seq)}
    return result, (frames, drawn)


def _run_sot(seq, adapter, cfg, device) -> tuple[dict, Any]:
    frames, s = seq.lazy_frames(), cfg.frame_scale
    h, w = frames.frame_size
    boxes = track_object(stream_features(frames, adapter, s, device), seq.boxes[0] * s,
                         (h * s, w * s), adapter.stride, cfg.sot) / s
    result = {"auc": success_auc(boxes, seq.boxes), "precision@20": precision_at(boxes, seq.boxes),
              "frames": len(seq), "boxes": boxes.round(2).tolist()}
    return result, (frames, [[(1, b)] for b in boxes], list(seq.boxes))


def warn_filtered_detections(seq, cfg) -> bool:
    """Log one warning when the score thresholds leave ``seq`` nothing to track: every
    detection below ``association.min_score`` (ignored), or none reaching
    ``association.det_threshold`` (no track can start). True when it warned."""
    if cfg.mot_detections != "det" or len(seq.det) == 0:
        return False
    a, scores = cfg.association, seq.det[:, 5]
    span = f"scores {scores.min():.3g} to {scores.max():.3g}"
    if (scores < a.min_score).all():
        what = f"all {len(scores)} detections score below association.min_score={a.min_score}"
    elif (scores < a.det_threshold).all():
        what = (f"no detection reaches association.det_threshold={a.det_threshold}, so no track "
                f"can start")
    else:
        return False
    log.warning("MOT sequence %s: %s (%s); it will score 0 -- lower the thresholds (e.g. "
                "MOT17-DPM scores are often negative)", seq.name, what, span)
    return True


def _run_mot(seq, adapter, cfg, device, out: str | None) -> tuple[dict, Any]:
    warn_filtered_detections(seq, cfg)
    frames = seq.lazy_frames()
    feats = stream_features(frames, adapter, cfg.frame_scale, device)
    tracker = AssociationTracker(cfg.association)
    gt, hyp, rows, drawn = {}, {}, [], []
    for f, fmap in enumerate(feats, 1):
        g = seq.frame_rows("gt", f)
        gt[f] = [(int(r[1]), r[2:6]) for r in g]
        if cfg.mot_detections == "gt":
            boxes, scores = g[:, 2:6], np.ones(len(g))
        else:
            d = seq.frame_rows("det", f)
            boxes, scores = d[:, 1:5], d[:, 5]
        sets = roi_features(fmap, boxes * cfg.frame_scale, adapter.stride,
                            cfg.association.roi_size)
        tracks = tracker.step(boxes, scores, sets)
        hyp[f] = [(tid, box) for tid, box, _ in tracks]
        rows += [(f, tid, box) for tid, box, _ in tracks]
        drawn.append(hyp[f])
    if out:
        write_mot_results(os.path.join(out, "mot", f"{seq.name}.txt"), rows)
    acc = mot_accumulator(gt, hyp, len(seq))
    return {"frames": len(seq), "tracks": len({r[1] for r in rows})}, (frames, drawn, acc)


def _visualize(task: str, name: str, payload: Any, out: str, count: int) -> str:
    frames = payload[0]  # a FrameSequence: the few frames drawn are read again here
    idx = pick_frames(len(frames), count)
    if task == "vos":
        pics = [overlay_mask(frames[t], payload[1][t]) for t in idx]
    elif task == "sot":
        pics = [draw_boxes(frames[t], payload[1][t], [payload[2][t]]) for t in idx]
    else:
        pics = [draw_boxes(frames[t], payload[1][t]) for t in idx]
    return save_strip(pics, idx, os.path.join(out, "vis", f"{task}_{name}.png"))


def run_tracking(task: str, data: str, *, encoder: str | nn.Module | None = None,
                 checkpoint: str | None = None, pixels: bool = False,
                 pretrained: str | None = None, out: str | None = None,
                 provenance: dict | None = None,
                 config: TrackConfig | None = None, progress: bool = False) -> dict:
    """Run ``task`` (``vos``, ``sot`` or ``mot``) on every sequence under ``data``.

    Args:
        task: which head: propagation (vos), cross-correlation / DCF (sot), association (mot).
        data: a synthetic dataset root, or a DAVIS / MOT / OTB folder.
        encoder, checkpoint, pixels, pretrained: the appearance source (exactly one of the
            first three; see :func:`vidssl.track.adapter.build_adapter`).
        out: folder for ``results.json``, PNG strips (``vis/``) and MOT result files.
        config: :class:`TrackConfig` (defaults: UniTrack's settings).
        progress: show a progress bar over sequences.

    Returns:
        The results dict written to ``results.json``: ``summary`` (J&F / AUC / MOTA, IDF1),
        ``sequences``, ``appearance``, ``speed`` (frames/s including feature extraction).
    """
    if task not in TASKS:
        raise ConfigError(f"unknown tracking task {task!r}; expected one of {', '.join(TASKS)}")
    cfg = (config or TrackConfig()).validate()
    device = resolve_device(cfg.device)
    layout, seqs = resolve_dataset(task, data, cfg.mot_detections)
    if cfg.max_sequences:
        seqs = seqs[:cfg.max_sequences]
    if isinstance(encoder, AppearanceAdapter):
        adapter = encoder
    else:
        a = cfg.adapter
        adapter = build_adapter(encoder, pixels=pixels, pretrained=pretrained,
                                checkpoint=checkpoint, layer=a.layer, stride=a.stride,
                                window=a.window or None, context=a.context,
                                vit_layer=a.vit_layer)
    per_seq: dict[str, dict] = {}
    accs, pictures, frames_done = {}, [], 0
    t0 = time.perf_counter()
    with progress_bar(progress, len(seqs), f"track {task}") as advance:
        for i, seq in enumerate(seqs):
            if task == "vos":
                res, payload = _run_vos(seq, adapter, cfg, device, bool(out) and i < cfg.visualize)
            elif task == "sot":
                res, payload = _run_sot(seq, adapter, cfg, device)
            else:
                res, payload = _run_mot(seq, adapter, cfg, device, out)
                accs[seq.name] = payload[2]
            per_seq[seq.name] = res
            frames_done += res["frames"]
            if out and i < cfg.visualize:
                pictures.append(_visualize(task, seq.name, payload, out, cfg.vis_frames))
            advance(1)
    elapsed = time.perf_counter() - t0
    if task == "vos":
        summary = summarize_jf({n: r["objects"] for n, r in per_seq.items()})
    elif task == "sot":
        summary = {"auc": float(np.nanmean([r["auc"] for r in per_seq.values()])),
                   "precision@20": float(np.nanmean([r["precision@20"] for r in per_seq.values()])),
                   "sequences": len(per_seq)}
    else:
        table = mot_summary(accs)
        for name, metrics in table.items():
            if name in per_seq:
                per_seq[name].update(metrics)
        summary = table["OVERALL"]
    results = {
        "task": task, "layout": layout, "data": os.path.abspath(data),
        "appearance": {"name": adapter.name, "kind": adapter.kind, "stride": adapter.stride,
                       "checkpoint": checkpoint, "pretrained": pretrained},
        "summary": summary, "sequences": per_seq,
        "speed": {"frames": frames_done, "seconds": elapsed,
                  "frames_per_s": frames_done / elapsed if elapsed > 0 else float("nan"),
                  "device": str(device)},
        "visualizations": pictures, "config": dataclasses.asdict(cfg),
        "torch": str(torch.__version__), "provenance": provenance,
    }
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2, default=float)
    return results


def summary_line(results: dict) -> str:
    """One human-readable line of a :func:`run_tracking` result."""
    s, task = results["summary"], results["task"]
    if task == "vos":
        body = f"J&F {s['J&F']:.3f} (J {s['J']:.3f}, F {s['F']:.3f}) over {s['objects']} objects"
    elif task == "sot":
        body = f"success AUC {s['auc']:.3f}, precision@20px {s['precision@20']:.3f} over " \
               f"{s['sequences']} sequences"
    else:
        body = f"MOTA {s['mota']:.3f}, IDF1 {s['idf1']:.3f}, ID switches {int(s['num_switches'])}"
    sp = results["speed"]
    return (f"{task} [{results['appearance']['name']}] on {results['layout']}: {body}; "
            f"{sp['frames_per_s']:.1f} frames/s ({sp['device']})")
