"""Training faults at the scale of a job: ``torchrun --max-restarts`` with one CPU rank killed
mid-epoch completes from its checkpoint (gloo). SIGTERM/SIGINT, kill -9 + resume and failed
checkpoint writes: tests/train/test_pretrain.py and tests/train/test_engine_parts.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.train.test_pretrain import REPO, _env, cli_args
from vidssl.models.checkpoint import load_checkpoint
from vidssl.train.monitor import read_metrics


@pytest.mark.slow
def test_torchrun_restarts_a_killed_rank_and_the_job_completes(tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    args = cli_args(tiny_synthetic, out, "train.max_steps=8", "train.epochs=4", "train.ckpt_every=1",
                    "data.batch_size=4", "--resume", "auto")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--max-restarts", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0",
         "--monitor-interval", "0.5", "tests/reliability/kill_one_rank.py", *args],
        cwd=REPO, env={**_env(), "VIDSSL_TEST_KILL_AT_STEP": "4"}, capture_output=True,
        text=True, timeout=900)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "resumed from step" in log, log[-4000:]  # the second attempt used the checkpoint
    assert "-9" in log or "SIGKILL" in log, log[-4000:]  # and the first one did lose a rank
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["step"] == 8 and len(state["rng_per_rank"]) == 2
    steps = [r["step"] for r in read_metrics(str(out / "metrics.jsonl"))]
    assert steps[-1] == 8 and set(steps) == set(range(1, 9))
