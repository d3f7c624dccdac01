"""Running a recipe: plate → colour → SAM 2 → EXR mattes, with no host.

Everything that can be checked is checked before the model loads or a file is written
(recipe, plate frames, colourspaces, prompts inside the image, existing mattes), so a bad
job fails in seconds and leaves nothing behind. Matte upsampling and EXR writing run in
worker threads, overlapping the model's work on the next frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

import fileseq
import numpy as np
import OpenImageIO as oiio
import torch

from rotobridge import recipe as recipes
from rotobridge.errors import RecipeError
from rotobridge.version import __version__

from . import model as models
from .colour import ColourPipeline
from .engine import Engine
from .mattes import MatteWriter
from .plate import Plate, open_plate

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


def run(
    job: Job,
    loaded: models.LoadedModel,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> RenderResult:
    recipe = job.recipe
    info = job.plate.info
    objects = [(o.id, o.name) for o in recipe.objects]
    writer = MatteWriter(
        recipe.resolve(recipe.output.path),
        info.display,
        info.data,
        objects,
        compression=recipe.output.compression,
        binary=recipe.output.binary,
        overwrite=overwrite or recipe.output.overwrite,
        data_colourspace=job.colour.data_colourspace,
        metadata={
            "rotobridge:version": __version__,
            "rotobridge:model": loaded.name,
            "rotobridge:config": loaded.config,
            "rotobridge:checkpoint_sha256": loaded.sha256,
            "rotobridge:untrained": "true" if loaded.untrained else "false",
            "rotobridge:recipe_sha256": recipe.sha256(),
            "rotobridge:plate": info.path,
            "rotobridge:plate_colourspace": job.colour.colourspace,
        },
    )
    writer.check(job.frames)
    result = RenderResult(requested=list(job.frames))
    wanted = set(job.frames)
    started = time.monotonic()
    engine = Engine(loaded, job.plate, job.colour)
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rotobridge-write")
    pending: deque[tuple[int, Future[str]]] = deque()

    def finish_oldest() -> None:
        frame, future = pending.popleft()
        result.written[frame] = future.result()
        if progress:
            progress(frame, result.written[frame])

    def submit(frame: int, logits: torch.Tensor | None) -> None:
        while len(pending) >= MAX_PENDING_WRITES:
            finish_oldest()
        pending.append((frame, pool.submit(writer.write, frame, logits)))

    try:
        for obj in recipe.objects:
            for prompt in obj.prompts:
                if prompt.mask:
                    engine.add_mask(prompt.frame, obj.id, job.masks[(obj.id, prompt.frame)])
                else:
                    engine.add_points(prompt.frame, obj.id, prompt.points, prompt.labels, prompt.box)
        order = [oid for oid, _ in objects]
        done: set[int] = set()
        for start, end in passes(recipe, job.frames):
            for out in engine.propagate(start, end, cancel=cancel):
                if out.frame in wanted and out.frame not in done:
                    rows = [out.obj_ids.index(oid) for oid in order]
                    submit(out.frame, out.logits[rows].detach().to("cpu", torch.float32))
                    done.add(out.frame)
        result.untracked = [f for f in job.frames if f not in done]
        if result.untracked:
            log.warning(
                "%d frame(s) are not reached by %s propagation from the prompts (e.g. %d); "
                "their mattes are empty",
                len(result.untracked),
                recipe.propagate.direction,
                result.untracked[0],
            )
        for frame in result.untracked:
            submit(frame, None)
        while pending:
            finish_oldest()
    finally:
        # Let writes already under way finish (each is atomic), drop the ones not started.
        for _, future in pending:
            future.cancel()
        pool.shutdown(wait=True)
        engine.close()
        result.seconds = time.monotonic() - started
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

