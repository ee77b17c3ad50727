"""Load a vidssl encoder into the original UniTrack code (its ``make_encoder`` contract).

UniTrack's ``model/model.py`` builds the appearance model with ``make_encoder(args)`` and calls
it on frames normalised with ``args.im_mean`` / ``args.im_std`` (ImageNet statistics by
default): ``(N, 3, H, W) -> (N, C, H/8, W/8)``, or -- when the network holds no ``Conv2d`` or
``args.infer2D`` is false and UniTrack wraps 2D networks in its ``From3D`` -- on clips
``(N, 3, T, H, W) -> (N, C, T, H/8, W/8)``. :class:`UniTrackEncoder` accepts both: a 4-D batch
is taken as consecutive frames of one video (UniTrack feeds chunks of consecutive frames), a 5-D
batch as ``N`` videos. Inputs are re-normalised from UniTrack's statistics to the encoder's.

To use it, add one branch to UniTrack's ``make_encoder`` (``model/model.py``)::

    elif model_type.startswith("vidssl"):
        from vidssl.track.unitrack_export import make_encoder as vidssl_encoder
        net = vidssl_encoder(args)

and set in the UniTrack YAML ``model_type: vidssl`` plus one of ``vidssl_encoder: r3d_18``
(with optional ``vidssl_pretrained: default``), ``vidssl_checkpoint: /path/last.pt``, or
``model_type: vidssl-pixels``; optional ``vidssl_layer: layer3``. ``remove_layers`` is ignored
(the adapter already cuts the network at stride 8).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from vidssl.data.transforms.video import IMAGENET_MEAN, IMAGENET_STD
from vidssl.errors import ConfigError
from vidssl.track.adapter import AppearanceAdapter, build_adapter


class UniTrackEncoder(nn.Module):
    """An :class:`AppearanceAdapter` behind UniTrack's appearance-model interface.

    Args:
        adapter: the vidssl adapter.
        input_mean, input_std: the normalisation UniTrack applied (``args.im_mean/im_std``).

    Shape:
        ``(N, 3, H, W) -> (N, C, ceil(H/8), ceil(W/8))``;
        ``(N, 3, T, H, W) -> (N, C, T, ceil(H/8), ceil(W/8))``.
    """

    def __init__(self, adapter: AppearanceAdapter, input_mean: Sequence[float] = IMAGENET_MEAN,
                 input_std: Sequence[float] = IMAGENET_STD):
        super().__init__()
        self.adapter = adapter
        self.register_buffer("in_mean", torch.tensor(list(input_mean), dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("in_std", torch.tensor(list(input_std), dtype=torch.float32).view(1, 3, 1, 1))

    def _frames(self, x: torch.Tensor) -> torch.Tensor:
        rgb = x * self.in_std + self.in_mean  # back to [0, 1]
        return self.adapter((rgb - self.adapter.mean) / self.adapter.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            return self._frames(x)
        if x.dim() == 5:
            return torch.stack([self._frames(v.transpose(0, 1)).transpose(0, 1) for v in x])
        raise ConfigError(f"UniTrackEncoder takes (N, 3, H, W) or (N, 3, T, H, W), got {tuple(x.shape)}")


def make_encoder(args: Any) -> UniTrackEncoder:
    """UniTrack's ``make_encoder(args)`` for vidssl: reads ``args.model_type`` (``vidssl`` or
    ``vidssl-pixels``), ``vidssl_encoder`` / ``vidssl_pretrained`` / ``vidssl_checkpoint``,
    optional ``vidssl_layer``, ``im_mean``, ``im_std`` and ``device``."""
    get = lambda key, default=None: getattr(args, key, default)  # noqa: E731
    model_type = str(get("model_type", "vidssl"))
    if not model_type.startswith("vidssl"):
        raise ConfigError(f"model_type {model_type!r} is not a vidssl model (vidssl, vidssl-pixels)")
    layer = get("vidssl_layer") or "layer3"
    if model_type == "vidssl-pixels":
        adapter = build_adapter(pixels=True)
    elif get("vidssl_checkpoint"):
        adapter = build_adapter(checkpoint=get("vidssl_checkpoint"), layer=layer)
    elif get("vidssl_encoder"):
        adapter = build_adapter(get("vidssl_encoder"), pretrained=get("vidssl_pretrained"),
                                layer=layer)
    else:
        raise ConfigError("set vidssl_encoder (a vidssl encoder name) or vidssl_checkpoint in "
                          "the UniTrack config, or use model_type: vidssl-pixels")
    net = UniTrackEncoder(adapter, get("im_mean") or IMAGENET_MEAN, get("im_std") or IMAGENET_STD)
    return net.to(get("device") or "cpu").eval()
