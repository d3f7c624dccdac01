"""Small synthetic plates written at test time: no binary test data in the repository.

The picture is a function of absolute pixel coordinates (a gradient with a bright disc that
moves with the frame number), so frames differ, overscan pixels continue the picture, and
`expected_pixels` can say exactly what a reader must return for any window of a frame.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import cv2
import numpy as np
import OpenImageIO as oiio

#: file formats and the sample types each can store here
FORMAT_DTYPES: dict[str, tuple[str, ...]] = {
    "exr": ("half", "float"),
    "tif": ("uint8", "uint16", "float"),
    "png": ("uint8", "uint16"),
    "jpg": ("uint8",),
    "dpx": ("uint10", "uint16"),
}
_OIIO_TYPES = {"half": "half", "float": "float", "uint8": "uint8", "uint16": "uint16", "uint10": "uint16"}
ALPHA = 0.5


def picture(frame: int, window: tuple[int, int, int, int], *, variant: int = 0, hdr: bool = False) -> np.ndarray:
    """The ideal RGB picture (float32, (h, w, 3)) of `frame` over window (x, y, w, h).

    `variant` makes layers and parts tell apart; `hdr` makes the disc brighter than 1, as
    in a scene-linear float plate.
    """
    x, y, w, h = window
    ys, xs = np.mgrid[y : y + h, x : x + w].astype(np.float32)
    rgb = np.empty((h, w, 3), np.float32)
    rgb[..., 0] = 0.1 + 0.6 * ((xs + 3 * variant) % 61) / 61
    rgb[..., 1] = 0.1 + 0.6 * ((ys + 5 * variant) % 43) / 43
    rgb[..., 2] = 0.05 + 0.1 * (variant % 5) + 0.2 * ((xs + ys) % 17) / 17
    cx, cy = 10 + 3 * (frame % 13), 12 + 2 * (frame % 7)
    disc = (xs - cx) ** 2 + (ys - cy) ** 2 <= 49
    rgb[disc] = (4.0, 3.0, 2.0) if hdr else (0.95, 0.9, 0.85)
    return rgb


def _encode(rgb: np.ndarray, dtype: str) -> np.ndarray:
    """The array handed to OpenImageIO so that the file stores exactly `_decode`'s values."""
    if dtype == "half":
        return rgb.astype(np.float16).astype(np.float32)
    if dtype == "float":
        return rgb
    if dtype == "uint8":
        return np.round(rgb * 255).astype(np.uint8)
    if dtype == "uint16":
        return np.round(rgb * 65535).astype(np.uint16)
    if dtype == "uint10":
        # 10-bit codes, bit-replicated to 16 bits: OIIO's DPX writer keeps the top 10 bits.
        code = np.round(rgb * 1023).astype(np.uint16)
        return (code << 6) | (code >> 4)
    raise ValueError(f"unknown dtype {dtype!r}")


def expected_pixels(
    frame: int,
    window: tuple[int, int, int, int],
    *,
    dtype: str,
    variant: int = 0,
) -> np.ndarray:
    """What a reader returns for `window` of a frame written by `write_sequence`.

    uint8 stays uint8; other integer types are normalised to [0, 1] float32 the way
    OpenImageIO's FLOAT conversion does (10-bit DPX: 16-bit bit replication / 65535).
    """
    stored = _encode(picture(frame, window, variant=variant, hdr=dtype in ("half", "float")), dtype)
    if stored.dtype == np.uint8:
        return stored
    if stored.dtype == np.uint16:
        return stored.astype(np.float32) / np.float32(65535)
    return stored.astype(np.float32)


def write_sequence(
    directory: str | os.PathLike[str],
    name: str,
    frames: Iterable[int],
    width: int = 64,
    height: int = 48,
    *,
    fmt: str = "exr",
    dtype: str = "half",
    channels: int = 3,
    layers: Sequence[str] = (),
    overscan: int | tuple[int, int, int, int] = 0,
    parts: Sequence[str] = (),
    colourspace: str | None = None,
    padding: int = 4,
) -> str:
    """Write `<directory>/<name>.<frame, zero-padded to padding digits>.<fmt>` for each frame.

    Returns the Nuke-style pattern (`#` once per digit of padding).

    channels: 1 (grey "Y"), 3 (RGB) or 4 (RGBA, alpha = `ALPHA`). layers (EXR): extra
    `<layer>.R/G/B` channels, layer i drawn with variant i + 1. overscan: pixels the data
    window extends past the display window (0, 0, width, height) on every side (negative:
    the data window is smaller), or an explicit data window (x, y, w, h). parts (EXR): one
    subimage per name, part i drawn with variant 10 * i (its layers add their own variant).
    colourspace: stored as `oiio:ColorSpace`.
    """
    if dtype not in FORMAT_DTYPES[fmt]:
        raise ValueError(f"{fmt} cannot store {dtype}")
    if isinstance(overscan, int):
        data = (-overscan, -overscan, width + 2 * overscan, height + 2 * overscan)
    else:
        data = overscan
    os.makedirs(directory, exist_ok=True)
    for frame in frames:
        path = os.path.join(directory, f"{name}.{frame:0{padding}d}.{fmt}")
        specs, images = [], []
        for part_index, part in enumerate(parts or [""]):
            spec, pixels = _image(frame, data, (width, height), dtype, channels, layers, 10 * part_index)
            if part:
                spec.attribute("name", part)
            if colourspace:
                spec.attribute("oiio:ColorSpace", colourspace)
            specs.append(spec)
            images.append(pixels)
        _write(path, specs, images)
    return os.path.join(str(directory), f"{name}.{'#' * padding}.{fmt}")


def _image(
    frame: int,
    data: tuple[int, int, int, int],
    display_size: tuple[int, int],
    dtype: str,
    channels: int,
    layers: Sequence[str],
    variant: int,
) -> tuple[oiio.ImageSpec, np.ndarray]:
    hdr = dtype in ("half", "float")
    rgb = picture(frame, data, variant=variant, hdr=hdr)
    planes = {1: [rgb[..., :1]], 3: [rgb], 4: [rgb, np.full_like(rgb[..., :1], ALPHA)]}[channels]
    names = {1: ["Y"], 3: ["R", "G", "B"], 4: ["R", "G", "B", "A"]}[channels]
    for index, layer in enumerate(layers):
        planes.append(picture(frame, data, variant=variant + index + 1, hdr=hdr))
        names += [f"{layer}.R", f"{layer}.G", f"{layer}.B"]
    pixels = _encode(np.concatenate(planes, axis=2), dtype)
    spec = oiio.ImageSpec(data[2], data[3], len(names), _OIIO_TYPES[dtype])
    spec.channelnames = tuple(names)
    spec.x, spec.y = data[0], data[1]
    spec.full_x, spec.full_y = 0, 0
    spec.full_width, spec.full_height = display_size
    if dtype == "uint10":
        spec.attribute("oiio:BitsPerSample", 10)
    if channels == 4:  # write RGB as given (OIIO would otherwise divide it by alpha for PNG)
        spec.attribute("oiio:UnassociatedAlpha", 1)
    return spec, pixels


def write_exr_channels(
    path: str | os.PathLike[str], parts: Sequence[tuple[str, Sequence[str]]], width: int = 16, height: int = 12
) -> str:
    """Write one EXR with arbitrary subimages and channel names: [(part name, channels)].

    Channel k (in the order given) of part p holds the constant `channel_value(p, k)`, so a
    test can tell which channels of which part a reader returned (readers may reorder
    channels). An empty part name writes no "name" attribute.
    """
    specs, images = [], []
    for part_index, (part, names) in enumerate(parts):
        spec = oiio.ImageSpec(width, height, len(names), "float")
        spec.channelnames = tuple(names)
        if part:
            spec.attribute("name", part)
        specs.append(spec)
        values = [channel_value(part_index, k) for k in range(len(names))]
        images.append(np.broadcast_to(np.array(values, np.float32), (height, width, len(names))).copy())
    _write(str(path), specs, images)
    return str(path)


def _write(path: str, specs: Sequence[oiio.ImageSpec], images: Sequence[np.ndarray]) -> None:
    """Write one file with a subimage per spec (multi-part EXR when more than one)."""
    out = oiio.ImageOutput.create(path)
    if out is None or not out.open(path, list(specs)):
        raise RuntimeError(f"cannot write {path}: {oiio.geterror()}")
    for index, (spec, pixels) in enumerate(zip(specs, images, strict=True)):
        if not ((index == 0 or out.open(path, spec, "AppendSubimage")) and out.write_image(pixels)):
            raise RuntimeError(f"cannot write {path}: {out.geterror()}")
    out.close()


def channel_value(part: int, channel: int) -> float:
    """The constant `write_exr_channels` stores in channel number `channel` of part `part`."""
    return part + (channel + 1) / 16


def movie_frame(index: int, width: int, height: int) -> np.ndarray:
    """The RGB uint8 picture written as movie frame `index` (before lossy compression)."""
    return _encode(picture(index, (0, 0, width, height)), "uint8")


def write_movie(
    path: str | os.PathLike[str],
    n_frames: int,
    width: int = 64,
    height: int = 48,
    fps: float = 24,
    *,
    codec: str = "mp4v",
) -> str:
    """Write a movie with OpenCV; frame i is `movie_frame(i, ...)`.

    codec: a fourcc this OpenCV can encode: "mp4v" (MPEG-4 Part 2, lossy; .mp4/.mov) or
    "FFV1" (lossless, so frames decode exactly; .mkv). There is no H.264 encoder here.
    """
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"cannot write {path} with {codec}")
    for index in range(n_frames):
        writer.write(cv2.cvtColor(movie_frame(index, width, height), cv2.COLOR_RGB2BGR))
    writer.release()
    return str(path)
