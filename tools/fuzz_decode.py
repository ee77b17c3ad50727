"""Fuzz the decoders: mutated video bytes must decode or fail with one clear line, nothing else.

    python tools/fuzz_decode.py --backend torchcodec --iterations 2000      # built-in mutator
    python tools/fuzz_decode.py --backend pyav --atheris -- -max_total_time=600   # coverage-guided

The property checked for every input (``check_bytes``): ``open_video`` + reading every frame
either returns ``uint8 (T, 3, H, W)`` with ``T`` = the frame count the decoder reported, or
raises ``VideoDecodeError`` whose message is one line and names the file. Any other exception is
a finding (printed with the seed that reproduces it and saved under ``--crash-dir``). A crash of
the interpreter itself (a segfault inside a C decoder) ends the run; the input that caused it is
written to ``--crash-dir/last_input`` before each attempt, so it is never lost.

The built-in mutator needs nothing beyond vidssl; ``--atheris`` uses Google's coverage-guided
fuzzer (``pip install atheris``). The test suite runs the same property through hypothesis
(tests/reliability/test_fuzz.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
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
                counts[check_bytes(data, args.backend, tmp, suffix)] += 1
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
