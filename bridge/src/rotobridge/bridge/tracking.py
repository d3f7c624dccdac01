"""Tracking a recipe's prompts through a plate and writing each frame's mattes.

The one loop both ways of making mattes run: `rotobridge render` (render.py) drives it to
the end; an interactive session (session.py) steps it one frame at a time on the device
worker, between other artists' clicks. Matte upsampling and EXR writing run in worker
threads, overlapping the model's work on the next frame.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generator, Sequence

import torch

from rotobridge import recipe as recipes
from rotobridge.errors import CancelledError
from rotobridge.version import __version__

from . import model as models
from .colour import ColourPipeline
from .engine import Engine
from .mattes import MatteWriter
from .plate import PlateInfo

#: Frames whose mattes may be waiting to be written at once; bounds memory at 4K.
MAX_PENDING_WRITES = 3


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
    recipe: recipes.Recipe,
    info: PlateInfo,
    colour: ColourPipeline,
    loaded: models.LoadedModel,
    *,
    overwrite: bool,
    roots: Sequence[str] = (),
) -> MatteWriter:
    """The writer of a recipe's mattes, with the metadata that says how they were made; with
    `roots`, every matte must really land inside them."""
    return MatteWriter(
        recipe.resolve(recipe.output.path),
        info.display,
        info.data,
        [(o.id, o.name) for o in recipe.objects],
        compression=recipe.output.compression,
        binary=recipe.output.binary,
        overwrite=overwrite or recipe.output.overwrite,
        data_colourspace=colour.data_colourspace,
        roots=roots,
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
    runs at most one object's model pass of one frame of propagation, then yields the writes
    finished since the last step, oldest first (often none). Frames no pass reaches get empty mattes at the end.
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
            for out in engine.propagate_steps(start, end, cancel=cancel):
                if out is None:  # between two objects of a frame: a point where other work may run
                    yield finished(MAX_PENDING_WRITES)
                    continue
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
