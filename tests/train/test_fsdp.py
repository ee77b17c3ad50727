"""``train.strategy: fsdp`` (PyTorch's ``fully_shard``) on a 2-process CPU gloo group under torchrun:
the same losses as DDP, full (unsharded) checkpoints that load anywhere, and a resume under FSDP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vidssl.models.checkpoint import load_checkpoint, load_encoder
from vidssl.train.monitor import read_metrics

REPO = Path(__file__).resolve().parents[2]
VIT = ["encoder.name=videomae_tiny", "encoder.kwargs.num_frames=8", "encoder.kwargs.image_size=32",
       "encoder.kwargs.patch_size=8", "encoder.kwargs.hidden_size=32", "encoder.kwargs.num_hidden_layers=2",
       "encoder.kwargs.num_attention_heads=2", "method.params.num_frames=8", "method.params.stride=2",
       "method.params.crop_size=32", "data.batch_size=4", "data.num_workers=0", "train.progress=false",
       "train.tensorboard=false", "optim.warmup_steps=1", "train.epochs=2", "train.deterministic=true",
       "train.log_every=1"]
VIDEOMAE = ["method.name=videomae", "method.params.decoder_dim=32", "method.params.decoder_depth=1",
            "method.params.decoder_heads=2"]
VJEPA = ["method.name=vjepa", "method.params.pred_dim=32", "method.params.pred_depth=1", "method.params.pred_heads=2"]


def torchrun(root: Path, out: Path, port: int, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(port), "-m", "vidssl", "pretrain", *VIT, f"data.root={root}",
                           f"train.out_dir={out}", *extra], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)


def losses(out: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(str(out / "metrics.jsonl"))]


@pytest.mark.slow
def test_fsdp_matches_ddp_and_writes_full_checkpoints(tiny_synthetic, tmp_path):
    """Same seeds, same per-rank clips and masks: FSDP's sharded parameters, gradient
    reduce-scatter and sharded AdamW give DDP's losses; the checkpoint holds whole tensors under
    the plain names (the encoder loads without FSDP)."""
    steps = ["train.max_steps=3", *VIDEOMAE]
    ddp = torchrun(tiny_synthetic, tmp_path / "ddp", 29771, *steps, "train.strategy=ddp")
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-3000:]
    fsdp = torchrun(tiny_synthetic, tmp_path / "fsdp", 29772, *steps, "train.strategy=fsdp")
    assert fsdp.returncode == 0, fsdp.stdout[-3000:] + fsdp.stderr[-3000:]
    a, b = losses(tmp_path / "ddp"), losses(tmp_path / "fsdp")
    assert len(a) == len(b) == 3
    assert b == pytest.approx(a, rel=1e-4, abs=1e-5)
    full = load_checkpoint(tmp_path / "fsdp" / "checkpoints" / "last.pt")
    plain = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    assert set(full["model"]) == set(plain["model"])
    for k, v in plain["model"].items():
        assert full["model"][k].shape == v.shape, k                       # whole tensors, not shards
        assert torch.allclose(full["model"][k].float(), v.float(), atol=1e-4), k
    assert isinstance(load_encoder(tmp_path / "fsdp" / "checkpoints" / "last.pt"), torch.nn.Module)
    # the end-of-run picture needs the sharded root's parameters gathered (visualize is not forward)
    assert (tmp_path / "fsdp" / "reconstruction.png").stat().st_size > 0


@pytest.mark.slow
def test_fsdp_trains_vjepa_and_resumes_from_its_checkpoint(tiny_synthetic, tmp_path):
    """V-JEPA under FSDP (the EMA target encoder is sharded like the context encoder), then a
    --resume under FSDP continues from the saved step."""
    out = tmp_path / "vj"
    first = torchrun(tiny_synthetic, out, 29773, "train.max_steps=2", *VJEPA, "train.strategy=fsdp")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert len(losses(out)) == 2
    more = torchrun(tiny_synthetic, out, 29774, "train.max_steps=3", *VJEPA, "train.strategy=fsdp", "--resume")
    assert more.returncode == 0, more.stdout[-3000:] + more.stderr[-3000:]
    assert [r["step"] for r in read_metrics(str(out / "metrics.jsonl"))][-1] == 3
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 3


def test_bad_strategy_is_a_one_line_error(tiny_synthetic, tmp_path):
    from vidssl.config import load_config
    from vidssl.errors import ConfigError
    from vidssl.train.config import PretrainConfig
    from vidssl.train.loop import pretrain

    cfg = load_config(PretrainConfig, None, [*VIT, *VIDEOMAE, f"data.root={tiny_synthetic}",
                                             f"train.out_dir={tmp_path}", "train.strategy=zero3"])
    with pytest.raises(ConfigError, match="train.strategy must be one of ddp, fsdp, got 'zero3'"):
        pretrain(cfg)
