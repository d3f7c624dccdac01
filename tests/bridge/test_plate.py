"""Plates in: sequence patterns, frame ranges, windows, formats, layers, parts and movies."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from rotobridge.bridge.plate import PlateInfo, Window, crop_to_display, open_plate
from rotobridge.errors import MissingFrameError, PlateError

from .plates import (
    ALPHA,
    channel_value,
    expected_pixels,
    movie_frame,
    picture,
    write_exr_channels,
    write_movie,
    write_sequence,
)

W, H = 64, 48
FULL = (0, 0, W, H)


# -- patterns and frame ranges ------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "frames"),
    [
        # four digits: 0998 … 1002 all match
        ("####", (998, 999, 1000, 1001, 1002)),
        ("%04d", (998, 999, 1000, 1001, 1002)),
        ("@@@@", (998, 999, 1000, 1001, 1002)),
        ("$F4", (998, 999, 1000, 1001, 1002)),
        # one digit each (Nuke's #, Houdini's $F): unpadded, so 0998 and 0999 are not frames
        ("#", (1000, 1001, 1002)),
        ("@", (1000, 1001, 1002)),
        ("$F", (1000, 1001, 1002)),
        ("%d", (1000, 1001, 1002)),
    ],
)
def test_pattern_styles_find_the_same_files(tmp_path: Path, token: str, frames: tuple[int, ...]) -> None:
    write_sequence(tmp_path, "sh010", range(998, 1003), fmt="exr")
    pattern = str(tmp_path / f"sh010.{token}.exr")
    with open_plate(pattern) as plate:
        assert plate.info.path == pattern
        assert plate.info.frames == frames
        for frame in frames:
            assert plate.path(frame) == str(tmp_path / f"sh010.{frame:04d}.exr")
        np.testing.assert_array_equal(plate.read(1001), expected_pixels(1001, FULL, dtype="half"))


def test_unpadded_pattern_reads_unpadded_files(tmp_path: Path) -> None:
    pattern = write_sequence(tmp_path, "sh", [9, 10, 11], padding=1)
    assert pattern == str(tmp_path / "sh.#.exr")
    with open_plate(pattern) as plate:
        assert plate.info.frames == (9, 10, 11)
        assert plate.path(9) == str(tmp_path / "sh.9.exr")
        np.testing.assert_array_equal(plate.read(10), expected_pixels(10, FULL, dtype="half"))


@pytest.mark.parametrize(
    ("frames", "expected"),
    [
        ("1001-1009x2", (1001, 1003, 1005, 1007, 1009)),
        ("1005,1001", (1001, 1005)),
        ("1001-1003,1002", (1001, 1002, 1003)),
        ("1010", (1010,)),
        (None, tuple(range(1001, 1011))),
    ],
)
def test_frame_range(tmp_path: Path, frames: str | None, expected: tuple[int, ...]) -> None:
    pattern = write_sequence(tmp_path, "sh", range(1001, 1011))
    with open_plate(pattern, frames) as plate:
        assert plate.info.frames == expected
        for frame in expected:
            np.testing.assert_array_equal(plate.read(frame), expected_pixels(frame, FULL, dtype="half"))


def test_frame_range_in_the_pattern(tmp_path: Path) -> None:
    write_sequence(tmp_path, "sh", range(1001, 1011))
    with open_plate(str(tmp_path / "sh.1002-1006x2####.exr")) as plate:
        assert plate.info.frames == (1002, 1004, 1006)


def test_reading_a_frame_outside_the_range_fails(tmp_path: Path) -> None:
    pattern = write_sequence(tmp_path, "sh", range(1001, 1006))
    with (
        open_plate(pattern, "1001-1005x2") as plate,
        pytest.raises(PlateError, match=r"frame 1002 is not among the plate's frames 1001-1005x2"),
    ):
        plate.read(1002)


@pytest.mark.parametrize(
    ("on_disk", "frames", "missing"),
    [
        ([1001, 1002, 1004, 1005], "1001-1005", 1003),
        ([1001, 1002, 1004, 1005], "1001-1005x2", 1003),
        ([1001, 1002, 1003], "1000-1003", 1000),
        ([1001, 1002, 1003], "1001-1004", 1004),
        ([1001, 1003], "1003,1002,1001", 1002),
    ],
)
def test_missing_frame_names_the_first_missing_frame(
    tmp_path: Path, on_disk: list[int], frames: str, missing: int
) -> None:
    pattern = write_sequence(tmp_path, "sh010", on_disk)
    with pytest.raises(MissingFrameError) as caught:
        open_plate(pattern, frames)
    path = str(tmp_path / f"sh010.{missing}.exr")
    assert (caught.value.frame, caught.value.path) == (missing, path)
    assert str(caught.value) == f"plate frame {missing} is missing: {path}"


def test_only_requested_frames_must_exist(tmp_path: Path) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001, 1003, 1005])
    with open_plate(pattern, "1001-1005x2") as plate:
        assert plate.info.frames == (1001, 1003, 1005)


def test_missing_frames_are_found_before_any_file_is_read(tmp_path: Path) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001, 1002])
    Path(pattern.replace("####", "1001")).write_bytes(b"not an exr")
    with pytest.raises(MissingFrameError, match=r"plate frame 1003 is missing"):
        open_plate(pattern, "1001-1003")


def test_gaps_on_disk_are_left_out_when_no_range_is_given(tmp_path: Path) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001, 1002, 1005])
    assert open_plate(pattern).info.frames == (1001, 1002, 1005)


@pytest.mark.parametrize(
    ("name", "frames", "message"),
    [
        ("nothing.####.exr", None, r"no frames on disk match .*nothing\.####\.exr"),
        ("sh.1001.exr", None, r"sh\.1001\.exr is not a frame-sequence pattern"),
        ("still.exr", None, r"still\.exr is not a frame-sequence pattern"),
        ("sh.####.exr", "1001-abc", r"cannot parse frame range '1001-abc'"),
        ("sh.####.exr", "1001.5", r"has subframes"),
    ],
)
def test_bad_pattern_or_range(tmp_path: Path, name: str, frames: str | None, message: str) -> None:
    write_sequence(tmp_path, "sh", [1001])
    with pytest.raises(PlateError, match=message):
        open_plate(str(tmp_path / name), frames)


# -- windows ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["half", "float"])
@pytest.mark.parametrize(
    "data",
    [
        FULL,
        (-6, -6, W + 12, H + 12),  # overscan all round
        (4, 3, W - 8, H - 6),  # data window inside the display window
        (10, -5, 80, 20),  # sticks out right and top, leaves the bottom uncovered
        (-20, 30, 30, 40),  # sticks out left and bottom
        (W + 5, 0, 10, 10),  # entirely outside: black frame
    ],
)
def test_read_returns_the_display_window(tmp_path: Path, dtype: str, data: tuple[int, int, int, int]) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001, 1002], W, H, dtype=dtype, overscan=data)
    with open_plate(pattern) as plate:
        assert plate.info.display == Window(*FULL)
        assert plate.info.data == Window(*data)
        pixels = plate.read(1002)
    x, y, w, h = data
    covered = np.zeros((H, W), bool)
    covered[max(y, 0) : max(y + h, 0), max(x, 0) : max(x + w, 0)] = True
    expected = expected_pixels(1002, FULL, dtype=dtype)
    assert pixels.shape == (H, W, 3) and pixels.dtype == np.float32
    np.testing.assert_array_equal(pixels[covered], expected[covered])
    assert not pixels[~covered].any()
    if dtype in ("half", "float") and covered.all():
        assert pixels.max() == 4.0  # scene-linear values above 1 are kept


def test_display_window_offset(tmp_path: Path) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001], W, H, overscan=(10, 20, W, H))
    # display (0, 0, W, H) vs data (10, 20, W, H): the picture is shifted by the data origin
    with open_plate(pattern) as plate:
        pixels = plate.read(1001)
    np.testing.assert_array_equal(pixels[20:, 10:], expected_pixels(1001, (10, 20, W - 10, H - 20), dtype="half"))
    assert not pixels[:20].any() and not pixels[:, :10].any()


def _crop_by_numpy(pixels: np.ndarray, data: Window, display: Window, dtype: type[np.generic]) -> np.ndarray:
    out = np.zeros((display.height, display.width, pixels.shape[2]), dtype)
    for y in range(data.height):
        for x in range(data.width):
            if 0 <= data.y + y - display.y < display.height and 0 <= data.x + x - display.x < display.width:
                out[data.y + y - display.y, data.x + x - display.x] = pixels[y, x]
    return out


@pytest.mark.parametrize(
    "data",
    [
        Window(-3, -2, 15, 12),  # overscan all round: every display pixel written, none zeroed first
        Window(2, 1, 5, 4),  # inside: the rest is 0
        Window(-4, 3, 6, 9),  # across one corner
        Window(20, 20, 4, 4),  # outside: all 0
        Window(0, 0, 9, 8),  # the display window itself
    ],
)
@pytest.mark.parametrize("layout", ["contiguous", "read-only", "reversed", "channel subset"])
@pytest.mark.parametrize(("source", "target"), [(np.float16, np.float32), (np.float32, np.float32), (np.uint8, None)])
def test_crop_to_display_places_and_converts_exactly(
    data: Window, layout: str, source: type[np.generic], target: type[np.generic] | None
) -> None:
    """Torch converts half to float32 in the crop where it can, numpy elsewhere: the same values."""
    display = Window(0, 0, 9, 8)
    rng = np.random.default_rng(3)
    values = rng.normal(0.0, 8.0, (data.height, data.width, 4))
    values[0, 0, :3] = [np.nan, np.inf, -np.inf]
    pixels = values.astype(source) if source != np.uint8 else rng.integers(0, 256, values.shape, np.uint8)
    if layout == "read-only":
        pixels.flags.writeable = False
    elif layout == "reversed":
        pixels = pixels[::-1, ::-1]
    elif layout == "channel subset":
        pixels = pixels[..., 1:]  # strided, as a layer's channels can be
    pixels = pixels[..., :3]
    got = crop_to_display(pixels, data, display, target)
    want = _crop_by_numpy(pixels, data, display, target or source)
    assert got.dtype == want.dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)


def test_a_later_frame_with_another_display_window_fails_naming_it(tmp_path: Path) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001, 1002], W, H)
    write_sequence(tmp_path, "sh", [1003], 32, 24)
    with open_plate(pattern) as plate:
        plate.read(1002)
        with pytest.raises(
            PlateError, match=r"plate frame 1003 has display window 32x24 at \(0, 0\), frame 1001 has 64x48"
        ):
            plate.read(1003)


def test_a_later_frame_stored_with_another_depth_fails_naming_it(tmp_path: Path) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001], fmt="png", dtype="uint8")
    write_sequence(tmp_path, "sh", [1002], fmt="png", dtype="uint16")
    with (
        open_plate(pattern) as plate,
        pytest.raises(PlateError, match=r"plate frame 1002 is stored as uint16, unlike frame 1001 \(uint8\)"),
    ):
        plate.read(1002)


def test_data_window_may_change_from_frame_to_frame(tmp_path: Path) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001], W, H, overscan=4)
    write_sequence(tmp_path, "sh", [1002], W, H, overscan=-4)
    with open_plate(pattern) as plate:
        assert plate.info.data == Window(-4, -4, W + 8, H + 8)
        inner = plate.read(1002)
    np.testing.assert_array_equal(inner[4:-4, 4:-4], expected_pixels(1002, (4, 4, W - 8, H - 8), dtype="half"))
    assert not inner[:4].any()


# -- formats ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "dtype", "out_dtype", "bits", "is_float", "colourspace"),
    [
        ("exr", "half", np.float32, 16, True, None),
        ("exr", "float", np.float32, 32, True, None),
        ("tif", "uint8", np.uint8, 8, False, None),
        ("tif", "uint16", np.float32, 16, False, None),
        ("tif", "float", np.float32, 32, True, None),
        ("png", "uint8", np.uint8, 8, False, "srgb_rec709_scene"),
        ("png", "uint16", np.float32, 16, False, "srgb_rec709_scene"),
        ("dpx", "uint10", np.float32, 10, False, None),
        ("dpx", "uint16", np.float32, 16, False, None),
    ],
)
def test_formats(
    tmp_path: Path, fmt: str, dtype: str, out_dtype: type, bits: int, is_float: bool, colourspace: str | None
) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001, 1002], fmt=fmt, dtype=dtype)
    with open_plate(pattern) as plate:
        info = plate.info
        pixels = plate.read(1002)
    assert info == PlateInfo(
        pattern, (1001, 1002), Window(*FULL), Window(*FULL), ("R", "G", "B"), is_float, bits, colourspace
    )
    assert pixels.dtype == out_dtype and pixels.shape == (H, W, 3)
    np.testing.assert_array_equal(pixels, expected_pixels(1002, FULL, dtype=dtype))


@pytest.mark.parametrize(
    ("fmt", "dtype", "scale"), [("png", "uint16", 65535), ("tif", "uint16", 65535), ("dpx", "uint10", 1023)]
)
def test_integer_formats_are_normalised_to_one(tmp_path: Path, fmt: str, dtype: str, scale: int) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001], fmt=fmt, dtype=dtype)
    pixels = open_plate(pattern).read(1001)
    codes = np.round(picture(1001, FULL) * scale)
    np.testing.assert_allclose(pixels, codes / scale, rtol=0, atol=2e-5)


def test_file_colourspace_comes_from_the_file(tmp_path: Path) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001], colourspace="lin_ap1_scene")
    assert open_plate(pattern).info.file_colourspace == "lin_ap1_scene"


def test_jpeg_is_bit_identical_to_pil(tmp_path: Path) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001, 1002], fmt="jpg", dtype="uint8")
    with open_plate(pattern) as plate:
        assert (plate.info.bits, plate.info.is_float) == (8, False)
        for frame in (1001, 1002):
            pixels = plate.read(frame)
            reference = np.array(Image.open(plate.path(frame)).convert("RGB"))
            assert pixels.dtype == np.uint8
            np.testing.assert_array_equal(pixels, reference)
            _assert_rgb_close(pixels, expected_pixels(frame, FULL, dtype="uint8"), 8)


def _assert_rgb_close(pixels: np.ndarray, written: np.ndarray, mean_error: float) -> None:
    """A lossy decode is the picture written, in RGB (not BGR) order."""
    error = np.abs(pixels.astype(int) - written).mean()
    swapped = np.abs(pixels[..., ::-1].astype(int) - written).mean()
    assert error < mean_error < swapped


@pytest.mark.parametrize(("fmt", "dtype"), [("png", "uint8"), ("jpg", "uint8"), ("exr", "half")])
def test_grey_is_expanded_to_three_channels(tmp_path: Path, fmt: str, dtype: str) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001], fmt=fmt, dtype=dtype, channels=1)
    with open_plate(pattern) as plate:
        assert plate.info.channels == ("Y", "Y", "Y")
        pixels = plate.read(1001)
    assert pixels.shape == (H, W, 3)
    np.testing.assert_array_equal(pixels[..., 1], pixels[..., 0])
    np.testing.assert_array_equal(pixels[..., 2], pixels[..., 0])
    if fmt != "jpg":
        np.testing.assert_array_equal(pixels[..., 0], expected_pixels(1001, FULL, dtype=dtype)[..., 0])


@pytest.mark.parametrize(("fmt", "dtype"), [("png", "uint8"), ("tif", "uint16"), ("exr", "half")])
def test_alpha_is_dropped(tmp_path: Path, fmt: str, dtype: str) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001], fmt=fmt, dtype=dtype, channels=4)
    with open_plate(pattern) as plate:
        assert plate.info.channels == ("R", "G", "B")
        pixels = plate.read(1001)
    np.testing.assert_array_equal(pixels, expected_pixels(1001, FULL, dtype=dtype))
    assert ALPHA not in pixels[0, 0]
    if fmt == "png":  # as sam2's loader sees it: alpha dropped, colour not multiplied by it
        np.testing.assert_array_equal(pixels, np.array(Image.open(tmp_path / "sh.1001.png").convert("RGB")))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"cannot read .*sh\.1002\.exr: "),
        (b"garbage" * 100, r"cannot read .*sh\.1002\.exr: .*not an OpenEXR file"),
        (None, r"cannot read .*sh\.1002\.exr: .*missing or corrupted"),  # truncated pixels
    ],
)
def test_corrupt_file_fails_when_read(tmp_path: Path, content: bytes | None, message: str) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001, 1002, 1003], 256, 256, dtype="float")
    broken = tmp_path / "sh.1002.exr"
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) * 2 // 3] if content is None else content)
    with open_plate(pattern) as plate:
        plate.read(1001)
        with pytest.raises(PlateError, match=message):
            plate.read(1002)
    if content is not None:  # opening reads the first frame's header, not its pixels
        with pytest.raises(PlateError, match=message):
            open_plate(pattern, "1002-1003")


# -- layers and parts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "variant", "channels"),
    [
        (None, 0, ("R", "G", "B")),
        ("rgba", 0, ("R", "G", "B")),
        ("diffuse", 1, ("diffuse.R", "diffuse.G", "diffuse.B")),
        ("specular", 2, ("specular.R", "specular.G", "specular.B")),
    ],
)
def test_layer(tmp_path: Path, layer: str | None, variant: int, channels: tuple[str, ...]) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001], channels=4, layers=["diffuse", "specular"])
    with open_plate(pattern, layer=layer) as plate:
        assert plate.info.channels == channels
        pixels = plate.read(1001)
    np.testing.assert_array_equal(pixels, expected_pixels(1001, FULL, dtype="half", variant=variant))


def test_missing_layer_lists_the_layers(tmp_path: Path) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001], layers=["diffuse", "specular"])
    path = tmp_path / "sh.1001.exr"
    with pytest.raises(PlateError) as caught:
        open_plate(pattern, layer="beauty")
    assert str(caught.value) == f"layer 'beauty' not in {path} (layers: diffuse, rgba, specular)"


@pytest.mark.parametrize(
    ("part", "variant", "channels"),
    [
        (None, 0, ("R", "G", "B")),
        (0, 0, ("R", "G", "B")),
        ("beauty", 0, ("R", "G", "B")),
        (1, 10, ("R", "G", "B")),
        ("bg", 10, ("R", "G", "B")),
    ],
)
def test_part(tmp_path: Path, part: str | int | None, variant: int, channels: tuple[str, ...]) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001, 1002], parts=["beauty", "bg"])
    with open_plate(pattern, part=part) as plate:
        assert plate.info.channels == channels
        pixels = plate.read(1002)
    np.testing.assert_array_equal(pixels, expected_pixels(1002, FULL, dtype="half", variant=variant))


def test_part_and_layer_together(tmp_path: Path) -> None:
    pattern = write_sequence(tmp_path, "sh", [1001], parts=["beauty", "bg"], layers=["diffuse"])
    pixels = open_plate(pattern, part="bg", layer="diffuse").read(1001)
    np.testing.assert_array_equal(pixels, expected_pixels(1001, FULL, dtype="half", variant=11))


@pytest.mark.parametrize(
    ("parts", "layer", "channels", "source"),
    [
        # the first part that has the channels wins
        ([("depth", ["Z"]), ("beauty", ["R", "G", "B", "A"])], None, ("R", "G", "B"), (1, [0, 1, 2])),
        (
            [("a", ["R", "G", "B"]), ("b", ["spec.R", "spec.G", "spec.B"])],
            "spec",
            ("spec.R", "spec.G", "spec.B"),
            (1, [0, 1, 2]),
        ),
        # written B, G, R: read back as R, G, B whatever the file order
        ([("", ["B", "G", "R"])], None, ("R", "G", "B"), (0, [2, 1, 0])),
        ([("", ["Z", "R", "A", "G", "B"])], None, ("R", "G", "B"), (0, [1, 3, 4])),
        # a layer's Y is a grey layer
        ([("", ["R", "G", "B", "mask.Y"])], "mask", ("mask.Y",) * 3, (0, [3, 3, 3])),
    ],
)
def test_channels_are_found_by_name(
    tmp_path: Path,
    parts: list[tuple[str, list[str]]],
    layer: str | None,
    channels: tuple[str, ...],
    source: tuple[int, list[int]],
) -> None:
    """`source`: the part and the written channel numbers the three output channels hold."""
    write_exr_channels(tmp_path / "sh.1001.exr", parts)
    with open_plate(str(tmp_path / "sh.####.exr"), layer=layer) as plate:
        assert plate.info.channels == channels
        pixels = plate.read(1001)
    part, numbers = source
    values = np.array([channel_value(part, number) for number in numbers], np.float32)
    np.testing.assert_array_equal(pixels, np.broadcast_to(values, pixels.shape))


@pytest.mark.parametrize(
    ("parts", "layer", "part", "message"),
    [
        ([("", ["Z"])], None, None, "channels R, G, B not in {path} (channels: Z)"),
        (
            [("", ["diffuse.R", "diffuse.G"])],
            "diffuse",
            None,
            "channels diffuse.R, diffuse.G, diffuse.B not in {path} (channels: diffuse.R, diffuse.G)",
        ),
        (
            [("depth", ["Z"]), ("matte", ["A"])],
            None,
            None,
            "channels R, G, B not in {path} (channels: 0 'depth': Z; 1 'matte': A)",
        ),
        (
            [("beauty", ["R", "G", "B"]), ("depth", ["Z"])],
            None,
            "depth",
            "channels R, G, B not in {path} (channels: 1 'depth': Z)",
        ),
        (
            [("beauty", ["R", "G", "B"]), ("depth", ["Z"])],
            None,
            "bg",
            "part 'bg' not in {path} (parts: 0 'beauty': R, G, B; 1 'depth': Z)",
        ),
        (
            [("beauty", ["R", "G", "B"]), ("depth", ["Z"])],
            None,
            2,
            "part 2 not in {path} (parts: 0 'beauty': R, G, B; 1 'depth': Z)",
        ),
        (
            [("beauty", ["R", "G", "B"]), ("bg", ["spec.R", "spec.G", "spec.B"])],
            "diffuse",
            None,
            "layer 'diffuse' not in {path} (layers: rgba, spec)",
        ),
    ],
)
def test_missing_channels_layer_or_part_says_what_the_file_has(
    tmp_path: Path, parts: list[tuple[str, list[str]]], layer: str | None, part: str | int | None, message: str
) -> None:
    path = write_exr_channels(tmp_path / "sh.1001.exr", parts)
    with pytest.raises(PlateError) as caught:
        open_plate(str(tmp_path / "sh.####.exr"), layer=layer, part=part)
    assert str(caught.value) == message.format(path=path)


# -- movies -------------------------------------------------------------------------------

N_MOVIE = 30  # several GOPs of OpenCV's mp4v writer, so seeks cross keyframes


@pytest.fixture(scope="module")
def movie(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_movie(tmp_path_factory.mktemp("movie") / "plate.mp4", N_MOVIE, W, H)


def _decoded(path: str) -> list[np.ndarray]:
    """Every frame, decoded in order with plain OpenCV, as RGB."""
    capture = cv2.VideoCapture(path)
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def test_movie_frames_start_at_first_frame(movie: str) -> None:
    reference = _decoded(movie)
    assert len(reference) == N_MOVIE
    with open_plate(movie, first_frame=1001) as plate:
        assert plate.info == PlateInfo(
            movie, tuple(range(1001, 1001 + N_MOVIE)), Window(*FULL), Window(*FULL), ("R", "G", "B"), False, 8, None
        )
        assert plate.path(1005) == movie
        for index, frame in enumerate(plate.info.frames):
            pixels = plate.read(frame)
            assert pixels.dtype == np.uint8 and pixels.shape == (H, W, 3)
            np.testing.assert_array_equal(pixels, reference[index])
            # the picture written as movie frame `index`, not one of its neighbours
            errors = [np.abs(pixels.astype(int) - movie_frame(i, W, H)).mean() for i in range(N_MOVIE)]
            assert int(np.argmin(errors)) == index
            _assert_rgb_close(pixels, movie_frame(index, W, H), 10)


def test_movie_out_of_order_reads_match_in_order_reads(movie: str) -> None:
    reference = _decoded(movie)
    order = [1027, 1003, 1004, 1030, 1001, 1001, 1002, 1018, 1005, 1013, 1012, 1029, 1030]
    with open_plate(movie, first_frame=1001) as plate:
        for frame in order:
            np.testing.assert_array_equal(plate.read(frame), reference[frame - 1001])


@pytest.mark.parametrize("ext", ["mkv", "avi"])
def test_lossless_movie_frames_are_exactly_the_frames_written(tmp_path: Path, ext: str) -> None:
    path = write_movie(tmp_path / f"plate.{ext}", N_MOVIE, W, H, codec="FFV1")
    order = [1001, 1002, 1020, 1003, 1030, 1029, 1010, 1011, 1001]
    with open_plate(path, "1001-1030", first_frame=1001) as plate:
        for frame in order:
            np.testing.assert_array_equal(plate.read(frame), movie_frame(frame - 1001, W, H))


@pytest.mark.parametrize(
    ("frames", "first_frame", "expected", "outside"),
    [
        ("1003-1011x4", 1001, (1003, 1007, 1011), 1004),
        ("1-30", 1, tuple(range(1, 31)), 31),
        ("12,2", 1, (2, 12), 1),
    ],
)
def test_movie_frame_range(movie: str, frames: str, first_frame: int, expected: tuple[int, ...], outside: int) -> None:
    with open_plate(movie, frames, first_frame=first_frame) as plate:
        assert plate.info.frames == expected
        np.testing.assert_array_equal(plate.read(expected[-1]), _decoded(movie)[expected[-1] - first_frame])
        with pytest.raises(PlateError, match="is not among the plate's frames"):
            plate.read(outside)


@pytest.mark.parametrize(
    ("frames", "first_frame", "missing"),
    [("1001-1031", 1001, 1031), ("1000-1005", 1001, 1000), ("31", 1, 31), ("0-3", 1, 0)],
)
def test_movie_frame_beyond_its_length_is_missing(movie: str, frames: str, first_frame: int, missing: int) -> None:
    with pytest.raises(MissingFrameError) as caught:
        open_plate(movie, frames, first_frame=first_frame)
    assert (caught.value.frame, caught.value.path) == (missing, movie)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, r"movie not found: .*plate\.mov"), (b"\0" * 1000, r"cannot read .*plate\.mov: OpenCV")],
)
def test_unreadable_movie(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "plate.mov"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(PlateError, match=message):
        open_plate(str(path))


@pytest.mark.parametrize(("layer", "part"), [("diffuse", None), (None, 0)])
def test_movie_has_no_layers_or_parts(movie: str, layer: str | None, part: int | None) -> None:
    with pytest.raises(PlateError, match="a movie has no layers or parts"):
        open_plate(movie, layer=layer, part=part)


def test_closed_movie_cannot_be_read(movie: str) -> None:
    with open_plate(movie) as plate:
        plate.read(1)
    with pytest.raises(PlateError, match="plate is closed"):
        plate.read(2)


# -- threads ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["exr", "jpg", "movie"])
def test_concurrent_reads_equal_serial_reads(tmp_path: Path, movie: str, kind: str) -> None:
    if kind == "movie":
        path = movie
    else:
        path = write_sequence(
            tmp_path, "sh", range(1, 25), fmt=kind, dtype="half" if kind == "exr" else "uint8", overscan=3
        )
    with open_plate(path) as plate:
        serial = {frame: plate.read(frame) for frame in plate.info.frames}
    order = list(serial) * 3
    random.Random(7).shuffle(order)
    with open_plate(path) as plate, ThreadPoolExecutor(3) as pool:
        concurrent = list(pool.map(plate.read, order))
    assert len(concurrent) == len(order) == 3 * len(serial)
    for frame, pixels in zip(order, concurrent, strict=True):
        np.testing.assert_array_equal(pixels, serial[frame])
