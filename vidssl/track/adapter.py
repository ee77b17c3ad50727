"""Appearance adapter: any vidssl encoder (or an ImageNet ResNet, or raw pixels) -> one feature
map per frame at stride 8, the contract of UniTrack's heads.

``AppearanceAdapter.forward(x)`` maps normalised frames ``(N, 3, H, W)`` -- ``N`` consecutive
frames of one video -- to ``(N, C, ceil(H/s), ceil(W/s))`` (``s = stride``, 8 by default); the
heads L2-normalise along ``C``. ``iter_features`` streams the same from ``uint8 (H, W, 3)``
frames read on demand, normalising with the model's own mean/std: it reads, converts and
encodes one clip (:meth:`AppearanceAdapter.clips`) at a time and yields one map per frame, so a
sequence is never held whole; ``encode_video`` stacks its maps for a ``(T, H, W, 3)`` array.
How each kind gets there:

- ``resnet2d`` (torchvision ResNet-18/50, the UniTrack reference appearance models; ImageNet
  weights with ``pretrained="imagenet"``): stem + ``layer1..layer3`` with ``layer3``'s stride set
  to 1, so ``layer3`` is read at stride 8 (256 / 1024 channels); ``layer="layer4"`` also removes
  ``layer4``'s stride (512 / 2048 channels). Frames are independent.
- ``cnn3d`` (R3D / R(2+1)D / S3D and their tiny variants): the trunk is cut after the stage that
  reaches spatial stride 8 (R3D: ``layer3``; S3D: ``Mixed_3c``, before its third max-pool;
  ``layer="layer4"`` keeps R3D's last stage with its spatial stride removed too) and every
  temporal stride is set to 1, so the stage outputs one temporal slice per input frame; the
  weights are untouched (strides carry no parameters). The video is cut into windows of
  ``window`` frames (default: the encoder's clip length), each run with ``context`` extra frames
  on both sides (so every kept slice sees neighbours), and slice ``t`` is frame ``t``'s map.
- ``vit`` (VideoMAE): the position table fixes the input to ``num_frames x image_size^2``, so
  frames are resized to ``image_size`` and cut into ``num_frames`` windows (the last one padded
  by repeating its last frame); frame ``t`` takes the patch tokens of its tubelet ``t // 2``
  (layer ``vit_layer``, default the last) reshaped to ``(D, H/16, W/16)`` and resampled
  bilinearly to stride 8 of the original frame.
- ``generic``: any other encoder with ``forward_feature_map``: the map of each window, the
  temporal slice covering each frame, resampled to stride 8 (strides are not removed). An
  encoder with a fixed input size (an integer ``image_size`` attribute: CLIP-temporal, whose
  CLIP position table fixes ``image_size x image_size`` frames) gets, like the ViT path, frames
  resized to ``image_size x image_size`` first; its map (patch tokens on the ``image_size /
  patch`` grid) is then resampled bilinearly to stride 8 of the *original* frame. With a
  ``max_frames`` attribute, ``window + 2 * context`` must fit in it (one-line ConfigError);
  any other shape the encoder rejects is a one-line ConfigError too.
- ``pixels``: the RGB baseline: the normalised frame averaged over ``s x s`` cells (3 channels).
"""

from __future__ import annotations

import copy
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vidssl.data.transforms.video import IMAGENET_MEAN, IMAGENET_STD
from vidssl.errors import ConfigError, VidsslError

ADAPTER_KINDS = ("pixels", "resnet2d", "cnn3d", "vit", "generic")
# torchvision ImageNet-1k weights (ResNet18_Weights / ResNet50_Weights .IMAGENET1K_V1)
RESNET2D_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
}
IMAGENET_TAGS = ("imagenet", "default", "True")


def _set_strides(module: nn.Module, temporal: bool, spatial: bool) -> None:
    """Set the temporal (and/or spatial) stride of every Conv3d / MaxPool3d / AvgPool3d in
    ``module`` to 1; parameters are unchanged."""
    for m in module.modules():
        if isinstance(m, (nn.Conv3d, nn.MaxPool3d, nn.AvgPool3d)):
            st = m.stride if isinstance(m.stride, tuple) else (m.stride,) * 3
            m.stride = (1 if temporal else st[0], *((1, 1) if spatial else st[1:]))


def _stack(frames: list) -> torch.Tensor:
    """``(N, H, W, 3)`` tensor of ``N`` frames (arrays or tensors)."""
    if isinstance(frames[0], torch.Tensor):
        return torch.stack(frames)
    return torch.from_numpy(np.stack([np.asarray(f) for f in frames]))


def resnet2d_trunk(name: str, pretrained: str | bool | None = None, layer: str = "layer3"
                   ) -> nn.Sequential:
    """torchvision ``name`` (``resnet18`` / ``resnet50``) cut at ``layer`` at stride 8.

    ``pretrained``: ``"imagenet"`` / ``"default"`` / ``True`` (torchvision ImageNet-1k weights,
    downloaded through ``torch.hub``), a path to a state dict, or ``None`` (random init)."""
    import torchvision

    from vidssl.models.encoders.weights import download_state_dict, read_state_dict

    if name not in RESNET2D_URLS:
        raise ConfigError(f"unknown 2D appearance model {name!r}; known: {', '.join(RESNET2D_URLS)}")
    if layer not in ("layer3", "layer4"):
        raise ConfigError(f"resnet2d layer must be 'layer3' or 'layer4', got {layer!r}")
    net = getattr(torchvision.models, name)(weights=None)
    if pretrained not in (None, False, ""):
        if pretrained is True or str(pretrained) in IMAGENET_TAGS:
            state = download_state_dict(RESNET2D_URLS[name], f"torchvision {name} ImageNet weights")
        else:
            state = read_state_dict(os.fspath(pretrained))
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise VidsslError(f"weights {pretrained} do not fit torchvision {name}: "
                              f"{' '.join(str(err).split())[:160]}") from None
    stages = ["layer1", "layer2", "layer3"] + (["layer4"] if layer == "layer4" else [])
    for stage in stages[2:]:
        for m in getattr(net, stage)[0].modules():
            if isinstance(m, nn.Conv2d) and m.stride != (1, 1):
                m.stride = (1, 1)
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                         *[getattr(net, s) for s in stages])


def _cnn3d_trunk(encoder: nn.Module, layer: str) -> nn.Sequential | None:
    """The stride-8, temporally unstrided trunk of an R3D / R(2+1)D / S3D encoder, or None."""
    if all(hasattr(encoder, a) for a in ("stem", "layer1", "layer2", "layer3", "layer4")):
        if getattr(encoder, "input_mode", "rgb") != "rgb":
            raise ConfigError(f"tracking reads frames, but encoder {getattr(encoder, 'encoder_name', '')!r} "
                              f"takes {encoder.input_mode} of frames (input_mode={encoder.input_mode!r})")
        if layer not in ("layer3", "layer4"):
            raise ConfigError(f"3D ResNet layer must be 'layer3' or 'layer4', got {layer!r}")
        parts = [encoder.stem, encoder.layer1, encoder.layer2, encoder.layer3]
        trunk = copy.deepcopy(nn.Sequential(*parts, *([encoder.layer4] if layer == "layer4" else [])))
        _set_strides(trunk, temporal=True, spatial=False)
        if layer == "layer4":
            _set_strides(trunk[-1], temporal=True, spatial=True)
        return trunk
    features = getattr(encoder, "features", None)
    if isinstance(features, nn.Sequential):  # S3D: keep children while the spatial stride <= 8
        stride, keep = 1, 0
        for child in features:
            s = 1
            for m in child.modules():
                if isinstance(m, (nn.Conv3d, nn.MaxPool3d)):
                    st = m.stride if isinstance(m.stride, tuple) else (m.stride,) * 3
                    s *= st[1]
            if stride * s > 8:
                break
            stride *= s
            keep += 1
        if stride != 8:
            return None
        trunk = copy.deepcopy(features[:keep])
        _set_strides(trunk, temporal=True, spatial=False)
        return trunk
    return None


def _kind_of(encoder: nn.Module) -> str:
    if hasattr(encoder, "forward_tokens") and hasattr(encoder, "tubelet_size"):
        return "vit"
    if _cnn3d_trunk(encoder, "layer3") is not None:
        return "cnn3d"
    if hasattr(encoder, "forward_feature_map"):
        return "generic"
    raise ConfigError(f"{type(encoder).__name__} has no forward_feature_map; not a vidssl encoder")


class AppearanceAdapter(nn.Module):
    """Frames -> per-frame feature maps at ``stride`` (see the module docstring).

    Args:
        kind: one of :data:`ADAPTER_KINDS`.
        model: the trunk (``resnet2d``, ``cnn3d``) or the encoder (``vit``, ``generic``);
            ``None`` for ``pixels``.
        mean, std: input normalisation of ``[0, 1]`` RGB (the model's).
        stride: output stride in pixels.
        window, context: frames per clip and extra frames each side (temporal kinds).
        vit_layer: hidden state read from a ViT (-1 = last layer).
        name: what the adapter wraps (for reports).

    Shape:
        - ``forward``: ``(N, 3, H, W)`` normalised, N consecutive frames ->
          ``(N, C, ceil(H/stride), ceil(W/stride))``.
        - ``iter_features``: ``T`` frames ``uint8 (H, W, 3)`` read on demand -> ``T`` maps
          ``float32 (C, h, w)``, one clip in memory at a time.
        - ``encode_video``: ``uint8 (T, H, W, 3)`` (numpy or tensor) -> float32 of the same.
    """

    def __init__(self, kind: str, model: nn.Module | None, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 stride: int = 8, window: int = 16, context: int = 4, vit_layer: int = -1,
                 name: str = "", batch_frames: int = 16):
        super().__init__()
        if kind not in ADAPTER_KINDS:
            raise ConfigError(f"adapter kind must be one of {ADAPTER_KINDS}, got {kind!r}")
        for label, v in (("stride", stride), ("window", window), ("batch_frames", batch_frames)):
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"adapter {label} must be a positive integer, got {v!r}")
        if not isinstance(context, int) or context < 0:
            raise ConfigError(f"adapter context must be a non-negative integer, got {context!r}")
        self.kind, self.model, self.stride = kind, model, stride
        self.window, self.context, self.vit_layer = window, context, vit_layer
        self.batch_frames = batch_frames
        self.name = name or kind
        max_frames = getattr(model, "max_frames", None) if kind == "generic" else None
        if isinstance(max_frames, int) and window + 2 * context > max_frames:
            raise ConfigError(f"{self.name} takes at most {max_frames} frames per clip, but "
                              f"adapter.window ({window}) + 2 x adapter.context ({context}) = "
                              f"{window + 2 * context}; lower adapter.window or adapter.context")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    # ------------------------------------------------------------------ per kind
    def _out_size(self, h: int, w: int) -> tuple[int, int]:
        return math.ceil(h / self.stride), math.ceil(w / self.stride)

    def _resample(self, fmap: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(fmap.shape[-2:]) == size:
            return fmap
        return F.interpolate(fmap, size=size, mode="bilinear", align_corners=False)

    def _windows(self, n: int, window: int, context: int):
        for s in range(0, n, window):
            e = min(n, s + window)
            yield s, e, max(0, s - context), min(n, e + context)

    def clips(self, n: int) -> list[tuple[int, int, int, int]]:
        """How ``n`` frames are encoded: ``(s, e, a, b)`` per clip -- frames ``a..b-1`` go
        through the network together and the maps of frames ``s..e-1`` are kept
        (``a <= s < e <= b``). Temporal kinds (``cnn3d``, ``generic``): windows of ``window``
        frames with ``context`` more on each side; ``vit``: ``num_frames`` windows;
        ``resnet2d`` / ``pixels``: batches of ``batch_frames`` independent frames."""
        if self.kind in ("cnn3d", "generic"):
            return list(self._windows(n, self.window, self.context))
        step = self.model.num_frames if self.kind == "vit" else self.batch_frames
        return [(s, min(n, s + step), s, min(n, s + step)) for s in range(0, n, step)]

    def fixed_size(self) -> int | None:
        """The side a ``generic`` encoder needs its frames resized to, or None (any size)."""
        size = getattr(self.model, "image_size", None) if self.kind == "generic" else None
        return size if isinstance(size, int) and not isinstance(size, bool) else None

    def _generic(self, x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        size = self.fixed_size()
        if size is not None and tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)
        clip = x.transpose(0, 1).unsqueeze(0)
        try:
            fmap = self.model.forward_feature_map(clip)[0]  # (C, T', h, w)
        except ValueError as err:  # the encoder's own input checks (shape, clip length)
            raise ConfigError(f"{self.name} cannot encode a clip of shape "
                              f"{tuple(clip.shape)}: {' '.join(str(err).split())}") from None
        tp, n = fmap.shape[1], x.shape[0]
        idx = [min(tp - 1, j * tp // n) for j in range(lo, hi)]
        return fmap[:, idx].transpose(0, 1)

    def _vit(self, x: torch.Tensor) -> torch.Tensor:
        enc = self.model
        n, size, tub = enc.num_frames, enc.image_size, enc.tubelet_size
        clip = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                             antialias=True)
        k = clip.shape[0]
        if k < n:  # the last window: padded by repeating its last frame
            clip = torch.cat([clip, clip[-1:].expand(n - k, -1, -1, -1)])
        out = enc.model(pixel_values=clip.unsqueeze(0), output_hidden_states=True)
        tokens = out.hidden_states[self.vit_layer] if self.vit_layer != -1 else out.last_hidden_state
        g = size // enc.patch_size
        fmap = tokens.reshape(1, n // tub, g, g, -1)[0].permute(0, 3, 1, 2)  # (T/tub, D, g, g)
        return fmap[torch.arange(k, device=fmap.device) // tub]

    def encode_clip(self, x: torch.Tensor, lo: int = 0, hi: int | None = None) -> torch.Tensor:
        """Maps of frames ``lo..hi-1`` of one clip ``x`` (normalised, ``(N, 3, H, W)``,
        consecutive frames) run through the network together -> ``(hi - lo, C, h, w)``. The
        clip is one entry of :meth:`clips` (``x = frames[a:b]``, ``lo = s - a``,
        ``hi = e - a``); a ``vit`` clip has at most ``num_frames`` frames."""
        hi = x.shape[0] if hi is None else hi
        size = self._out_size(*x.shape[-2:])
        if self.kind == "pixels":
            out = F.avg_pool2d(x[lo:hi], self.stride, ceil_mode=True, count_include_pad=False)
        elif self.kind == "resnet2d":
            out = self.model(x[lo:hi])
        elif self.kind == "cnn3d":
            out = self.model(x.transpose(0, 1).unsqueeze(0))[0].transpose(0, 1)[lo:hi]
        elif self.kind == "vit":
            out = self._vit(x)[lo:hi]
        else:
            out = self._generic(x, lo, hi)
        return self._resample(out, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ConfigError(f"the appearance adapter takes frames (N, 3, H, W), got {tuple(x.shape)}")
        return torch.cat([self.encode_clip(x[a:b], s - a, e - a)
                          for s, e, a, b in self.clips(x.shape[0])])

    def _normalise(self, frames: torch.Tensor, device) -> torch.Tensor:
        if frames.dim() != 4 or frames.shape[-1] != 3:
            raise ConfigError(f"encode_video takes uint8 frames (T, H, W, 3), got "
                              f"{tuple(frames.shape)}")
        x = frames.to(device).permute(0, 3, 1, 2).float().div_(255)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def iter_features(self, frames, device: str | torch.device = "cpu"):
        """Stream ``frames`` -> one ``float32 (C, h, w)`` map per frame, in order, on ``device``.

        ``frames``: anything with ``len()`` whose ``frames[t]`` is a ``uint8 (H, W, 3)`` frame
        (a :class:`~vidssl.track.datasets.FrameSequence` decoding files on demand, an array,
        a tensor). Clips (:meth:`clips`) are read, converted to float and encoded one at a
        time; a frame is read once and held only while a clip still needs it, so at most one
        clip of ``uint8`` frames (``window + 2 * context`` for the temporal kinds), its float
        input and its maps are alive, whatever the sequence's length. The maps equal
        :meth:`encode_video`'s.
        """
        self.eval().to(device)
        plan = self.clips(len(frames))
        held: dict = {}  # frame index -> uint8 (H, W, 3) array or tensor, read once
        for i, (s, e, a, b) in enumerate(plan):
            for t in range(a, b):
                if t not in held:
                    held[t] = frames[t]
            x = self._normalise(_stack([held[t] for t in range(a, b)]), device)
            out = self.encode_clip(x, s - a, e - a).float().contiguous()
            del x
            keep_from = plan[i + 1][2] if i + 1 < len(plan) else b  # the next clip's first frame
            for t in [t for t in held if t < keep_from]:
                del held[t]
            for j in range(e - s):
                yield out[j]
            del out

    @torch.no_grad()
    def encode_video(self, frames, device: str | torch.device = "cpu") -> torch.Tensor:
        """``uint8 (T, H, W, 3)`` -> ``float32 (T, C, h, w)`` on ``device`` (every map in
        memory; :meth:`iter_features` streams them)."""
        x = torch.as_tensor(frames)
        if x.dim() != 4 or x.shape[-1] != 3:
            raise ConfigError(f"encode_video takes uint8 frames (T, H, W, 3), got {tuple(x.shape)}")
        return torch.stack(list(self.iter_features(x, device)))

    @property
    def feature_dim(self) -> int:
        with torch.no_grad():
            p = next(self.parameters(), self.mean)
            probe = torch.zeros(1, 3, 64, 64, device=p.device)
            return int(self.eval()(probe).shape[1])


def build_adapter(encoder: nn.Module | str | None = None, *, pixels: bool = False,
                  pretrained: str | bool | None = None, checkpoint: str | None = None,
                  layer: str = "layer3", stride: int = 8, window: int | None = None,
                  context: int = 4, vit_layer: int = -1) -> AppearanceAdapter:
    """An adapter for ``pixels=True``, a checkpoint, a 2D ResNet name (``resnet18``,
    ``resnet50``), a registered vidssl encoder name, or an encoder module.

    Raises:
        ConfigError: no source or more than one; unknown name or option.
        VidsslError: weights / checkpoint that cannot be read (one line).
    """
    given = [pixels, checkpoint is not None, encoder is not None]
    if sum(bool(g) for g in given) != 1:
        raise ConfigError("give exactly one appearance source: pixels, a checkpoint or an encoder")
    kw = dict(stride=stride, context=context, vit_layer=vit_layer)
    if pixels:
        return AppearanceAdapter("pixels", None, name="pixels", **kw)
    if isinstance(encoder, str) and encoder in RESNET2D_URLS:
        trunk = resnet2d_trunk(encoder, pretrained, layer)
        tag = f"{encoder}" + ("-imagenet" if pretrained else "")
        return AppearanceAdapter("resnet2d", trunk, IMAGENET_MEAN, IMAGENET_STD, name=tag, **kw)
    if checkpoint is not None:
        from vidssl.models.checkpoint import load_encoder

        module, name = load_encoder(checkpoint, map_location="cpu"), os.path.basename(checkpoint)
    elif isinstance(encoder, str):
        from vidssl.models.encoders import create_encoder

        module, name = create_encoder(encoder, pretrained=pretrained), encoder
    else:
        module, name = encoder, getattr(encoder, "encoder_name", type(encoder).__name__)
    kind = _kind_of(module)
    pre = getattr(module, "preprocess", None)
    mean = pre.mean if pre is not None else IMAGENET_MEAN
    std = pre.std if pre is not None else IMAGENET_STD
    win = window or (pre.num_frames if pre is not None else 16)
    if kind == "cnn3d":
        return AppearanceAdapter("cnn3d", _cnn3d_trunk(module, layer), mean, std, window=win,
                                 name=name, **kw)
    return AppearanceAdapter(kind, module, mean, std, window=win, name=name, **kw)
