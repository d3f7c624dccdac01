"""Host coordinates and frames <-> plate pixels and frames, with the exactness coords.py claims.

Random samples are seeded (reproducible); each table row is a case someone got wrong once.
"""

from __future__ import annotations

import math
import random
import struct

import pytest

from rotobridge.coords import BlenderClip, NukeSpace, nuke_proxy_scale
from rotobridge.errors import PromptError

SIZES = [(2048, 858), (1920, 1080), (4096, 1716)]
PROXIES = [(1.0, 1.0), (0.5, 0.5), (0.25, 0.25)]
SAMPLES = 2000


def f32(value: float) -> float:
    """The value as Blender stores it (a 32-bit float)."""
    return float(struct.unpack("f", struct.pack("f", value))[0])


def on_grid(rng: random.Random, limit: int) -> float:
    """A value in [0, limit] with at most 32 fractional bits (what a click or drag produces)."""
    bits = rng.randint(0, 32)
    return rng.randint(0, limit << bits) / (1 << bits)


NUKE = [
    # (width, height, Nuke x, y) -> plate x, y
    (1920, 1080, (0.0, 0.0), (0.0, 1080.0)),  # Nuke's origin is the plate's bottom-left corner
    (1920, 1080, (1920.0, 1080.0), (1920.0, 0.0)),  # far corner: allowed, on the edge
    (2048, 858, (412.5, 637.5), (412.5, 220.5)),
    (4096, 1716, (0.5, 1715.5), (0.5, 0.5)),  # centre of the top-left pixel
]


@pytest.mark.parametrize(("width", "height", "nuke", "plate"), NUKE)
def test_nuke_positions(width: int, height: int, nuke: tuple[float, float], plate: tuple[float, float]) -> None:
    space = NukeSpace(width, height)
    assert space.to_plate(*nuke) == plate
    assert space.from_plate(*plate) == nuke


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("proxy", PROXIES)
def test_nuke_round_trips_are_exact_for_click_values(size: tuple[int, int], proxy: tuple[float, float]) -> None:
    rng = random.Random(f"{size}{proxy}")
    space = NukeSpace(*size, proxy=proxy, bbox=(0.0, 0.0, size[0] * proxy[0], size[1] * proxy[1]))
    plain = NukeSpace(*size)
    for _ in range(SAMPLES):
        x, y = on_grid(rng, size[0]), on_grid(rng, size[1])
        assert space.from_plate(*space.to_plate(x, y)) == (x, y)
        assert space.to_plate(*space.from_plate(x, y)) == (x, y)
        assert space.to_plate(x, y) == plain.to_plate(x, y)  # knob values are full size in proxy mode


def test_why_not_every_double_can_round_trip() -> None:
    # There are more doubles near 0 than near 1080, so y -> 1080 - y cannot be one-to-one.
    assert 1080 - (1080 - 0.1) != 0.1


@pytest.mark.parametrize("size", SIZES)
def test_nuke_other_doubles_settle_after_one_trip(size: tuple[int, int]) -> None:
    rng = random.Random(str(size))
    space = NukeSpace(*size)
    for _ in range(SAMPLES):
        y = rng.uniform(0, size[1])
        once = space.from_plate(*space.to_plate(1.0, y))[1]
        assert abs(once - y) <= math.ulp(size[1]) / 2
        assert space.from_plate(*space.to_plate(1.0, once))[1] == once


OVERSCAN = (-64.0, -64.0, 2112.0, 922.0)  # 64 px beyond each edge of 2048x858
OUTSIDE = [
    # (Nuke x, y, proxy scale, bbox as node.bbox() reports it, words)
    (-100.0, 10.0, 1.0, OVERSCAN, "Nuke position (-100, 10) is outside the 2048x858 image"),
    (10.0, 858.25, 1.0, None, "(10, 858.25) is outside the 2048x858"),
    (2100.0, 10.0, 1.0, OVERSCAN, "(2100, 10) is in the overscan, outside the 2048x858 image"),
    (-20.0, -20.0, 1.0, OVERSCAN, "in the overscan"),
    (3000.0, 10.0, 1.0, OVERSCAN, "(3000, 10) is outside"),  # beyond the bbox too
    (2100.0, 10.0, 0.5, tuple(v * 0.5 for v in OVERSCAN), "(2100, 10) is in the overscan"),
    (2100.0, 10.0, 0.25, tuple(v * 0.25 for v in OVERSCAN), "(2100, 10) is in the overscan"),
    (2200.0, 10.0, 0.5, tuple(v * 0.5 for v in OVERSCAN), "(2200, 10) is outside"),
]


@pytest.mark.parametrize(("x", "y", "scale", "bbox", "words"), OUTSIDE)
def test_nuke_points_must_be_inside_the_format(
    x: float, y: float, scale: float, bbox: tuple[float, float, float, float] | None, words: str
) -> None:
    space = NukeSpace(2048, 858, proxy=(scale, scale), bbox=bbox)
    with pytest.raises(PromptError) as info:
        space.to_plate(x, y)
    assert words in str(info.value) and "inside the format (display window)" in str(info.value)


@pytest.mark.parametrize("size", SIZES)
def test_nuke_boxes(size: tuple[int, int]) -> None:
    width, height = size
    space = NukeSpace(width, height)
    nuke_box = (10.0, 20.0, 300.5, 400.25)  # x, y (bottom-left), r, t (top-right)
    plate = space.box_to_plate(*nuke_box)
    assert plate == (10.0, height - 400.25, 300.5, height - 20.0)  # left, top, right, bottom
    assert space.box_from_plate(plate) == nuke_box
    with pytest.raises(PromptError, match="outside"):
        space.box_to_plate(10.0, 20.0, width + 1.0, 400.0)


PROXY_SETTINGS = [
    ("scale", 0.5, (2048, 858), (1024, 429), (0.5, 0.5)),
    ("scale", 0.25, (1920, 1080), (640, 360), (0.25, 0.25)),  # proxy_format ignored with "scale"
    ("format", 1.0, (2048, 1556), (1024, 778), (0.5, 0.5)),
    ("format", 1.0, (4096, 1716), (1024, 858), (0.25, 0.5)),  # axes scale on their own
]


@pytest.mark.parametrize(("kind", "scale", "full", "proxy_format", "expected"), PROXY_SETTINGS)
def test_nuke_proxy_scale(
    kind: str, scale: float, full: tuple[int, int], proxy_format: tuple[int, int], expected: tuple[float, float]
) -> None:
    assert nuke_proxy_scale(kind, scale, full, proxy_format) == expected


@pytest.mark.parametrize("size", [*SIZES, (8192, 8192), (858, 2048)])
def test_blender_round_trips_are_exact_for_stored_floats(size: tuple[int, int]) -> None:
    rng = random.Random(str(size))
    clip = BlenderClip(*size)
    samples = [(0.0, 0.0), (1.0, 1.0), (0.5, 2.0**-17)] + [
        (f32(rng.random()), f32(rng.uniform(2.0**-17, 1.0))) for _ in range(SAMPLES)
    ]
    for u, v in samples:
        assert clip.from_plate(*clip.to_plate(u, v)) == (u, v)


BLENDER = [
    # (width, height, clip u, v) -> plate x, y
    (1920, 1080, (0.0, 0.0), (0.0, 1080.0)),  # bottom-left
    (1920, 1080, (1.0, 1.0), (1920.0, 0.0)),
    (2048, 858, (0.25, 0.75), (512.0, 214.5)),
]


@pytest.mark.parametrize(("width", "height", "clip", "plate"), BLENDER)
def test_blender_positions(width: int, height: int, clip: tuple[float, float], plate: tuple[float, float]) -> None:
    space = BlenderClip(width, height)
    assert space.to_plate(*clip) == plate
    assert space.from_plate(*plate) == clip


@pytest.mark.parametrize(("u", "v"), [(-0.01, 0.5), (0.5, 1.001), (1.5, 0.5)])
def test_blender_points_must_be_inside_the_clip(u: float, v: float) -> None:
    with pytest.raises(PromptError, match=rf"clip position \({u:g}, {v:g}\) is outside the 1920x1080 image"):
        BlenderClip(1920, 1080).to_plate(u, v)


BLENDER_PIXELS = [
    # (width, height, clip pixel x, y: origin bottom-left) -> plate x, y
    (1920, 1080, (0.0, 0.0), (0.0, 1080.0)),
    (1920, 1080, (1920.0, 1080.0), (1920.0, 0.0)),  # far corner: allowed, on the edge
    (2048, 858, (412.5, 637.75), (412.5, 220.25)),
]


@pytest.mark.parametrize(("width", "height", "pixel", "plate"), BLENDER_PIXELS)
def test_blender_clip_pixels(width: int, height: int, pixel: tuple[float, float], plate: tuple[float, float]) -> None:
    assert BlenderClip(width, height).pixel_to_plate(*pixel) == plate


@pytest.mark.parametrize("size", [*SIZES, (8192, 8192), (858, 2048), (97, 41)])
def test_blender_clip_pixels_are_exact_for_stored_floats(size: tuple[int, int]) -> None:
    """What the click tool hands over (32-bit floats) reaches the plate and comes back bit for bit."""
    width, height = size
    rng = random.Random(f"pixels{size}")
    clip = BlenderClip(*size)
    samples = [(0.0, 0.0), (float(width), float(height)), (0.5, 2.0**-16)] + [
        (f32(rng.uniform(0, width)), f32(rng.uniform(2.0**-16, height))) for _ in range(SAMPLES)
    ]
    for x, y in samples:
        px, py = clip.pixel_to_plate(x, y)
        assert px == x and height - py == y
        assert clip.plate_to_pixel(px, py) == (x, y)  # where the overlay draws the click


def test_why_clip_pixels_do_not_go_through_normalised_positions() -> None:
    # A click at x = 7.75 on a 1920-wide clip, divided by the width and multiplied back:
    assert 7.75 / 1920 * 1920 != 7.75
    assert BlenderClip(1920, 1080).pixel_to_plate(7.75, 0.0)[0] == 7.75


@pytest.mark.parametrize(("x", "y"), [(-0.5, 10.0), (10.0, 1080.25), (1921.0, 10.0)])
def test_blender_clip_pixels_must_be_inside_the_clip(x: float, y: float) -> None:
    with pytest.raises(PromptError, match=rf"clip pixel \({x:g}, {y:g}\) is outside the 1920x1080 image"):
        BlenderClip(1920, 1080).pixel_to_plate(x, y)


FRAMES = [
    # (frame_start, frame_offset, first_frame, scene frame) -> plate frame
    (1, 0, 1001, 1, 1001),  # clip.frame_start defaults to 1: scene 1 shows sh010.1001
    (1, 0, 1001, 48, 1048),
    (1001, 0, 1001, 1001, 1001),  # scene and plate numbered alike
    (1001, 0, 1, 1001, 1),  # a movie: its first frame is plate frame 1
    (1, 10, 1001, 1, 1011),  # frame_offset skips the first ten files
    (100, -5, 1001, 100, 996),
]


@pytest.mark.parametrize(("start", "offset", "first", "scene", "plate"), FRAMES)
def test_blender_frames(start: int, offset: int, first: int, scene: int, plate: int) -> None:
    clip = BlenderClip(1920, 1080, frame_start=start, frame_offset=offset, first_frame=first)
    assert clip.plate_frame(scene) == plate
    assert clip.scene_frame(plate) == scene
    assert all(clip.scene_frame(clip.plate_frame(f)) == f for f in range(-50, 3000, 7))
