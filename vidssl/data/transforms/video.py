"""Core of the batched video transforms: the step protocol, Compose, dtype and layout steps.

The random steps live in :mod:`.spatial` (crop, flip, resize) and :mod:`.photometric` (colour,
grayscale, blur, solarize); everything below applies to all of them.

Layout: every step takes and returns ``(B, T, C, H, W)`` (a batch of clips, ``C = 3`` RGB);
:class:`ToModelLayout` ends a pipeline by permuting to the model layout ``(B, C, T, H, W)``.
A single clip ``(T, C, H, W)`` is accepted too and treated as ``B = 1``.

Parameters: a random step draws its parameters once per clip (shape ``(B,)``) and applies them to
all ``T`` frames (temporally consistent); :class:`ColorJitter` and :class:`RandomGrayscale` take
``per_frame=True`` to draw them per ``(clip, frame)`` instead (DPC). Parameters are drawn on the
CPU from a ``torch.Generator`` (the call's, else the step's, else torch's global CPU generator),
so a seed gives the same augmentation on any device, and the host can skip work that no clip
needs without a device sync. ``sample_params(shape, generator)`` and ``apply(x, params)`` are
public, so one draw can be replayed on another stream (e.g. CoCLR's RGB and flow share a crop).

Dtype: ``uint8`` in ``[0, 255]`` or floating point in ``[0, 1]``. Geometric steps with a uint8
kernel (:class:`Resize`, :class:`CenterCrop`, :class:`RandomHorizontalFlip`, and
:class:`RandomResizedCrop` with ``backend="per_clip"``) keep uint8; every other step converts
uint8 to float32 in ``[0, 1]`` once, on entry, and floating inputs keep their dtype. Device is
never changed; no step calls ``.cpu()``, ``.item()`` on device tensors or numpy.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from vidssl.data.transforms import functional as F

__all__ = [
    "KINETICS_MEAN",
    "KINETICS_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VideoTransform",
    "Compose",
    "ToFloat",
    "Normalize",
    "ToModelLayout",
]

# Kinetics-400 statistics used by torchvision's video models (r3d_18, r2plus1d_18, mc3_18, s3d).
KINETICS_MEAN: tuple[float, float, float] = (0.43216, 0.394666, 0.37645)
KINETICS_STD: tuple[float, float, float] = (0.22803, 0.22145, 0.216989)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

Size = int | tuple[int, int]
Params = dict[str, torch.Tensor]


def _pair(size: Size, name: str = "size") -> tuple[int, int]:
    if isinstance(size, int):
        pair = (size, size)
    else:
        pair = tuple(int(s) for s in size)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be a positive int or (height, width), got {size!r}")
    return pair  # type: ignore[return-value]


def _check_p(p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability p must be in [0, 1], got {p}")
    return float(p)


def _check_generator(generator: torch.Generator | None) -> torch.Generator | None:
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if generator.device.type != "cpu":
        raise ValueError(
            "augmentation parameters are drawn on the CPU; pass a CPU torch.Generator "
            f"(got one on {generator.device})"
        )
    return generator


def _uniform(shape: Sequence[int], lo: float, hi: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(tuple(shape), generator=generator).mul_(hi - lo).add_(lo)


def _coin(shape: Sequence[int], p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Boolean ``shape`` tensor, each True with probability ``p`` (always consumes one draw each)."""
    return torch.rand(tuple(shape), generator=generator) < p


def _mask(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A ``(B,)``/``(B, T)`` bool mask reshaped to broadcast over ``x`` and moved to its device."""
    mask = mask.to(device=x.device, non_blocking=True)
    return mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim))


class VideoTransform(nn.Module):
    """Base class: ``forward(x) = apply(x, sample_params(x.shape, generator))``.

    Args:
        generator: CPU ``torch.Generator`` used when the call passes none; ``None`` means torch's
            global CPU generator (so ``torch.manual_seed`` controls it).
    """

    def __init__(self, generator: torch.Generator | None = None):
        super().__init__()
        self.generator = _check_generator(generator)

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None) -> Params:
        """Draw this step's parameters for a batch of ``shape`` ``(B, T, C, H, W)`` (CPU tensors)."""
        return {}

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        """Apply with given parameters; ``x`` is ``(B, T, C, H, W)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x, single = _as_batch(x)
        g = _check_generator(generator) if generator is not None else self.generator
        out = self.apply(x, self.sample_params(tuple(x.shape), g))
        return out[0] if single else out


def _as_batch(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 5:
        return x, False
    if x.ndim == 4:
        return x.unsqueeze(0), True
    raise ValueError(f"expected a clip (T, C, H, W) or a batch (B, T, C, H, W), got shape {tuple(x.shape)}")


class Compose(VideoTransform):
    """Run steps in order, each drawing its parameters for the shape it receives.

    The generator given to the call (or else the Compose's own) is passed to every step, so one
    seed reproduces the whole pipeline; when neither is set each step uses its own generator.

    Args:
        transforms: the steps (a nested Compose is flattened into its steps).
        generator: see :class:`VideoTransform`.
        cpu_chunk_elems: on CPU only, run the whole pipeline on groups of clips holding about
            this many input elements (at least one clip; the default is one 16x3x128x171
            clip), then concatenate. Whole-batch intermediates (tens of MB each) miss the CPU
            caches and are fresh large allocations on every op; chunking made the CVRL pipeline
            2-4x faster on CPU (docs/transforms.md). Parameters are still drawn for the whole
            batch, in the same order, so the result does not depend on the chunking. ``None``
            runs the whole batch at once. Device (CUDA) tensors are never chunked.
    """

    def __init__(
        self,
        transforms: Sequence[VideoTransform],
        generator: torch.Generator | None = None,
        cpu_chunk_elems: int | None = 1 << 20,
    ):
        super().__init__(generator)
        steps: list[VideoTransform] = []
        for t in transforms:
            if not isinstance(t, VideoTransform):
                raise TypeError(f"Compose takes VideoTransform steps, got {type(t).__name__}")
            steps.extend(t.transforms if isinstance(t, Compose) else [t])  # nested: flattened
        if cpu_chunk_elems is not None and cpu_chunk_elems < 1:
            raise ValueError(f"cpu_chunk_elems must be positive or None, got {cpu_chunk_elems}")
        self.transforms = nn.ModuleList(steps)
        self.cpu_chunk_elems = cpu_chunk_elems

    def __len__(self) -> int:
        return len(self.transforms)

    def __getitem__(self, i: int) -> VideoTransform:
        return self.transforms[i]

    def _run(
        self, x: torch.Tensor, params: list[Params | None], generator: torch.Generator | None
    ) -> tuple[torch.Tensor, list[Params]]:
        x, single = _as_batch(x)
        b = x.shape[0]
        step = b
        if x.device.type == "cpu" and self.cpu_chunk_elems is not None and b > 0:
            step = max(1, self.cpu_chunk_elems // max(1, x[0].numel()))
        outs = []
        for lo in range(0, max(b, 1), step):
            y = x[lo : lo + step]
            for k, t in enumerate(self.transforms):
                if params[k] is None:  # drawn once, for the whole batch, while the first chunk runs
                    g = generator if generator is not None else t.generator
                    params[k] = t.sample_params((b,) + tuple(y.shape[1:]), g)
                p = params[k] if step >= b else {n: v[lo : lo + step] for n, v in params[k].items()}
                y = t.apply(y, p)
            outs.append(y)
        out = outs[0] if len(outs) == 1 else torch.cat(outs)
        return (out[0] if single else out), params  # type: ignore[return-value]

    def forward_with_params(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, list[Params]]:
        """Like ``forward`` but also return every step's parameters (for :meth:`apply`)."""
        g = _check_generator(generator) if generator is not None else self.generator
        return self._run(x, [None] * len(self.transforms), g)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.forward_with_params(x, generator)[0]

    def sample_params(self, shape: Sequence[int], generator: torch.Generator | None = None) -> Params:
        raise NotImplementedError("Compose draws step by step (shapes change); use forward_with_params")

    def apply(self, x: torch.Tensor, params: list[Params]) -> torch.Tensor:  # type: ignore[override]
        """Replay a pipeline with parameters from :meth:`forward_with_params`."""
        if len(params) != len(self.transforms):
            raise ValueError(f"expected {len(self.transforms)} parameter dicts, got {len(params)}")
        return self._run(x, list(params), None)[0]


class ToFloat(VideoTransform):
    """uint8 ``[0, 255]`` -> ``dtype`` in ``[0, 1]`` (floating inputs pass through)."""

    def __init__(self, dtype: torch.dtype = torch.float32):
        super().__init__()
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating point dtype, got {dtype}")
        self.dtype = dtype

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return F.to_float(x, self.dtype)


class Normalize(VideoTransform):
    """Convert uint8 to float32 ``[0, 1]`` if needed, then ``(x - mean) / std`` per channel.

    Defaults are the Kinetics-400 statistics of torchvision's video models.
    """

    def __init__(self, mean: Sequence[float] = KINETICS_MEAN, std: Sequence[float] = KINETICS_STD):
        super().__init__()
        if len(mean) != len(std) or not all(s > 0 for s in std):
            raise ValueError(f"mean and std need one value per channel and std > 0, got {mean}, {std}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        # TF.normalize's arithmetic, but the statistics go to the device with non_blocking=True
        # (TF.normalize builds them with torch.as_tensor(..., device=...), a blocking copy).
        x = F.to_float(x)
        shape = (len(self.mean), 1, 1)
        mean = torch.tensor(self.mean, dtype=x.dtype).view(shape).to(x.device, non_blocking=True)
        std = torch.tensor(self.std, dtype=x.dtype).view(shape).to(x.device, non_blocking=True)
        return x.sub(mean).div_(std)

    def extra_repr(self) -> str:
        return f"mean={self.mean}, std={self.std}"


class ToModelLayout(VideoTransform):
    """``(B, T, C, H, W)`` -> contiguous ``(B, C, T, H, W)`` (a single clip gives ``(C, T, H, W)``)."""

    def apply(self, x: torch.Tensor, params: Params) -> torch.Tensor:
        return x.permute(0, 2, 1, 3, 4).contiguous()
