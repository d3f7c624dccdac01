"""Running a recipe: plate → colour → SAM 2 → EXR mattes, with no host.

Everything that can be checked is checked before the model loads or a file is written
(recipe, plate frames, colourspaces, prompts inside the image, existing mattes), so a bad
job fails in seconds and leaves nothing behind. The tracking itself, with matte
upsampling and EXR writing in worker threads overlapping the model's work on the next
frame, is `tracking.write_mattes` (tracking.py), shared with the bridge's interactive sessions.

With `roots` (`rotobridge render --root`), a recipe is confined as a bridge's requests
are: plate frames (checked again as each is read), mask prompt files, the OCIO config and
the files it names, the model checkpoint and every matte must really lie inside them.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from fileseq.frameset import FrameSet

from rotobridge import recipe as recipes
from rotobridge.errors import RecipeError
from rotobridge.fields import frameset

from . import model as models
from . import tracking
from .colour import ColourPipeline
from .engine import Engine
from .mattes import read_alpha
from .plate import FILESEQ_ERRORS, Plate, open_plate
from .security import allowed_path

log = logging.getLogger(__name__)

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
    #: folders every file must really lie in (none: no limit)
    roots: tuple[str, ...] = ()

    def resolve(self, path: str, what: str) -> str:
        return _confined(self.recipe, self.roots, path, what)

    def close(self) -> None:
        self.plate.close()


def _confined(recipe: recipes.Recipe, roots: Sequence[str], path: str, what: str) -> str:
    """A recipe path made absolute and, with roots, its real path checked inside them (what to open)."""
    full = recipe.resolve(path)
    return allowed_path(full, roots, what) if roots else full


def _select_frames(plate_frames: Sequence[int], frames: str | None) -> list[int]:
    if frames is None:
        return list(plate_frames)
    try:
        frameset(frames, "--frames")  # refuses a huge range before fileseq builds it
        wanted = list(FrameSet(frames))
    except FILESEQ_ERRORS:
        raise RecipeError("--frames", f"{frames[:60]!r} is not a frame range such as '1001-1100'") from None
    outside = [f for f in wanted if f not in set(plate_frames)]
    if outside:
        raise RecipeError("--frames", f"frame {outside[0]} is outside the plate's frames {plate_frames[0]}-{plate_frames[-1]}")
    return [int(f) for f in wanted]  # each equals a plate frame: only the type changes


def _read_mask(path: str, width: int, height: int, where: str) -> np.ndarray:
    """A mask prompt file: its alpha (or only) channel, > 0.5, the plate's display size."""
    try:
        pixels, _, _ = read_alpha(path)
    except OSError as exc:
        raise RecipeError(where, f"cannot read mask {path}: {exc}") from None
    if pixels.shape != (height, width):
        raise RecipeError(where, f"mask {path} must be {width}x{height} like the plate's display window")
    return pixels > 0.5


def prepare(recipe: recipes.Recipe, *, frames: str | None = None, roots: Sequence[str] = ()) -> Job:
    """Everything a render needs that can fail cheaply, checked up front; `roots` confine every path."""
    p = recipe.plate
    _confined(recipe, roots, recipe.output.path, "output")
    if recipe.model.checkpoint:
        _confined(recipe, roots, recipe.model.checkpoint, "model.checkpoint")
    plate = open_plate(recipe.resolve(p.path), p.frames, layer=p.layer, part=p.part, first_frame=p.first_frame, roots=roots)
    try:
        display = plate.info.display
        recipes.check_against_plate(recipe, display.width, display.height, plate.info.frames)
        selected = _select_frames(plate.info.frames, frames)
        c = recipe.colour
        config = recipe.resolve(c.config) if c.config else None
        colour = ColourPipeline(p.colourspace, config=config, display=c.display, view=c.view, roots=roots)
        masks = {}
        for i, obj in enumerate(recipe.objects):
            for j, prompt in enumerate(obj.prompts):
                if prompt.mask:
                    field = f"objects[{i}].prompts[{j}].mask"
                    path = _confined(recipe, roots, prompt.mask, field)
                    masks[(obj.id, prompt.frame)] = _read_mask(path, display.width, display.height, field)
    except BaseException:
        plate.close()
        raise
    return Job(recipe, plate, colour, selected, masks, tuple(roots))


def run(
    job: Job,
    loaded: models.LoadedModel,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> RenderResult:
    recipe = job.recipe
    writer = tracking.matte_writer(recipe, job.plate.info, job.colour, loaded, overwrite=overwrite, roots=job.roots)
    writer.check(job.frames)
    result = RenderResult(requested=list(job.frames))
    started = time.monotonic()
    engine = Engine(loaded, job.plate, job.colour)
    objects = [o.id for o in recipe.objects]
    steps = tracking.write_mattes(engine, writer, objects, tracking.passes(recipe, job.frames), job.frames, cancel=cancel)
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
    roots: Sequence[str] = (),
) -> RenderResult:
    """Validate, load the model, propagate and write every requested frame's mattes."""
    job = prepare(recipe, frames=frames, roots=roots)
    try:
        loaded = models.from_recipe(recipe.model, lambda path: job.resolve(path, "model.checkpoint"), device)
        return run(job, loaded, overwrite=overwrite, progress=progress, cancel=cancel)
    finally:
        job.close()

