"""Fuzz the decoders: mutated video bytes must decode or fail with one clear line, nothing else.

    python tools/fuzz_decode.py --backend torchcodec --iterations 2000      # built-in mutator
    python tools/fuzz_decode.py --backend pyav --atheris -- -max_total_time=600   # coverage-guided

The property checked for every input (``check_bytes``): ``open_video`` + reading every frame
either returns ``uint8 (T, 3, H, W)`` with ``T`` = the frame count the decoder reported, or
raises ``VideoDecodeError`` whose message is one line and names the file. Any other exception is
a finding (printed with the seed that reproduces it and saved under ``--crash-dir``). A crash of
a C decoder (abort, segfault) is caught by ``--isolate`` (each input decoded in a forked child;
slower) and counted as a finding with its input saved; without it the run ends there, and the
input that caused it is in ``--crash-dir/last_input`` (written before each attempt).

The built-in mutator needs nothing beyond vidssl; ``--atheris`` uses Google's coverage-guided
fuzzer (``pip install atheris``). The test suite runs the same property through hypothesis
(tests/reliability/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vidssl.data.decoders import open_video
from vidssl.errors import VideoDecodeError

MAX_FRAMES_READ = 64  # enough to exercise seeking and B-frame reordering; bounds time per input


def check_bytes(data: bytes, backend: str, workdir: str | os.PathLike, suffix: str = ".mp4") -> str:
    """Decode ``data`` as a file; return ``"ok"`` or ``"error"``; raise AssertionError on a finding."""
    path = Path(workdir) / f"fuzz_input{suffix}"
    path.write_bytes(data)
    try:
        with open_video(path, backend) as dec:
            n = dec.metadata.num_frames
            want = np.arange(min(n, MAX_FRAMES_READ))
            frames = dec.get_frames(want)
    except VideoDecodeError as err:
        message = str(err)
        assert "\n" not in message, f"multi-line error: {message!r}"
        assert path.name in message, f"error does not name the file: {message!r}"
        return "error"
    assert frames.dtype.is_floating_point is False and frames.ndim == 4, frames.shape
    assert frames.shape[0] == len(want) and frames.shape[1] == 3, frames.shape
    return "ok"


def check_bytes_isolated(data: bytes, backend: str, workdir: str | os.PathLike, suffix: str = ".mp4",
                         timeout_s: float = 60.0) -> str:
    """:func:`check_bytes` in a forked child, so a native crash (abort / segfault inside a C
    decoder) is an outcome, ``"crash: <signal>"`` (``"crash: hang"`` for a child that has not
    finished after ``timeout_s``), instead of the end of the run. A finding is
    re-raised here as AssertionError. POSIX only."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report in one line through the pipe, never return into the caller
        os.close(read_fd)
        # An expected native crash is reported by the parent; keep the child's fault dump (and
        # the library's own messages) off the terminal. Signal handlers stay as they are.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        import torch

        torch.set_num_threads(1)  # the parent's OpenMP pool does not survive fork: a parallel
        # region in the child would wait for its threads forever
        try:
            result = check_bytes(data, backend, workdir, suffix)
        except BaseException as err:  # noqa: BLE001 - every outcome goes to the parent
            result = f"finding: {type(err).__name__}: {err}"
        os.write(write_fd, result.encode("utf-8", "replace")[:4000])
        os._exit(0)
    os.close(write_fd)
    deadline = time.monotonic() + timeout_s
    status = None
    while status is None:  # a child that deadlocks (fork after threads, a library's own crash
        done, st = os.waitpid(pid, os.WNOHANG)  # handler) is killed at the deadline: "hang"
        if done:
            status = st
        elif time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_fd)
            return "crash: hang"
        else:
            time.sleep(0.02)
    with os.fdopen(read_fd, "rb") as pipe:
        message = pipe.read().decode("utf-8", "replace")
    if os.WIFSIGNALED(status):
        return f"crash: {signal.Signals(os.WTERMSIG(status)).name}"
    if message.startswith("finding: "):
        raise AssertionError(message[len("finding: "):])
    return message


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One to four random edits: flip bytes, overwrite a run, delete or duplicate a chunk,
    truncate, or splice in random bytes."""
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        if not buf:
            break
        kind = int(rng.integers(6))
        at = int(rng.integers(len(buf)))
        span = int(rng.integers(1, 64))
        if kind == 0:
            for _ in range(int(rng.integers(1, 16))):
                buf[int(rng.integers(len(buf)))] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            buf[at:at + span] = rng.bytes(len(buf[at:at + span]))
        elif kind == 2:
            del buf[at:at + span * 8]
        elif kind == 3:
            buf[at:at] = buf[at:at + span * 8]
        elif kind == 4:
            del buf[at:]
        else:
            buf[at:at] = rng.bytes(span)
    return bytes(buf)


def seed_files(workdir: Path) -> list[tuple[bytes, str]]:
    """Valid small inputs to mutate: H.264 in MP4 and MPEG-4 Part 2 in AVI."""
    import torch
    from torchcodec.encoders import VideoEncoder

    out = []
    t = torch.arange(12).view(12, 1, 1, 1)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    frames = ((xx * 4 + yy * 2 + t * 9) % 256).to(torch.uint8).expand(12, 3, 32, 32).contiguous()
    for suffix, codec in ((".mp4", "libx264"), (".avi", "mpeg4")):
        path = workdir / f"seed{suffix}"
        VideoEncoder(frames, frame_rate=8).to_file(str(path), codec=codec, extra_options={"g": "4"})
        out.append((path.read_bytes(), suffix))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="torchcodec")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crash-dir", default="fuzz_findings")
    parser.add_argument("--atheris", action="store_true", help="coverage-guided (pip install atheris)")
    parser.add_argument("--isolate", action="store_true", help="decode each input in a forked child "
                        "so native crashes are counted, not fatal (POSIX)")
    args, rest = parser.parse_known_args(argv)
    crash_dir = Path(args.crash_dir)
    crash_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        seeds = seed_files(Path(tmp))
        if args.atheris:
            try:
                import atheris
            except ImportError:
                print("error: --atheris needs `pip install atheris`", file=sys.stderr)
                return 2

            def one(data: bytes) -> None:
                check_bytes(data, args.backend, tmp)

            atheris.Setup([sys.argv[0], *rest], one)
            atheris.Fuzz()
            return 0
        counts = {"ok": 0, "error": 0, "finding": 0}
        for i in range(args.iterations):
            rng = np.random.default_rng([args.seed, i])
            base, suffix = seeds[i % len(seeds)]
            data = mutate(base, rng)
            (crash_dir / "last_input").write_bytes(data)
            try:
                check = check_bytes_isolated if args.isolate else check_bytes
                outcome = check(data, args.backend, tmp, suffix)
                if outcome.startswith("crash"):
                    raise AssertionError(f"native {outcome}")
                counts[outcome] += 1
            except AssertionError as err:
                counts["finding"] += 1
                (crash_dir / f"finding_{args.seed}_{i}{suffix}").write_bytes(data)
                print(f"finding at seed {args.seed} iteration {i}: {err}")
            except Exception as err:  # noqa: BLE001 - an escaped library exception is a finding
                counts["finding"] += 1
                (crash_dir / f"finding_{args.seed}_{i}{suffix}").write_bytes(data)
                print(f"finding at seed {args.seed} iteration {i}: {type(err).__name__}: {err}")
        (crash_dir / "last_input").unlink(missing_ok=True)
    print(f"{args.backend}: {args.iterations} inputs: {counts['ok']} decoded, "
          f"{counts['error']} clear errors, {counts['finding']} findings")
    return 1 if counts["finding"] else 0


if __name__ == "__main__":
    sys.exit(main())
