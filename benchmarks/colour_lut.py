"""The baked view LUT against OCIO's exact CPU processor, per plate colourspace, and its cost.

Differences are display values on the 0-255 scale (the largest of a pixel's three
channels), after the clip to [0, 1] both paths apply. Two kinds of input per colourspace:

- plates: generated plate-like pictures made in scene-linear ACEScg and converted by OCIO
  into the colourspace: exposure ramps of skin, sky, foliage, grey, dark and saturated
  colours, soft shading, noise that dips below zero near black, speculars up to 16.
  Goals: p99.9 <= 1/255, mean <= 0.1/255.
- grids: every combination of per-channel values that cover the encoding's range
  (scene-linear: 0 and -0.05..-1e-4, then 1e-4..65 log-spaced; log: code values 0..1),
  fully saturated and near-black corners included, placed off the LUT's nodes.
  Goal: p99 <= 2/255; the max is printed.

Then the CPU cost of one 1024² frame through ColourPipeline.model_input, LUT vs exact,
on one thread (process CPU time), and the one-off bake.
    .venv/bin/python benchmarks/colour_lut.py [--size 512] [--cube 129]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import PyOpenColorIO as ocio
import torch

from rotobridge.bridge import lut as luts
from rotobridge.bridge.colour import DEFAULT_CONFIG, ColourPipeline

#: (colourspace, what it stands for)
SPACES = (
    ("ACEScg", "scene-linear, > 1.0 and negatives"),
    ("Linear Rec.709 (sRGB)", "scene-linear"),
    ("ACEScct", "log"),
    ("ARRI LogC4", "log"),
    ("S-Log3 S-Gamut3", "camera log"),
)
GOALS = {"plate p99.9": 1.0, "plate mean": 0.1, "grid p99": 2.0}
#: plate-like scene-linear ACEScg colours at 18 % grey exposure
MATERIALS = np.array(
    [
        (0.40, 0.25, 0.18),  # skin
        (0.20, 0.32, 0.55),  # sky
        (0.06, 0.15, 0.04),  # foliage
        (0.18, 0.18, 0.18),  # grey card
        (0.30, 0.27, 0.23),  # concrete
        (0.02, 0.018, 0.016),  # shadow
        (0.45, 0.04, 0.03),  # saturated red
        (0.03, 0.10, 0.45),  # saturated blue
    ],
    np.float32,
)


def plate_acescg(size: int, seed: int) -> np.ndarray:
    """(size, size, 3) ACEScg: one band per material, exposure −7..+3 stops across, shaded, noisy."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    band = np.minimum((y * len(MATERIALS)).astype(int), len(MATERIALS) - 1)
    exposure = 2.0 ** (-7.0 + 10.0 * x + 0.5 * np.sin(9 * y + 4 * x))
    image = MATERIALS[band] * exposure[..., None]
    image *= 1.0 + 0.02 * rng.standard_normal(image.shape)
    image += 0.002 * rng.standard_normal(image.shape)  # sensor noise: negatives near black
    spots = rng.random((size, size)) < 0.002
    image[spots] = rng.uniform(2.0, 16.0, (int(spots.sum()), 1)) * (0.8 + 0.2 * rng.random((int(spots.sum()), 3)))
    return image.astype(np.float32)


def in_colourspace(acescg: np.ndarray, colourspace: str) -> np.ndarray:
    config = ocio.Config.CreateFromFile(DEFAULT_CONFIG)
    processor = config.getProcessor("ACEScg", colourspace).getDefaultCPUProcessor()
    out = np.ascontiguousarray(acescg, dtype=np.float32).copy()
    processor.applyRGB(out.reshape(-1))
    return out


def grid(encoding: str) -> np.ndarray:
    """(1, N, 3) every combination of the per-channel values covering the encoding's range."""
    if encoding == "log":
        values = np.linspace(0.0, 1.0, 48) * 0.9973 + 0.0011
    else:
        values = np.concatenate([-np.geomspace(0.05, 1e-4, 8), [0.0], np.geomspace(1e-4, 65.0, 40)])
    cube = np.stack(np.meshgrid(values, values, values, indexing="ij"), axis=-1)
    return cube.reshape(1, -1, 3).astype(np.float32)


def differences(lut: ColourPipeline, exact: ColourPipeline, pixels: np.ndarray) -> np.ndarray:
    h, w = pixels.shape[:2]
    got = lut.to_display(pixels, w, h).numpy()
    want = exact.to_display(pixels, w, h).numpy()
    return np.abs(got - want).max(axis=0).reshape(-1) * 255.0


def cpu_ms(function: object, repeat: int) -> float:
    """Least process CPU time of `repeat` calls, in ms (one torch thread: per-core cost)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        function()  # type: ignore[operator]
        best = min(best, time.process_time() - started)
    return best * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=512, help="generated plate size (pixels per side)")
    parser.add_argument("--cube", type=int, default=luts.CUBE_SIZE, help="LUT nodes per axis")
    parser.add_argument("--timing", type=int, default=3, help="repeats of the 1024² timing (0: skip)")
    args = parser.parse_args()
    luts.CUBE_SIZE = args.cube
    torch.set_num_threads(1)
    print(f"load: {os.getloadavg()[0]:.1f} (1-min average, {os.cpu_count()} cores); cube {args.cube}³, tetrahedral")
    print(f"{'colourspace':24s} {'bake s':>6s} {'plate p99.9':>11s} {'plate mean':>10s} {'grid p99':>8s} {'grid max':>8s}  result")
    failed = []
    for number, (colourspace, _) in enumerate(SPACES):
        lut, exact = ColourPipeline(colourspace), ColourPipeline(colourspace, exact=True)
        started = time.process_time()
        baked = lut.lut
        assert baked is not None
        bake = time.process_time() - started
        plate = differences(lut, exact, in_colourspace(plate_acescg(args.size, number), colourspace))
        dense = differences(lut, exact, grid("log" if baked.shaper.softness is None else "linear"))
        figures = {
            "plate p99.9": float(np.percentile(plate, 99.9)),
            "plate mean": float(plate.mean()),
            "grid p99": float(np.percentile(dense, 99)),
        }
        misses = [name for name, value in figures.items() if value > GOALS[name]]
        failed += [f"{colourspace}: {name}" for name in misses]
        print(
            f"{colourspace:24s} {bake:6.2f} {figures['plate p99.9']:11.3f} {figures['plate mean']:10.3f} "
            f"{figures['grid p99']:8.3f} {dense.max():8.2f}  {'FAIL ' + ', '.join(misses) if misses else 'pass'}"
        )
    print("goals (1/255 units): " + ", ".join(f"{name} <= {value}" for name, value in GOALS.items()))
    if args.timing:
        frame = in_colourspace(plate_acescg(1024, 99), "ACEScg")
        lut, exact = ColourPipeline("ACEScg"), ColourPipeline("ACEScg", exact=True)
        lut_ms = cpu_ms(lambda: lut.model_input(frame, 1024), args.timing)
        exact_ms = cpu_ms(lambda: exact.model_input(frame, 1024), max(1, args.timing // 2))
        print(
            f"ACEScg 1024² model_input, CPU ms on one thread: LUT {lut_ms:.0f}, exact {exact_ms:.0f} "
            f"({exact_ms / lut_ms:.1f}x); load now {os.getloadavg()[0]:.1f}"
        )
    print("all goals met" if not failed else "goals missed: " + "; ".join(failed))


if __name__ == "__main__":
    main()
