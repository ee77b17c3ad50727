"""The papers' own backbones: DPC's 2D3D-ResNet (``r2d3d_*``) and CVRL's R3D-50 (``r3d_50*``).

Layouts are checked against what the authors' code builds (DPC ``backbone/resnet_2d3d.py``;
CVRL's TensorFlow ``ResNet3D`` config ``cvrl_pretrain_k600_200ep.yaml``); the shared contract
(shapes, gradients, spec, weight files) is in ``test_encoders.py``."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from vidssl.errors import ConfigError, MissingDependencyError
from vidssl.models.encoders import create_encoder


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _convs(module: nn.Module) -> dict[str, nn.Conv3d]:
    return {n: m for n, m in module.named_modules() if isinstance(m, nn.Conv3d)}


# ---------------------------------------------------------------- DPC 2D3D-ResNet


def test_r2d3d_layout_is_the_authors():
    enc = create_encoder("r2d3d_18")
    convs = _convs(enc)
    assert (convs["conv1"].kernel_size, convs["conv1"].stride) == ((1, 7, 7), (1, 2, 2))
    assert enc.maxpool.kernel_size == (1, 3, 3) and enc.maxpool.stride == (1, 2, 2)
    for name, conv in convs.items():
        if name.startswith(("layer1", "layer2")) and "downsample" not in name:
            assert conv.kernel_size == (1, 3, 3), name            # 2D stages
        if name.startswith(("layer3", "layer4")) and "downsample" not in name:
            assert conv.kernel_size == (3, 3, 3), name            # 3D stages
    assert convs["layer2.0.downsample.0"].stride == (1, 2, 2)       # 2D stride: space only
    assert convs["layer3.0.conv1"].stride == (2, 2, 2) and convs["layer4.0.downsample.0"].stride == (2, 2, 2)
    assert enc.layer4[-1].conv2.out_channels == enc.num_features == 256   # layer4 narrowed to 256
    assert [len(enc.get_submodule(f"layer{i}")) for i in range(1, 5)] == [2, 2, 2, 2]
    assert [len(create_encoder("r2d3d_34").get_submodule(f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    # the authors' final block ends without ReLU; every other block has it
    assert [b.use_final_relu for b in enc.layer4] == [True, False] and all(b.use_final_relu for b in enc.layer3)
    assert sum(p.numel() for p in enc.parameters()) == 14_057_536


def test_r2d3d_dpc_block_shape_and_pre_activation():
    torch.manual_seed(0)
    enc = create_encoder("r2d3d_18").eval()
    x = torch.randn(2, 3, 5, 128, 128, generator=torch.Generator().manual_seed(1))   # one DPC block
    with torch.no_grad():
        pre = enc.forward_feature_map(x)
        post = enc.forward_feature_map(x, pre_activation=False)
        pooled = enc(x)
    assert pre.shape == (2, 256, 2, 4, 4)                                    # T' = ceil(5/4), 128/32
    assert (pre < 0).any() and torch.equal(post, pre.relu())
    torch.testing.assert_close(pooled, post.mean(dim=(2, 3, 4)))          # the authors' classifier: ReLU, pool
    assert not enc.features_are_map_mean and enc.preprocess.num_frames == 5 and enc.preprocess.crop_size == 128


def test_use_final_relu_changes_outputs_not_weights():
    torch.manual_seed(0)
    pre = create_encoder("r2d3d_tiny").eval()
    post = create_encoder("r2d3d_tiny", use_final_relu=True).eval()
    post.load_state_dict(pre.state_dict())
    x = torch.randn(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(post.forward_feature_map(x), pre.forward_feature_map(x).relu())
        torch.testing.assert_close(post.forward_feature_map(x, pre_activation=True), pre.forward_feature_map(x))
        torch.testing.assert_close(post(x), pre(x))
    assert post.features_are_map_mean and post.layer4[-1].use_final_relu


def test_track_running_stats_false_is_dpc_pretraining_batchnorm():
    enc = create_encoder("r2d3d_tiny", track_running_stats=False).eval()
    assert not any("running_" in k or "num_batches" in k for k in enc.state_dict())
    assert all(not m.track_running_stats for m in enc.modules() if isinstance(m, nn.BatchNorm3d))
    x = torch.randn(4, 3, 8, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():                       # batch statistics in eval mode too: features depend on the batch
        assert not torch.allclose(enc(x)[:2], enc(x[:2]))
    tracked = create_encoder("r2d3d_tiny")
    assert any(k.endswith("running_mean") for k in tracked.state_dict())


def test_r2d3d_has_no_download():
    with pytest.raises(ConfigError, match="dpc:FILE"):
        create_encoder("r2d3d_18", pretrained="default")


# ---------------------------------------------------------------- CVRL R3D-50


def test_r3d50_temporal_kernels_are_cvrls():
    pytest.importorskip("pytorchvideo")
    enc = create_encoder("r3d_50")
    stem = enc.net.blocks[0].conv
    assert (stem.kernel_size, stem.stride) == ((5, 7, 7), (2, 2, 2))
    pool = enc.net.blocks[0].pool
    assert (tuple(pool.kernel_size), tuple(pool.stride)) == ((1, 3, 3), (1, 2, 2))
    depths, kernels = [], []
    for stage in enc.net.blocks[1:]:
        depths.append(len(stage.res_blocks))
        kernels.append({b.branch2.conv_a.kernel_size[0] for b in stage.res_blocks})
        for b in stage.res_blocks:
            assert b.branch2.conv_a.stride[0] == 1 and b.branch2.conv_b.kernel_size == (1, 3, 3)
    assert depths == [3, 4, 6, 3] and kernels == [{1}, {1}, {3}, {3}]          # res2, res3: 1; res4, res5: 3
    assert enc.num_features == 2048 and enc.feature_stride == (2, 32, 32)
    assert all(float(m.weight.detach().min()) == 1.0 for m in enc.modules() if isinstance(m, nn.BatchNorm3d))
    x = torch.randn(1, 3, 8, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        fmap = enc.eval().forward_feature_map(x)
        pre = enc.forward_feature_map(x, pre_activation=True)
    assert fmap.shape == (1, 2048, 4, 2, 2) and torch.equal(fmap, pre.relu()) and (pre < 0).any()


def test_r3d50_without_pytorchvideo_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorchvideo.models.resnet", None)
    with pytest.raises(MissingDependencyError, match="pytorchvideo"):
        create_encoder("r3d_50_tiny")
    with pytest.raises(ConfigError, match="TensorFlow"):
        create_encoder("r3d_50", pretrained="default")


# ---------------------------------------------------------------- usable by every method


@pytest.mark.parametrize("encoder", ["r2d3d_tiny", "r3d_50_tiny"])
def test_every_method_trains_the_paper_backbones(encoder):
    """One step of every registered method (the small settings of tests/methods/test_methods.py):
    DPC reads the feature map (pre-activation targets), the others pool."""
    if encoder == "r3d_50_tiny":
        pytest.importorskip("pytorchvideo")
    from tests.methods.test_methods import SMALL, batch_for
    from vidssl.methods import create_method

    for name, params in SMALL.items():
        torch.manual_seed(0)
        method = create_method(name, create_encoder(encoder), params)
        out = method(batch_for(method))
        assert torch.isfinite(out["loss"]), name
        out["loss"].backward()
        missing = [n for n, p in method.encoder.named_parameters() if p.grad is None]
        assert not missing, (name, missing[:3])
        if name == "dpc":
            assert method.target_kind == "pre_activation"
