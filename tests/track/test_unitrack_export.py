"""The UniTrack export, called the way UniTrack's ``make_encoder`` / ``AppearanceModel`` use it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from vidssl.data.transforms.video import IMAGENET_MEAN, IMAGENET_STD
from vidssl.errors import ConfigError
from vidssl.track.adapter import build_adapter
from vidssl.track.unitrack_export import make_encoder


class TimeFolded(nn.Module):
    """What UniTrack does to a network holding ``Conv2d`` layers (unless ``infer2D``): fold
    ``(N, C, T, H, W)`` clips into frames and unfold the output (written for this test)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        n, c, t, h, w = x.shape
        out = self.net(x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w))
        return out.reshape(n, t, *out.shape[1:]).permute(0, 2, 1, 3, 4)


def unitrack_appearance_model(args) -> nn.Module:
    net = make_encoder(args)
    if "Conv2d" in str(net) and not args.infer2D:
        net = TimeFolded(net)
    return net


def unitrack_args(**kw):
    base = dict(model_type="vidssl", remove_layers=["layer4"], infer2D=False, device="cpu",
                im_mean=list(IMAGENET_MEAN), im_std=list(IMAGENET_STD))
    return SimpleNamespace(**{**base, **kw})


def normalised(frames: np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(frames).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


@pytest.mark.parametrize("args", [unitrack_args(vidssl_encoder="r3d_tiny"),
                                  unitrack_args(vidssl_encoder="resnet18"),
                                  unitrack_args(model_type="vidssl-pixels"),
                                  unitrack_args(vidssl_encoder="videomae_tiny", infer2D=True)],
                         ids=["r3d_tiny", "resnet18", "pixels", "videomae_tiny-2d"])
def test_make_encoder_contract(args):
    frames = np.random.default_rng(0).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    model = unitrack_appearance_model(args)
    x = normalised(frames)
    with torch.no_grad():
        maps = model(x) if args.infer2D else model(x.transpose(0, 1)[None])
    if not args.infer2D:
        assert maps.shape[0] == 1 and maps.shape[2] == 4
        maps = maps[0].transpose(0, 1)
    assert maps.shape[0] == 4 and maps.shape[-2:] == (48 // 8, 64 // 8)
    # the same maps as vidssl's own path (which normalises with the encoder's statistics)
    export = model.net if isinstance(model, TimeFolded) else model
    ours = export.adapter.encode_video(frames)
    assert torch.allclose(maps, ours, atol=1e-4)


def test_make_encoder_errors():
    with pytest.raises(ConfigError):
        make_encoder(unitrack_args())
    with pytest.raises(ConfigError):
        make_encoder(unitrack_args(model_type="imagenet18"))


def test_renormalisation_to_the_encoders_statistics():
    net = make_encoder(unitrack_args(vidssl_encoder="r3d_tiny"))
    assert not torch.allclose(net.adapter.mean, net.in_mean)  # Kinetics vs ImageNet statistics
    assert build_adapter("r3d_tiny").kind == net.adapter.kind
