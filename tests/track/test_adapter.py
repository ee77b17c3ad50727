"""Appearance adapter: one stride-8 map per frame for every kind of encoder."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidssl.errors import ConfigError, VidsslError
from vidssl.models.encoders import create_encoder, encoder_spec
from vidssl.track import adapter as adapter_mod
from vidssl.track.adapter import build_adapter


def video(frames: int = 6, h: int = 40, w: int = 52, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("source,kind,channels", [
    ("r3d_tiny", "cnn3d", 64), ("r2plus1d_tiny", "cnn3d", 64), ("s3d_tiny", "cnn3d", 60),
    ("videomae_tiny", "vit", 64), ("resnet18", "resnet2d", 256), ("pixels", "pixels", 3)])
def test_one_stride8_map_per_frame(source, kind, channels):
    a = build_adapter(pixels=True) if source == "pixels" else build_adapter(source)
    assert a.kind == kind
    out = a.encode_video(video())
    assert out.shape == (6, channels, math.ceil(40 / 8), math.ceil(52 / 8))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_configurable_stride_and_layer4():
    a = build_adapter("r3d_tiny", stride=4)
    assert a.encode_video(video()).shape[-2:] == (10, 13)
    b = build_adapter("r3d_tiny", layer="layer4")
    assert b.encode_video(video()).shape == (6, 128, 5, 7)


def test_3d_trunk_keeps_weights_and_removes_strides():
    enc = create_encoder("r3d_tiny")
    a = build_adapter(enc)
    trunk = a.model
    assert torch.equal(trunk[3][0].conv1[0].weight, enc.layer3[0].conv1[0].weight)
    strides = [m.stride for m in trunk.modules() if isinstance(m, torch.nn.Conv3d)]
    assert all(s[0] == 1 for s in strides)
    assert enc.layer3[0].conv1[0].stride == (2, 2, 2)  # the encoder itself is untouched


def test_3d_windows_give_temporal_context_but_stay_local():
    a = build_adapter("r3d_tiny", window=4, context=2)
    v = video(frames=16)
    base = a.encode_video(v)
    near, far = v.copy(), v.copy()
    near[1] = 255 - near[1]
    far[12] = 255 - far[12]
    assert not torch.allclose(a.encode_video(near)[0], base[0])  # frame 0 sees frame 1
    assert torch.allclose(a.encode_video(far)[0], base[0])  # but not frame 12


def test_vit_frames_of_one_tubelet_share_a_map():
    a = build_adapter("videomae_tiny")
    out = a.encode_video(video(frames=5))
    assert torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])


def test_checkpoint_source(tmp_path):
    from vidssl.models.checkpoint import save_checkpoint

    enc = create_encoder("r3d_tiny")
    path = save_checkpoint({"encoder": enc.state_dict(), "encoder_spec": encoder_spec(enc)},
                           tmp_path / "last.pt")
    a, b = build_adapter(checkpoint=path), build_adapter(enc)
    assert torch.allclose(a.encode_video(video()), b.encode_video(video()))
    with pytest.raises(VidsslError):
        build_adapter(checkpoint=str(tmp_path / "missing.pt"))


def test_imagenet_tag_downloads_torchvision_weights(monkeypatch):
    import torchvision

    state = torchvision.models.resnet18(weights=None).state_dict()
    calls = []

    def fake_download(url, what):
        calls.append(url)
        return state

    monkeypatch.setattr("vidssl.models.encoders.weights.download_state_dict", fake_download)
    a = build_adapter("resnet18", pretrained="imagenet")
    assert calls == [adapter_mod.RESNET2D_URLS["resnet18"]]
    assert torch.equal(a.model[0].weight, state["conv1.weight"])
    assert a.name == "resnet18-imagenet"


def test_bad_sources():
    with pytest.raises(ConfigError):
        build_adapter()
    with pytest.raises(ConfigError):
        build_adapter("r3d_tiny", pixels=True)
    with pytest.raises(ConfigError):
        build_adapter("no_such_encoder")
    with pytest.raises(ConfigError):
        build_adapter("resnet18", layer="layer2")
    with pytest.raises(ConfigError):
        build_adapter(pixels=True).encode_video(np.zeros((2, 8, 8), dtype=np.uint8))
    with pytest.raises(ConfigError, match="takes differences of frames"):
        build_adapter(create_encoder("r3d_tiny", input_mode="differences"))


def test_fixed_size_encoder_is_resized_and_resampled_to_stride8():
    a = build_adapter("clip_temporal_tiny")  # CLIP tower: 32x32 frames only, 8-px patches
    assert a.kind == "generic" and a.fixed_size() == 32
    v = video(frames=6, h=40, w=52)
    out = a.encode_video(v)
    assert out.shape == (6, 32, 5, 7) and torch.isfinite(out).all()
    # the map is the 4x4 patch grid of the 32x32 resize, resampled bilinearly to 5x7
    x = (torch.as_tensor(v).permute(0, 3, 1, 2).float() / 255 - a.mean) / a.std
    x = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", antialias=True)
    with torch.no_grad():
        grid = a.model.forward_feature_map(x[:6].transpose(0, 1)[None])[0].transpose(0, 1)
    assert grid.shape[-2:] == (4, 4)
    want = torch.nn.functional.interpolate(grid, size=(5, 7), mode="bilinear")
    assert torch.allclose(out, want, atol=1e-5)


def test_fixed_size_encoder_mismatches_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="at most 16 frames"):
        build_adapter("clip_temporal_tiny", window=16, context=4)
    a = build_adapter("clip_temporal_tiny")
    a.model.max_frames = 2  # a clip longer than the encoder takes: its ValueError, one line
    with pytest.raises(ConfigError, match="cannot encode a clip") as err:
        a.encode_video(video(frames=6))
    assert "\n" not in str(err.value)
