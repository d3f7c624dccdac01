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
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from fileseq.frameset import FrameSet

from rotobridge import recipe as recipes
from rotobridge.errors import MatteExistsError, RecipeError
from rotobridge.fields import frameset

from . import model as models
from . import tracking
from . import temporal
from .checkpoint import Checkpoints
from .colour import ColourPipeline
from .engine import Engine
from .atomic import remove_temporaries
from .mattes import MatteWriter, read_alpha
from .plate import FILESEQ_ERRORS, Plate, open_plate
from .security import allowed_path

log = logging.getLogger(__name__)

#: called per matte written: (frame, path, frames of the job now whole on disk, kept ones included)
Progress = Callable[[int, str, int], None]

#: Frames between tracking checkpoints (--resume): a kill loses at most this much tracking.
DEFAULT_CHECKPOINT_EVERY = 10


@dataclass
class RenderResult:
    requested: list[int]
    #: frames written by this run → their matte files
    written: dict[int, str] = field(default_factory=dict)
    #: frames whose whole mattes of the same recipe and model were already on disk (--resume)
    kept: list[int] = field(default_factory=list)
    untracked: list[int] = field(default_factory=list)
    tracked: tracking.Tracked = field(default_factory=tracking.Tracked)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return len(self.written) + len(self.kept) == len(self.requested)


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


def select_frames(plate_frames: Sequence[int], frames: str | None) -> list[int]:
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
        selected = select_frames(plate.info.frames, frames)
        c = recipe.colour
        config = recipe.resolve(c.config) if c.config else None
        colour = ColourPipeline(p.colourspace, config=config, display=c.display, view=c.view, roots=roots, exact=c.exact)
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


def _on_disk(job: Job, writer: MatteWriter, overwrite: bool) -> list[int]:
    """For --resume: the frames whose mattes are already whole on disk (same recipe and
    model), after removing temporary files killed writes left and mattes that do not read
    back; mattes made differently stay an error unless `overwrite`."""
    kept, other = [], []
    for frame in job.frames:
        path = writer.checked_path(frame)
        for name in remove_temporaries(path):
            log.info("removed a temporary file a stopped render left: %s", name)
        state = writer.existing(frame)
        if state == "whole":
            kept.append(frame)
        elif state == "damaged":
            log.warning("matte %s does not read back whole: rendering it again", path)
            os.remove(path)
        elif state == "other" and not overwrite:
            other.append(path)
    if other:
        raise MatteExistsError(other)
    return kept


def run(
    job: Job,
    loaded: models.LoadedModel,
    *,
    overwrite: bool = False,
    resume: bool = False,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> RenderResult:
    """Track and write the job's mattes. With `resume`, whole mattes already written by the
    same recipe and model are kept, tracking continues from the latest usable checkpoint,
    and checkpoints are saved every `checkpoint_every` frames (checkpoint.py)."""
    recipe = job.recipe
    writer = tracking.matte_writer(
        recipe, job.plate.info, job.colour, loaded, overwrite=overwrite, roots=job.roots, plate=job.plate
    )
    result = RenderResult(requested=list(job.frames))
    result.kept = _on_disk(job, writer, writer.overwrite) if resume else []
    writer.check([f for f in job.frames if f not in set(result.kept)])
    if result.kept:
        log.info("%d of %d frame(s) already have whole mattes of this recipe and model: kept", len(result.kept), len(job.frames))
    checkpoints = (
        Checkpoints(recipe.resolve(recipe.output.path), recipe.sha256(), loaded.sha256, every=checkpoint_every, roots=job.roots)
        if resume
        else None
    )
    started = time.monotonic()
    engine = Engine(loaded, job.plate, job.colour)
    objects = [o.id for o in recipe.objects]
    margin = temporal.RADIUS if writer.smoothed else 0  # a chunk's last frames are smoothed as a whole shot's
    passes = tracking.passes(recipe, job.frames, job.plate.info.frames, engine.memory_reach, margin)
    steps = tracking.write_mattes(
        engine, writer, objects, passes, job.frames,
        cancel=cancel, checkpoints=checkpoints, on_disk=result.kept, tracked=result.tracked,
    )
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
                    progress(written.frame, written.path, len(result.written) + len(result.kept))
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
    resume: bool = False,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    roots: Sequence[str] = (),
) -> RenderResult:
    """Validate, load the model, propagate and write every requested frame's mattes."""
    job = prepare(recipe, frames=frames, roots=roots)
    try:
        loaded = models.from_recipe(recipe.model, lambda path: job.resolve(path, "model.checkpoint"), device)
        return run(job, loaded, overwrite=overwrite, resume=resume, progress=progress, cancel=cancel)
    finally:
        job.close()

