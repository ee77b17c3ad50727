"""Optical flow for the second modality of co-training methods: RAFT from torchvision.

``load_raft`` builds ``raft_small`` / ``raft_large`` with the published weights (``"default"``),
a local state-dict file, or random init (``None``: tests only, the flow is meaningless).
``compute_flow`` runs it on consecutive frames; ``flow_to_image`` encodes flow as the paper's
3-channel image (``u``, ``v`` clipped to ``+-bound`` pixels and the magnitude, scaled to [0, 1]).
RAFT needs frames of at least 128 px; smaller frames are upsampled for the flow and the flow is
scaled back.
"""

from __future__ import annotations

import os
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from vidssl.errors import VidsslError

__all__ = ["RAFT_MODELS", "load_raft", "compute_flow", "flow_to_image"]

RAFT_MODELS: tuple[str, ...] = ("raft_small", "raft_large")
MIN_SIDE = 128  # RAFT's correlation pyramid needs feature maps of >= 16 at stride 8


def load_raft(name: str = "raft_small", weights: Optional[str] = "default") -> nn.Module:
    """A frozen RAFT in eval mode. ``weights``: ``"default"`` (torchvision's published weights,
    downloaded once), a path to a state dict, or ``None`` (random init)."""
    from torchvision.models import optical_flow

    if name not in RAFT_MODELS:
        raise VidsslError(f"unknown flow model {name!r}; known: {', '.join(RAFT_MODELS)}")
    build = getattr(optical_flow, name)
    if weights == "default":
        enum = optical_flow.Raft_Small_Weights if name == "raft_small" else optical_flow.Raft_Large_Weights
        try:
            model = build(weights=enum.DEFAULT)
        except Exception as err:  # no network, proxy, corrupt cache: say what and where
            raise VidsslError(f"could not load the published {name} weights ({enum.DEFAULT.url}): "
                              f"{' '.join(str(err).split())[:160]}; download the file and pass its "
                              "path as the flow weights, or precompute flow with "
                              "tools/precompute_flow.py elsewhere") from None
    else:
        model = build(weights=None)
        if weights is not None:
            if not os.path.exists(weights):
                raise VidsslError(f"flow weights {weights} do not exist")
            try:
                model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            except Exception as err:
                raise VidsslError(f"flow weights {weights} do not fit {name}: "
                                  f"{' '.join(str(err).split())[:160]}") from None
    return model.eval().requires_grad_(False)


@torch.no_grad()
def compute_flow(model: nn.Module, frames: torch.Tensor, num_flow_updates: int = 12) -> torch.Tensor:
    """Float ``(B, T + 1, 3, H, W)`` frames in ``[0, 1]`` -> ``(B, T, 2, H, W)`` flow in pixels
    of the input size, from frame ``t`` to ``t + 1``."""
    if frames.ndim != 5 or frames.shape[1] < 2 or frames.shape[2] != 3:
        raise ValueError(f"expected (B, T + 1 >= 2, 3, H, W) frames, got {tuple(frames.shape)}")
    b, t1, _, h, w = frames.shape
    scale = max(1.0, MIN_SIDE / min(h, w))
    sh, sw = (int(round(h * scale / 8)) * 8, int(round(w * scale / 8)) * 8)
    x = frames.float() * 2 - 1
    if (sh, sw) != (h, w):
        x = F.interpolate(x.flatten(0, 1), size=(sh, sw), mode="bilinear", align_corners=False).view(b, t1, 3, sh, sw)
    first, second = x[:, :-1].flatten(0, 1), x[:, 1:].flatten(0, 1)
    flow = model(first, second, num_flow_updates=num_flow_updates)[-1]          # (B T, 2, sh, sw)
    if (sh, sw) != (h, w):
        flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
        flow = flow * torch.tensor([w / sw, h / sh], device=flow.device).view(1, 2, 1, 1)
    return flow.view(b, t1 - 1, 2, h, w)


def flow_to_image(flow: torch.Tensor, bound: float = 20.0) -> torch.Tensor:
    """``(..., 2, H, W)`` flow -> ``(..., 3, H, W)`` in ``[0, 1]``: ``u``, ``v`` clipped to
    ``+-bound`` and mapped to ``[0, 1]``, and the magnitude of the clipped flow / ``bound``."""
    if flow.shape[-3] != 2:
        raise ValueError(f"flow must have 2 channels at dim -3, got {tuple(flow.shape)}")
    uv = flow.clamp(-bound, bound)
    mag = uv.norm(dim=-3, keepdim=True).clamp(max=bound) / bound
    return torch.cat([(uv + bound) / (2 * bound), mag], dim=-3)


VIDEO_EXTS: tuple[str, ...] = (".avi", ".mp4")


def precompute_flow_videos(root: str, out: str, *, model: str = "raft_small", weights: Optional[str] = "default",
                           num_flow_updates: int = 12, bound: float = 20.0, chunk: int = 16,
                           overwrite: bool = False, decoder: str = "torchcodec", device: str = "cpu",
                           progress: bool = True) -> dict:
    """Write one flow video per video under ``root`` to the same relative path under ``out``.

    Frame ``t`` of a flow video is the flow from frame ``t`` to ``t + 1`` as
    :func:`flow_to_image` (so it has one frame fewer), encoded like the synthetic dataset
    (H.264 crf 18 for ``.mp4``, MPEG-4 for ``.avi``). Existing outputs are kept unless
    ``overwrite``; unreadable inputs are skipped and counted. Returns ``{"written", "kept",
    "failed": [(path, reason)]}``.
    """
    import numpy as np

    from vidssl.data.decoders import open_video
    from vidssl.data.video_io import encode_video
    from vidssl.errors import VideoDecodeError
    from vidssl.runtime.progress import progress_bar

    if not os.path.isdir(root):
        raise VidsslError(f"video root {root} does not exist")
    paths = sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files
                   if os.path.splitext(f)[1].lower() in VIDEO_EXTS)
    if not paths:
        raise VidsslError(f"no {'/'.join(VIDEO_EXTS)} videos under {root}")
    raft = load_raft(model, weights).to(device)
    summary: dict = {"written": 0, "kept": 0, "failed": []}
    with progress_bar(progress, len(paths), "optical flow") as advance:
        for path in paths:
            target = os.path.join(out, os.path.relpath(path, root))
            if os.path.exists(target) and not overwrite:
                summary["kept"] += 1
            else:
                try:
                    with open_video(path, decoder) as dec:
                        n, fps = dec.metadata.num_frames, dec.metadata.fps
                        frames = dec.get_frames(np.arange(n))                  # uint8 (T, C, H, W)
                    if n < 2:
                        raise VideoDecodeError(path, f"{n} frame(s): no flow")
                    images = []
                    for s in range(0, n - 1, chunk):
                        x = frames[s:min(n, s + chunk + 1)].float().div(255)[None].to(device)
                        images.append(flow_to_image(compute_flow(raft, x, num_flow_updates), bound)[0].cpu())
                    flow = (torch.cat(images) * 255).round().to(torch.uint8)  # (T - 1, 3, H, W)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    tmp = target + ".tmp" + os.path.splitext(target)[1]
                    encode_video(flow.permute(0, 2, 3, 1).numpy(), tmp, fps)
                    os.replace(tmp, target)
                    summary["written"] += 1
                except VideoDecodeError as err:
                    summary["failed"].append((err.path, err.reason))
            advance(1)
    return summary
