"""VideoMAE and V-JEPA: two CPU steps each, the pieces they are built from (pixel targets, the
decoder's / predictor's shapes, the EMA target), their params and one-line errors, and (slow) a
learning check through the real trainer on the tiny synthetic set."""

from __future__ import annotations

import os

import pytest
import torch

from vidssl.config import load_config
from vidssl.errors import ConfigError
from vidssl.losses.masked import jepa_loss, masked_mse, patchify, pixel_targets, unpatchify
from vidssl.methods import create_method, method_params
from vidssl.models.encoders import create_encoder
from vidssl.train.config import PretrainConfig
from vidssl.train.loop import pretrain
from vidssl.train.monitor import read_metrics

B, SIDE = 2, 40
VIT = dict(num_frames=8, image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2)
VIDEOMAE_SMALL = dict(num_frames=8, stride=1, crop_size=32, decoder_dim=32, decoder_depth=1, decoder_heads=2)
VJEPA_SMALL = dict(num_frames=8, stride=1, crop_size=32, pred_dim=32, pred_depth=1, pred_heads=2)
SMALL = {"videomae": VIDEOMAE_SMALL, "vjepa": VJEPA_SMALL}


def build(name: str, **params):
    return create_method(name, create_encoder("videomae_tiny", **VIT), {**SMALL[name], **params})


def clip(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (B, 8, 3, SIDE, SIDE), dtype=torch.uint8, generator=g)


# ------------------------------------------------------------------------------ two CPU steps

@pytest.mark.parametrize("name", ["videomae", "vjepa"])
def test_two_cpu_steps_train_the_encoder(name):
    torch.manual_seed(0)
    method = build(name).train()
    trained = [p for p in method.parameters() if p.requires_grad]
    before = {k: v.detach().clone() for k, v in method.encoder.state_dict().items()}
    opt = torch.optim.AdamW(trained, lr=1e-3)
    for step in range(2):
        if hasattr(method, "set_step"):
            method.set_step(step, 10)
        out = method({"views": [clip(step)]})
        assert out["loss"].ndim == 0 and all(torch.isfinite(v) for v in out.values())
        opt.zero_grad()
        out["loss"].backward()
        missing = [n for n, p in method.encoder.named_parameters() if p.grad is None]
        assert not missing, f"encoder parameters without a gradient: {missing}"
        opt.step()
        if hasattr(method, "after_step"):
            method.after_step(step, 10)
    changed = [k for k, v in method.encoder.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) == len(before)


def test_videomae_masks_ninety_percent_of_tubes_and_the_encoder_sees_only_the_rest():
    method = build("videomae")
    seen = {}
    method.encoder.model.encoder.register_forward_hook(lambda m, i, o: seen.update(n=i[0].shape[1]))
    out = method({"views": [clip(0)]})
    # grid 4 x 4 x 4 tokens: int(0.9 x 16) = 14 positions per time step are masked
    assert float(out["masked"]) == pytest.approx(14 / 16)
    assert seen["n"] == 4 * 2, "only the visible tokens go through the encoder"


def test_videomae_loss_is_the_mse_of_the_masked_patches_normalised_targets():
    torch.manual_seed(0)
    x01 = torch.rand(2, 3, 4, 16, 16)
    t = pixel_targets(x01, 2, 8)
    assert t.shape == (2, 2 * 2 * 2, 2 * 8 * 8 * 3)
    per_patch = t.view(2, 8, 128, 3)
    assert per_patch.mean(dim=2).abs().max() < 1e-5 and (per_patch.std(dim=2) - 1).abs().max() < 1e-3
    assert torch.equal(unpatchify(patchify(x01, 2, 8), (2, 2, 2), 2, 8), x01)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[:, [1, 5]] = True
    pred = torch.zeros(2, 2, t.shape[-1])
    assert float(masked_mse(pred, t, mask)) == pytest.approx(float(t[:, [1, 5]].pow(2).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="do not match"):
        masked_mse(pred[:, :1], t, mask)


def test_videomae_mask_token_is_not_weight_decayed():
    from vidssl.runtime.optim import OptimConfig, build_optimizer

    method = build("videomae")
    for layer_decay in (None, 0.75):
        opt = build_optimizer(method, OptimConfig(weight_decay=0.05, layer_decay=layer_decay))
        wd = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
        assert wd[id(method.decoder.mask_token)] == 0.0
        assert wd[id(method.decoder.encoder_to_decoder.weight)] == 0.05


def test_videomae_reconstruction_picture():
    method = build("videomae").eval()
    pic = method.visualize({"views": [clip(0)]}, frames=4)["reconstruction"]
    assert pic.dtype == torch.uint8 and pic.shape == (3, B * 32, 3 * 4 * 32)   # rows: clips; input | mask | rec
    again = method.visualize({"views": [clip(0)]}, frames=4)["reconstruction"]
    assert torch.equal(pic, again), "the same held clips give the same crop and mask every time"


def test_vjepa_target_encoder_follows_the_ema_and_loss_is_l1():
    torch.manual_seed(0)
    method = build("vjepa", momentum=(0.5, 0.5))
    assert not any(p.requires_grad for p in method.target_encoder.parameters())
    with torch.no_grad():
        for p in method.encoder.parameters():
            p.add_(1.0)
    old = [p.clone() for p in method.target_encoder.parameters()]
    method.set_step(0, 10)
    method.after_step(0, 10)
    for o, t, s in zip(old, method.target_encoder.parameters(), method.encoder.parameters()):
        assert torch.allclose(t, 0.5 * o + 0.5 * s)
    z, h = torch.zeros(2, 3, 4), torch.full((2, 3, 4), 2.0)
    assert float(jepa_loss([z, z], [h, h])) == pytest.approx(2.0)
    assert float(jepa_loss([z], [h], loss_exp=2.0)) == pytest.approx(2.0)    # mean |.|^2 / 2


def test_vjepa_momentum_rises_linearly_over_the_scaled_run():
    method = build("vjepa")
    method.set_step(0, 100)
    assert method._momentum == pytest.approx(0.998)
    method.set_step(100, 100)                                                 # ipe_scale 1.25: not yet 1
    assert method._momentum == pytest.approx(0.998 + 0.002 / 1.25)


def test_vjepa_predictor_sees_context_and_predicts_every_target_token():
    torch.manual_seed(0)
    method = build("vjepa")
    (ctx, tgt), _ = method.draw_masks(B)
    z = torch.randn(B, ctx.shape[1], 32)
    out = method.predictor(z, ctx, tgt, mask_index=0)
    assert out.shape == (B, tgt.shape[1], 32)
    # a target's prediction depends on the context features (attention over the whole sequence)
    assert not torch.allclose(out, method.predictor(z + 1.0, ctx, tgt, mask_index=0))


def test_bf16_autocast_steps_on_cpu():
    torch.manual_seed(0)
    for name in ("videomae", "vjepa"):
        method = build(name)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = method({"views": [clip(0)]})
        out["loss"].backward()
        assert torch.isfinite(out["loss"]) and out["loss"].dtype == torch.float32


# ------------------------------------------------------------------------------------- params

def test_defaults_are_the_papers():
    v = method_params("videomae")
    assert (v.num_frames, v.stride, v.crop_size, v.mask_type, v.mask_ratio) == (16, 4, 224, "tube", 0.9)
    assert (v.decoder_depth, v.normalize_target, v.flip_prob) == (4, True, 0.0)
    j = method_params("vjepa")
    assert (j.num_frames, j.stride, j.crop_size, j.pred_depth, j.pred_dim, j.loss_exp) == (16, 4, 224, 12, 384, 1.0)
    assert [(m.num_blocks, m.spatial_scale) for m in j.masks] == [(8, (0.15, 0.15)), (2, (0.7, 0.7))]
    assert tuple(j.momentum) == (0.998, 1.0) and j.momentum_schedule_scale == 1.25


@pytest.mark.parametrize("name,bad,match", [
    ("videomae", {"mask_ratio": 1.0}, "mask_ratio"),
    ("videomae", {"mask_type": "block"}, "mask_type"),
    ("videomae", {"crop_scales": [1.5]}, "scales"),
    ("vjepa", {"momentum": [1.0, 0.9]}, "momentum"),
    ("vjepa", {"masks": []}, "masks"),
    ("vjepa", {"loss_exp": 0.0}, "loss_exp"),
])
def test_bad_params_are_one_line_config_errors(name, bad, match):
    with pytest.raises(ConfigError, match=match) as err:
        method_params(name, bad)
    assert "\n" not in str(err.value)


def test_a_cnn_or_a_clip_that_does_not_tile_is_a_one_line_error():
    with pytest.raises(ConfigError, match="needs a ViT encoder with a token interface"):
        create_method("videomae", create_encoder("r3d_tiny"), VIDEOMAE_SMALL)
    with pytest.raises(ConfigError, match="do not tile"):
        create_method("vjepa", create_encoder("videomae_tiny", **VIT), {**VJEPA_SMALL, "crop_size": 36})
    with pytest.raises(ConfigError, match="position table is fixed"):
        create_method("videomae", create_encoder("videomae_tiny", **VIT), {**VIDEOMAE_SMALL, "crop_size": 48})
    jepa2 = create_encoder("vjepa2_tiny", num_frames=8, image_size=32, patch_size=8, hidden_size=32,
                           num_attention_heads=2)
    with pytest.raises(ConfigError, match="rotary positions on a 32 px grid"):
        create_method("vjepa", jepa2, {**VJEPA_SMALL, "crop_size": 48})
    with pytest.raises(ConfigError, match=r"masks.*num_blocks") as err:
        method_params("vjepa", {"masks": [{"num_blocks": 0}]})
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------- through the trainer

@pytest.mark.parametrize("name", ["videomae", "vjepa"])
def test_two_steps_through_the_real_loader_and_the_run_folder_picture(tiny_synthetic, tmp_path, name):
    extra = (["method.params.decoder_dim=32", "method.params.decoder_depth=1", "method.params.decoder_heads=2"]
             if name == "videomae" else
             ["method.params.pred_dim=32", "method.params.pred_depth=1", "method.params.pred_heads=2"])
    cfg = load_config(PretrainConfig, None, [
        "encoder.name=videomae_tiny", *[f"encoder.kwargs.{k}={v}" for k, v in VIT.items()], f"method.name={name}",
        "method.params.num_frames=8", "method.params.stride=2", "method.params.crop_size=32", *extra,
        "data.batch_size=4", "data.num_workers=0", f"data.root={tiny_synthetic}", f"train.out_dir={tmp_path}",
        "train.max_steps=2", "train.progress=false", "train.tensorboard=false", "optim.weight_decay_end=0.4"])
    result = pretrain(cfg)
    assert result.steps == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    recs = read_metrics(str(tmp_path / "metrics.jsonl"))
    assert recs[-1]["weight_decay"] > recs[0]["weight_decay"]          # the cosine weight-decay schedule
    if name == "videomae":
        from PIL import Image

        assert [os.path.basename(p) for p in result.pictures] == ["reconstruction.png"]
        with Image.open(tmp_path / "reconstruction.png") as im:          # 4 held clips x (input | mask | rec)
            assert im.size == (3 * 4 * 32, 4 * 32)
    else:
        assert result.pictures == []


# ----------------------------------------------------------------------------- learning check

# per method: (overrides, steps, bar). VideoMAE learns slowly on 8 px patches of the 32 px frames
# (0.83 x after 60 steps, 0.78 x after 120); 4 px patches make the masked ones predictable from
# their neighbours: 1.13 -> 0.71 (0.62 x) in 100 steps.
LEARN = {
    "videomae": (["encoder.kwargs.patch_size=4", "encoder.kwargs.hidden_size=64", "encoder.kwargs.num_attention_heads=4",
                  "method.params.decoder_dim=32", "method.params.decoder_depth=1", "method.params.decoder_heads=2",
                  "data.batch_size=16", "optim.lr=0.002"], 80, 0.75),
    "vjepa": (["encoder.kwargs.patch_size=8", "encoder.kwargs.hidden_size=32", "encoder.kwargs.num_attention_heads=2",
               "method.params.pred_dim=32", "method.params.pred_depth=1", "method.params.pred_heads=2",
               "method.params.momentum=[0.99,1.0]", "data.batch_size=8", "optim.lr=0.001"], 60, 0.8),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["videomae", "vjepa"])
def test_learning_check_on_the_synthetic_set(tiny_synthetic, tmp_path, name):
    """From seed 0 on the tiny synthetic set (32 px frames, 8 frames at stride 2): the mean loss
    of the last 10 steps is below ``bar`` x the mean of the first 3 (VideoMAE: the masked
    patches' normalised-pixel MSE, bar 0.75 after 80 steps; V-JEPA: the L1 prediction loss, bar
    0.8 after 60 steps)."""
    overrides, steps, bar = LEARN[name]
    cfg = load_config(PretrainConfig, None, [
        "encoder.name=videomae_tiny", "encoder.kwargs.num_frames=8", "encoder.kwargs.image_size=32",
        "encoder.kwargs.num_hidden_layers=2", f"method.name={name}", "method.params.num_frames=8",
        "method.params.stride=2", "method.params.crop_size=32", *overrides, "optim.warmup_steps=5",
        "data.num_workers=0", f"data.root={tiny_synthetic}", f"train.out_dir={tmp_path}",
        f"train.max_steps={steps}", "train.epochs=1000", "train.seed=0", "train.progress=false",
        "train.tensorboard=false", "train.log_every=1"])
    result = pretrain(cfg)
    losses = [r["loss"] for r in read_metrics(str(tmp_path / "metrics.jsonl"))]
    assert len(losses) == steps == result.steps
    first, last = sum(losses[:3]) / 3, sum(losses[-10:]) / 10
    print(f"{name}: step-0 loss {losses[0]:.4f}; mean of the first 3 steps {first:.4f}, of the last 10 "
          f"{last:.4f} ({last / first:.2f} x)")
    assert last < bar * first, f"{name} did not learn: {first:.4f} -> {last:.4f} (bar {bar} x)"
    if name == "videomae":   # the run folder gets the reconstruction picture of held clips
        assert [os.path.basename(p) for p in result.pictures] == ["reconstruction.png"]
        assert (tmp_path / "reconstruction.png").stat().st_size > 0
