"""The trainer's general optimisation features: layer-wise lr decay, the weight-decay schedule,
the warm-up start and the planned-longer schedule (V-JEPA's ipe_scale), drop path and activation
checkpointing of the ViT encoders."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vidssl.errors import ConfigError
from vidssl.models.encoders import create_encoder
from vidssl.runtime.optim import (OptimConfig, build_optimizer, cosine_values, layer_ids, schedule_from_config,
                                  warmup_cosine)
from vidssl.runtime.sharding import enable_activation_checkpointing, transformer_blocks

TINY_VIT = dict(num_frames=4, image_size=16, patch_size=8, hidden_size=32, num_hidden_layers=3, num_attention_heads=2)


class WithHead(nn.Module):
    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, nn.Linear(encoder.num_features, 3)


def _lr_of(opt, param) -> float:
    return next(g["lr"] for g in opt.param_groups if any(p is param for p in g["params"]))


def test_layer_decay_scales_each_block_and_leaves_heads_at_full_lr():
    model = WithHead(create_encoder("videomae_tiny", **TINY_VIT))
    opt = build_optimizer(model, OptimConfig(lr=1.0, weight_decay=0.05, layer_decay=0.5))
    vit = model.encoder.model
    assert _lr_of(opt, vit.embeddings.patch_embeddings.projection.weight) == pytest.approx(0.5 ** 4)
    for i, layer in enumerate(vit.encoder.layer):            # block i is layer id i + 1 of L = 3
        assert _lr_of(opt, layer.attention.attention.query.weight) == pytest.approx(0.5 ** (3 - i))
    assert _lr_of(opt, model.head.weight) == 1.0 and _lr_of(opt, model.head.bias) == 1.0
    for g in opt.param_groups:                               # weight decay on matrices only
        assert g["weight_decay"] == (0.05 if all(p.ndim >= 2 for p in g["params"]) else 0.0)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    ids, depth = layer_ids(model.encoder)
    assert depth == 3 and max(ids.values()) <= 4 and min(ids.values()) == 0


def test_layer_decay_on_a_cnn_or_out_of_range_is_a_one_line_error():
    cnn = WithHead.__new__(WithHead)
    nn.Module.__init__(cnn)
    cnn.encoder, cnn.head = create_encoder("r3d_tiny"), nn.Linear(4, 2)
    with pytest.raises(ConfigError, match="optim.layer_decay needs a transformer encoder"):
        build_optimizer(cnn, OptimConfig(layer_decay=0.75))
    with pytest.raises(ConfigError, match=r"optim.layer_decay must be in \(0, 1\]"):
        build_optimizer(WithHead(create_encoder("videomae_tiny", **TINY_VIT)), OptimConfig(layer_decay=1.5))


def test_weight_decay_schedule_is_a_cosine_on_the_decayed_groups_only():
    model = WithHead(create_encoder("videomae_tiny", **TINY_VIT))
    cfg = OptimConfig(lr=1e-3, weight_decay=0.04, weight_decay_end=0.4, warmup_steps=2)
    opt = build_optimizer(model, cfg)
    sched = schedule_from_config(opt, cfg, 10)
    want = cosine_values(10, 0.04, 0.4)
    assert want[0] == pytest.approx(0.04) and want[-1] < 0.4 and want == sorted(want)
    seen = []
    for step in range(10):
        assert sched.weight_decay(step) == pytest.approx(want[step])
        seen.append(opt.param_groups[0]["weight_decay"])
        opt.step()
        sched.step()
    assert seen[1:] == pytest.approx(want[1:])                # set after each step, for the next one
    assert opt.param_groups[1]["weight_decay"] == 0.0         # biases and norms stay undecayed


def test_warmup_start_and_a_schedule_planned_longer_than_the_run():
    cfg = OptimConfig(lr=1.0, warmup_steps=4, warmup_start_ratio=0.32, min_lr_ratio=0.0, schedule_scale=1.25)
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(2))], lr=1.0)
    sched = schedule_from_config(opt, cfg, 20)
    full = warmup_cosine(25, 4, 0.0, start_ratio=0.32)       # planned for 25 steps, the run takes 20
    assert sched.lr_table == pytest.approx(full[:20])
    assert sched.lr_table[0] == pytest.approx(0.32) and sched.lr_table[4] == pytest.approx(1.0)
    assert sched.lr_table[-1] > 0.05                          # the run ends before the cosine does
    with pytest.raises(ConfigError, match="optim.schedule_scale must be >= 1"):
        schedule_from_config(opt, OptimConfig(schedule_scale=0.5), 10)
    with pytest.raises(ConfigError, match="optim.weight_decay_end must be >= 0"):
        schedule_from_config(opt, OptimConfig(weight_decay_end=-1.0), 10)


def test_drop_path_rises_over_the_blocks_and_only_acts_in_training():
    torch.manual_seed(0)
    plain = create_encoder("videomae_tiny", **TINY_VIT)
    dropped = create_encoder("videomae_tiny", drop_path_rate=0.3, **TINY_VIT)
    dropped.load_state_dict(plain.state_dict())              # same keys: drop path adds no weights
    assert [layer.drop_prob for layer in dropped.model.encoder.layer] == pytest.approx([0.0, 0.15, 0.3])
    x = torch.randn(8, 3, 4, 16, 16)
    plain.eval(), dropped.eval()
    assert torch.allclose(plain(x), dropped(x), atol=1e-6)
    dropped.train(), plain.train()
    torch.manual_seed(1)
    assert not torch.allclose(plain(x), dropped(x), atol=1e-4)
    with pytest.raises(ConfigError, match=r"drop_path_rate must be in \[0, 1\)"):
        create_encoder("videomae_tiny", drop_path_rate=1.0, **TINY_VIT)


def test_activation_checkpointing_keeps_outputs_and_gradients():
    torch.manual_seed(0)
    a = create_encoder("videomae_tiny", **TINY_VIT)
    b = create_encoder("videomae_tiny", **TINY_VIT)
    b.load_state_dict(a.state_dict())
    assert enable_activation_checkpointing(b) == len(transformer_blocks(a)) == 3
    calls = {"a": 0, "b": 0}
    a.model.encoder.layer[0].attention.register_forward_hook(lambda *_: calls.__setitem__("a", calls["a"] + 1))
    b.model.encoder.layer[0].attention.register_forward_hook(lambda *_: calls.__setitem__("b", calls["b"] + 1))
    x = torch.randn(2, 3, 4, 16, 16)
    a(x).square().sum().backward()
    b(x).square().sum().backward()
    assert calls == {"a": 1, "b": 2}, "a checkpointed block runs again in the backward pass"
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-5), name
    with pytest.raises(ConfigError, match="train.activation_checkpointing needs transformer blocks"):
        enable_activation_checkpointing(create_encoder("r3d_tiny"))


def test_drop_path_on_a_built_vit_for_finetuning():
    from vidssl.models.encoders.video_vit import set_encoder_drop_path

    mae = create_encoder("videomae_tiny", **TINY_VIT)
    set_encoder_drop_path(mae, 0.2)
    assert [layer.drop_prob for layer in mae.model.encoder.layer] == pytest.approx([0.0, 0.1, 0.2])
    jepa = create_encoder("vjepa2_tiny", num_frames=4, image_size=16, patch_size=8, hidden_size=32,
                          num_hidden_layers=3, num_attention_heads=2)
    set_encoder_drop_path(jepa, 0.2)
    assert [float(getattr(layer.drop_path, "drop_prob", 0.0)) for layer in jepa.encoder.layer] == \
        pytest.approx([0.0, 0.1, 0.2])
    x = torch.randn(4, 3, 4, 16, 16)
    jepa.eval()
    a = jepa(x)
    jepa.train()
    assert not torch.allclose(a, jepa(x), atol=1e-5)
    with pytest.raises(ConfigError, match="drop path is offered for the ViT encoders"):
        set_encoder_drop_path(create_encoder("r3d_tiny"), 0.1)
