"""Projection heads used during pretraining (dropped afterwards: evaluation uses the encoder).

- :class:`CVRLProjectionHead`: SimCLR/CVRL's MLP, ``num_hidden_layers`` x (Linear -> BN -> ReLU)
  then a Linear to ``out_dim`` (CVRL: 3 hidden layers of 2048, output 128; TF code
  ``official/projects/video_ssl/modeling/video_ssl_model.py``). The loss normalises the output.
- :class:`TCLRProjectionHead`: TCLR's MLP, Linear ``D -> D`` -> BN -> ReLU -> Linear ``D -> 128``
  (no bias) -> BN -> L2-normalise (authors' ``tclr_pretraining/mlp.py``). One head serves the
  pooled clip features and every temporal slice of the global clip.

BatchNorm statistics are those of the batch each call sees, so callers decide what is normalised
together (the methods document it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CVRLProjectionHead", "TCLRProjectionHead", "ConvGRU"]


def _check_dim(name: str, value: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


class CVRLProjectionHead(nn.Module):
    """``num_hidden_layers`` x (Linear -> BatchNorm1d -> ReLU), then Linear ``-> out_dim``.

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
        super().__init__()
        _check_dim("in_dim", in_dim)
        _check_dim("hidden_dim", hidden_dim)
        _check_dim("out_dim", out_dim)
        _check_dim("num_hidden_layers", num_hidden_layers, 0)
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(num_hidden_layers):
            layers += [nn.Linear(width, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim))
        self.mlp = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class TCLRProjectionHead(nn.Module):
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
        super().__init__()
        _check_dim("in_dim", in_dim)
        hidden_dim = in_dim if hidden_dim is None else _check_dim("hidden_dim", hidden_dim)
        _check_dim("out_dim", out_dim)
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim)
        self.fc2 = nn.Linear(hidden_dim, out_dim, bias=False)
        self.bn2 = nn.BatchNorm1d(out_dim)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.fc1(x)))
        return F.normalize(self.bn2(self.fc2(x)), dim=-1)


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
