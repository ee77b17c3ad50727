"""Schedules, checkpoints and the resumable loader position (no model needed)."""

from __future__ import annotations

import argparse

import math
import os

import pytest
import torch

from vidssl.errors import VidsslError
from vidssl.models.checkpoint import load_checkpoint, save_checkpoint
from vidssl.train.monitor import read_metrics
from vidssl.runtime.optim import build_scheduler, warmup_cosine
from vidssl.train.state import rng_state, set_rng_state


def test_warmup_cosine_values():
    table = warmup_cosine(10, warmup_steps=3, min_ratio=0.1)
    assert table[:3] == pytest.approx([0.25, 0.5, 0.75])
    assert table[3] == pytest.approx(1.0) and table[-1] == pytest.approx(0.1)
    mid = 3 + 3  # halfway through the 6 decay intervals
    assert table[mid] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(table[3:], table[4:]))
    assert warmup_cosine(1) == [1.0]
    with pytest.raises(ValueError):
        warmup_cosine(0)


def test_scheduler_follows_table():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=2.0)
    sched = build_scheduler(opt, 5, warmup_steps=1)
    lrs = []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([2.0 * m for m in warmup_cosine(5, 1)])


def test_checkpoint_round_trip_weights_only(tmp_path):
    path = tmp_path / "ck" / "last.pt"
    state = {"model": {"w": torch.arange(3.0)}, "step": 7, "config": {"a": (1, 2), "b": None},
             "rng": rng_state()}
    save_checkpoint(state, path)
    assert sorted(os.listdir(path.parent)) == ["last.pt"]  # no temporary file left behind
    back = load_checkpoint(path)
    assert back["step"] == 7 and torch.equal(back["model"]["w"], torch.arange(3.0))
    assert back["config"]["a"] == (1, 2)


def test_checkpoint_rng_restores_the_stream(tmp_path):
    torch.manual_seed(3)
    saved = rng_state()
    first = torch.rand(4)
    set_rng_state(saved)
    assert torch.equal(torch.rand(4), first)


def test_bad_checkpoints_give_one_line_errors(tmp_path):
    with pytest.raises(VidsslError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(VidsslError, match="is not a checkpoint \\(not a torch.save file\\)") as err:
        load_checkpoint(garbage)
    assert "\n" not in str(err.value)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(VidsslError, match="an empty file"):
        load_checkpoint(tmp_path / "empty.pt")
    pickled = tmp_path / "pickled.pt"  # a torch.save file holding an arbitrary Python object
    torch.save({"args": argparse.Namespace(lr=0.1)}, pickled)
    with pytest.raises(VidsslError, match="safe loading refuses") as err:
        load_checkpoint(pickled)
    assert "weights_only" not in str(err.value)  # never advise the unsafe switch
    cut = tmp_path / "cut.pt"  # a real checkpoint cut short
    save_checkpoint({"step": 1, "w": torch.zeros(1000)}, tmp_path / "whole.pt")
    cut.write_bytes((tmp_path / "whole.pt").read_bytes()[:2000])
    with pytest.raises(VidsslError, match="cut.pt") as err:
        load_checkpoint(cut)
    assert "\n" not in str(err.value)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(VidsslError, match="not a vidssl checkpoint"):
        load_checkpoint(other)


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint({"step": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        save_checkpoint({"step": 2, "bad": Unpicklable()}, path)
    assert load_checkpoint(path)["step"] == 1
    assert os.listdir(tmp_path) == ["last.pt"]


def test_full_disk_while_saving_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "last.pt"
    save_checkpoint({"step": 1}, path)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(VidsslError, match="No space left on device.*previous checkpoint is intact"):
        save_checkpoint({"step": 2, "w": torch.zeros(1000)}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert os.listdir(tmp_path) == ["last.pt"]


def test_disk_full_inside_torch_save_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """A write that fails inside torch.save (torch turns it into a RuntimeError about the zip
    position) still reads as the disk error, and last.pt stays the previous one."""
    import errno
    import io

    path = tmp_path / "last.pt"
    save_checkpoint({"step": 1}, path)

    class FillsUp(io.FileIO):
        written = 0

        def write(self, b):
            FillsUp.written += len(b)
            if FillsUp.written > 1000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(b)

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FillsUp(fd, "wb"))
    with pytest.raises(VidsslError, match="No space left on device.*previous checkpoint is intact") as err:
        save_checkpoint({"step": 2, "w": torch.zeros(100_000)}, path)
    monkeypatch.undo()
    assert "\n" not in str(err.value)
    assert load_checkpoint(path)["step"] == 1 and os.listdir(tmp_path) == ["last.pt"]
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_read_metrics_keeps_last_record_and_skips_cut_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 3.0}\n{"step": 2, "loss": 2.0}\n'
                    '{"step": 2, "loss": 2.5}\n{"step": 3, "lo')
    recs = read_metrics(str(path))
    assert [r["loss"] for r in recs] == [3.0, 2.5]


def test_step_options_keep_the_losses(tiny_synthetic, tmp_path):
    """channels_last_3d and fused AdamW change memory layout and kernels, not the maths: 3 steps
    give the default run's losses (CPU, deterministic views)."""
    from tests.train.test_pretrain import DETERMINISTIC_VIEWS, tiny_config
    from vidssl.train.loop import pretrain

    common = ["train.max_steps=3", "train.deterministic=true", *DETERMINISTIC_VIEWS]
    base = pretrain(tiny_config(tiny_synthetic, tmp_path / "a", *common))
    fast = pretrain(tiny_config(tiny_synthetic, tmp_path / "b", *common, "train.channels_last=true",
                                "optim.fused=true"))
    assert fast.losses == pytest.approx(base.losses, rel=1e-4, abs=1e-5)


@pytest.mark.slow
def test_compiled_encoder_trains_and_saves_plain_keys(tiny_synthetic, tmp_path):
    from tests.train.test_pretrain import DETERMINISTIC_VIEWS, tiny_config
    from vidssl.models.checkpoint import load_checkpoint
    from vidssl.train.loop import pretrain

    common = ["train.max_steps=2", "train.deterministic=true", *DETERMINISTIC_VIEWS]
    base = pretrain(tiny_config(tiny_synthetic, tmp_path / "a", *common))
    compiled = pretrain(tiny_config(tiny_synthetic, tmp_path / "b", *common, "train.compile=true"))
    assert compiled.losses == pytest.approx(base.losses, rel=1e-3, abs=1e-4)
    keys = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["model"].keys()
    assert not any("_orig_mod" in k for k in keys)


def _agent_env(monkeypatch, port: int, restart: int, local_world: str = "2") -> None:
    for key, value in {"TORCHELASTIC_USE_AGENT_STORE": "True", "TORCHELASTIC_RESTART_COUNT": str(restart),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2",
                       "LOCAL_WORLD_SIZE": local_world}.items():
        monkeypatch.setenv(key, value)


def test_attempt_store_isolates_restarts_on_one_node(monkeypatch):
    """A key the first attempt wrote (a dead rank's gloo address) is invisible to the second."""
    from datetime import timedelta

    from vidssl.runtime.dist import _attempt_store

    server = torch.distributed.TCPStore("127.0.0.1", 0, 1, is_master=True, timeout=timedelta(seconds=10))
    _agent_env(monkeypatch, server.port, restart=0)
    first = _attempt_store()
    first.set("default_pg/0//1", "127.0.0.1:3495")
    _agent_env(monkeypatch, server.port, restart=1)
    second = _attempt_store()
    assert not second.check(["default_pg/0//1"])
    assert first.check(["default_pg/0//1"])
    second.set("default_pg/0//1", "fresh")
    assert first.get("default_pg/0//1") == b"127.0.0.1:3495"


def test_attempt_store_is_left_alone_off_one_node_or_without_the_agent(monkeypatch):
    from vidssl.runtime.dist import _attempt_store

    _agent_env(monkeypatch, 1, restart=1, local_world="1")  # 2 nodes: restart counts may differ
    assert _attempt_store() is None
    _agent_env(monkeypatch, 1, restart=1)
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")  # TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1
    assert _attempt_store() is None
    monkeypatch.delenv("TORCHELASTIC_USE_AGENT_STORE")  # plain env:// outside torchrun
    assert _attempt_store() is None
