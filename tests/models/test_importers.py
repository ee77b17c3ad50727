"""Published-weight importers: each tested on a state dict with the official key names and shapes,
made by the official model code (torchvision's and transformers' own classes, random init) or by
a reference written in this file from the authors' released model code (TCLR, CoCLR); the
imported encoder loads it strictly and gives the reference's outputs. Nothing is downloaded."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from torch import nn

import vidssl.offline
from vidssl.errors import ConfigError, VidsslError
from vidssl.models.encoders import create_encoder
from vidssl.models.importers import (COCLR_PREPROCESS, TCLR_PREPROCESS, TORCHVISION_NAMES, load_published,
                                     torchvision_weights)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _fake_hub(monkeypatch, state: dict) -> list:
    urls = []

    def fake_download(url, **kwargs):
        urls.append(url)
        assert kwargs.get("weights_only") is True
        return state

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    monkeypatch.setattr(vidssl.offline, "host_reachable", lambda *a, **k: True)
    return urls


# ---------------------------------------------------------------- torchvision: every video model

def _reference(name: str) -> nn.Module:
    builder = "swin3d_b" if name == "swin3d_b_22k" else name
    torch.manual_seed(0)
    return getattr(torchvision.models.video, builder)().eval()


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_torchvision_weights_load_strictly_with_their_head(name, monkeypatch):
    ref = _reference(name)
    urls = _fake_hub(monkeypatch, ref.state_dict())
    enc = load_published(f"torchvision:{name}").eval()
    weights = torchvision_weights(name)
    assert urls == [weights.url] and enc.class_names == list(weights.meta["categories"])
    assert sum(p.numel() for p in enc.parameters()) == weights.meta["num_params"]
    transforms = weights.transforms()
    assert (enc.preprocess.crop_size, enc.preprocess.resize_size) == (transforms.crop_size[0], transforms.resize_size[0])
    assert enc.preprocess.mean == pytest.approx(tuple(transforms.mean))
    if name in ("r3d_18", "mc3_18", "r2plus1d_18", "swin3d_t"):   # cheap enough for a default test
        x = torch.randn(1, 3, 8, 64, 64, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            torch.testing.assert_close(enc.forward_logits(x), ref(x))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["s3d", "mvit_v1_b", "mvit_v2_s", "swin3d_s", "swin3d_b"])
def test_torchvision_logits_match_at_full_size(name, monkeypatch):
    ref = _reference(name)
    _fake_hub(monkeypatch, ref.state_dict())
    enc = load_published(f"torchvision:{name}").eval()
    x = torch.randn(1, 3, 16, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(enc.forward_logits(x), ref(x), rtol=1e-4, atol=1e-4)


def test_tiny_mvit_and_swin_equal_torchvision_classes():
    from torchvision.models.video.mvit import MViT
    from torchvision.models.video.swin_transformer import SwinTransformer3d

    from vidssl.models.encoders.torchvision_video import tiny_mvit_blocks

    torch.manual_seed(0)
    refs = {"mvit_tiny": MViT(spatial_size=(64, 64), temporal_size=16, block_setting=tiny_mvit_blocks(),
                              residual_pool=True, residual_with_cls_embed=False, rel_pos_embed=True,
                              proj_after_attn=True, num_classes=5),
            "swin3d_tiny": SwinTransformer3d(patch_size=[2, 4, 4], embed_dim=16, depths=[2, 1], num_heads=[1, 2],
                                             window_size=[2, 4, 4], stochastic_depth_prob=0.0, num_classes=5)}
    x = torch.randn(2, 3, 16, 64, 64, generator=torch.Generator().manual_seed(2))
    for name, ref in refs.items():
        enc = create_encoder(name, num_classes=5).eval()
        enc.load_state_dict(ref.eval().state_dict(), strict=True)
        with torch.no_grad():
            torch.testing.assert_close(enc.forward_logits(x), ref(x))
            fmap = enc.forward_feature_map(x)
        assert fmap.shape[1] == enc.num_features == 32
        assert tuple(x.shape[2 + i] // fmap.shape[2 + i] for i in range(3)) == enc.feature_stride
    with pytest.raises(ConfigError, match="takes clips of shape"):
        create_encoder("mvit_tiny")(torch.randn(1, 3, 8, 64, 64))
    with pytest.raises(ConfigError, match="no classifier"):
        create_encoder("swin3d_tiny").forward_logits(x)


def test_unknown_source_or_model_is_one_line():
    with pytest.raises(ConfigError, match="unknown weights source 'dpc'"):
        load_published("dpc:/x.pth")
    with pytest.raises(ConfigError, match="no video model 'resnet50'"):
        load_published("torchvision:resnet50")


# ---------------------------------------------------------------- transformers: VideoMAE, V-JEPA 2

def test_videomae_finetuned_and_pretraining_checkpoints(tmp_path):
    transformers = pytest.importorskip("transformers")
    kw = dict(image_size=64, num_frames=16, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=256)
    torch.manual_seed(0)
    cls = transformers.VideoMAEForVideoClassification(transformers.VideoMAEConfig(
        **kw, use_mean_pooling=True, num_labels=3, id2label={0: "Bounce", 1: "Pop", 2: "Melt"})).eval()
    cls.save_pretrained(tmp_path / "ft")
    pre = transformers.VideoMAEForPreTraining(transformers.VideoMAEConfig(**kw, use_mean_pooling=False)).eval()
    pre.save_pretrained(tmp_path / "pt")
    x = torch.randn(2, 3, 16, 64, 64, generator=torch.Generator().manual_seed(3))
    enc = load_published(f"videomae:{tmp_path / 'ft'}").eval()
    assert enc.class_names == ["Bounce", "Pop", "Melt"] and enc.encoder_name == "videomae_tiny"
    with torch.no_grad():
        torch.testing.assert_close(enc.forward_logits(x), cls(pixel_values=x.transpose(1, 2)).logits)
    enc = load_published(f"videomae:{tmp_path / 'pt'}").eval()
    assert not hasattr(enc, "classifier")
    with torch.no_grad():
        want = pre.videomae(pixel_values=x.transpose(1, 2)).last_hidden_state
        torch.testing.assert_close(enc.forward_tokens(x), want)
    assert enc.preprocess.mean == pytest.approx((0.485, 0.456, 0.406))


def test_videomae_sizes_map_to_registered_encoders(tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    import vidssl.models.encoders as encoders

    seen = []
    monkeypatch.setattr(encoders, "create_encoder", lambda name, **kw: seen.append((name, kw)) or nn.Identity())
    transformers.VideoMAEConfig(use_mean_pooling=True, num_labels=400,
                                architectures=["VideoMAEForVideoClassification"]).save_pretrained(tmp_path / "b")
    transformers.VideoMAEConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                intermediate_size=4096).save_pretrained(tmp_path / "l")
    load_published(f"videomae:{tmp_path / 'b'}")
    load_published(f"videomae:{tmp_path / 'l'}")
    assert seen[0][0] == "videomae_vit_b" and seen[0][1]["num_classes"] == 400 and seen[0][1]["use_mean_pooling"]
    assert seen[1][0] == "videomae_vit_l" and "num_classes" not in seen[1][1]
    with pytest.raises(VidsslError, match="cannot read the VideoMAE config"):
        load_published(f"videomae:{tmp_path / 'absent'}")


def test_vjepa2_encoder_and_classifier(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = dict(crop_size=64, frames_per_clip=16, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
               num_pooler_layers=1, pred_hidden_size=32, pred_num_attention_heads=2, pred_num_hidden_layers=1)
    torch.manual_seed(0)
    cls = transformers.VJEPA2ForVideoClassification(transformers.VJEPA2Config(**cfg, num_labels=4)).eval()
    cls.save_pretrained(tmp_path / "cls")
    base = transformers.VJEPA2Model(transformers.VJEPA2Config(**cfg)).eval()
    base.save_pretrained(tmp_path / "base")
    x = torch.randn(2, 3, 16, 64, 64, generator=torch.Generator().manual_seed(4))
    enc = load_published(f"vjepa2:{tmp_path / 'cls'}").eval()
    with torch.no_grad():
        torch.testing.assert_close(enc.forward_logits(x), cls(pixel_values_videos=x.transpose(1, 2)).logits)
    enc = load_published(f"vjepa2:{tmp_path / 'base'}").eval()
    with torch.no_grad():
        torch.testing.assert_close(enc.forward_tokens(x), base.get_vision_features(x.transpose(1, 2)))
        assert enc.forward_feature_map(torch.randn(1, 3, 8, 32, 48)).shape == (1, 64, 4, 2, 3)  # any size (RoPE)
    assert enc.preprocess.num_frames == 16 and enc.preprocess.crop_size == 64


# ---------------------------------------------------------------- TCLR (DAVEISHAN/TCLR)

def tclr_backbone() -> nn.Module:
    """``tclr_pretraining/model.py`` ``build_r3d_backbone``: torchvision's R3D-18 (TCLR's r3d.py is
    a copy without ``fc``) with layer4's temporal stride replaced by dilation."""
    model = torchvision.models.video.r3d_18()
    model.layer4[0].conv1[0] = nn.Conv3d(256, 512, kernel_size=(3, 3, 3), stride=(1, 2, 2), padding=(2, 1, 1),
                                         dilation=(2, 1, 1), bias=False)
    model.layer4[0].downsample[0] = nn.Conv3d(256, 512, kernel_size=(1, 1, 1), stride=(1, 2, 2), bias=False)
    del model.fc
    return model


class TCLRMLP(nn.Module):
    """``tclr_pretraining/mlp.py`` (its parameters)."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn1, self.bn2 = nn.Linear(512, 512), nn.BatchNorm1d(512), nn.BatchNorm1d(128)
        self.fc2 = nn.Linear(512, 128, bias=False)


def test_tclr_checkpoint_with_its_grad_scaler(tmp_path):
    torch.manual_seed(0)
    backbone = tclr_backbone().eval()
    for m in backbone.modules():                       # non-trivial statistics
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    model = nn.Sequential(backbone, TCLRMLP())
    state = {f"module.{k}": v for k, v in model.state_dict().items()}   # DataParallel
    opt = torch.optim.Adam(model.parameters())
    # train_gen_all_step.py: {'epoch', 'state_dict', 'optimizer', 'learning_rate', 'amp_scaler'}
    with warnings.catch_warnings():                    # TCLR used torch.cuda.amp.GradScaler (deprecated now)
        warnings.simplefilter("ignore", FutureWarning)
        scaler = torch.cuda.amp.GradScaler(enabled=False)
    torch.save({"epoch": 150, "state_dict": state, "optimizer": opt.state_dict(), "learning_rate": 1e-3,
                "amp_scaler": scaler}, tmp_path / "tclr.pth")
    enc = load_published(f"tclr:{tmp_path / 'tclr.pth'}").eval()
    assert enc.preprocess == TCLR_PREPROCESS and enc.layer4[0].conv1[0].dilation == (2, 1, 1)
    rgb = torch.rand(1, 3, 16, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        bgr = rgb.flip(1)                               # TCLR reads frames with cv2 (BGR)
        want = backbone.layer4(backbone.layer3(backbone.layer2(backbone.layer1(backbone.stem(bgr)))))
        torch.testing.assert_close(enc.forward_feature_map(rgb), want, rtol=1e-4, atol=1e-5)
    assert want.shape[2] == 4                           # 16 frames keep 4 temporal slices
    # the backbone alone (bb_state_dict) also imports; an R(2+1)D backbone is refused in one line
    torch.save({"bb_state_dict": backbone.state_dict()}, tmp_path / "bb.pth")
    load_published(f"tclr:{tmp_path / 'bb.pth'}")
    r21 = torchvision.models.video.r2plus1d_18().state_dict()
    torch.save({"state_dict": {f"0.{k}": v for k, v in r21.items()}}, tmp_path / "r21.pth")
    with pytest.raises(VidsslError, match="R\\(2\\+1\\)D") as info:
        load_published(f"tclr:{tmp_path / 'r21.pth'}")
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- CoCLR (TengdaHan/CoCLR backbone/s3dg.py)

class BasicConv3d(nn.Module):
    def __init__(self, cin, cout, k, s, p=0):
        super().__init__()
        self.conv = nn.Conv3d(cin, cout, k, s, p, bias=False)
        self.bn = nn.BatchNorm3d(cout)                   # PyTorch defaults, as released
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class STConv3d(nn.Module):
    def __init__(self, cin, cout, k, stride, p=0):
        super().__init__()
        t, s = (stride[0], stride[-1]) if isinstance(stride, tuple) else (stride, stride)
        self.conv1 = nn.Conv3d(cin, cout, (1, k, k), (1, s, s), (0, p, p), bias=False)
        self.conv2 = nn.Conv3d(cout, cout, (k, 1, 1), (t, 1, 1), (p, 0, 0), bias=False)
        self.bn1, self.bn2 = nn.BatchNorm3d(cout), nn.BatchNorm3d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


class SepInception(nn.Module):
    def __init__(self, cin, o):
        super().__init__()
        self.branch0 = nn.Sequential(BasicConv3d(cin, o[0], 1, 1))
        self.branch1 = nn.Sequential(BasicConv3d(cin, o[1], 1, 1), STConv3d(o[1], o[2], 3, 1, 1))
        self.branch2 = nn.Sequential(BasicConv3d(cin, o[3], 1, 1), STConv3d(o[3], o[4], 3, 1, 1))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, 1, 1), BasicConv3d(cin, o[5], 1, 1))

    def forward(self, x):
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class CoCLRS3D(nn.Module):
    """``backbone/s3dg.py`` ``S3D(input_channel=3, gating=False)``: every stage registered twice
    (``Conv_1a`` and ``block1 = Sequential(Conv_1a)``), so each tensor has two keys."""

    def __init__(self, input_channel: int = 3):
        super().__init__()
        self.Conv_1a = STConv3d(input_channel, 64, 7, 2, 3)
        self.block1 = nn.Sequential(self.Conv_1a)
        self.MaxPool_2a = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.Conv_2b = BasicConv3d(64, 64, 1, 1)
        self.Conv_2c = STConv3d(64, 192, 3, 1, 1)
        self.block2 = nn.Sequential(self.MaxPool_2a, self.Conv_2b, self.Conv_2c)
        self.MaxPool_3a = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.Mixed_3b = SepInception(192, [64, 96, 128, 16, 32, 32])
        self.Mixed_3c = SepInception(256, [128, 128, 192, 32, 96, 64])
        self.block3 = nn.Sequential(self.MaxPool_3a, self.Mixed_3b, self.Mixed_3c)
        self.MaxPool_4a = nn.MaxPool3d(3, 2, 1)
        self.Mixed_4b = SepInception(480, [192, 96, 208, 16, 48, 64])
        self.Mixed_4c = SepInception(512, [160, 112, 224, 24, 64, 64])
        self.Mixed_4d = SepInception(512, [128, 128, 256, 24, 64, 64])
        self.Mixed_4e = SepInception(512, [112, 144, 288, 32, 64, 64])
        self.Mixed_4f = SepInception(528, [256, 160, 320, 32, 128, 128])
        self.block4 = nn.Sequential(self.MaxPool_4a, self.Mixed_4b, self.Mixed_4c, self.Mixed_4d, self.Mixed_4e,
                                    self.Mixed_4f)
        self.MaxPool_5a = nn.MaxPool3d(2, 2, 0)
        self.Mixed_5b = SepInception(832, [256, 160, 320, 32, 128, 128])
        self.Mixed_5c = SepInception(832, [384, 192, 384, 48, 128, 128])
        self.block5 = nn.Sequential(self.MaxPool_5a, self.Mixed_5b, self.Mixed_5c)

    def forward(self, x):
        return self.block5(self.block4(self.block3(self.block2(self.block1(x)))))


def test_coclr_pretraining_and_eval_checkpoints(tmp_path):
    torch.manual_seed(0)
    ref = CoCLRS3D().eval()
    for m in ref.modules():
        if isinstance(m, nn.BatchNorm3d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    backbone = ref.state_dict()
    assert "Conv_1a.conv1.weight" in backbone and "block1.0.conv1.weight" in backbone   # twice, as released
    # main_coclr.py: {'epoch', 'state_dict', 'best_acc', 'optimizer', 'iteration'}; state_dict of the model
    # without DDP: encoder_q.0 (S3D), encoder_q.2/4 (1x1x1 projection), encoder_k, sampler, queues
    state = {**{f"encoder_q.0.{k}": v for k, v in backbone.items()},
             **{f"encoder_k.0.{k}": v.clone() for k, v in backbone.items()},
             "encoder_q.2.weight": torch.randn(1024, 1024, 1, 1, 1), "encoder_q.2.bias": torch.zeros(1024),
             "encoder_q.4.weight": torch.randn(128, 1024, 1, 1, 1), "encoder_q.4.bias": torch.zeros(128),
             "queue": torch.randn(128, 16), "queue_ptr": torch.zeros(1, dtype=torch.long)}
    torch.save({"epoch": 182, "state_dict": state, "best_acc": 0.0, "optimizer": {}, "iteration": 1},
               tmp_path / "coclr.pth.tar")
    enc = load_published(f"coclr:{tmp_path / 'coclr.pth.tar'}").eval()
    assert enc.preprocess == COCLR_PREPROCESS and enc.features[0][0][1].eps == 1e-5
    x = torch.randn(1, 3, 16, 64, 64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        torch.testing.assert_close(enc.forward_feature_map(x), ref(x), rtol=1e-4, atol=1e-5)
    # eval/main_classifier.py checkpoints name the backbone `backbone.`
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in backbone.items()}}, tmp_path / "ft.pth.tar")
    load_published(f"coclr:{tmp_path / 'ft.pth.tar'}")
    flow = {f"encoder_q.0.{k}": v for k, v in CoCLRS3D(input_channel=2).state_dict().items()}
    torch.save({"state_dict": flow}, tmp_path / "flow.pth.tar")
    with pytest.raises(VidsslError, match="flow network"):
        load_published(f"coclr:{tmp_path / 'flow.pth.tar'}")
    with pytest.raises(VidsslError, match="not found"):
        load_published(f"coclr:{tmp_path / 'absent.tar'}")


def test_eval_cli_takes_published_weights(tmp_path, monkeypatch):
    import argparse

    from vidssl.eval.command import add_eval_parser, load_eval_encoder

    p = argparse.ArgumentParser()
    add_eval_parser(p.add_subparsers())
    torch.save({"bb_state_dict": tclr_backbone().state_dict()}, tmp_path / "t.pth")
    args = p.parse_args(["eval", "--pretrained", f"tclr:{tmp_path / 't.pth'}", "--dataset", "synthetic",
                         "--root", str(tmp_path)])
    enc, name = load_eval_encoder(args)
    assert name == f"tclr:{tmp_path / 't.pth'}" and enc.preprocess == TCLR_PREPROCESS
    args.encoder = "r3d_18"
    with pytest.raises(ConfigError, match="names its own architecture"):
        load_eval_encoder(args)
