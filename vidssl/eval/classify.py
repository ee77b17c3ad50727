"""``classify``: a checkpoint that carries a classifier, evaluated with its own head.

For published weights whose classifier was trained on the evaluation's classes (torchvision's
Kinetics-400 heads on Kinetics-400, a VideoMAE / V-JEPA 2 checkpoint finetuned on UCF101 or
SSv2): every test view through ``encoder.forward_logits``, softmax probabilities averaged over
the views, and the head's prediction compared with the video's label. The head's classes
(``encoder.class_names``) are matched to the dataset's by name, ignoring case, spaces,
underscores and punctuation ("ApplyEyeMakeup" = "apply_eye_makeup"); a dataset class the head
does not know is a one-line error. The prediction is the head's own argmax over *all* its
classes: a video predicted as a class the dataset does not have counts as wrong.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np
import torch

from vidssl.errors import ConfigError, VidsslError
from vidssl.eval.features import eval_mode, iterate_views, resolve_clip_settings
from vidssl.eval.views import ViewSpec, view_sampler
from vidssl.runtime.device import resolve_device

__all__ = ["normalise_class_name", "class_mapping", "classify_views", "run_classify"]


def normalise_class_name(name: str) -> str:
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def class_mapping(head_classes: Sequence[str], dataset_classes: Sequence[str]) -> np.ndarray:
    """``(H,)`` int64: for each head class, the dataset label with the same normalised name, or -1.

    Raises:
        ConfigError: a dataset class has no head class (one line, the first few named).
    """
    by_name: dict[str, int] = {}
    for i, name in enumerate(dataset_classes):
        by_name.setdefault(normalise_class_name(name), i)
    out = np.array([by_name.get(normalise_class_name(h), -1) for h in head_classes], dtype=np.int64)
    missing = [c for i, c in enumerate(dataset_classes) if i not in set(out.tolist())]
    if missing:
        raise ConfigError(f"the checkpoint's classifier has no class for {len(missing)} of the dataset's "
                          f"{len(dataset_classes)} classes (e.g. {', '.join(map(repr, missing[:3]))}); "
                          f"classify needs a head trained on the dataset's classes")
    return out


def _check_head(encoder: Any) -> None:
    if not callable(getattr(encoder, "forward_logits", None)):
        raise ConfigError(f"{getattr(encoder, 'encoder_name', type(encoder).__name__)} carries no classifier "
                          f"(classify needs published weights with their head, e.g. --pretrained "
                          f"torchvision:r3d_18 or videomae:MCG-NJU/videomae-base-finetuned-kinetics)")


def classify_views(encoder: Any, index, s: Any, *, device=None, progress: bool = True):
    """Softmax probabilities over the head's classes, averaged over the views ``s`` describes.

    Returns ``(probs (N, H), positions (N,), skipped)``."""
    _check_head(encoder)
    dev = resolve_device(device)
    pre = resolve_clip_settings(encoder, s.clip_len, s.stride, s.size, s.resize_size)
    spec = ViewSpec(clip_len=pre["clip_len"], stride=pre["stride"], size=pre["size"],
                    resize_size=pre["resize_size"], num_clips=s.num_clips, num_crops=s.num_crops, layout=s.layout)
    encoder.to(dev)

    def probabilities(x: torch.Tensor) -> torch.Tensor:
        return encoder.forward_logits(x).float().softmax(dim=1)

    probs, positions, skipped = [], [], []
    with eval_mode(encoder):
        for pos, per_video in iterate_views(
                probabilities, index, num_clips=spec.num_clips, num_crops=spec.num_crops, clip_len=spec.clip_len,
                stride=spec.stride, size=spec.size, resize_size=spec.resize_size, mean=pre["mean"],
                std=pre["std"], sampler=view_sampler(spec), batch_size=s.batch_size, num_workers=s.num_workers,
                device=dev, decoder=s.decoder, progress=progress, amp=s.amp, description=f"classify {index.name}",
                skipped=skipped):
            probs += [p.float().mean(dim=0).cpu() for p in per_video]
            positions.append(pos)
    if not probs:
        raise VidsslError(f"no test video of {index.name!r} could be decoded")
    return torch.stack(probs), torch.cat(positions).numpy(), skipped


def run_classify(split: Any, preset: Any, s: Any) -> dict[str, np.ndarray]:
    """Protocol runner: top-1 / top-5 of the checkpoint's own head on the split's test videos."""
    ctx = split.context
    _check_head(ctx.encoder)
    names = getattr(ctx.encoder, "class_names", None)
    if not names:
        raise ConfigError("classify needs the head's class names (encoder.class_names); published "
                          "weights loaded with --pretrained carry them")
    mapping = class_mapping(names, split.test.class_names)
    probs, pos, skipped = classify_views(ctx.encoder, split.test, s, device=ctx.device, progress=ctx.progress)
    labels = split.test.labels[pos]
    top = probs.topk(min(5, probs.shape[1]), dim=1).indices.numpy()
    mapped = mapping[top]                                   # dataset label of each ranked head class
    split.videos = [split.test.path(int(i)) for i in pos]
    split.counts["classify_test_skipped"] = len(skipped)
    return {"top1": (mapped[:, 0] == labels).astype(np.float64),
            "top5": (mapped == labels[:, None]).any(axis=1).astype(np.float64)}
