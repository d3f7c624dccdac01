"""Running a recipe: plate → colour → SAM 2 → EXR mattes, with no host.

Everything that can be checked is checked before the model loads or a file is written
(recipe, plate frames, colourspaces, prompts inside the image, existing mattes), so a bad
job fails in seconds and leaves nothing behind. Matte upsampling and EXR writing run in
worker threads, overlapping the model's work on the next frame. `write_mattes` is that
loop, shared with the bridge server, which steps it one frame at a time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Generator, Sequence

import fileseq
import numpy as np
import OpenImageIO as oiio
import torch

from rotobridge import recipe as recipes
from rotobridge.errors import CancelledError, RecipeError
from rotobridge.version import __version__

from . import model as models
from .colour import ColourPipeline
from .engine import Engine
from .mattes import MatteWriter
from .plate import Plate, PlateInfo, open_plate

log = logging.getLogger(__name__)

#: Frames whose mattes may be waiting to be written at once; bounds memory at 4K.
MAX_PENDING_WRITES = 3

Progress = Callable[[int, str], None]


@dataclass
class RenderResult:
    requested: list[int]
    written: dict[int, str] = field(default_factory=dict)
    untracked: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return len(self.written) == len(self.requested)


@dataclass
class Job:
    """A validated recipe bound to its plate, colour and output: ready to run."""

    recipe: recipes.Recipe
    plate: Plate
    colour: ColourPipeline
    frames: list[int]
    masks: dict[tuple[int, int], np.ndarray]

    def close(self) -> None:
        self.plate.close()


def _select_frames(plate_frames: Sequence[int], frames: str | None) -> list[int]:
    if frames is None:
        return list(plate_frames)
    try:
        wanted = list(fileseq.FrameSet(frames))
    except fileseq.ParseException:
        raise RecipeError("--frames", f"{frames!r} is not a frame range such as '1001-1100'") from None
    outside = [f for f in wanted if f not in set(plate_frames)]
    if outside:
        raise RecipeError("--frames", f"frame {outside[0]} is outside the plate's frames {plate_frames[0]}-{plate_frames[-1]}")
    return wanted


def _read_mask(path: str, width: int, height: int, where: str) -> np.ndarray:
    """A mask prompt file: its alpha (or only) channel, > 0.5, the plate's display size."""
    image = oiio.ImageInput.open(path)
    if image is None:
        raise RecipeError(where, f"cannot read mask {path}: {oiio.geterror()}")
    try:
        spec = image.spec()
        channel = spec.alpha_channel if spec.alpha_channel >= 0 else 0
        pixels = image.read_image(0, 0, channel, channel + 1, oiio.FLOAT)
    finally:
        image.close()
    if pixels is None or pixels.shape[:2] != (height, width):
        raise RecipeError(where, f"mask {path} must be {width}x{height} like the plate's display window")
    return pixels[:, :, 0] > 0.5


def prepare(recipe: recipes.Recipe, *, frames: str | None = None) -> Job:
    """Everything a render needs that can fail cheaply, checked up front."""
    p = recipe.plate
    plate = open_plate(recipe.resolve(p.path), p.frames, layer=p.layer, part=p.part, first_frame=p.first_frame)
    try:
        display = plate.info.display
        recipes.check_against_plate(recipe, display.width, display.height, plate.info.frames)
        selected = _select_frames(plate.info.frames, frames)
        c = recipe.colour
        colour = ColourPipeline(p.colourspace, config=recipe.resolve(c.config) if c.config else None, display=c.display, view=c.view)
        masks = {
            (obj.id, prompt.frame): _read_mask(
                recipe.resolve(prompt.mask), display.width, display.height, f"objects[{i}].prompts[{j}].mask"
            )
            for i, obj in enumerate(recipe.objects)
            for j, prompt in enumerate(obj.prompts)
            if prompt.mask
        }
    except BaseException:
        plate.close()
        raise
    return Job(recipe, plate, colour, selected, masks)


def passes(recipe: recipes.Recipe, frames: Sequence[int]) -> list[tuple[int, int]]:
    """The (start, end) propagation passes that cover `frames`, in order.

    Forward starts at the first prompted frame and backward at the last, unless the recipe
    names a start; "both" runs forward then backward from the same start, as SAM 2's demo.
    """
    direction = recipe.propagate.direction
    prompted = recipe.prompt_frames()
    start = recipe.propagate.start
    if start is None:
        start = prompted[-1] if direction == "backward" else prompted[0]
    out = []
    if direction in ("both", "forward") and max(frames) >= start:
        out.append((start, max(frames)))
    if direction in ("both", "backward") and min(frames) <= start:
        out.append((start, min(frames)))
    return out


def matte_writer(
    recipe: recipes.Recipe, info: PlateInfo, colour: ColourPipeline, loaded: models.LoadedModel, *, overwrite: bool
) -> MatteWriter:
    """The writer of a recipe's mattes, with the metadata that says how they were made."""
    return MatteWriter(
        recipe.resolve(recipe.output.path),
        info.display,
        info.data,
        [(o.id, o.name) for o in recipe.objects],
        compression=recipe.output.compression,
        binary=recipe.output.binary,
        overwrite=overwrite or recipe.output.overwrite,
        data_colourspace=colour.data_colourspace,
        metadata={
            "rotobridge:version": __version__,
            "rotobridge:model": loaded.name,
            "rotobridge:config": loaded.config,
            "rotobridge:checkpoint_sha256": loaded.sha256,
            "rotobridge:untrained": "true" if loaded.untrained else "false",
            "rotobridge:recipe_sha256": recipe.sha256(),
            "rotobridge:plate": info.path,
            "rotobridge:plate_colourspace": colour.colourspace,
        },
    )


@dataclass(frozen=True)
class Written:
    """A matte file on disk under its final name."""

    frame: int
    path: str
    #: False when no propagation pass reached the frame: its mattes are empty
    tracked: bool


def write_mattes(
    engine: Engine,
    writer: MatteWriter,
    objects: Sequence[int],
    passes: Sequence[tuple[int, int]],
    frames: Sequence[int],
    *,
    cancel: threading.Event | None = None,
) -> Generator[list[Written], None, None]:
    """Propagate `passes` and write each of `frames` once, upsampling and writing in the background.

    A generator so that a caller can interleave other model work between frames: each step
    runs at most one frame of propagation, then yields the writes finished since the last
    step, oldest first (often none). Frames no pass reaches get empty mattes at the end.
    `objects` are engine object ids in the writer's channel order. At most
    MAX_PENDING_WRITES frames wait to be written, which bounds memory at 4K. On
    cancellation the writes under way finish (each is atomic) and are yielded before
    CancelledError propagates.
    """
    wanted = set(frames)
    done: set[int] = set()
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rotobridge-write")
    pending: deque[tuple[int, bool, Future[str]]] = deque()

    def finished(limit: int) -> list[Written]:
        """Finished writes, oldest first, after waiting until at most `limit` are pending."""
        out = []
        while pending and (len(pending) > limit or pending[0][2].done()):
            frame, tracked, future = pending.popleft()
            out.append(Written(frame, future.result(), tracked))
        return out

    def submit(frame: int, logits: torch.Tensor | None) -> list[Written]:
        ready = finished(MAX_PENDING_WRITES - 1)
        pending.append((frame, logits is not None, pool.submit(writer.write, frame, logits)))
        return ready

    try:
        for start, end in passes:
            for out in engine.propagate(start, end, cancel=cancel):
                ready = []
                if out.frame in wanted and out.frame not in done:
                    done.add(out.frame)
                    rows = [out.obj_ids.index(oid) for oid in objects]
                    ready = submit(out.frame, out.logits[rows].detach().to("cpu", torch.float32))
                yield ready + finished(MAX_PENDING_WRITES)
        for frame in frames:
            if frame not in done:
                yield submit(frame, None)
        yield finished(0)
    except CancelledError:
        for _, _, future in pending:
            future.cancel()
        yield [Written(frame, future.result(), tracked) for frame, tracked, future in pending if not future.cancelled()]
        pending.clear()
        raise
    finally:  # writes under way finish (each is atomic); those not started are dropped
        for _, _, future in pending:
            future.cancel()
        pool.shutdown(wait=True)


def run(
    job: Job,
    loaded: models.LoadedModel,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> RenderResult:
    recipe = job.recipe
    writer = matte_writer(recipe, job.plate.info, job.colour, loaded, overwrite=overwrite)
    writer.check(job.frames)
    result = RenderResult(requested=list(job.frames))
    started = time.monotonic()
    engine = Engine(loaded, job.plate, job.colour)
    objects = [o.id for o in recipe.objects]
    steps = write_mattes(engine, writer, objects, passes(recipe, job.frames), job.frames, cancel=cancel)
    try:
        for obj in recipe.objects:
            for prompt in obj.prompts:
                if prompt.mask:
                    engine.add_mask(prompt.frame, obj.id, job.masks[(obj.id, prompt.frame)])
                else:
                    engine.add_points(prompt.frame, obj.id, prompt.points, prompt.labels, prompt.box)
        for batch in steps:
            for written in batch:
                result.written[written.frame] = written.path
                if not written.tracked:
                    result.untracked.append(written.frame)
                if progress:
                    progress(written.frame, written.path)
    finally:
        steps.close()  # writes under way finish before the engine goes
        engine.close()
        result.seconds = time.monotonic() - started
    if result.untracked:
        log.warning(
            "%d frame(s) are not reached by %s propagation from the prompts (e.g. %d); their mattes are empty",
            len(result.untracked),
            recipe.propagate.direction,
            result.untracked[0],
        )
    return result


def render(
    recipe: recipes.Recipe,
    *,
    frames: str | None = None,
    device: str = "auto",
    overwrite: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> RenderResult:
    """Validate, load the model, propagate and write every requested frame's mattes."""
    job = prepare(recipe, frames=frames)
    try:
        loaded = models.from_recipe(recipe.model, recipe.resolve, device)
        return run(job, loaded, overwrite=overwrite, progress=progress, cancel=cancel)
    finally:
        job.close()

