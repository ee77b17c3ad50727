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

__all__ = ["CVRLProjectionHead", "TCLRProjectionHead"]


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
