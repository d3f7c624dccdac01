"""Plates in: frame sequences through OpenImageIO, movie files through OpenCV.

`open_plate` resolves a sequence pattern (or a movie) and a frame range and checks that every
requested frame exists before anything else happens, so a job fails in its first second with
the exact missing file rather than halfway through a shot. `Plate.read` returns the pixels of
the display window (the plate's format, which every coordinate in rotobridge refers to),
reading only the three channels it needs, and is safe to call from a prefetch thread pool.

Given `roots`, a plate stays inside them for its whole life: every frame's real path is
checked when the plate opens and again each time the frame is read (a frame may be
swapped for a symlink in between), and what is read is the checked real path.
"""

from __future__ import annotations

import abc
import os
import sys
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Sequence

import cv2
import numpy as np
import OpenImageIO as oiio
from fileseq.constants import PAD_STYLE_HASH1
from fileseq.exceptions import FileSeqException, MaxSizeException
from fileseq.filesequence import FileSequence
from fileseq.frameset import FrameSet

from rotobridge.errors import MissingFrameError, PlateError

from .security import allowed_frames, allowed_path

#: file extensions read as movies (through OpenCV's FFmpeg backend); all else is a sequence
MOVIE_EXTENSIONS = frozenset({".mov", ".mp4", ".m4v", ".avi", ".mkv"})
#: Nuke's name for the unprefixed R, G, B, A channels; accepted as `layer` too
DEFAULT_LAYER = "rgba"
_FLOAT_BASETYPES = frozenset({oiio.HALF, oiio.FLOAT, oiio.DOUBLE})
#: Open hint: return colour as stored. By default OIIO multiplies the RGB of unassociated-
#: alpha files (PNG, some TIFFs) by alpha, which would change an RGBA plate's picture and
#: break bit-identity with PIL's (and so sam2's) decoding.
_AS_STORED = oiio.ImageSpec()
_AS_STORED.attribute("oiio:UnassociatedAlpha", 1)
#: What fileseq raises for a pattern or range it cannot take (MaxSizeException: a huge range).
FILESEQ_ERRORS = (FileSeqException, MaxSizeException)


@dataclass(frozen=True)
class Window:
    """A pixel rectangle: origin top-left, x right, y down (OpenImageIO/EXR convention)."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class PlateInfo:
    """What is known about a plate once opened; frames are plate frame numbers."""

    path: str
    frames: tuple[int, ...]
    display: Window
    data: Window
    channels: tuple[str, ...]
    is_float: bool
    bits: int
    file_colourspace: str | None


class Plate(abc.ABC):
    """An opened plate. `read` may be called from several threads at once."""

    def __init__(self, info: PlateInfo) -> None:
        self.info = info
        self._frames = frozenset(info.frames)

    @abc.abstractmethod
    def path(self, frame: int) -> str:
        """The file holding `frame` (for a movie: the movie)."""

    def read(self, frame: int) -> np.ndarray:
        """RGB pixels of the display window, (height, width, 3), top row first.

        uint8 exactly as decoded when the file stores 8-bit unsigned samples, else float32
        (integer samples normalised to [0, 1], float samples untouched).
        """
        if frame not in self._frames:
            frames = FrameSet.framesToFrameRange(self.info.frames)
            raise PlateError(f"frame {frame} is not among the plate's frames {frames}: {self.info.path}")
        return self._read(frame)

    @abc.abstractmethod
    def _read(self, frame: int) -> np.ndarray: ...

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the plate holds open."""

    def __enter__(self) -> Plate:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def open_plate(
    path: str,
    frames: str | None = None,
    *,
    layer: str | None = None,
    part: str | int | None = None,
    first_frame: int = 1,
    roots: Sequence[str] = (),
) -> Plate:
    """Open a frame-sequence pattern (`####`, `%04d`, `@`, `$F4`; one digit per `#`) or a movie.

    frames: a frame range such as "1001-1100x2"; None means every frame on disk (a movie:
    all of its frames). Frames are sorted and de-duplicated. layer/part pick an EXR layer
    (`<layer>.R/G/B`) and subimage (by name or index). first_frame: the plate frame number
    of a movie's first frame. roots: folders every file read must really lie in (none: no
    limit); PathNotAllowedError otherwise. Raises MissingFrameError for the first requested
    frame that does not exist, PlateError for anything else that would stop `read`.
    """
    if roots:
        allowed_path(path, roots, "plate")
    if os.path.splitext(path)[1].lower() in MOVIE_EXTENSIONS:
        if layer is not None or part is not None:
            raise PlateError(f"a movie has no layers or parts to choose from: {path}")
        return _MoviePlate(path, frames, first_frame, roots)
    return _SequencePlate(path, frames, layer, part, roots)


def _parse_frames(frames: str, path: str) -> tuple[int, ...]:
    try:
        numbers = list(FrameSet(frames))
    except FILESEQ_ERRORS as error:
        raise PlateError(f"cannot parse frame range {frames!r} for {path}: {error}") from None
    if not numbers:
        raise PlateError(f"frame range {frames!r} for {path} is empty")
    if any(number != int(number) for number in numbers):
        raise PlateError(f"frame range {frames!r} for {path} has subframes; plates have whole frames")
    return tuple(sorted({int(number) for number in numbers}))


# -- image sequences --------------------------------------------------------------------


@dataclass(frozen=True)
class _Selection:
    """Where in one file the plate's three channels are."""

    subimage: int
    spec: oiio.ImageSpec
    indices: tuple[int, int, int]  # file channel index of R, G, B (grey: Y three times)

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.spec.channelnames[index] for index in self.indices)

    @property
    def uint8(self) -> bool:
        return all(self.spec.channelformat(index) == oiio.UINT8 for index in self.indices)

    @property
    def half(self) -> bool:
        return all(self.spec.channelformat(index) == oiio.HALF for index in self.indices)

    @property
    def display(self) -> Window:
        spec = self.spec
        return Window(spec.full_x, spec.full_y, spec.full_width, spec.full_height)

    @property
    def data(self) -> Window:
        return Window(self.spec.x, self.spec.y, self.spec.width, self.spec.height)


class _SequencePlate(Plate):
    """One file per frame through OpenImageIO; each read opens its own ImageInput (thread-safe)."""

    def __init__(
        self, pattern: str, frames: str | None, layer: str | None, part: str | int | None, roots: Sequence[str]
    ) -> None:
        self._sequence = _parse_pattern(pattern)
        self._layer = None if layer == DEFAULT_LAYER else layer
        self._part = part
        self._roots = tuple(roots)
        in_pattern = self._sequence.frameSet()  # as in sh010.1001-1100####.exr
        if frames is not None:
            numbers = _parse_frames(frames, pattern)
        elif in_pattern is not None:
            numbers = _parse_frames(str(in_pattern), pattern)
        else:
            numbers = _frames_on_disk(pattern)
        for number in numbers:
            if not os.path.isfile(self.path(number)):
                raise MissingFrameError(number, self.path(number))
        if self._roots:
            allowed_frames([self.path(number) for number in numbers], self._roots, "plate file")  # a frame may be a symlink out
        first = self._real(numbers[0])
        image = _open_image(first)
        try:
            selection = self._select(image, first)
        finally:
            image.close()
        spec = selection.spec
        formats = [spec.channelformat(index) for index in selection.indices]
        bits = spec.get_int_attribute("oiio:BitsPerSample", 0) or max(8 * f.size() for f in formats)
        super().__init__(
            PlateInfo(
                path=pattern,
                frames=numbers,
                display=selection.display,
                data=selection.data,
                channels=selection.channels,
                is_float=any(f.basetype in _FLOAT_BASETYPES for f in formats),
                bits=bits,
                file_colourspace=spec.get_string_attribute("oiio:ColorSpace") or None,
            )
        )
        self._uint8 = selection.uint8

    def path(self, frame: int) -> str:
        return str(self._sequence.frame(frame))

    def _real(self, frame: int) -> str:
        """The file to open for `frame`: with roots, its real path, checked now."""
        path = self.path(frame)
        return allowed_path(path, self._roots, "plate file") if self._roots else path

    def close(self) -> None:
        """Nothing to release: every read opens and closes its own file."""

    def _read(self, frame: int) -> np.ndarray:
        path = self._real(frame)
        image = _open_image(path)
        try:
            selection = self._select(image, path)
            if selection.display != self.info.display:
                raise PlateError(
                    f"plate frame {frame} has display window {_describe(selection.display)}, "
                    f"frame {self.info.frames[0]} has {_describe(self.info.display)}: {path}"
                )
            if selection.uint8 != self._uint8:
                raise PlateError(
                    f"plate frame {frame} is stored as {selection.spec.format}, unlike frame "
                    f"{self.info.frames[0]} ({'uint8' if self._uint8 else 'not uint8'}): {path}"
                )
            first, last = min(selection.indices), max(selection.indices)
            # Half is read as stored and widened to float32 (exactly) in the crop's one copy,
            # instead of OpenImageIO converting the whole data window first.
            kind = oiio.UINT8 if self._uint8 else oiio.HALF if selection.half else oiio.FLOAT
            pixels = image.read_image(selection.subimage, 0, first, last + 1, kind)
            if pixels is None:
                raise PlateError(f"cannot read {path}: {image.geterror()}")
        finally:
            image.close()
        offsets = [index - first for index in selection.indices]
        if offsets != [0, 1, 2]:  # grey, or channels not in R, G, B order next to each other
            pixels = pixels[..., offsets]
        return crop_to_display(pixels, selection.data, self.info.display, None if self._uint8 else np.float32)

    def _select(self, image: oiio.ImageInput, path: str) -> _Selection:
        """The subimage and channels to read: `part` if given, else the first that has them."""
        specs: list[oiio.ImageSpec] = []
        while image.seek_subimage(len(specs), 0):
            specs.append(image.spec())
        names = [spec.get_string_attribute("name") for spec in specs]
        every = list(range(len(specs)))
        if isinstance(self._part, int):
            if not 0 <= self._part < len(specs):
                raise PlateError(f"part {self._part} not in {path} (parts: {_describe_parts(specs, every)})")
            candidates = [self._part]
        elif isinstance(self._part, str):
            if self._part not in names:
                raise PlateError(f"part '{self._part}' not in {path} (parts: {_describe_parts(specs, every)})")
            candidates = [names.index(self._part)]
        else:
            candidates = every
        for subimage in candidates:
            indices = _channel_indices(specs[subimage].channelnames, self._layer)
            if indices is not None:
                return _Selection(subimage, specs[subimage], indices)
        layers = sorted({_layer_of(name) for subimage in candidates for name in specs[subimage].channelnames})
        if self._layer is not None and self._layer not in layers:
            raise PlateError(f"layer '{self._layer}' not in {path} (layers: {', '.join(layers)})")
        prefix = f"{self._layer}." if self._layer else ""
        wanted = ", ".join(prefix + name for name in "RGB")
        have = _describe_parts(specs, candidates) if len(specs) > 1 else ", ".join(specs[0].channelnames)
        raise PlateError(f"channels {wanted} not in {path} (channels: {have})")


def _parse_pattern(pattern: str) -> FileSequence:
    """Parse with one digit per `#` (Nuke); the pattern must name where the frame number goes."""
    try:
        sequence = FileSequence(pattern, pad_style=PAD_STYLE_HASH1)
    except FILESEQ_ERRORS as error:
        raise PlateError(f"cannot parse plate pattern {pattern}: {error}") from None
    # fileseq also reads a plain file name such as sh010.1001.exr as a one-frame sequence
    if not sequence.padding() or sequence.padding() not in os.path.basename(pattern):
        raise PlateError(
            f"{pattern} is not a frame-sequence pattern: put ####, %04d, @@@@ or $F4 "
            "where the frame number goes, just before the extension"
        )
    return sequence


def _frames_on_disk(pattern: str) -> tuple[int, ...]:
    """Every frame on disk whose file name the pattern formats exactly (padding included)."""
    try:
        found = FileSequence.findSequenceOnDisk(pattern, strictPadding=True, pad_style=PAD_STYLE_HASH1).frameSet()
    except FILESEQ_ERRORS:
        found = None
    if not found:
        raise PlateError(f"no frames on disk match {pattern}")
    return tuple(sorted(int(number) for number in found))


def _open_image(path: str) -> oiio.ImageInput:
    image = oiio.ImageInput.open(path, _AS_STORED)
    if image is None:
        raise PlateError(f"cannot read {path}: {oiio.geterror()}")
    return image


def _channel_indices(names: tuple[str, ...], layer: str | None) -> tuple[int, int, int] | None:
    """File channel indices of the layer's R, G, B, or of its Y three times (grey)."""
    prefix = f"{layer}." if layer else ""
    if all(prefix + name in names for name in "RGB"):
        red, green, blue = (names.index(prefix + name) for name in "RGB")
        return red, green, blue
    if prefix + "Y" in names:
        grey = names.index(prefix + "Y")
        return grey, grey, grey
    return None


def _layer_of(channel: str) -> str:
    """Layer of an EXR channel name: everything before the last dot; none means Nuke's rgba."""
    return channel.rpartition(".")[0] or DEFAULT_LAYER


def _describe_parts(specs: list[oiio.ImageSpec], indices: list[int]) -> str:
    """Subimages `indices` as "0 'beauty': R, G, B; 1 'depth': Z", for error messages."""
    labels = []
    for index in indices:
        spec = specs[index]
        name = spec.get_string_attribute("name")
        label = f"{index} '{name}'" if name else str(index)
        labels.append(f"{label}: {', '.join(spec.channelnames)}")
    return "; ".join(labels)


def _describe(window: Window) -> str:
    return f"{window.width}x{window.height} at ({window.x}, {window.y})"


def crop_to_display(
    pixels: np.ndarray, data: Window, display: Window, dtype: type[np.generic] | None = None
) -> np.ndarray:
    """Place (H, W, C) data-window pixels in the display window: overscan cut off, uncovered
    pixels 0; converted to `dtype` (default: the pixels') in the same copy."""
    dtype = dtype or pixels.dtype.type
    if data == display and pixels.dtype == dtype:
        return np.ascontiguousarray(pixels)
    left, right = max(data.x, display.x), min(data.x + data.width, display.x + display.width)
    top, bottom = max(data.y, display.y), min(data.y + data.height, display.y + display.height)
    covered = (left, top, right, bottom) == (display.x, display.y, display.x + display.width, display.y + display.height)
    out = (np.empty if covered else np.zeros)((display.height, display.width, *pixels.shape[2:]), dtype)
    if left < right and top < bottom:
        _convert(
            out[top - display.y : bottom - display.y, left - display.x : right - display.x],
            pixels[top - data.y : bottom - data.y, left - data.x : right - data.x],
        )
    return out


def _convert(out: np.ndarray, pixels: np.ndarray) -> None:
    """out[...] = pixels; float to float through torch, which widens half to float32 with the
    CPU's conversion instructions: 1.8 ms for a 1080p plate where numpy takes 12 (one core).
    Only where torch is already loaded (every render and session): light readers, such as
    the evaluation's scorers, do not pay its import."""
    torch = sys.modules.get("torch")
    if torch is not None and out.dtype.kind == pixels.dtype.kind == "f" and pixels.flags.writeable:
        try:
            torch.from_numpy(out).copy_(torch.from_numpy(pixels))
            return
        except (TypeError, ValueError):  # strides or a byte order torch does not take
            pass
    out[...] = pixels


# -- movies -------------------------------------------------------------------------------


class _MoviePlate(Plate):
    """A movie through OpenCV: one decoder under a lock, read on in order, seek only on a jump.

    Plate frame `first_frame + i` is movie frame i. Movies decode to 8-bit here, whatever
    the codec stores.
    """

    def __init__(self, path: str, frames: str | None, first_frame: int, roots: Sequence[str]) -> None:
        if not os.path.isfile(path):
            raise PlateError(f"movie not found: {path}")
        # the movie stays open (one decoder): checking it once, and opening what was checked, is enough
        capture = cv2.VideoCapture(allowed_path(path, roots, "plate") if roots else path, cv2.CAP_FFMPEG)
        if not capture.isOpened():
            raise PlateError(f"cannot read {path}: OpenCV (FFmpeg) cannot open this movie")
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if count <= 0 or width <= 0 or height <= 0:
            capture.release()
            raise PlateError(f"cannot read {path}: OpenCV reports {count} frames of {width}x{height}")
        numbers = tuple(range(first_frame, first_frame + count)) if frames is None else _parse_frames(frames, path)
        for number in numbers:
            if not first_frame <= number < first_frame + count:
                capture.release()
                raise MissingFrameError(number, path)
        window = Window(0, 0, width, height)
        super().__init__(PlateInfo(path, numbers, window, window, ("R", "G", "B"), False, 8, None))
        self._movie = path
        self._first_frame = first_frame
        self._capture: cv2.VideoCapture | None = capture
        self._next = 0  # the movie frame a plain read() decodes next
        self._lock = threading.Lock()

    def path(self, frame: int) -> str:
        return self._movie

    def _read(self, frame: int) -> np.ndarray:
        index = frame - self._first_frame
        with self._lock:
            if self._capture is None:
                raise PlateError(f"plate is closed: {self._movie}")
            if index != self._next:
                self._capture.set(cv2.CAP_PROP_POS_FRAMES, index)
            ok, bgr = self._capture.read()
            self._next = index + 1 if ok else -1
        if not ok:
            raise PlateError(f"cannot decode plate frame {frame} (movie frame {index}) of {self._movie}")
        if bgr.shape != (self.info.display.height, self.info.display.width, 3) or bgr.dtype != np.uint8:
            raise PlateError(
                f"plate frame {frame} of {self._movie} decodes as {bgr.dtype} {bgr.shape}, "
                f"not the {_describe(self.info.display)} 8-bit RGB the movie reports"
            )
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        with self._lock:
            if self._capture is not None:
                self._capture.release()
                self._capture = None
