"""Memory must not grow with shot length: peak RSS of `rotobridge render` at 400 vs 50 frames.

Each render runs as its own process (one object, forward, same 640x360 ACEScg EXR plate);
the peak resident set size comes from the kernel (wait4). Goal: ratio <= 1.1 (issue 9).
For contrast it prints what sam2's own init_state would hold for the frames alone.
    .venv/bin/python benchmarks/memory.py [--short 50] [--long 400] [--image-size 512] [--read-ahead-mib 64]

Both renders read ahead within the same budget (ROTOBRIDGE_READ_AHEAD_MIB, sizing.py),
small enough for the short shot to fill: a render holds its read-ahead budget (512 MiB by
default) by design, whatever the shot's length, once the shot has more frames than the
budget holds; a short shot that cannot fill it would make the long one look as if it
grew with its length (2026-12-03, default budget: 1342 -> 1940 MiB, ratio 1.45; at 64
MiB: 1243 -> 1279, ratio 1.03).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, prepare


def peak_rss_mib(recipe: Path, read_ahead_mib: int) -> tuple[float, float]:
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotobridge.bridge.cli", "--log-level", "WARNING", "render", str(recipe), "--quiet", "--device", "cpu"],
        cwd=ROOT,
        env={**os.environ, "ROTOBRIDGE_READ_AHEAD_MIB": str(read_ahead_mib)},
    )
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"render of {recipe} failed")
    return usage.ru_maxrss / 1024, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=50)
    parser.add_argument("--long", type=int, default=400)
    parser.add_argument("--image-size", type=int, default=512, help="model input size (1024 is the real size; slower)")
    parser.add_argument("--read-ahead-mib", type=int, default=64, help="read-ahead budget of both renders")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "rotobridge-bench")
    args = parser.parse_args()
    results = {}
    for frames in (args.short, args.long):
        recipe = prepare(args.work, frames, image_size=args.image_size)
        results[frames] = peak_rss_mib(recipe, args.read_ahead_mib)
        print(f"{frames:5d} frames: peak RSS {results[frames][0]:8.1f} MiB  ({results[frames][1]:.0f} s)", flush=True)
    short, long = results[args.short][0], results[args.long][0]
    frame_mib = 3 * args.image_size**2 * 4 / 2**20
    print(f"sam2 init_state would hold {args.long * frame_mib:.0f} MiB of frames for {args.long} frames "
          f"({args.short * frame_mib:.0f} MiB for {args.short})")
    print(f"growth {long - short:+.1f} MiB; ratio long/short = {long / short:.3f} (goal <= 1.1), "
          f"read-ahead budget {args.read_ahead_mib} MiB each")


if __name__ == "__main__":
    main()
