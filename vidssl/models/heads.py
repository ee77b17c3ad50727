"""Every projection / prediction head of the methods, built from one block-list head.

:class:`BlockHead` stacks blocks (:class:`Block`: ``[Dropout] -> Linear (or 1 x 1 Conv) -> [BN]
-> [ReLU | GELU]``) and optionally L2-normalises the output. The methods' heads are presets of it:

- :class:`CVRLProjectionHead`: SimCLR/CVRL's MLP, ``num_hidden_layers`` x (Linear -> BN -> ReLU)
  then a Linear to ``out_dim`` (CVRL: 3 hidden layers of 2048, output 128; TF code
  ``official/projects/video_ssl/modeling/video_ssl_model.py``). The loss normalises the output.
- :class:`TCLRProjectionHead`: TCLR's MLP, Linear ``D -> D`` -> BN -> ReLU -> Linear ``D -> 128``
  (no bias) -> BN -> L2-normalise (authors' ``tclr_pretraining/mlp.py``). One head serves the
  pooled clip features and every temporal slice of the global clip.
- :func:`moco_head`: MoCo v2's MLP (CoCLR), Linear ``D -> D`` -> ReLU -> Linear ``D -> out``.
- :func:`concept_head`: LSS's head into a CLIP text space (MLP with GELU, a Linear, or identity).
- :func:`dense_predictor`: DPC's predictor on feature maps, 1 x 1 Conv -> ReLU -> 1 x 1 Conv.
- :func:`classifier_head`: Dropout -> Linear (the supervised upper bound).

Heads are dropped after pretraining (evaluation uses the encoder). BatchNorm statistics are
those of the batch each call sees, so callers decide what is normalised together (the methods
document it). Layers are numbered ``0, 1, ...`` (``named=True``: ``fc1, bn1, act1, fc2, ...``),
which keeps the state-dict keys of every head as they were when each was written by hand.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vidssl.errors import ConfigError

__all__ = ["Block", "BlockHead", "L2Normalize", "CVRLProjectionHead", "TCLRProjectionHead", "moco_head",
           "concept_head", "dense_predictor", "classifier_head", "ConvGRU", "HEAD_KINDS"]

ACTIVATIONS = {"relu": lambda: nn.ReLU(inplace=True), "gelu": nn.GELU}


def _check_dim(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class Block:
    """One layer of a :class:`BlockHead`: ``[Dropout(dropout)] -> Linear(out, bias) -> [BatchNorm]
    -> [act]``. ``dropout=None`` adds no dropout layer (0.0 adds an inactive one)."""

    out: int
    norm: bool = False
    act: Optional[str] = None
    bias: bool = True
    dropout: Optional[float] = None


class L2Normalize(nn.Module):
    """``x / ||x||`` over the last dimension."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1)


class BlockHead(nn.Sequential):
    """The block-list head every projection / prediction head is made of.

    Args:
        in_dim: width of the input feature.
        blocks: the layers, in order (:class:`Block`).
        normalize: L2-normalise the output.
        spatial: 1 x 1 convolutions over ``(B, C, H, W)`` maps instead of linear layers over
            ``(B, C)`` features (BatchNorm2d for ``norm``).
        named: name layers ``fc1, bn1, act1, drop1, ...`` instead of numbering them.

    Shape:
        - input: ``(B, in_dim)`` (``spatial``: ``(B, in_dim, H, W)``)
        - output: ``(B, blocks[-1].out)`` (``spatial``: ``(B, out, H, W)``)
    """

    def __init__(self, in_dim: int, blocks: Sequence[Block], *, normalize: bool = False,
                 spatial: bool = False, named: bool = False):
        _check_dim("in_dim", in_dim)
        layers: list[tuple[str, nn.Module]] = []
        width = in_dim
        for i, b in enumerate(blocks, 1):
            _check_dim("out_dim" if i == len(blocks) else "hidden_dim", b.out)
            if b.act is not None and b.act not in ACTIVATIONS:
                raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {b.act!r}")
            if b.dropout is not None:
                layers.append((f"drop{i}", nn.Dropout(b.dropout)))
            layers.append((f"fc{i}", nn.Conv2d(width, b.out, 1, bias=b.bias) if spatial
                           else nn.Linear(width, b.out, bias=b.bias)))
            if b.norm:
                layers.append((f"bn{i}", nn.BatchNorm2d(b.out) if spatial else nn.BatchNorm1d(b.out)))
            if b.act is not None:
                layers.append((f"act{i}", ACTIVATIONS[b.act]()))
            width = b.out
        if normalize:
            layers.append(("normalize", L2Normalize()))
        super().__init__(OrderedDict(layers if named else [(str(i), m) for i, (_, m) in enumerate(layers)]))
        self.in_dim, self.out_dim = in_dim, width


class CVRLProjectionHead(nn.Sequential):
    """``num_hidden_layers`` x (Linear -> BatchNorm1d -> ReLU), then Linear ``-> out_dim``, in
    ``self.mlp``.

    Args:
        in_dim: width of the encoder's pooled feature.
        hidden_dim: width of the hidden layers (CVRL: 2048; small configs use less).
        out_dim: projection width (CVRL: 128).
        num_hidden_layers: number of hidden layers (CVRL: 3; 0 gives a single Linear).

    Shape:
        - input: ``(B, in_dim)``
        - output: ``(B, out_dim)``, not normalised.
    """

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128, num_hidden_layers: int = 3):
        _check_dim("hidden_dim", hidden_dim)
        _check_dim("num_hidden_layers", num_hidden_layers, 0)
        hidden = [Block(hidden_dim, norm=True, act="relu")] * num_hidden_layers
        super().__init__(OrderedDict(mlp=BlockHead(in_dim, hidden + [Block(out_dim)])))
        self.in_dim, self.out_dim = in_dim, out_dim


class TCLRProjectionHead(BlockHead):
    """Linear ``in -> hidden`` -> BN -> ReLU -> Linear ``hidden -> out`` (no bias) -> BN -> L2-norm.

    Args:
        in_dim: width ``D`` of the encoder feature (512 for R3D-18).
        hidden_dim: hidden width; ``None`` means ``in_dim`` (TCLR: 512 -> 512).
        out_dim: embedding width (TCLR: 128).

    Shape:
        - input: ``(B, in_dim)`` (a pooled clip feature or one temporal slice per row)
        - output: ``(B, out_dim)``, unit L2 norm.
    """

    def __init__(self, in_dim: int, hidden_dim: int | None = None, out_dim: int = 128):
        _check_dim("in_dim", in_dim)
        hidden = in_dim if hidden_dim is None else hidden_dim
        super().__init__(in_dim, [Block(hidden, norm=True, act="relu"), Block(out_dim, bias=False, norm=True)],
                         normalize=True, named=True)


def moco_head(in_dim: int, out_dim: int) -> BlockHead:
    """MoCo v2's MLP (CoCLR, the authors' ``InfoNCE``): Linear D->D, ReLU, Linear D->out."""
    return BlockHead(in_dim, [Block(in_dim, act="relu"), Block(out_dim)])


def dense_predictor(dim: int) -> BlockHead:
    """DPC's predictor on ``(B, D, H, W)`` maps: 1 x 1 Conv, ReLU, 1 x 1 Conv (``D -> D``)."""
    return BlockHead(dim, [Block(dim, act="relu"), Block(dim)], spatial=True)


def classifier_head(in_dim: int, num_classes: int, dropout: float) -> BlockHead:
    """Dropout then a Linear to ``num_classes`` logits."""
    return BlockHead(in_dim, [Block(num_classes, dropout=dropout)])


HEAD_KINDS: tuple[str, ...] = ("auto", "mlp", "linear", "identity")


def concept_head(kind: str, in_dim: int, out_dim: int, hidden_dim: int = 2048, layers: int = 3, *,
                 same_space: bool = False) -> nn.Module:
    """Encoder feature ``(B, D)`` -> ``(B, E)`` in a concept space (not normalised; LSS).

    ``mlp``: ``layers`` Linear layers with GELU between (DINO's head without its
    weight-normalised last layer). ``linear``: one Linear. ``identity``: the features already
    live in the concept space (widths must agree). ``auto``: identity when ``same_space`` (a
    CLIP-temporal encoder of the concept space's own CLIP model), an MLP otherwise, even when the
    widths happen to match (R3D-18's 512 = ViT-B's text width).
    """
    if kind not in HEAD_KINDS:
        raise ConfigError(f"head must be one of {HEAD_KINDS}, got {kind!r}")
    if kind == "auto":
        kind = "identity" if same_space else "mlp"
    if kind == "identity":
        if in_dim != out_dim:
            raise ConfigError(f"head 'identity' needs the encoder width ({in_dim}) to equal the concept width ({out_dim})")
        return nn.Identity()
    if kind == "linear" or layers == 1:
        return nn.Linear(in_dim, out_dim)
    return BlockHead(in_dim, [Block(hidden_dim, act="gelu")] * (layers - 1) + [Block(out_dim)])


class ConvGRU(nn.Module):
    """One-layer convolutional GRU over a sequence of feature maps (DPC's aggregator).

    ``r, u = sigmoid(conv([x_t; h]))``, ``c = tanh(conv([x_t; r * h]))``,
    ``h = (1 - u) * h + u * c``; dropout on each output. Kernel 1 (DPC) makes it a per-position GRU.

    Shape:
        - x: ``(B, T, C_in, H, W)``; hidden: ``(B, C_hid, H, W)`` or ``None`` (zeros).
        - output: ``(outputs (B, T, C_hid, H, W), last hidden (B, C_hid, H, W))``.
    """

    def __init__(self, in_dim: int, hidden_dim: int, kernel_size: int = 1, dropout: float = 0.0):
        super().__init__()
        _check_dim("in_dim", in_dim)
        _check_dim("hidden_dim", hidden_dim)
        pad = kernel_size // 2
        self.gates = nn.Conv2d(in_dim + hidden_dim, 2 * hidden_dim, kernel_size, padding=pad)
        self.candidate = nn.Conv2d(in_dim + hidden_dim, hidden_dim, kernel_size, padding=pad)
        self.dropout = nn.Dropout(dropout)
        self.hidden_dim = hidden_dim

    def forward(self, x: torch.Tensor, hidden: torch.Tensor | None = None):
        if x.ndim != 5:
            raise ValueError(f"ConvGRU expects (B, T, C, H, W), got {tuple(x.shape)}")
        b, t, _, h, w = x.shape
        if hidden is None:
            hidden = x.new_zeros(b, self.hidden_dim, h, w)
        outputs = []
        for i in range(t):
            r, u = torch.sigmoid(self.gates(torch.cat([x[:, i], hidden], 1))).chunk(2, dim=1)
            c = torch.tanh(self.candidate(torch.cat([x[:, i], r * hidden], 1)))
            hidden = self.dropout((1 - u) * hidden + u * c)
            outputs.append(hidden)
        return torch.stack(outputs, 1), hidden
