"""`rotobridge refine`: the matte controls on mattes that already exist, from any tool.

An EXR or PNG matte sequence and its plate go in; refined EXR mattes come out, written
as renders write them (atomically, refusing to replace mattes unless asked, never over
the input). A rotobridge matte keeps its objects (each `<name>.A` refined with the same
controls); any other file's alpha (its first channel when it has none) becomes one
object. For edge refinement the matte stands in for SAM 2's prediction: area-averaged to
SAM 2's 256² logit grid (`refine.matte_logits`), so it gets the band of uncertainty that
refinement re-estimates from the plate; the other controls apply to the matte itself,
temporal smoothing over the sequence in frame order (`Job.run`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from fileseq.constants import PAD_STYLE_HASH1
from fileseq.filesequence import FileSequence

from rotobridge import controls as matte_controls
from rotobridge import recipe as recipes
from rotobridge.controls import MatteControls
from rotobridge.errors import OutputError, RecipeError
from rotobridge.version import __version__

from . import refine
from .colour import ColourPipeline
from .mattes import Guide, MatteWriter, plate_guide, read_alpha, read_matte
from .model import resolve_device
from .plate import FILESEQ_ERRORS, Plate, Window, crop_to_display, open_plate
from .render import select_frames
from .temporal import Motion, TemporalSmoother

#: Matte files `rotobridge refine` reads.
INPUT_EXTENSIONS = (".exr", ".png")
#: The name of the one object of a matte that is not rotobridge's.
DEFAULT_NAME = "matte"


@dataclass(frozen=True)
class Source:
    """The matte sequence to refine: its files, windows and objects (id, name, input channel)."""

    sequence: FileSequence
    display: Window
    data: Window
    objects: tuple[tuple[int, str, str | None], ...]

    def planes(self, frame: int) -> list[np.ndarray]:
        """Each object's (display height, display width) float32 matte at a frame."""
        path = self.sequence.frame(frame)
        found: dict[str | None, np.ndarray]
        try:
            if self.objects[0][2] is None:
                pixels, data, _ = read_alpha(path)
                found = {None: pixels}
            else:
                channels, header = read_matte(path)
                found = {name: plane for name, plane in channels.items()}
                window = header["data_window"]
                assert isinstance(window, Window)
                data = window
        except (OSError, OutputError) as exc:
            raise RecipeError("MATTES", f"cannot read {path}: {exc}") from None
        out = []
        for _, name, channel in self.objects:
            if channel not in found:
                raise RecipeError("MATTES", f"{path} has no channel {channel} (object {name})")
            out.append(crop_to_display(found[channel][..., None], data, self.display)[..., 0])
        return out


def input_sequence(pattern: str) -> FileSequence:
    """The matte sequence to read: EXR or PNG with a frame placeholder, else RecipeError."""
    if not pattern.lower().endswith(INPUT_EXTENSIONS):
        raise RecipeError("MATTES", f"mattes to refine must be EXR or PNG: {pattern}")
    try:
        sequence = FileSequence(pattern, pad_style=PAD_STYLE_HASH1)
    except FILESEQ_ERRORS as exc:
        raise RecipeError("MATTES", f"{pattern} is not a sequence pattern: {exc}") from None
    if not sequence.padding():
        raise RecipeError("MATTES", f"{pattern} has no frame number placeholder (####, %04d, @ or $F4)")
    return sequence


def open_source(pattern: str, frames: Sequence[int], name: str) -> Source:
    """The input sequence, its first frame's windows and objects; every frame's file must exist."""
    sequence = input_sequence(pattern)
    missing = [f for f in frames if not os.path.isfile(sequence.frame(f))]
    if missing:
        raise RecipeError("MATTES", f"frame {missing[0]} has no matte: {sequence.frame(missing[0])}")
    first = sequence.frame(frames[0])
    try:
        _, data, display = read_alpha(first)
        described = read_matte(first)[1].get("rotobridge:objects") if first.lower().endswith(".exr") else None
    except (OSError, OutputError) as exc:
        raise RecipeError("MATTES", f"cannot read {first}: {exc}") from None
    objects: tuple[tuple[int, str, str | None], ...]
    if described:
        objects = tuple((int(o["id"]), str(o["name"]), str(o["channel"])) for o in json.loads(str(described)))
    else:
        try:
            recipes.parse_part("object", {"id": 0, "name": name}, "")
        except RecipeError as exc:
            raise RecipeError("--name", str(exc).removeprefix("name: ")) from None
        objects = ((0, name, None),)
    return Source(sequence, display, data, objects)


def parse_controls(path: str | None, flags: dict[str, object]) -> MatteControls:
    """Controls from a JSON file (a recipe's `objects[].matte` block), flags overriding it;
    RecipeError naming the field."""
    data: dict[str, object] = {}
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except OSError as exc:
            raise RecipeError("--controls", f"cannot read {path}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise RecipeError("--controls", f"{path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise RecipeError("--controls", f"{path} must hold a JSON object of matte controls")
    merged = {**data, **{k: v for k, v in flags.items() if v is not None}}
    return matte_controls.parse(merged, "controls")


@dataclass
class Job:
    """A checked `rotobridge refine`: ready to write."""

    plate: Plate
    source: Source
    writer: MatteWriter
    frames: list[int]
    controls: MatteControls
    guide: Guide | None
    device: torch.device

    def run(self, progress: Callable[[int, int], None] | None = None) -> list[str]:
        """Refine and write each frame's mattes; `progress(frame, done)` after each file.

        With smoothing, each object has one TemporalSmoother over each run of consecutive
        plate frames among those given, guided by the plate: a frame is written once RADIUS
        more are read, the last ones of a run when it ends (a frame `--frames` skips is no
        neighbour: what lies across a gap is not smoothed with)."""
        source, height, width = self.source, self.source.display.height, self.source.display.width
        controls = self.controls
        motion = Motion()  # one plate: the objects' smoothers share its flows
        smoothers = [TemporalSmoother(controls.smoothing, motion) for _ in source.objects] if controls.smoothing > 0 else []
        written: list[str] = []

        def write(frame: int, mattes: Sequence[torch.Tensor]) -> None:
            pixels = np.zeros((source.data.height, source.data.width, len(source.objects)), np.float16)
            for i, matte in enumerate(mattes):
                self.writer.place(pixels, i, refine.finish(matte, controls))
            written.append(self.writer.write_pixels(frame, pixels))
            if progress:
                progress(frame, len(written))

        def release(done: list[list[tuple[int, torch.Tensor]]]) -> None:
            for k, (frame, _) in enumerate(done[0]):  # every object's smoother releases the same frames
                write(frame, [out[k][1] for out in done])

        place = {f: i for i, f in enumerate(self.plate.info.frames)}
        previous: int | None = None
        with torch.inference_mode():
            for frame in self.frames:
                if smoothers and previous is not None and place[frame] != place[previous] + 1:
                    release([s.flush() for s in smoothers])
                previous = frame
                guide = self.guide(frame).to(self.device) if self.guide is not None else None
                edges = [
                    refine.matte_edges(torch.from_numpy(plane).to(self.device).view(1, 1, height, width), guide, controls)
                    for plane in source.planes(frame)
                ]
                if smoothers:
                    release([s.push(frame, e, guide) for s, e in zip(smoothers, edges)])
                else:
                    write(frame, edges)
            if smoothers:
                release([s.flush() for s in smoothers])
        return written

    def close(self) -> None:
        self.plate.close()


def prepare(
    mattes: str,
    plate: str,
    colourspace: str,
    out: str,
    controls: MatteControls,
    *,
    frames: str | None = None,
    config: str | None = None,
    display: str | None = None,
    view: str | None = None,
    name: str = DEFAULT_NAME,
    overwrite: bool = False,
    device: str = "auto",
) -> Job:
    """Everything that can fail cheaply, checked before the first write: device, plate,
    colour, input files and sizes, mattes that exist (unless `overwrite`) or are the input."""
    target = resolve_device(device)
    opened = open_plate(plate)
    try:
        selected = select_frames(opened.info.frames, frames)
        colour = ColourPipeline(colourspace, config=config, display=display, view=view)
        source = open_source(mattes, selected, name)
        size = (opened.info.display.width, opened.info.display.height)
        if (source.display.width, source.display.height) != size:
            raise RecipeError(
                "MATTES", f"the mattes are {source.display.width}x{source.display.height}, the plate {size[0]}x{size[1]}"
            )
        writer = MatteWriter(
            out, source.display, source.data, [(i, n) for i, n, _ in source.objects],
            overwrite=overwrite, data_colourspace=colour.data_colourspace,
            metadata={
                "rotobridge:version": __version__,
                "rotobridge:refined_from": mattes,
                "rotobridge:controls": json.dumps(controls.to_json(), sort_keys=True),
                "rotobridge:plate": plate,
                "rotobridge:plate_colourspace": colour.colourspace,
            },
        )
        own = next((f for f in selected if _same_file(writer.path(f), source.sequence.frame(f))), None)
        if own is not None:
            raise RecipeError("--out", f"{writer.path(own)} is the input matte: write the refined mattes elsewhere")
        writer.check(selected)
        guide = plate_guide(opened, colour) if controls.refine > 0 or controls.smoothing > 0 else None
    except BaseException:
        opened.close()
        raise
    return Job(opened, source, writer, selected, controls, guide, target)


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)
