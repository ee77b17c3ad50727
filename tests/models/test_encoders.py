"""Encoder registry and encoders: shapes, contract, TCLR dilation, weights in and out, errors.

Nothing here touches the network: published-weight downloads and hub loads are monkeypatched.
"""

from __future__ import annotations

import json
import sys
import urllib.error

import pytest
import torch
import torchvision
from torch import nn

import vidssl.offline
from vidssl.errors import ConfigError, MissingDependencyError, VidsslError
from vidssl.models.encoders import (VideoEncoder, create_encoder, encoder_defaults, encoder_spec,
                                    list_encoders, register_encoder)

TINY = ["r3d_tiny", "mc3_tiny", "r2plus1d_tiny", "s3d_tiny", "videomae_tiny", "mvit_tiny", "swin3d_tiny",
        "vjepa2_tiny", "r2d3d_tiny", "r3d_50_tiny"]
# (B, D, T', H', W') for a (2, 3, 16, 64, 64) clip.
TINY_MAP_SHAPES = {
    "r3d_tiny": (2, 128, 2, 4, 4),
    "mc3_tiny": (2, 128, 16, 4, 4),
    "r2plus1d_tiny": (2, 128, 2, 4, 4),
    "s3d_tiny": (2, 128, 2, 2, 2),
    "videomae_tiny": (2, 64, 8, 4, 4),
    "mvit_tiny": (2, 32, 8, 8, 8),
    "swin3d_tiny": (2, 32, 8, 8, 8),
    "vjepa2_tiny": (2, 64, 8, 4, 4),
    "r2d3d_tiny": (2, 64, 4, 2, 2),
    "r3d_50_tiny": (2, 256, 8, 2, 2),
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The many small convolutions here run fastest on one thread, and a second OpenMP thread
    on a busy 2-core machine turns each op barrier into a scheduler wait (seconds per forward)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def clip(batch: int = 2, frames: int = 16, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def small_clip(name: str, seed: int = 0) -> torch.Tensor:
    """The cheapest valid input (batch 2: training-mode BatchNorm on a 1x1x1 map needs > 1
    value): the ViT's position table fixes 16x64x64, the CNNs take 8x32x32."""
    return clip(2, 16, 64, seed) if name.startswith(("videomae", "mvit")) else clip(2, 8, 32, seed)


@pytest.fixture(scope="module", params=TINY)
def tiny(request) -> tuple[str, nn.Module]:
    torch.manual_seed(0)
    return request.param, create_encoder(request.param).eval()


def test_registry_lists_every_encoder_and_a_tiny_variant_per_family():
    names = list_encoders()
    assert names == sorted(names)
    assert {"r3d_18", "mc3_18", "r2plus1d_18", "r2d3d_18", "r2d3d_34", "r3d_50", "s3d", "mvit_v1_b", "mvit_v2_s", "swin3d_t", "swin3d_s", "swin3d_b",
            "videomae_vit_s", "videomae_vit_b", "videomae_vit_l", "videomae_vit_h", "vjepa2_vit_l", "vjepa2_vit_h",
            "vjepa2_vit_g", *TINY} <= set(names)
    # clip_temporal_tiny (32 px frames, CLS pooling, zero-initialised temporal blocks) keeps the
    # contract too, with its own checks in tests/models/test_clip_temporal.py
    assert list_encoders("*_tiny") == sorted(TINY + ["clip_temporal_tiny"])


def test_tiny_encoder_keeps_the_contract(tiny):
    name, enc = tiny
    assert isinstance(enc, VideoEncoder)
    x = clip()
    with torch.no_grad():
        pooled = enc.forward_features(x)
        fmap = enc.forward_feature_map(x)
        plain = enc(x)
    assert fmap.shape == TINY_MAP_SHAPES[name]
    assert pooled.shape == (2, enc.num_features) and fmap.shape[1] == enc.num_features
    torch.testing.assert_close(plain, pooled)
    # pooled = mean of the map (documented for every family, the ViT's token mean included), or of
    # its ReLU where the map is pre-activation (DPC's 2D3D-ResNet: features_are_map_mean False)
    want = fmap.mean(dim=(2, 3, 4)) if enc.features_are_map_mean else fmap.relu().mean(dim=(2, 3, 4))
    torch.testing.assert_close(pooled, want, rtol=1e-4, atol=1e-5)
    assert pooled.isfinite().all() and pooled.std() > 0
    assert enc.preprocess.crop_size == 64 and enc.preprocess.num_frames == 16
    assert enc.encoder_name == name
    t, h, w = enc.feature_stride
    assert fmap.shape[2:] == (16 // t, 64 // h, 64 // w)


def test_gradients_reach_every_parameter(tiny):
    name, enc = tiny
    enc.train().zero_grad()
    try:
        enc.forward_features(small_clip(name)).square().mean().backward()
    finally:
        enc.eval()
    missing = [n for n, p in enc.named_parameters() if p.grad is None]
    assert not missing, f"{name}: no gradient for {missing[:3]}"
    assert all(p.grad.isfinite().all() for p in enc.parameters())
    assert all(float(p.grad.abs().sum()) > 0 for n, p in enc.named_parameters()
               if n.endswith("weight")), f"{name}: some weight got an all-zero gradient"
    enc.zero_grad(set_to_none=True)


def test_spec_rebuilds_the_same_architecture(tiny):
    name, enc = tiny
    spec = encoder_spec(enc)
    assert spec["name"] == name and set(spec["kwargs"]) == set(encoder_defaults(name))
    json.dumps(spec)  # plain values only (YAML / JSON / weights_only checkpoints)
    again = create_encoder(spec["name"], **spec["kwargs"])
    assert {k: v.shape for k, v in again.state_dict().items()} == \
        {k: v.shape for k, v in enc.state_dict().items()}


def test_pretrained_from_state_dict_file_round_trip(tiny, tmp_path):
    name, enc = tiny
    path = tmp_path / f"{name}.pt"
    torch.save(enc.state_dict(), path)
    torch.manual_seed(123)  # a different random init, overwritten by the file
    loaded = create_encoder(name, pretrained=str(path)).eval()
    x = small_clip(name, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), enc(x))


def test_pretrained_from_vidssl_checkpoint_and_ddp_prefix(tmp_path):
    torch.manual_seed(0)
    enc = create_encoder("r3d_tiny", temporal_dilation_last_stage=True).eval()
    x = small_clip("r3d_tiny", seed=1)
    with torch.no_grad():
        want = enc(x)
    ckpt = {"format": "vidssl-checkpoint-1", "encoder": enc.state_dict(),
            "encoder_spec": encoder_spec(enc), "model": {"head.weight": torch.zeros(2)}, "step": 3}
    torch.save(ckpt, tmp_path / "ckpt.pt")
    ddp = {f"module.{k}": v for k, v in enc.state_dict().items()}
    torch.save(ddp, tmp_path / "ddp.pt")
    for path in (tmp_path / "ckpt.pt", tmp_path / "ddp.pt"):
        torch.manual_seed(7)
        loaded = create_encoder(**{"name": ckpt["encoder_spec"]["name"],
                                   **ckpt["encoder_spec"]["kwargs"]}, pretrained=path).eval()
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), want)


def test_mismatched_state_dict_is_one_line_with_counts(tmp_path):
    small = create_encoder("r3d_tiny", widths=(8, 16, 32, 64))
    path = tmp_path / "small.pt"
    torch.save(small.state_dict(), path)
    with pytest.raises(VidsslError, match=r"shape mismatches") as err:
        create_encoder("r3d_tiny", pretrained=path)
    assert "\n" not in str(err.value) and "r3d_tiny" in str(err.value)

    torch.save(create_encoder("r2plus1d_tiny").state_dict(), path)
    with pytest.raises(VidsslError, match=r"\d+ missing keys .*\d+ unexpected keys") as err:
        create_encoder("r3d_tiny", pretrained=path)
    assert "\n" not in str(err.value)


def test_unreadable_or_missing_weight_files(tmp_path):
    with pytest.raises(VidsslError, match="not found"):
        create_encoder("r3d_tiny", pretrained=tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(VidsslError, match="cannot read pretrained weights"):
        create_encoder("r3d_tiny", pretrained=bad)
    torch.save({"step": 3}, bad)
    with pytest.raises(VidsslError, match="holds no state dict"):
        create_encoder("r3d_tiny", pretrained=bad)


def test_create_encoder_errors():
    with pytest.raises(ConfigError, match=r"unknown encoder 'r4d'.*r3d_tiny"):
        create_encoder("r4d")
    with pytest.raises(ConfigError, match=r"unknown argument\(s\) 'width'.*accepted: widths"):
        create_encoder("r3d_tiny", width=(8, 8, 8, 8))
    with pytest.raises(ConfigError, match="4 positive integers"):
        create_encoder("r3d_tiny", widths=(8, 16, 32))
    with pytest.raises(ConfigError, match="width_mult"):
        create_encoder("s3d_tiny", width_mult=0)
    for name in TINY:
        with pytest.raises(ConfigError, match="no published weights"):
            create_encoder(name, pretrained="default")
    with pytest.raises(ConfigError, match="not built by create_encoder"):
        encoder_spec(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="already registered"):
        register_encoder("r3d_tiny")(lambda pretrained=None: nn.Identity())


@pytest.mark.parametrize("name", ["r3d_tiny", "mc3_tiny", "r2plus1d_tiny"])
def test_frame_differences_input_is_the_rgb_trunk_on_differences(name, tmp_path):
    torch.manual_seed(0)
    diff = create_encoder(name, input_mode="differences").eval()
    rgb = create_encoder(name).eval()
    rgb.load_state_dict(diff.state_dict(), strict=True)            # same parameters, no new ones
    x = clip(2, 9, 32, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(diff(x), rgb(x[:, :, 1:] - x[:, :, :-1]))
        torch.testing.assert_close(diff.forward_feature_map(x, pre_activation=True),
                                   rgb.forward_feature_map(x[:, :, 1:] - x[:, :, :-1], pre_activation=True))
        # a still clip has no differences: its feature is that of an all-zero input, whatever the frame
        still = x[:, :, :1].expand(-1, -1, 9, -1, -1)
        torch.testing.assert_close(diff(still), rgb(torch.zeros(2, 3, 8, 32, 32)))
    # the mode travels with the checkpoint's spec: a rebuilt encoder takes differences again
    spec = encoder_spec(diff)
    assert spec["kwargs"]["input_mode"] == "differences"
    torch.save({"format": "vidssl-checkpoint-1", "encoder": diff.state_dict(), "encoder_spec": spec},
               tmp_path / "ckpt.pt")
    from vidssl.models.checkpoint import load_encoder
    again = load_encoder(tmp_path / "ckpt.pt").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x), diff(x))
    with pytest.raises(ConfigError, match="input_mode must be one of rgb, differences"):
        create_encoder(name, input_mode="flow")
    with pytest.raises(ValueError, match="T >= 2"):
        diff(clip(2, 1, 32))


@pytest.mark.parametrize("name", ["r3d_tiny", "r2plus1d_tiny"])
def test_tclr_dilation_keeps_four_temporal_slices(name):
    plain = create_encoder(name)
    dilated = create_encoder(name, temporal_dilation_last_stage=True)
    x = clip(batch=1)
    with torch.no_grad():
        assert plain.forward_feature_map(x).shape[2:] == (2, 4, 4)
        assert dilated.forward_feature_map(x).shape[2:] == (4, 4, 4)
    assert dilated.feature_stride == (4, 16, 16)
    # no new parameters: the undilated weights load as they are
    dilated.load_state_dict(plain.state_dict(), strict=True)


def test_tclr_dilation_matches_the_tclr_r3d18_layer():
    enc = create_encoder("r3d_18", temporal_dilation_last_stage=True)
    # TCLR: Conv3d(256, 512, 3, stride=(1, 2, 2), padding=(2, 1, 1), dilation=(2, 1, 1))
    conv = enc.layer4[0].conv1[0]
    assert (conv.stride, conv.padding, conv.dilation) == ((1, 2, 2), (2, 1, 1), (2, 1, 1))
    assert enc.layer4[0].downsample[0].stride == (1, 2, 2)
    assert enc.layer3[0].conv1[0].stride == (2, 2, 2)  # earlier stages untouched
    with torch.no_grad():
        assert enc.forward_feature_map(clip(batch=1, size=32)).shape == (1, 512, 4, 2, 2)


def _torchvision_trunk(name: str, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if name == "s3d":
        return model.features(x)
    return model.layer4(model.layer3(model.layer2(model.layer1(model.stem(x)))))


TORCHVISION = {
    "r3d_18": ("r3d_18", "R3D_18_Weights"),
    "r2plus1d_18": ("r2plus1d_18", "R2Plus1D_18_Weights"),
    "s3d": ("s3d", "S3D_Weights"),
}


@pytest.mark.parametrize("name", [
    "r3d_18", "r2plus1d_18", "s3d"])
def test_published_weights_load_and_match_torchvision(name, monkeypatch):
    """``pretrained="default"`` fetches torchvision's URL and loads its state dict (classifier
    dropped); the feature map equals torchvision's trunk. The download is faked with the state
    dict of a randomly initialised torchvision model (same keys and shapes)."""
    builder, weights_enum = TORCHVISION[name]
    weights = getattr(torchvision.models.video, weights_enum).KINETICS400_V1
    torch.manual_seed(0)
    reference = getattr(torchvision.models.video, builder)().eval()
    urls = []

    def fake_download(url, **kwargs):
        urls.append(url)
        assert kwargs.get("weights_only") is True
        return reference.state_dict()

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    monkeypatch.setattr(vidssl.offline, "host_reachable", lambda *a, **k: True)  # the host answers
    enc = create_encoder(name, pretrained="default").eval()
    assert urls == [weights.url]
    x = clip(batch=1, frames=8, size=32)
    with torch.no_grad():
        want = _torchvision_trunk(name, reference, x)
        torch.testing.assert_close(enc.forward_feature_map(x), want)
    # preprocessing metadata follows the weights' own transforms
    transforms = weights.transforms()
    assert enc.preprocess.crop_size == transforms.crop_size[0]
    assert enc.preprocess.resize_size == transforms.resize_size[0]
    assert enc.preprocess.mean == tuple(transforms.mean)
    assert enc.preprocess.std == tuple(transforms.std)
    assert sum(p.numel() for p in enc.parameters()) + sum(
        p.numel() for n, p in reference.named_parameters()
        if n.startswith(("fc.", "classifier."))) == weights.meta["num_params"]


def test_download_failure_is_one_line_naming_url_and_local_file(monkeypatch):
    def offline(url, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    monkeypatch.setattr(vidssl.offline, "host_reachable", lambda *a, **k: True)  # the probe passed
    with pytest.raises(VidsslError) as err:
        create_encoder("s3d", pretrained=True)
    msg = str(err.value)
    assert "\n" not in msg
    assert "torchvision s3d Kinetics-400 weights" in msg
    assert "https://download.pytorch.org/models/s3d-d76dad2f.pth" in msg
    assert "pretrained=PATH" in msg and "name resolution" in msg


# ---------------------------------------------------------------- video ViT (transformers)

def test_videomae_missing_transformers_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` -> ImportError
    with pytest.raises(MissingDependencyError) as err:
        create_encoder("videomae_tiny")
    msg = str(err.value)
    assert "the video ViT encoders" in msg and "vidssl[vit]" in msg and "'transformers'" in msg
    assert isinstance(err.value, ImportError)


def test_videomae_offline_hub_load_names_the_id_and_local_dir(monkeypatch):
    transformers = pytest.importorskip("transformers")

    def offline(cls, source, **kwargs):
        raise OSError(f"We couldn't connect to 'https://huggingface.co' to load {source}.")

    monkeypatch.setattr(transformers.VideoMAEModel, "from_pretrained", classmethod(offline))
    with pytest.raises(VidsslError) as err:
        create_encoder("videomae_vit_b", pretrained="default")
    msg = str(err.value)
    assert "\n" not in msg
    assert "'MCG-NJU/videomae-base'" in msg and "pretrained=LOCAL_DIR" in msg


def test_videomae_local_folder_round_trip_and_mismatch(tmp_path):
    pytest.importorskip("transformers")
    enc = create_encoder("videomae_tiny").eval()
    enc.model.save_pretrained(tmp_path / "tiny")
    loaded = create_encoder("videomae_tiny", pretrained=tmp_path / "tiny").eval()
    x = clip(seed=2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), enc(x))
    with pytest.raises(VidsslError, match=r"do not fit encoder 'videomae_tiny': \d+ missing keys"):
        create_encoder("videomae_tiny", pretrained=tmp_path / "tiny", num_hidden_layers=3)
    with pytest.raises(VidsslError, match="not found"):
        create_encoder("videomae_tiny", pretrained=tmp_path / "absent")


def test_videomae_feature_map_follows_token_order_and_checks_input():
    pytest.importorskip("transformers")
    enc = create_encoder("videomae_tiny", num_frames=8).eval()
    x = clip(batch=1, frames=8)
    with torch.no_grad():
        tokens = enc.forward_tokens(x)  # (1, 4*4*4, 64), token index = (t*4 + h)*4 + w
        fmap = enc.forward_feature_map(x)
    assert tokens.shape == (1, 64, 64) and fmap.shape == (1, 64, 4, 4, 4)
    torch.testing.assert_close(fmap[0, :, 1, 2, 3], tokens[0, (1 * 4 + 2) * 4 + 3])
    with pytest.raises(ConfigError, match=r"takes clips of shape \(B, 3, 8, 64, 64\)"):
        enc(clip(batch=1, frames=16))


@pytest.mark.slow
def test_videomae_vit_b_shapes():
    enc = create_encoder("videomae_vit_b").eval()
    assert enc.num_features == 768
    assert sum(p.numel() for p in enc.parameters()) == 86_227_200
    with torch.no_grad():
        assert enc.forward_feature_map(clip(batch=1, size=224)).shape == (1, 768, 8, 14, 14)
