"""Frame-exactness conformance table (docs/decoding.md, "Conformance").

    python benchmarks/decode_conformance.py [--out benchmarks/results]

Generates every file kind of vidssl.data.decoders.conformance (seconds, with the ffmpeg command
line), decodes each with the command line as the reference, and checks every installed vidssl
backend and, for comparison, torchcodec's and decord's own APIs called directly. Writes
benchmarks/results/decode_conformance.{json,md}. `make test` runs the same checks on the vidssl
backends (tests/data/test_conformance.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from vidssl.bench.decode import environment  # noqa: E402
from vidssl.data.decoders.conformance import run_conformance  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join("benchmarks", "results"))
    args = parser.parse_args(argv)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="vidssl-conformance-") as tmp:
        result = run_conformance(tmp, progress=lambda msg: print(msg, flush=True))
    result["seconds"] = round(time.time() - start, 1)
    result["environment"] = environment()
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "decode_conformance.json"), "w") as f:
        json.dump(result, f, indent=2)
    env = result["environment"]
    md = ["# Decode conformance", "",
          "Every cell: the backend against a sequential `ffmpeg -fps_mode passthrough` decode to "
          "rgb24 of FFmpeg's best video stream (docs/decoding.md, \"The contract\"), with random, "
          "out-of-order, repeated, whole-file and single-frame requests. exact = pixel-equal; "
          f"tolerance = within {result['tolerance_high_bit_depth']} grey levels (10-bit sources); "
          "refused / partial = a one-line VideoDecodeError instead of frames (partial: some "
          "requests); WRONG = a wrong frame, size or count. The raw columns call the library "
          "directly, without vidssl.", "", result["table"], ""]
    if result["skipped"]:
        md += [f"Skipped (encoder missing): {result['skipped']}", ""]
    md += ["Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v),
           f"FFmpeg command line: {_ffmpeg_version()}; {platform.platform()}, {env['time']}; "
           f"{result['seconds']} s."]
    with open(os.path.join(args.out, "decode_conformance.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print(f"wrote {args.out}/decode_conformance.json and .md")
    return 0


def _ffmpeg_version() -> str:
    import subprocess

    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    return out.splitlines()[0] if out else "unknown"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
