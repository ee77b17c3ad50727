"""CLIP-temporal: at step 0 the video embedding is the mean of the per-frame CLIP embeddings;
registry contract, feature map, weights paths, and that training moves away from the mean."""

from __future__ import annotations

import pytest
import torch

from vidssl.errors import ConfigError, VidsslError
from vidssl.models.encoders import create_encoder, encoder_spec, list_encoders


@pytest.fixture(scope="module")
def enc():
    torch.manual_seed(0)
    return create_encoder("clip_temporal_tiny", num_frames=4, temporal_layers=2).eval()


def test_registered():
    assert {"clip_temporal_tiny", "clip_temporal_b16", "clip_temporal_b32"} <= set(list_encoders("clip_temporal*"))


def test_step0_video_embedding_is_the_mean_of_frame_clip_embeddings(enc):
    x = torch.randn(3, 3, 4, 32, 32)
    with torch.no_grad():
        video = enc.forward_features(x)
        # per frame, straight through the open_clip image tower (encode_image of the CLIP model)
        frames = torch.stack([enc.visual(x[:, :, t]) for t in range(4)], dim=1)
    assert video.shape == (3, enc.num_features) == (3, 32)
    # the temporal blocks add exactly zero: bit-equal to the mean of the same frame batch ...
    with torch.no_grad():
        assert torch.equal(video, enc.forward_frame_features(x).mean(dim=1))
    # ... and equal, up to the float rounding of batching frames together, to per-frame calls
    torch.testing.assert_close(video, frames.mean(dim=1), atol=1e-6, rtol=1e-6)


def test_temporal_blocks_learn_away_from_the_mean():
    torch.manual_seed(0)
    enc = create_encoder("clip_temporal_tiny")
    x = torch.randn(2, 3, 4, 32, 32)
    opt = torch.optim.SGD(enc.parameters(), lr=0.1)
    loss = enc(x).pow(2).sum() + (enc(x) * torch.arange(32.0)).sum()
    loss.backward()
    assert enc.temporal[0].attn.out_proj.weight.grad.abs().sum() > 0
    opt.step()
    with torch.no_grad():
        assert not torch.allclose(enc(x), enc.forward_frame_features(x).mean(1))


def test_feature_map_and_contract(enc):
    x = torch.randn(2, 3, 4, 32, 32)
    fm = enc.forward_feature_map(x)
    assert fm.shape == (2, 32, 4, 4, 4)                    # (B, E, T, 32/8, 32/8)
    assert enc.visual.output_tokens is False
    assert enc.preprocess.crop_size == 32 and enc.preprocess.num_frames == 4
    spec = encoder_spec(enc)
    assert spec["name"] == "clip_temporal_tiny" and spec["kwargs"]["temporal_layers"] == 2
    with pytest.raises(ValueError, match="32x32"):
        enc(torch.randn(1, 3, 4, 48, 48))


def test_weights_paths(tmp_path):
    torch.manual_seed(1)
    a = create_encoder("clip_temporal_tiny")
    path = tmp_path / "enc.pt"
    torch.save(a.state_dict(), path)
    b = create_encoder("clip_temporal_tiny", pretrained=str(path))
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    with pytest.raises(ConfigError, match="no published weights"):
        create_encoder("clip_temporal_tiny", pretrained="default")
    with pytest.raises(ConfigError, match="temporal_heads"):
        create_encoder("clip_temporal_tiny", temporal_heads=5)
    with pytest.raises(VidsslError, match="not found"):
        create_encoder("clip_temporal_tiny", pretrained=str(tmp_path / "none.pt"))
