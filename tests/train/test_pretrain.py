"""The training engine end to end on a tiny synthetic dataset: steps, resume after kill -9, DDP."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from vidssl.config import load_config
from vidssl.errors import VidsslError
from vidssl.methods import register_method
from vidssl.models.checkpoint import load_checkpoint, load_encoder
from vidssl.runtime.optim import NonFiniteLossError
from vidssl.train.config import PretrainConfig
from vidssl.train import run as training
from vidssl.train.loop import pretrain
from vidssl.train.monitor import read_metrics

REPO = Path(__file__).resolve().parents[2]
TINY_CVRL = ["encoder.name=r3d_tiny", "method.name=cvrl", "method.params.clip_len=4",
             "method.params.stride=2", "method.params.crop_size=32", "method.params.hidden_dim=32",
             "method.params.num_hidden_layers=1", "data.batch_size=4", "data.num_workers=0",
             "train.progress=false", "train.tensorboard=false", "optim.warmup_steps=1"]


#: CoCLR's three stages (RGB InfoNCE, residual InfoNCE, RGB co-training) at the tiny setting
TINY_COCLR_STAGES = [*(a for a in TINY_CVRL if not a.startswith("method.")), "method.name=coclr",
                     "method.params.num_frames=4", "method.params.crop_size=32", "method.params.topk=2",
                     "method.params.schedule=[infonce:rgb,infonce:residual,cotrain:rgb]"]


def tiny_config(root: Path, out: Path, *extra: str) -> PretrainConfig:
    return load_config(PretrainConfig, None, [*TINY_CVRL, f"data.root={root}",
                                              f"train.out_dir={out}", *extra])


def cli_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["pretrain", *TINY_CVRL, f"data.root={root}", f"train.out_dir={out}", *extra]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return env


@pytest.mark.parametrize("method,params", [
    ("cvrl", []),
    ("tclr", ["method.params.num_frames=16", "method.params.global_stride=1",
              "method.params.crop_size=32", "encoder.kwargs.temporal_dilation_last_stage=true"]),
    ("supervised", ["method.params.num_classes=4", "method.params.clip_len=4",
                    "method.params.crop_size=32"]),
    ("vcop", ["method.params.clip_len=4", "method.params.interval=2", "method.params.crop_size=32",
              "method.params.hidden_dim=16"]),
    ("vcop", ["method.params.tuple_of=frames", "method.params.crop_size=32"]),
    ("o3n", ["method.params.num_elements=4", "method.params.element_len=4", "method.params.crop_size=32",
             "method.params.element_hidden_dim=16"]),
    ("dpc", ["method.params.num_blocks=4", "method.params.block_len=4", "method.params.frame_step=1",
             "method.params.pred_steps=2", "method.params.crop_size=32"]),
    ("coclr", ["method.params.num_frames=4", "method.params.crop_size=32", "method.params.queue_size=8",
               "method.params.topk=2"]),
    ("lss", ["method.params.crop_size=32", "method.params.global_frames=4", "method.params.global_stride=2",
             "method.params.num_local=2", "method.params.local_frames=2", "method.params.head_hidden_dim=16",
             "method.params.clip_model=vidssl-tiny-clip", "method.params.clip_pretrained=null",
             "method.params.vocabulary=synthetic", "method.params.concept_mode=classes",
             "method.params.attributes=null", "method.params.alignment=entropy"]),
])
def test_two_steps_through_the_real_loader(tiny_synthetic, tmp_path, method, params):
    base = [a for a in TINY_CVRL if not a.startswith("method.")]
    cfg = load_config(PretrainConfig, None, [*base, f"method.name={method}", *params,
                                             f"data.root={tiny_synthetic}", f"train.out_dir={tmp_path}",
                                             "train.max_steps=2", "train.tensorboard=true"])
    torch.manual_seed(0)
    result = pretrain(cfg)
    assert result.steps == 2 and len(result.losses) == 2
    assert all(torch.isfinite(torch.tensor(result.losses)))
    recs = read_metrics(str(tmp_path / "metrics.jsonl"))
    assert [r["step"] for r in recs] == [1, 2] and {"loss", "lr", "clips_per_s", "data_wait"} <= set(recs[0])
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["step"] == 2 and state["config"]["method"]["name"] == method
    assert {"model", "optimizer", "scheduler", "rng", "encoder_spec"} <= set(state)
    assert (tmp_path / "config.yaml").exists() and any((tmp_path / "tb").iterdir())
    enc = load_encoder(tmp_path / "checkpoints" / "last.pt")
    assert isinstance(enc, torch.nn.Module)


def test_schedule_hook_follows_the_step_across_resume(tiny_synthetic, tmp_path):
    """``method.set_step`` sees the step about to run, also right after ``--resume``: DPC's
    curriculum switches at the same step in a resumed run as in an uninterrupted one."""
    base = [a for a in TINY_CVRL if not a.startswith("method.")]
    dpc = ["method.name=dpc", "method.params.num_blocks=4", "method.params.block_len=4",
           "method.params.frame_step=1", "method.params.pred_steps=1", "method.params.crop_size=32",
           "method.params.curriculum=[[0.5,2]]", "train.log_every=1", "train.ckpt_every=1",
           f"data.root={tiny_synthetic}"]

    def run(out, steps, resume=None):
        cfg = load_config(PretrainConfig, None, [*base, *dpc, f"train.out_dir={out}", "train.max_steps=4"])
        if steps < 4:
            cfg.train.max_steps = steps
            cfg = dataclasses.replace(cfg)
        torch.manual_seed(0)
        pretrain(cfg, resume=resume)
        return {r["step"]: r["pred_steps"] for r in read_metrics(str(out / "metrics.jsonl"))}

    straight = run(tmp_path / "a", 4)
    assert straight == {1: 1.0, 2: 1.0, 3: 2.0, 4: 2.0}
    run(tmp_path / "b", 2)
    # a fresh process would re-create the method with pred_steps=1; so does this call
    resumed = run(tmp_path / "b", 4, resume=True)
    assert resumed[3] == 2.0 and resumed[4] == 2.0


def test_coclr_schedule_runs_its_stages_and_resumes_between_them(tiny_synthetic, tmp_path):
    """One config: RGB InfoNCE, residual InfoNCE, then RGB co-training with the residual
    network frozen; --resume skips finished stages."""
    args = [*TINY_COCLR_STAGES, "method.params.queue_size=8",
            "method.params.until_queue_full=skip",   # the skip bookkeeping (default: train)
            f"data.root={tiny_synthetic}", f"train.out_dir={tmp_path}", "train.max_steps=3"]
    torch.manual_seed(0)
    result = training.run(load_config(PretrainConfig, None, args))
    names = ["stage1_infonce_rgb", "stage2_infonce_residual", "stage3_cotrain_rgb"]
    assert all((tmp_path / n / "stage_done.json").exists() for n in names)
    assert result.checkpoint == str(tmp_path / names[2] / "checkpoints" / "last.pt")
    state = load_checkpoint(result.checkpoint)
    params = state["config"]["method"]["params"]
    assert params["stage"] == "cotrain" and params["train_modality"] == "rgb"
    assert params["other_checkpoint"] == str(tmp_path / names[1] / "checkpoints" / "last.pt")
    assert params["init_checkpoint"] == str(tmp_path / names[0] / "checkpoints" / "last.pt")  # continues RGB
    cotrain = read_metrics(str(tmp_path / names[2] / "metrics.jsonl"))
    assert [r.get("skip_update", 0.0) for r in cotrain] == [1.0, 1.0, 0.0]   # queue of 8, batches of 4
    before = [len(read_metrics(str(tmp_path / n / "metrics.jsonl"))) for n in names]
    training.run(load_config(PretrainConfig, None, args), resume=True)      # all done: nothing runs
    assert [len(read_metrics(str(tmp_path / n / "metrics.jsonl"))) for n in names] == before
    from vidssl.errors import ConfigError
    with pytest.raises(ConfigError, match="needs a trained residual network"):
        training.run(load_config(PretrainConfig, None, [*args[:-3], "method.params.schedule=[cotrain:rgb]",
                                                        f"data.root={tiny_synthetic}", f"train.out_dir={tmp_path}"]))


def test_coclr_schedule_under_torchrun_two_processes(tiny_synthetic, tmp_path):
    """All three CoCLR stages under DDP (it once hung entering its first stage): every rank's keys
    and their video / label ids reach the shared queue, mining runs, one log line per stage."""
    args = ["pretrain", *(a for a in TINY_COCLR_STAGES if not a.startswith("data.batch_size")),
            "method.params.queue_size=16", "data.batch_size=8", f"data.root={tiny_synthetic}",
            f"train.out_dir={tmp_path}", "train.max_steps=3",
            "train.epochs=2"]   # 16 train videos: 2 steps of 8 per epoch
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29737", "-m", "vidssl", *args],
                         cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    out = ddp.stdout + ddp.stderr
    assert ddp.returncode == 0, out[-4000:]
    names = ["stage1_infonce_rgb", "stage2_infonce_residual", "stage3_cotrain_rgb"]
    assert all((tmp_path / n / "stage_done.json").exists() for n in names)
    assert out.count("stage 1/3 stage1_infonce_rgb ->") == 1      # rank 0 only
    assert "deprecated" not in out
    state = load_checkpoint(tmp_path / names[2] / "checkpoints" / "last.pt")["model"]
    assert int(state["queue_count"]) == 3 * 8     # 3 steps x both ranks' 4 keys
    assert len(set(state["queue_video"].tolist())) > 8   # not one rank's keys twice
    cotrain = read_metrics(str(tmp_path / names[2] / "metrics.jsonl"))
    assert [r["queue_fill"] for r in cotrain] == [0.0, 0.5, 1.0]
    assert "mined_same_label" in cotrain[-1] and "mined_same_label" not in cotrain[0]


def test_unknown_keys_and_missing_root_are_one_line_errors(tiny_synthetic, tmp_path):
    from vidssl.cli import main
    from vidssl.errors import ConfigError

    with pytest.raises(ConfigError, match="method.params.nope"):
        pretrain(tiny_config(tiny_synthetic, tmp_path, "method.params.nope=1"))
    with pytest.raises(VidsslError, match="does not exist"):
        pretrain(tiny_config(tmp_path / "missing", tmp_path))
    assert main(cli_args(tmp_path / "missing", tmp_path)) == 2


@dataclasses.dataclass
class NaNParams:
    at: int = 2


@register_method("test_nan", NaNParams)
class _NaNAtStep(torch.nn.Module):
    """A method whose loss turns NaN at a given step (to test the abort)."""

    def __init__(self, encoder, p):
        super().__init__()
        from vidssl.data.samplers import RandomClipSampler

        self.encoder, self.at, self.calls = encoder, p.at, 0
        self.sampler = RandomClipSampler(num_frames=4)
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, batch):
        self.calls += 1
        loss = self.w * batch["views"][0].float().mean() / 255
        return {"loss": loss * (float("nan") if self.calls >= self.at else 1.0)}


def test_non_finite_loss_aborts_with_the_step(tiny_synthetic, tmp_path):
    cfg = load_config(PretrainConfig, None, [a for a in TINY_CVRL if not a.startswith("method.")]
                      + ["method.name=test_nan", f"data.root={tiny_synthetic}",
                         f"train.out_dir={tmp_path}", "train.max_steps=5"])
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 2"):
        pretrain(cfg)


def _run_cli(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vidssl", *args], cwd=REPO, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_kill_9_then_resume_reproduces_the_uninterrupted_losses(tiny_synthetic, tmp_path):
    common = ["train.max_steps=8", "train.ckpt_every=1", "train.deterministic=true",
              "train.epochs=2", "data.num_workers=1"]
    full = _run_cli(cli_args(tiny_synthetic, tmp_path / "full", *common))
    cut = _run_cli(cli_args(tiny_synthetic, tmp_path / "cut", *common))
    metrics = tmp_path / "cut" / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and cut.poll() is None:
        if metrics.exists() and len(read_metrics(str(metrics))) >= 3:
            break
        time.sleep(0.05)
    assert cut.poll() is None, "the run to interrupt finished before it could be killed"
    os.kill(cut.pid, signal.SIGKILL)
    cut.wait()
    killed_at = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["step"]
    assert 2 <= killed_at < 8
    resumed = _run_cli(cli_args(tiny_synthetic, tmp_path / "cut", *common, "--resume"))
    out_resumed, _ = resumed.communicate(timeout=300)
    out_full, _ = full.communicate(timeout=300)
    assert resumed.returncode == 0, out_resumed
    assert full.returncode == 0, out_full
    a = [r["loss"] for r in read_metrics(str(tmp_path / "full" / "metrics.jsonl"))]
    b = [r["loss"] for r in read_metrics(str(metrics))]
    assert len(a) == len(b) == 8
    assert a == b  # bit-identical: same weights, optimizer state, batches and RNG stream


@pytest.mark.parametrize("sig,code,group", [(signal.SIGTERM, 143, False), (signal.SIGINT, 130, False),
                                            (signal.SIGTERM, 143, True), (signal.SIGINT, 130, True)])
def test_sigterm_or_sigint_checkpoints_then_exits_cleanly(tiny_synthetic, tmp_path, sig, code, group):
    """A pre-empted run finishes its current step, writes last.pt at that step, says so in one
    line and exits with 128 + signal (no traceback); --resume then completes the run. ``group``:
    the signal goes to the whole process group, loader workers included, as torchrun's agent,
    Slurm and Ctrl-C in a terminal send it."""
    common = ["train.max_steps=60", "train.epochs=20", "data.num_workers=1"]
    run = _run_cli(cli_args(tiny_synthetic, tmp_path, *common), start_new_session=group)
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and run.poll() is None:
        if metrics.exists() and len(read_metrics(str(metrics))) >= 3:
            break
        time.sleep(0.05)
    assert run.poll() is None, "the run finished before it could be signalled"
    if group:
        os.killpg(run.pid, sig)
    else:
        os.kill(run.pid, sig)
    out, _ = run.communicate(timeout=120)
    assert run.returncode == code, out
    assert "Traceback" not in out and "stopped at step" in out
    step = load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"]
    assert step == len(read_metrics(str(metrics))) and 3 <= step < 60
    resumed = _run_cli(cli_args(tiny_synthetic, tmp_path, *common, "--resume"))
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 60


# Augmentations drawn deterministically and BatchNorm on running statistics: then one process
# with batch 8 and two with 4 each must compute the same losses (same videos, clips, negatives
# gathered across ranks, gradients averaged). With default settings the two differ by the
# per-process BatchNorm statistics and augmentation draws (docs/training.md).
DETERMINISTIC_VIEWS = ["method.params.crop_scale=[1.0,1.0]", "method.params.crop_ratio=[1.0,1.0]",
                       "method.params.flip_prob=0", "method.params.color_jitter_prob=0",
                       "method.params.grayscale_prob=0", "method.params.blur_prob=[0,0]",
                       "method.params.solarize_prob=[0,0]", "train.freeze_bn=true"]


def test_torchrun_two_processes_matches_one(tiny_synthetic, tmp_path):
    steps = ["train.max_steps=3", "train.epochs=2", "data.batch_size=8",
             "train.deterministic=true", *DETERMINISTIC_VIEWS]
    single = _run_cli(cli_args(tiny_synthetic, tmp_path / "one", *steps))
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29731", "-m", "vidssl",
                          *cli_args(tiny_synthetic, tmp_path / "two", *steps)],
                         cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    out1, _ = single.communicate(timeout=600)
    assert single.returncode == 0, out1
    assert ddp.returncode == 0, ddp.stdout[-3000:] + ddp.stderr[-3000:]
    one = [r["loss"] for r in read_metrics(str(tmp_path / "one" / "metrics.jsonl"))]
    two = [r["loss"] for r in read_metrics(str(tmp_path / "two" / "metrics.jsonl"))]
    assert len(one) == len(two) == 3
    assert one[-1] < one[0]  # it trains
    assert two == pytest.approx(one, rel=1e-5, abs=1e-6)
    # each rank's random streams are saved, so a resumed rank continues its own, not rank 0's
    rngs = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.pt")["rng_per_rank"]
    assert len(rngs) == 2 and not torch.equal(rngs[0]["torch"], rngs[1]["torch"])
