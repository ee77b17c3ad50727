"""Runs that never overwrite, never mix and always say what they are: versioned run folders, a
lock against concurrent runs, overrides anywhere on the command line, honest summaries, a
schedule rebuilt on resume, provenance and the W&B logger (offline)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.train.test_pretrain import REPO, TINY_COCLR_STAGES, _env, cli_args, tiny_config
from vidssl.errors import VidsslError
from vidssl.models.checkpoint import load_checkpoint
from vidssl.runtime.optim import warmup_cosine
from vidssl.runtime.rundir import claim_run_dir, holds_run
from vidssl.train.loop import pretrain
from vidssl.train.monitor import read_metrics


def _steps(out) -> list[int]:
    with open(out / "metrics.jsonl", encoding="utf-8") as f:
        return [json.loads(line)["step"] for line in f]


def test_the_same_command_twice_leaves_both_runs_intact(tiny_synthetic, tmp_path, capsys):
    from vidssl.cli import main

    args = cli_args(tiny_synthetic, tmp_path / "run", "train.max_steps=2")
    assert main(args) == 0
    first = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert main(args) == 0
    assert _steps(tmp_path / "run") == [1, 2] and _steps(tmp_path / "run_v2") == [1, 2]
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["provenance"] == first["provenance"]
    assert main(args) == 0
    assert (tmp_path / "run_v3" / "checkpoints" / "last.pt").exists()
    assert "run_v3/checkpoints/last.pt" in capsys.readouterr().out


def test_error_and_overwrite_policies(tiny_synthetic, tmp_path):
    from vidssl.cli import main

    out = tmp_path / "run"
    pretrain(tiny_config(tiny_synthetic, out, "train.max_steps=2"))
    with pytest.raises(VidsslError, match="holds an earlier training run: continue it with --resume, "
                                          "replace it with --overwrite") as err:
        pretrain(tiny_config(tiny_synthetic, out, "train.max_steps=1", "train.if_exists=error"))
    assert "\n" not in str(err.value)
    (out / "notes.txt").write_text("mine")  # not a run output: an overwrite keeps it
    assert main(cli_args(tiny_synthetic, out, "train.max_steps=1", "--overwrite")) == 0
    assert _steps(out) == [1] and (out / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "run_v2").exists()


def test_a_second_concurrent_run_into_the_same_folder_fails_at_once(tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "vidssl", *cli_args(tiny_synthetic, out, "train.epochs=500")],
                             cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (out / "metrics.jsonl").exists():
            assert first.poll() is None, first.communicate()[0]
            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-m", "vidssl", *cli_args(tiny_synthetic, out, "train.max_steps=2")],
                                cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        err = second.stderr.strip()
        assert len(err.splitlines()) == 1 and "is in use by another run (pid" in err, err
        assert not (tmp_path / "run_v2").exists()  # it failed, it did not wander off elsewhere
    finally:
        first.kill()
        first.wait()
    with claim_run_dir(out, resume=True) as path:  # the lock died with its process (SIGKILL)
        assert path == str(out)


def test_lock_is_per_folder_and_stages_nest(tmp_path):
    other = ("import sys; from vidssl.runtime.rundir import claim_run_dir\n"
             "with claim_run_dir(sys.argv[1], resume=True): pass")
    with claim_run_dir(tmp_path / "a") as a:
        proc = subprocess.run([sys.executable, "-c", other, a], cwd=REPO, env=_env(),
                              capture_output=True, text=True, timeout=120)  # another process
        assert proc.returncode != 0 and "is in use by another run (pid" in proc.stderr
        with claim_run_dir(tmp_path / "a" / "stage1") as s:  # a stage of this process's run
            assert s == str(tmp_path / "a" / "stage1")
    proc = subprocess.run([sys.executable, "-c", other, str(tmp_path / "a")], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr  # released
    assert not holds_run(tmp_path / "a")


def _nested_claim_worker(rank: int, world: int, root: str) -> None:
    import os
    import torch.distributed as tdist

    tdist.init_process_group("gloo", init_method="file://" + os.path.join(root, "rendezvous"),
                             rank=rank, world_size=world)
    try:
        with claim_run_dir(os.path.join(root, "run")) as run_dir:      # rank 0 locks, all agree
            with claim_run_dir(os.path.join(run_dir, "stage1")) as stage:  # a stage: no new claim
                with open(os.path.join(root, f"rank{rank}.txt"), "w") as f:
                    f.write(stage)
            tdist.barrier()
    finally:
        tdist.destroy_process_group()


def test_a_stage_folder_is_claimed_on_every_ddp_rank(tmp_path):
    """Under DDP rank 0 holds the run folder's lock; a stage folder inside it must count as held on
    every rank (it once did on rank 0 only, so rank 1 waited for a broadcast rank 0 skipped:
    multi-stage CoCLR hung under torchrun)."""
    import torch.multiprocessing as mp

    ctx = mp.start_processes(_nested_claim_worker, args=(2, str(tmp_path)), nprocs=2, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + 90
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("a rank hung claiming the stage folder")
    expected = str(tmp_path / "run" / "stage1")
    assert [(tmp_path / f"rank{r}.txt").read_text() for r in (0, 1)] == [expected, expected]


def test_overrides_anywhere_and_resume_never_swallows_one():
    from vidssl.cli import build_parser, split_overrides

    parser = build_parser()
    rest, over = split_overrides(parser, ["pretrain", "--config", "x.yaml", "--resume", "train.max_steps=5"])
    assert over == ["train.max_steps=5"] and parser.parse_args(rest).resume == "last"
    rest, over = split_overrides(parser, ["eval", "--encoder", "r3d_tiny", "--dataset", "synthetic", "--root",
                                          "r=1", "--splits", "1", "knn.k=10", "--", "features.num_clips=2"])
    args = parser.parse_args(rest)
    assert over == ["knn.k=10", "features.num_clips=2"] and args.splits == [1] and args.root == "r=1"
    rest, over = split_overrides(parser, ["eval", "--encoder", "r3d_tiny", "--dataset", "folder", "--root", "r",
                                          "--index-arg", "csv=v.csv", "--splits", "1", "linear:tclr.epochs=2"])
    args = parser.parse_args(rest)   # a preset's shorthand is an override too; --index-arg keeps its value
    assert over == ["linear:tclr.epochs=2"] and args.index_arg == ["csv=v.csv"] and args.splits == [1]


def test_resume_with_a_longer_budget_uses_the_new_schedule_from_its_first_step(tiny_synthetic, tmp_path):
    out = tmp_path / "run"
    common = ["train.epochs=5", "optim.warmup_steps=1"]
    pretrain(tiny_config(tiny_synthetic, out, "train.max_steps=2", *common))
    result = pretrain(tiny_config(tiny_synthetic, out, "train.max_steps=6", *common), resume=True)
    assert result.start_step == 2 and result.steps == 6 and result.updates == 4
    lrs = {r["step"]: r["lr"] for r in read_metrics(str(out / "metrics.jsonl"))}
    table = warmup_cosine(6, 1)
    for step in (3, 4, 5, 6):  # the lr logged for step k is the one step k trained with
        assert lrs[step] == pytest.approx(1e-3 * table[step - 1], rel=1e-6), step


def test_summaries_say_what_happened(tiny_synthetic, tmp_path, capsys):
    from vidssl.cli import main

    args = cli_args(tiny_synthetic, tmp_path / "run", "train.max_steps=2")
    assert main(args) == 0
    assert "pretrained 2 steps, now at step 2 of 2: last optimised loss" in capsys.readouterr().out
    assert main([*args, "--resume"]) == 0
    out = capsys.readouterr().out
    assert "nothing to do: finished at step 2 of 2" in out and "nan" not in out


def test_multi_stage_summary_reports_each_stage_and_its_updates(tiny_synthetic, tmp_path):
    from vidssl.cli import pretrain_summary
    from vidssl.config import load_config
    from vidssl.train.config import PretrainConfig
    from vidssl.train.run import run

    args = [*TINY_COCLR_STAGES, "method.params.queue_size=8",
            "method.params.until_queue_full=skip",   # the skip bookkeeping (default: train)
            f"data.root={tiny_synthetic}", f"train.out_dir={tmp_path / 'run'}", "train.max_steps=3"]
    result = run(load_config(PretrainConfig, None, args))
    assert [s.name for s in result.stages] == ["stage1_infonce_rgb", "stage2_infonce_residual",
                                               "stage3_cotrain_rgb"]
    assert [s.updates for s in result.stages] == [3, 3, 1]   # the co-training queue fills first
    text = pretrain_summary(result)
    assert "stage stage3_cotrain_rgb: 3 steps (1 updated the weights)" in text
    again = run(load_config(PretrainConfig, None, args), resume=True)   # finished: recorded numbers
    assert [s.updates for s in again.stages] == [3, 3, 1]
    assert "stage stage1_infonce_rgb: nothing to do" in pretrain_summary(again)


def test_warmup_longer_than_the_run_says_so(tiny_synthetic, tmp_path, caplog):
    pretrain(tiny_config(tiny_synthetic, tmp_path / "run", "train.max_steps=2", "optim.warmup_steps=5"))
    assert "optim.warmup_steps=5 is not below this run's 2 steps" in caplog.text


def test_run_json_and_checkpoints_carry_provenance(tiny_synthetic, tmp_path):
    from vidssl.cli import main

    assert main(cli_args(tiny_synthetic, tmp_path / "run", "train.max_steps=1")) == 0
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    session = info["sessions"][0]
    assert info["run"] == "run" and session["command"].startswith("vidssl pretrain ")
    assert session["vidssl"] and session["torch"] and session["seed"] == 0 and session["start_step"] == 0
    prov = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["provenance"]
    assert prov["command"] == session["command"] and "time" in prov


def test_wandb_offline_gets_the_same_scalars_and_config(tiny_synthetic, tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb")
    logged, configs = [], []
    real_init = wandb.init

    def spy_init(**kw):
        configs.append(kw["config"])
        run = real_init(**kw)
        real_log = run.log
        run.log = lambda data, step=None: (logged.append((step, dict(data))), real_log(data, step=step))[1]
        return run

    monkeypatch.setattr(wandb, "init", spy_init)
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    cfg = tiny_config(tiny_synthetic, out, "train.max_steps=2", "train.tensorboard=true",
                      "train.wandb.enabled=true", "train.wandb.mode=offline", "train.wandb.project=test")
    pretrain(cfg)
    records = read_metrics(str(out / "metrics.jsonl"))
    assert [s for s, _ in logged] == [1, 2]
    for (step, data), rec in zip(logged, records):
        assert data == {f"train/{k}": v for k, v in rec.items() if k != "step"}
    assert configs[0]["method"]["name"] == "cvrl" and configs[0]["train"]["max_steps"] == 2
    assert list((out / "wandb").glob("offline-run-*/run-*.wandb")), "no offline W&B run written"
    run_id = (out / "wandb_id.txt").read_text()
    pretrain(tiny_config(tiny_synthetic, out, "train.max_steps=3", "train.epochs=2", "train.wandb.enabled=true",
                         "train.wandb.mode=offline"), resume=True)
    assert (out / "wandb_id.txt").read_text() == run_id  # a resumed run continues the same W&B run
