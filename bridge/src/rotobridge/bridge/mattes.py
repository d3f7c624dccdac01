"""The EXR matte format: the one place that decides how mattes look on disk.

One half-float channel per object, named so Nuke shows it as ``<object>.alpha``, with the
plate's data and display windows, lossless compression, tagged as data, written to a
temporary name and renamed so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import OpenImageIO as oiio
import torch
from fileseq.constants import PAD_STYLE_HASH1
from fileseq.filesequence import FileSequence

from rotobridge.bridge.plate import Plate, Window, crop_to_display
from rotobridge.controls import MatteControls
from rotobridge.errors import MatteExistsError, OutputError
from rotobridge.recipe import LAYERS

from .atomic import atomic_file
from .colour import ColourPipeline
from .security import allowed_path

#: OpenEXR compressions that keep half data bit-exact; a matte edge must not shift on disk.
LOSSLESS_COMPRESSIONS = ("none", "rle", "zips", "zip", "piz")

#: header attributes the writer sets itself; caller metadata may not replace them
_OWN_KEYS = frozenset(
    {"compression", "oiio:ColorSpace", "rotobridge:colourspace", "rotobridge:objects", "rotobridge:frame"}
)


def upsample_logits(logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, 1, h, w) → (N, 1, height, width), as SAM2VideoPredictor._get_orig_video_res_output does."""
    if logits.shape[-2:] == (height, width):
        return logits
    return torch.nn.functional.interpolate(
        logits, size=(height, width), mode="bilinear", align_corners=False
    )


def matte_planes(logits: torch.Tensor, height: int, width: int, *, binary: bool = False) -> torch.Tensor:
    """(N, 1, h, w) logits → (N, height, width) float16 mattes, on the logits' device.

    sam2's own upsampling in float32 (`upsample_logits`), then sigmoid (or > 0 for binary
    mattes), rounded to half as the EXR stores it. Run where the logits are: on a GPU only
    half the bytes then cross to the host. One object at a time, in place, so a 4K float
    plane (35 MB) exists once.
    """
    if logits.ndim != 4 or logits.shape[1] != 1:
        raise ValueError(f"expected logits of shape (N, 1, h, w), got {tuple(logits.shape)}")
    out = torch.empty((logits.shape[0], height, width), dtype=torch.float16, device=logits.device)
    with torch.inference_mode():
        for i in range(logits.shape[0]):
            full = upsample_logits(logits[i : i + 1].float(), height, width)[0, 0]
            out[i] = (full > 0) if binary else torch.sigmoid_(full)
    return out


def channel_name(object_name: str) -> str:
    """EXR channel for an object: Nuke splits on the last dot and maps ``A`` to alpha."""
    return f"{object_name}.A"


def layer_channel(object_name: str, layer: str) -> str:
    """EXR channel of an object's extra layer (recipe `output.layers`): its own Nuke layer,
    ``<object>_<layer>``, with the matte as its alpha."""
    return f"{object_name}_{layer}.A"


#: frame → the display-referred plate, (1, 3, display height, display width) float in 0-1:
#: what edge refinement reads.
Guide = Callable[[int], torch.Tensor]


def plate_guide(plate: Plate, colour: ColourPipeline) -> Guide:
    """The guide edge refinement reads: the picture the artist sees (`display_rgb`, uint8) / 255.

    Renders, sessions and `rotobridge refine` all take it from here, so their mattes match."""
    display = plate.info.display

    def guide(frame: int) -> torch.Tensor:
        rgb = colour.display_rgb(plate.read(frame), display.width, display.height)
        return (torch.from_numpy(rgb).float() / 255.0).permute(2, 0, 1).unsqueeze(0).contiguous()

    return guide


def object_matte(
    logits: torch.Tensor, guide: torch.Tensor | None, controls: MatteControls | None, height: int, width: int
) -> torch.Tensor:
    """One object's matte of one frame, (1, 1, height, width) float in 0-1, from its
    (1, 1, h, w) SAM 2 logits: without controls SAM 2's matte exactly as the writer has
    always made it (bilinear logits, sigmoid), with them `refine.apply` (which needs the
    `guide` when `controls.refine` > 0). Previews, and every written matte whose controls do
    not smooth, are made with it.

    `controls.smoothing` is left out: it needs the neighbouring frames, so written mattes
    get it in order (smoothing.py: `refine.edges`, then `TemporalSmoother`, then
    `refine.finish`, via `MatteWriter.edge_mattes` and the `smoothed` of `frame_pixels`)."""
    if controls is None:
        return torch.sigmoid(upsample_logits(logits.float(), height, width))
    from . import refine  # refine imports upsample_logits from this module

    return refine.apply(logits, guide, controls, height, width)


#: A trimap's grey: final matte values strictly between these are "unknown" (0.5).
TRIMAP_LOW, TRIMAP_HIGH = 0.01, 0.99


def extra_layer(layer: str, final: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
    """An extra output layer (recipe `output.layers`) from an object's soft final matte and
    its raw SAM 2 matte (same shapes)."""
    if layer == "raw":
        return raw
    if layer == "edge":  # 1 where the matte is half, 0 where it is solid or empty
        return 4.0 * final * (1.0 - final)
    if layer == "trimap":
        return torch.where(final <= TRIMAP_LOW, 0.0, torch.where(final >= TRIMAP_HIGH, 1.0, 0.5))
    raise ValueError(f"unknown matte layer {layer!r}: one of {', '.join(LAYERS)}")


def _overlap(a: Window, b: Window) -> Window | None:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.width, b.x + b.width), min(a.y + a.height, b.y + b.height)
    return Window(x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None


def _write_exr(path: str, spec: oiio.ImageSpec, pixels: np.ndarray) -> None:
    """Write one (H, W, C) half image; OIIO reports failures by return value, so check each step."""
    out = oiio.ImageOutput.create(path)
    if out is None:
        raise OutputError(f"OpenImageIO has no EXR writer: {oiio.geterror()}")
    ok = out.open(path, spec) and out.write_image(pixels)
    ok = out.close() and ok  # close even after a failure, so the file handle is released
    if not ok:
        raise OutputError(out.geterror() or "OpenImageIO could not write the file")


def matte_sequence(pattern: str) -> FileSequence:
    """The file sequence a matte path names; OutputError unless it is EXR with a frame placeholder."""
    if not pattern.lower().endswith(".exr"):
        raise OutputError(f"matte path must end in .exr: {pattern}")
    sequence = FileSequence(pattern, pad_style=PAD_STYLE_HASH1)
    if not sequence.padding():
        raise OutputError(f"matte path has no frame number placeholder (####, %04d, @ or $F4): {pattern}")
    return sequence


class MatteWriter:
    """Writes one shot's mattes, one EXR per plate frame; safe to call from several threads."""

    def __init__(
        self,
        pattern: str,
        display: Window,
        data: Window,
        objects: Sequence[tuple[int, str]],
        *,
        compression: str = "zip",
        binary: bool = False,
        overwrite: bool = False,
        data_colourspace: str = "Raw",
        metadata: Mapping[str, str] | None = None,
        roots: Sequence[str] = (),
        controls: Sequence[MatteControls | None] = (),
        layers: Sequence[str] = (),
        guide: Guide | None = None,
    ) -> None:
        """roots: folders every matte must really be written in (none: no limit), checked per
        write, since a folder may be swapped for a symlink while a shot renders.

        controls: one per object in `objects` order (None: SAM 2's matte as it is; empty:
        all raw); layers: extra layers per object (recipe `output.layers`); guide: the
        plate for edge refinement (`plate_guide`), needed when a control has refine > 0 and
        read only then."""
        self._sequence = matte_sequence(pattern)
        self.roots = tuple(roots)
        if compression not in LOSSLESS_COMPRESSIONS:
            raise OutputError(
                f"EXR compression {compression!r} is not allowed: mattes need lossless "
                f"compression, one of {', '.join(LOSSLESS_COMPRESSIONS)}"
            )
        self.channels = [channel_name(name) for _, name in objects]
        if not objects or len(set(self.channels)) != len(self.channels):
            raise OutputError(f"mattes need objects with distinct names, got {self.channels}")
        self.controls = tuple(controls) or (None,) * len(objects)
        if len(self.controls) != len(objects):
            raise ValueError(f"{len(self.controls)} matte controls for {len(objects)} objects")
        unknown = [layer for layer in layers if layer not in LAYERS]
        if unknown or len(set(layers)) != len(layers):
            raise OutputError(f"matte layers must be distinct, of {', '.join(LAYERS)}; got {list(layers)}")
        self.layers = tuple(layers)
        self.layer_channels = [layer_channel(name, layer) for _, name in objects for layer in self.layers]
        if len(set(self.channels + self.layer_channels)) != len(self.channels) + len(self.layer_channels):
            raise OutputError(f"an object's name is another object's layer: {self.channels + self.layer_channels}")
        self.refines = any(c is not None and c.refine > 0 for c in self.controls)
        if self.refines and guide is None:
            raise ValueError("edge refinement needs the plate: pass guide (plate_guide)")
        self.guide = guide
        clash = _OWN_KEYS & set(metadata or {})
        if clash:
            raise ValueError(f"metadata may not set {sorted(clash)}: the matte writer owns them")

        self.pattern = pattern
        self.display, self.data = display, data
        self.binary, self.overwrite = binary, overwrite
        self._overlap = _overlap(display, data)
        self._attributes: dict[str, str] = {
            "compression": compression,
            "oiio:ColorSpace": data_colourspace,  # OIIO normalises or drops it: keep the name too
            "rotobridge:colourspace": data_colourspace,
            "rotobridge:objects": json.dumps(
                [
                    {"id": i, "name": n, "channel": c}
                    | ({"layers": {layer: layer_channel(n, layer) for layer in self.layers}} if self.layers else {})
                    for (i, n), c in zip(objects, self.channels)
                ]
            ),
            **dict(metadata or {}),
        }

    def path(self, frame: int) -> str:
        """The matte file of a plate frame number (e.g. 1001)."""
        return self._sequence.frame(frame)

    def checked_path(self, frame: int) -> str:
        """The matte file to open: with roots, its real path, checked inside them."""
        path = self.path(frame)
        return allowed_path(path, self.roots, "matte") if self.roots else path

    def check(self, frames: Iterable[int]) -> None:
        """Fail before any rendering: existing mattes (unless overwrite), or an unwritable folder."""
        if self.roots:
            allowed_path(self.path(0), self.roots, "output")
        if not self.overwrite:
            existing = [p for p in map(self.path, frames) if os.path.exists(p)]
            if existing:
                raise MatteExistsError(existing)
        folder = os.path.dirname(os.path.abspath(self.path(0)))
        try:
            os.makedirs(folder, exist_ok=True)
            # a real file, not os.access: permissions on network storage lie
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".rotobridge-check."):
                pass
        except OSError as exc:
            raise OutputError(f"cannot write mattes to {folder}: {exc.strerror or exc}") from exc

    def existing(self, frame: int) -> str | None:
        """What is on disk for a frame: None (nothing), "whole" (reads back whole, with this
        writer's channels, windows and metadata: the same recipe and model), "damaged" (does
        not read back) or "other" (a whole matte made differently)."""
        path = self.checked_path(frame)
        if not os.path.exists(path):
            return None
        try:
            channels, header = read_matte(path)
        except (OutputError, OSError):
            return "damaged"
        same = (
            sorted(channels) == sorted(self.all_channels)  # EXR stores channels sorted by name
            and header["data_window"] == self.data
            and header["display_window"] == self.display
            and all(str(header.get(k)) == v for k, v in self._attributes.items() if k.startswith("rotobridge:"))
        )
        return "whole" if same else "other"

    @property
    def all_channels(self) -> list[str]:
        """Every channel on disk: the objects' final mattes, then their extra layers."""
        return self.channels + self.layer_channels

    @property
    def raw(self) -> bool:
        """Mattes exactly as SAM 2 makes them: no controls, no extra layers (`_pixels`)."""
        return not self.layers and all(c is None for c in self.controls)

    @property
    def smoothed(self) -> tuple[int, ...]:
        """The objects (indices) whose controls smooth over time: their written mattes need
        the frames in order (smoothing.py)."""
        return tuple(i for i, c in enumerate(self.controls) if c is not None and c.smoothing > 0)

    def read_guide(self, frame: int) -> torch.Tensor | None:
        """The frame's guide if a control reads it (edge refinement, or smoothing's optical
        flow) and the writer has one; else None."""
        if self.guide is None or not (self.refines or self.smoothed):
            return None
        return self.guide(frame)

    def edge_mattes(self, frame: int, logits: torch.Tensor, guide: torch.Tensor | None) -> dict[int, torch.Tensor]:
        """The smoothed objects' (1, 1, display height, display width) mattes before smoothing
        (`refine.edges`), by object index; `guide` from `read_guide`."""
        from . import refine

        disp, out = self.display, {}
        with torch.inference_mode():
            for i in self.smoothed:
                controls = self.controls[i]
                assert controls is not None
                one = logits[i : i + 1]
                g = guide.to(one.device) if guide is not None and controls.refine > 0 else None
                out[i] = refine.edges(one, g, controls, disp.height, disp.width)
        return out

    def frame_pixels(
        self,
        frame: int,
        logits: torch.Tensor | None,
        smoothed: Mapping[int, torch.Tensor] | None = None,
        guide: torch.Tensor | None = None,
    ) -> np.ndarray:
        """(data height, data width, channels) half: what `write` puts on disk for a frame.

        smoothed: object index → its `edge_mattes` matte after temporal smoothing, finished
        here (`refine.finish`); objects not in it get `object_matte`. guide: the frame's
        (`read_guide`), read here when not given."""
        if self.raw:
            return self._pixels(None if logits is None else self.planes(logits).cpu())
        out = np.zeros((self.data.height, self.data.width, len(self.all_channels)), np.float16)
        if logits is None or self._overlap is None:
            return out
        n, disp = len(self.channels), self.display
        if logits.ndim != 4 or logits.shape[:2] != (n, 1):
            raise ValueError(f"expected logits of shape ({n}, 1, h, w), got {tuple(logits.shape)}")
        smoothed = smoothed or {}
        if guide is None and self.refines and self.guide is not None:
            guide = self.guide(frame)
        with torch.inference_mode():
            for i, controls in enumerate(self.controls):  # one object at a time: a 4K float plane is 35 MB
                one = logits[i : i + 1]
                if i in smoothed and controls is not None:
                    from . import refine

                    final = refine.finish(smoothed[i].to(one.device), controls)
                else:
                    g = guide.to(one.device) if guide is not None and controls is not None and controls.refine > 0 else None
                    final = object_matte(one, g, controls, disp.height, disp.width)
                raw = final if controls is None else object_matte(one, None, None, disp.height, disp.width)
                for j, layer in enumerate(self.layers):
                    self.place(out, n + i * len(self.layers) + j, extra_layer(layer, final, raw))
                if self.binary:  # without controls as always: the sign of SAM 2's logit
                    final = upsample_logits(one.float(), disp.height, disp.width) > 0 if controls is None else final > 0.5
                self.place(out, i, final)
        return out

    def place(self, out: np.ndarray, channel: int, matte: torch.Tensor) -> None:
        """Put a (…, display height, display width) matte in channel `channel` of a frame's
        (data height, data width, channels) pixels: the display window's part inside the
        data window (overscan stays 0)."""
        o, disp, data = self._overlap, self.display, self.data
        if o is None:
            return
        plane = matte.reshape(disp.height, disp.width)[o.y - disp.y : o.y - disp.y + o.height, o.x - disp.x : o.x - disp.x + o.width]
        out[o.y - data.y : o.y - data.y + o.height, o.x - data.x : o.x - data.x + o.width, channel] = (
            plane.to("cpu", torch.float16).numpy()
        )

    def planes(self, logits: torch.Tensor) -> torch.Tensor:
        """A frame's logits as (N, display height, display width) half mattes, on their device."""
        n = len(self.channels)
        if logits.ndim != 4 or logits.shape[:2] != (n, 1):
            raise ValueError(f"expected logits of shape ({n}, 1, h, w), got {tuple(logits.shape)}")
        return matte_planes(logits, self.display.height, self.display.width, binary=self.binary)

    def _pixels(self, planes: torch.Tensor | None) -> np.ndarray:
        """(data height, data width, N) half: display-window mattes put in the data window."""
        n = len(self.channels)
        out = np.zeros((self.data.height, self.data.width, n), np.float16)
        if planes is None or self._overlap is None:
            return out
        if tuple(planes.shape) != (n, self.display.height, self.display.width):
            raise ValueError(
                f"expected mattes of shape ({n}, {self.display.height}, {self.display.width}), got {tuple(planes.shape)}"
            )
        o, disp, data = self._overlap, self.display, self.data
        rows = slice(o.y - disp.y, o.y - disp.y + o.height)
        cols = slice(o.x - disp.x, o.x - disp.x + o.width)
        dst = torch.from_numpy(out)[o.y - data.y : o.y - data.y + o.height, o.x - data.x : o.x - data.x + o.width]
        with torch.inference_mode():
            dst.copy_(planes[:, rows, cols].permute(1, 2, 0))  # one interleaving copy, half to half
        return out

    def write(
        self,
        frame: int,
        logits: torch.Tensor | None,
        smoothed: Mapping[int, torch.Tensor] | None = None,
        guide: torch.Tensor | None = None,
    ) -> str:
        """Write a frame's mattes from its (N, 1, h, w) logits (None → all zero, e.g. no
        object on this frame), `smoothed` and `guide` as `frame_pixels`; returns the path."""
        if self.raw:
            return self.write_planes(frame, None if logits is None else self.planes(logits))
        return self.write_pixels(frame, self.frame_pixels(frame, logits, smoothed, guide))

    def write_planes(self, frame: int, planes: torch.Tensor | None) -> str:
        """Write a frame's raw mattes from `planes` (`planes`; None → all zero); returns the path."""
        return self.write_pixels(frame, self._pixels(None if planes is None else planes.cpu()))

    def write_pixels(self, frame: int, pixels: np.ndarray) -> str:
        """Write a frame's (data height, data width, channels) half pixels (`frame_pixels`,
        `place`) atomically; returns the path."""
        path = self.path(frame)
        target = self.checked_path(frame)  # written where it was checked
        if not self.overwrite and os.path.exists(target):
            raise MatteExistsError([path])
        spec = oiio.ImageSpec(self.data.width, self.data.height, len(self.all_channels), oiio.HALF)
        spec.x, spec.y = self.data.x, self.data.y
        spec.full_x, spec.full_y = self.display.x, self.display.y
        spec.full_width, spec.full_height = self.display.width, self.display.height
        spec.channelnames = tuple(self.all_channels)
        for key, value in self._attributes.items():
            spec.attribute(key, value)
        spec.attribute("rotobridge:frame", int(frame))
        try:
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
            with atomic_file(target) as tmp:
                _write_exr(tmp, spec, pixels)
                if not self.overwrite and os.path.exists(target):  # appeared while we rendered
                    raise MatteExistsError([path])
        except MatteExistsError:
            raise
        except Exception as exc:
            raise OutputError(f"cannot write matte {path}: {exc}") from exc
        return path


def read_matte(path: str) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Channel name → (data height, data width) float32, and the header (windows as Window)."""
    image = oiio.ImageInput.open(path)
    if image is None:
        raise OutputError(f"cannot read matte {path}: {oiio.geterror()}")
    try:
        spec = image.spec()
        pixels = image.read_image(oiio.FLOAT)
        if pixels is None:
            raise OutputError(f"cannot read matte {path}: {image.geterror()}")
    finally:
        image.close()
    pixels = pixels.reshape(spec.height, spec.width, spec.nchannels)
    channels = {name: pixels[:, :, i].copy() for i, name in enumerate(spec.channelnames)}
    header: dict[str, object] = {a.name: a.value for a in spec.extra_attribs}
    header["data_window"] = Window(spec.x, spec.y, spec.width, spec.height)
    header["display_window"] = Window(spec.full_x, spec.full_y, spec.full_width, spec.full_height)
    return channels, header


def read_alpha(path: str) -> tuple[np.ndarray, Window, Window]:
    """An image's alpha channel (its first when it has none) as float32 (data height, data
    width), with its data and display windows: how mask prompts and truth mattes are read.
    OSError when OpenImageIO cannot read it."""
    image = oiio.ImageInput.open(path)
    if image is None:
        raise OSError(oiio.geterror())
    try:
        spec = image.spec()
        channel = spec.alpha_channel if spec.alpha_channel >= 0 else 0
        pixels = image.read_image(0, 0, channel, channel + 1, oiio.FLOAT)
        if pixels is None:
            raise OSError(image.geterror())
    finally:
        image.close()
    data = Window(spec.x, spec.y, spec.width, spec.height)
    display = Window(spec.full_x, spec.full_y, spec.full_width, spec.full_height)
    return pixels.reshape(spec.height, spec.width), data, display


def read_display_mattes(path: str, display: Window) -> dict[str, np.ndarray]:
    """A matte file's channels as display-window planes (overscan cropped, uncovered 0): what an artist sees."""
    channels, header = read_matte(path)
    data = header["data_window"]
    assert isinstance(data, Window)
    planes = crop_to_display(np.stack(list(channels.values()), axis=-1), data, display)
    return {name: planes[..., i] for i, name in enumerate(channels)}
