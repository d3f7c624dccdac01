"""Generate the example shot: sh010, 24 frames from 1001, scene-linear ACEScg half EXRs.

A red ball bounces past a sliding crate over a sky-to-ground gradient. The plate has 16
pixels of overscan (data window larger than the display window), like a real CG plate.
Generated instead of committed, so the repository carries no binaries.
    python examples/make_shot.py [OUT_DIR]    (default: examples/shot)
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

WIDTH, HEIGHT, OVERSCAN = 640, 360, 16
FIRST, COUNT = 1001, 24


def ball_centre(i: int) -> tuple[float, float]:
    return 90 + 9.0 * (i % 60), 250 - 150 * abs(math.sin(i / 7.0))


def crate_box(i: int) -> tuple[float, float, float, float]:
    x0 = 420 - 3.0 * (i % 120)
    return x0, 190.0, x0 + 120, 300.0


def frame_pixels(i: int, scale: int = 1) -> np.ndarray:
    """Linear ACEScg RGB for the data window (display window plus overscan on every side).

    Drawn at 640x360 and enlarged `scale` times (benchmarks use scale 3 for 1920x1080).
    """
    if scale != 1:
        return np.repeat(np.repeat(frame_pixels(i), scale, axis=0), scale, axis=1)
    h, w = HEIGHT + 2 * OVERSCAN, WIDTH + 2 * OVERSCAN
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy -= OVERSCAN
    xx -= OVERSCAN
    t = np.clip(yy / HEIGHT, 0, 1)[..., None]
    sky, ground = np.array([0.25, 0.35, 0.6]), np.array([0.09, 0.07, 0.05])
    rgb = (sky * (1 - t) + ground * t).astype(np.float32)
    rgb *= 1 + 0.03 * np.sin(xx / 23.0)[..., None]  # texture, so frames are not flat
    x0, y0, x1, y1 = crate_box(i)
    crate = (xx >= x0) & (xx < x1) & (yy >= y0) & (yy < y1)
    plank = 0.8 + 0.2 * (np.floor((yy - y0) / 22) % 2)
    rgb[crate] = np.array([0.32, 0.17, 0.06], np.float32) * plank[crate][:, None]
    cx, cy = ball_centre(i)
    r2 = (xx - cx) ** 2 + (yy - cy) ** 2
    ball = r2 < 38**2
    shade = np.clip(1.2 - np.sqrt(r2) / 45.0, 0.2, 1.0)
    rgb[ball] = np.array([0.9, 0.05, 0.03], np.float32) * shade[ball][:, None]
    return rgb


def write_shot(out: Path, count: int = COUNT, scale: int = 1) -> str:
    """Write the plate; `count` frames from 1001, `scale` times the example's size."""
    out.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        path = out / f"sh010_plate.{FIRST + i:04d}.exr"
        spec = oiio.ImageSpec((WIDTH + 2 * OVERSCAN) * scale, (HEIGHT + 2 * OVERSCAN) * scale, 3, oiio.HALF)
        spec.x = spec.y = -OVERSCAN * scale
        spec.full_x = spec.full_y = 0
        spec.full_width, spec.full_height = WIDTH * scale, HEIGHT * scale
        spec.attribute("compression", "zip")
        spec.attribute("oiio:ColorSpace", "ACEScg")
        image = oiio.ImageOutput.create(str(path))
        if image is None or not image.open(str(path), spec) or not image.write_image(frame_pixels(i, scale)):
            raise SystemExit(f"cannot write {path}: {oiio.geterror()}")
        image.close()
    return str(out / "sh010_plate.####.exr")


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "shot"
    print(write_shot(target))
