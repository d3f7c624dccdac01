"""Scoring must keep up with a benchmark: `rotobridge evaluate score` frames per second at 480p.

Writes a DAVIS-format dataset (854x480 palette PNGs, `--sequences` videos of `--frames`
frames, `--objects` moving discs each; the defaults are DAVIS 2017 val's size: 30 videos,
~67 frames each (1,999 in all), 61 objects (so 2 each); the last object leaves and comes back) and predictions (the truth shifted and
speckled), then times `runs.score_dataset` from reading the PNGs to the
scores, with `--workers` processes (one sequence each). Goal: >= 200 frames/s on 2 cores.
It also prints the CPU time one frame costs in a single process, which does not depend on
what else the machine is running (wall-clock rates do, on a shared machine).
    .venv/bin/python benchmarks/evaluate_speed.py [--sequences 30] [--frames 67] [--objects 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from rotobridge.bridge.evaluate import datasets, runs
from rotobridge.bridge.evaluate.masks import DAVIS_PALETTE
from rotobridge.bridge.evaluate.scores import Convention

WIDTH, HEIGHT = 854, 480


def _save(path: Path, labels: np.ndarray) -> None:
    image = Image.fromarray(labels)
    image.putpalette(list(DAVIS_PALETTE))
    image.save(path)


def write_dataset(root: Path, sequences: int, frames: int, objects: int = 2) -> Path:
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    for s in range(sequences):
        name = f"seq{s:02d}"
        for sub in ("JPEGImages/480p", "Annotations/480p", "pred"):
            (root / sub / name).mkdir(parents=True, exist_ok=True)
        centres = rng.uniform((100, 100), (HEIGHT - 100, WIDTH - 100), size=(objects, 2))
        speeds = rng.uniform(-3, 3, size=(objects, 2))
        radii = rng.uniform(30, 90, size=objects)
        Image.new("RGB", (WIDTH, HEIGHT)).save(root / "JPEGImages/480p" / name / "00000.jpg")
        for f in range(frames):
            truth = np.zeros((HEIGHT, WIDTH), np.uint8)
            for obj in range(objects):
                if obj == objects - 1 and frames // 3 <= f < frames // 2:
                    continue  # away for a while
                cy, cx = centres[obj] + speeds[obj] * f
                truth[((ys - cy) / 1.3) ** 2 + (xs - cx) ** 2 < radii[obj] ** 2] = obj + 1
            pred = np.roll(truth, (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))), axis=(0, 1))
            pred[rng.random(pred.shape) < 0.002] = 0
            _save(root / "Annotations/480p" / name / f"{f:05d}.png", truth)
            _save(root / "pred" / name / f"{f:05d}.png", pred)
            if f:
                os.link(root / "JPEGImages/480p" / name / "00000.jpg", root / "JPEGImages/480p" / name / f"{f:05d}.jpg")
    (root / "ImageSets/2017").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets/2017/val.txt").write_text("".join(f"seq{s:02d}\n" for s in range(sequences)))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=30)
    parser.add_argument("--frames", type=int, default=67)
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_dataset(Path(tmp) / "davis", args.sequences, args.frames, args.objects)
        sequences = datasets.load("davis", str(root))
        # the CPU one frame costs, free of other processes' load: what 2 idle cores would reach
        started_cpu = time.process_time()
        one = runs.score_one(sequences[0], str(root / "pred"), runs.ScoreOptions())
        per_frame = (time.process_time() - started_cpu) / len(one.evaluated)
        print(
            f"CPU per scored frame (one process): {1000 * per_frame:.1f} ms = {1 / per_frame:.0f} frames/s per core; "
            f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        for convention in (Convention.DAVIS, Convention.VOS):
            out = Path(tmp) / f"out_{convention.value}"
            started = time.perf_counter()
            results = runs.score_dataset(sequences, str(root / "pred"), str(out), runs.ScoreOptions(convention), workers=args.workers)
            seconds = time.perf_counter() - started
            scored = sum(len(s.evaluated) for s in results)
            print(
                f"{convention.value:5s} convention: {scored} frames ({args.sequences} sequences, {args.objects} objects, {WIDTH}x{HEIGHT}) "
                f"in {seconds:.2f} s with {args.workers} worker(s): {scored / seconds:.0f} frames/s "
                f"(goal >= 200 on 2 cores; process start-up included)"
            )


if __name__ == "__main__":
    main()
