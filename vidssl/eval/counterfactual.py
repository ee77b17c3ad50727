"""``counterfactual`` protocol: does the frozen encoder put an action nearer to itself in
another look than to another action in the same look?

On the synthetic dataset only (it renders what no real dataset has; see
:mod:`vidssl.data.synthetic.counterfactual`). For each triplet (anchor = action *a* with look
*A*, motion twin = *a* with look *B*, look twin = action *b* with look *A*) the outcome is 1 when
the anchor's feature is nearer (cosine) to its motion twin than to its look twin. Its mean,
``motion_preference``, is 1 for features that group by action and 0 for features that group by
look; a random 3D CNN sits low because pixels are mostly look. ``action_share`` is graded: the
part of the feature's change that changing the action causes, against changing the look (0 =
the action does not move the feature at all). ``cos_motion`` and ``cos_look`` are the mean
cosines to either twin. These measure the features' geometry, not what a linear probe can
read from a low-variance direction: an encoder can probe well and still sit near 0.

The features are the evaluation's: the same views and the same encoder, BatchNorm statistics
recomputed on the split's train clips when ``bn.mode=recompute`` (the triplets' clips are
rendered by the same generator, so they share those statistics' distribution). The triplets
are rendered once per evaluation into a temporary folder (100 triplets, 300 clips: 15 s on one
busy core) and encoded once per encoder (every split shares one under ``bn.mode=keep``); the
same ``diagnostics.counterfactual_triplets`` and ``diagnostics.seed`` give the same files.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidssl.errors import ConfigError, VidsslError

log = logging.getLogger(__name__)

TIE = 1e-9        # cosines this close count as a tie (features are float32)


def motion_preference(anchor: np.ndarray, motion: np.ndarray, look: np.ndarray) -> dict[str, np.ndarray]:
    """Per-triplet outcomes from ``(N, D)`` features of the anchors and their twins.

    Returns ``(N,)`` arrays: ``motion_preference`` (1.0 where cos(anchor, motion twin) >
    cos(anchor, look twin), 0.5 on a tie (within ``TIE``), else 0.0), ``cos_motion``,
    ``cos_look`` and ``action_share``: how much of the feature's change is the action's,
    ``(1 - cos_look) / ((1 - cos_look) + (1 - cos_motion))`` (0.5 when neither changes it):
    0 when only the look moves the feature, 1 when only the action does.
    """
    anchor, motion, look = (np.asarray(x, dtype=np.float64) for x in (anchor, motion, look))
    if not (anchor.shape == motion.shape == look.shape) or anchor.ndim != 2:
        raise ValueError(f"expected three (N, D) arrays of one shape, got {anchor.shape}, "
                         f"{motion.shape}, {look.shape}")

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    a = unit(anchor)
    cm, cl = (a * unit(motion)).sum(1), (a * unit(look)).sum(1)
    tie = np.abs(cm - cl) <= TIE
    pref = np.where(tie, 0.5, np.where(cm > cl, 1.0, 0.0))
    d_action, d_look = np.maximum(1.0 - cl, 0.0), np.maximum(1.0 - cm, 0.0)
    total = d_action + d_look
    share = np.where(total > TIE, d_action / np.maximum(total, TIE), 0.5)
    return {"motion_preference": pref, "action_share": share, "cos_motion": cm, "cos_look": cl}


@dataclass
class Rendered:
    """The triplets of one evaluation, rendered once (``folder`` is removed with this object)
    and encoded once per encoder group (:meth:`FeatureCache.group`)."""

    folder: tempfile.TemporaryDirectory
    triplets: list
    index: Any
    outcomes: dict = field(default_factory=dict)     # encoder group -> motion_preference(...)


def counterfactual_setup(ctx: Any) -> Rendered:
    """Once per evaluation: check the dataset and render the triplets."""
    from vidssl.data.index import build_index
    from vidssl.data.synthetic.counterfactual import dataset_params, write_counterfactual

    if ctx.dataset != "synthetic" or ctx.root is None:
        raise ConfigError(f"protocol 'counterfactual' needs the synthetic dataset (it renders new clips "
                          f"with its generator), not {ctx.dataset!r}")
    d = ctx.config.diagnostics
    folder = tempfile.TemporaryDirectory(prefix="vidssl-counterfactual-")
    triplets = write_counterfactual(folder.name, dataset_params(ctx.root),
                                    num_triplets=int(d.counterfactual_triplets), seed=int(d.seed))
    return Rendered(folder, triplets, build_index("folder", folder.name, progress=False))


def _encode(ctx: Any, split: int, r: Rendered) -> dict[str, np.ndarray]:
    from vidssl.eval.cache import default_views
    from vidssl.eval.features import extract_features

    fc = ctx.config.features
    v = default_views(ctx.encoder, fc)
    fs = extract_features(ctx.cache.encoder_for(split), r.index, num_clips=v.num_clips,
                          num_crops=v.num_crops, clip_len=v.clip_len, stride=v.stride, size=v.size,
                          resize_size=v.resize_size, batch_size=fc.batch_size, num_workers=0,
                          device=ctx.device, decoder=fc.decoder, progress=ctx.progress, amp=fc.amp)
    base = os.path.realpath(r.folder.name)
    row = {os.path.relpath(os.path.realpath(p), base): i for i, p in enumerate(fs.paths)}
    missing = [f for t in r.triplets for f in (t.anchor, t.motion, t.look) if f not in row]
    if missing:
        raise VidsslError(f"counterfactual: {len(missing)} rendered clips could not be decoded "
                          f"(first: {missing[0]})")
    feats = fs.features.double().numpy()
    return motion_preference(*(feats[[row[getattr(t, role)] for t in r.triplets]]
                               for role in ("anchor", "motion", "look")))


def run_counterfactual(split: Any) -> dict[str, Any]:
    """The protocol runner (one split): the triplets through the split's encoder, compared."""
    ctx = split.context
    r: Rendered = ctx.shared["counterfactual"]
    group = ctx.cache.group(split.split)          # splits sharing an encoder share its outcomes
    if group not in r.outcomes:
        r.outcomes[group] = _encode(ctx, split.split, r)
    out = r.outcomes[group]
    # per-triplet outcomes, named after the anchors as if they lay under the dataset root, so
    # runs on the same dataset pair up (compare's paired gain)
    split.videos = [os.path.join(ctx.root, ".counterfactual", t.anchor) for t in r.triplets]
    log.info("counterfactual: %d triplets, motion preferred in %.1f%%, action share %.3f (mean cos to "
             "motion twin %.3f, to look twin %.3f)", len(r.triplets), 100 * out["motion_preference"].mean(),
             out["action_share"].mean(), out["cos_motion"].mean(), out["cos_look"].mean())
    return out
