"""Tracking a recipe's prompts through a plate and writing each frame's mattes.

The one loop both ways of making mattes run: `rotobridge render` (render.py) drives it to
the end; an interactive session (session.py) steps it one frame at a time on the device
worker, between other artists' clicks. EXR writing runs in a pool of worker threads sized
from the cores (sizing.py), overlapping the model's work on the next frame. Matte
upsampling runs where the logits are: on a GPU, in this loop on the device (only half
mattes cross to the host); on a CPU, in the writers, in parallel with the model.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
import logging
from dataclasses import dataclass, field
from typing import Callable, Collection, Generator, NamedTuple, Sequence

import torch

from rotobridge import recipe as recipes
from rotobridge.errors import CancelledError
from rotobridge.version import __version__

from . import model as models
from .checkpoint import Checkpoint, Checkpoints, PassKey
from .colour import ColourPipeline
from .engine import Engine, FrameResult
from .mattes import MatteWriter, plate_guide
from .plate import Plate, PlateInfo
from .smoothing import Smoothing
from .temporal import RADIUS

log = logging.getLogger(__name__)

#: Frames whose mattes may be waiting to be written at once, beyond one per writer; bounds memory at 4K.
MAX_PENDING_WRITES = 3


class Pass(NamedTuple):
    """One propagation pass from `start` to `end` inclusive; `reverse` says the direction,
    which start and end cannot when they are the same frame."""

    start: int
    end: int
    reverse: bool


def passes(
    recipe: recipes.Recipe,
    frames: Sequence[int],
    plate_frames: Sequence[int] | None = None,
    reach: int = 0,
    margin: int = 0,
) -> list[Pass]:
    """The propagation passes that cover `frames`, in order.

    Forward starts at the first prompted frame and backward at the last, unless the recipe
    names a start; "both" runs forward then backward from the same start, as SAM 2's demo.
    In "both", a backward pass is left out when it would only revisit its start. The backward half of
    "both" reads the memory of the forward frames within `reach` of the start, so with
    `plate_frames` the forward pass goes at least that far (or to the plate's end): a
    subset of frames (a farm chunk) then gets the mattes a whole-shot render gives. For the
    same reason, with `plate_frames` each pass goes `margin` frames past the last of
    `frames` it reaches (temporal smoothing's RADIUS: the neighbours a chunk's last frames
    are smoothed with).
    """
    direction = recipe.propagate.direction
    prompted = recipe.prompt_frames()
    start = recipe.propagate.start
    if start is None:
        start = prompted[-1] if direction == "backward" else prompted[0]
    # "both" leaves the start to the forward pass; backward-only tracks it too
    backward = (direction == "both" and min(frames) < start) or (direction == "backward" and min(frames) <= start)
    out = []
    if direction in ("both", "forward") and (max(frames) >= start or (backward and plate_frames)):
        end = _beyond(plate_frames, max(max(frames), start), margin)
        if direction == "both" and backward and plate_frames:
            at = list(plate_frames).index(start)
            end = max(end, plate_frames[min(at + reach, len(plate_frames) - 1)])
        out.append(Pass(start, end, reverse=False))
    if backward:
        out.append(Pass(start, _beyond(plate_frames, min(frames), -margin), reverse=True))
    return out


def _beyond(plate_frames: Sequence[int] | None, frame: int, margin: int) -> int:
    """The plate frame `margin` frames after `frame` (before, when negative), within the plate."""
    if not margin or not plate_frames:
        return frame
    at = list(plate_frames).index(frame) + margin
    return plate_frames[min(max(at, 0), len(plate_frames) - 1)]


def matte_writer(
    recipe: recipes.Recipe,
    info: PlateInfo,
    colour: ColourPipeline,
    loaded: models.LoadedModel,
    *,
    overwrite: bool,
    roots: Sequence[str] = (),
    plate: Plate | None = None,
) -> MatteWriter:
    """The writer of a recipe's mattes, with the metadata that says how they were made; with
    `roots`, every matte must really land inside them. Objects' matte controls and the
    output's extra layers come from the recipe; `plate` (opened as `info` describes) is the
    guide of edge refinement, needed when an object's controls refine."""
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
        controls=[o.matte for o in recipe.objects],
        layers=recipe.output.layers,
        guide=plate_guide(plate, colour) if plate is not None else None,
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


@dataclass
class Tracked:
    """What a `write_mattes` run did besides writing: for logs and the farm's accounting."""

    #: frames the model tracked (conditioning frames included), over all passes
    frames: int = 0
    #: (direction, first frame tracked) of each pass continued from a checkpoint
    resumed: list[tuple[str, int]] = field(default_factory=list)


def _resume_point(
    engine: Engine,
    checkpoints: Checkpoints,
    passes: Sequence[Pass],
    frames: Sequence[int],
    on_disk: set[int],
) -> tuple[int, Checkpoint | None]:
    """The latest pass with a usable checkpoint and that checkpoint, else (0, None).

    Usable: every wanted frame tracked before it (this pass up to its frame, earlier passes
    whole) has its matte on disk, except those its tail re-makes (`_remade`); tracking then
    continues after its frame.
    """
    for start, _, reverse in passes:  # a render killed while saving one left its temporary file
        checkpoints.remove_stale_temporaries(checkpoints.key(start, reverse))
    for index in reversed(range(len(passes))):
        start, end, reverse = passes[index]
        checkpoint = checkpoints.load(checkpoints.key(start, reverse), engine.model.device)
        if checkpoint is None:
            continue
        covered = {f for s, e, _ in passes[:index] for f in frames if min(s, e) <= f <= max(s, e)}
        c = checkpoint.frame
        covered |= {f for f in frames if (c <= f <= start if reverse else start <= f <= c)}
        missing = sorted(covered - on_disk - _remade(checkpoint))
        if missing:
            log.info(
                "not resuming the %s pass from its checkpoint at frame %d: frame %d before it has no matte",
                checkpoint.key.direction, c, missing[0],
            )
            continue
        return index, checkpoint
    return 0, None


def _remade(checkpoint: Checkpoint) -> set[int]:
    """The frames a checkpoint's tail can re-make as an uninterrupted run writes them: those
    with their RADIUS neighbours before them in the tail (all of it when the pass starts
    in it: it is 2·RADIUS frames long otherwise). Exactly the frames the smoother may
    still have held back when it was saved."""
    frames = [f for f, _ in checkpoint.tail]
    return set(frames[-RADIUS:] if len(frames) >= 2 * RADIUS else frames)


def _pass_frames(engine: Engine, start: int, end: int, reverse: bool) -> list[int]:
    """The plate frames a pass visits, in its order."""
    a, b = sorted((engine.index(start), engine.index(end)))
    frames = list(engine.frames[a : b + 1])
    return frames[::-1] if reverse else frames


def _near(order: Sequence[int], to_write: Collection[int]) -> set[int]:
    """The frames of a pass within RADIUS of one to write: all the smoother needs to see."""
    at = [i for i, f in enumerate(order) if f in to_write]
    return {order[j] for i in at for j in range(max(0, i - RADIUS), min(len(order), i + RADIUS + 1))}


def write_mattes(
    engine: Engine,
    writer: MatteWriter,
    objects: Sequence[int],
    passes: Sequence[Pass],
    frames: Sequence[int],
    *,
    cancel: threading.Event | None = None,
    checkpoints: Checkpoints | None = None,
    on_disk: Collection[int] = (),
    tracked: Tracked | None = None,
    on_tracked: Callable[[FrameResult], None] | None = None,
) -> Generator[list[Written], None, None]:
    """Propagate `passes` and write each of `frames` once, upsampling and writing in the background.

    A generator so that a caller can interleave other model work between frames: each step
    runs at most one object's model pass of one frame of propagation, then yields the writes
    finished since the last step, oldest first (often none). Frames no pass reaches get empty mattes at the end.
    `objects` are engine object ids in the writer's channel order. At most
    MAX_PENDING_WRITES frames (or one more than the writers) wait to be written, which bounds memory at 4K. On
    cancellation the writes under way finish (each is atomic) and are yielded before
    CancelledError propagates.

    With `checkpoints`, tracking continues from the latest usable checkpoint, frames in
    `on_disk` (whole mattes of this recipe and model) are not written again, and a
    checkpoint is saved every `checkpoints.every` frames, at the last wanted frame of each
    pass and on cancellation — each after the mattes before it are on disk, so a
    checkpoint never claims a frame that is not. `on_tracked` sees every tracked frame's
    logits (a session keeps them to re-preview without tracking).

    Objects whose controls smooth (`MatteWriter.smoothed`) go through smoothing.py: a pass's
    frames within RADIUS of one to write are pushed in its order, and a frame's write
    finishes once RADIUS more are pushed or the pass ends. A checkpoint then waits only for
    the frames not held back and keeps the logits of the pass's last 2·RADIUS frames
    (checkpoint.py), which a resumed run pushes again before tracking on, so it ends
    bit-identical to an uninterrupted run. On cancellation the frames held back are, like
    writes not yet started, not written: with checkpoints the resumed run makes them.
    """
    wanted = set(frames)
    done: set[int] = set(on_disk)
    tracked = tracked if tracked is not None else Tracked()
    writers = engine.sizing.writers
    pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="rotobridge-write")
    pending: deque[tuple[int, bool, Future[str]]] = deque()
    smoothing = Smoothing(writer, pool) if writer.smoothed else None
    # a write the smoother holds back waits for RADIUS more frames: more may be pending
    most = max(MAX_PENDING_WRITES, writers + 1, RADIUS + 1)

    def finished(limit: int) -> list[Written]:
        """Finished writes, oldest first, after waiting until at most `limit` are pending."""
        out = []
        while pending and (len(pending) > limit or pending[0][2].done()):
            frame, tracked_frame, future = pending.popleft()
            out.append(Written(frame, future.result(), tracked_frame))
        return out

    def held() -> int:
        """Pending writes of frames the smoother holds back (the newest): a wait must leave them."""
        frames = set(smoothing.held()) if smoothing is not None else set()
        return sum(1 for frame, _, _ in pending if frame in frames)

    def submit(frame: int, logits: torch.Tensor | None) -> list[Written]:
        ready = finished(most - 1)
        if logits is not None and logits.device.type != "cpu" and writer.raw:
            planes = writer.planes(logits).to("cpu")  # upsampled on the device: half crosses
            future = pool.submit(writer.write_planes, frame, planes)
        else:
            future = pool.submit(writer.write, frame, logits)
        pending.append((frame, logits is not None, future))
        return ready

    first, resume = 0, None
    if checkpoints is not None:
        first, resume = _resume_point(engine, checkpoints, passes, frames, set(on_disk))
        if resume is not None:
            engine.restore(resume.state)
    saving: tuple[PassKey, int] | None = None  # the pass's key and the last frame tracked, to save on cancel
    tail: deque[tuple[int, torch.Tensor]] = deque(maxlen=2 * RADIUS if smoothing is not None else 0)
    order: dict[int, int] = {}  # the pass's frames → their place in it
    sequence: list[int] = []
    near: set[int] = set()

    def take(frame: int, logits: torch.Tensor) -> list[Written]:
        """A frame of the pass tracked (or re-made from a checkpoint's tail): written if wanted."""
        write = frame in wanted and frame not in done
        if write:
            done.add(frame)
        tail.append((frame, logits))
        if smoothing is None or frame not in near:
            return submit(frame, logits) if write else []
        ready = finished(most - 1) if write else []
        at = order[frame]
        future = smoothing.push(frame, logits, write=write, after=sequence[at - 1] if at > 0 else None)
        if future is not None:
            pending.append((frame, True, future))
        return ready

    try:
        for index in range(first, len(passes)):
            start, end, reverse = passes[index]
            begin = None
            key = checkpoints.key(start, reverse) if checkpoints is not None else None
            in_pass = [f for f in frames if min(start, end) <= f <= max(start, end)]
            last_wanted = (min(in_pass) if reverse else max(in_pass)) if in_pass else None
            tail.clear()
            if smoothing is not None:
                sequence = _pass_frames(engine, start, end, reverse)
                order = {f: i for i, f in enumerate(sequence)}
                near = _near(sequence, [f for f in sequence if f in wanted and f not in done])
            if resume is not None and index == first:
                for frame, logits in resume.tail:  # the frames the smoother held back, with their neighbours
                    yield take(frame, logits)
                c = resume.frame
                begin = engine.next_frame(c, reverse)
                if begin is not None and (begin < end if reverse else begin > end):
                    begin = None
                if begin is None:
                    log.info("%s pass: its checkpoint at frame %d covers it; nothing to track", key.direction if key else "", c)
                    if smoothing is not None:
                        smoothing.flush()
                    continue
                log.info("resuming the %s pass from frame %d (checkpoint at frame %d)", key.direction if key else "", begin, c)
                tracked.resumed.append((key.direction if key else "", begin))
            since = 0
            for out in engine.propagate_steps(start, end, cancel=cancel, begin=begin, reverse=reverse):
                if out is None:  # between two objects of a frame: a point where other work may run
                    yield finished(most)
                    continue
                tracked.frames += 1
                if on_tracked is not None:
                    on_tracked(out)
                since += 1
                ready = []
                if (out.frame in wanted and out.frame not in done) or smoothing is not None:
                    rows = [out.obj_ids.index(oid) for oid in objects]
                    ready = take(out.frame, out.logits[rows].detach())
                if checkpoints is not None and key is not None and last_wanted is not None:
                    before = out.frame > last_wanted if reverse else out.frame < last_wanted
                    if out.frame == last_wanted or (before and since >= checkpoints.every):
                        ready += finished(held())
                        checkpoints.save(key, out.frame, engine.snapshot(), tail)
                        since = 0
                    saving = (key, out.frame) if before or out.frame == last_wanted else None
                yield ready + finished(most)
            if smoothing is not None:
                smoothing.flush()
        for frame in frames:
            if frame not in done:
                yield submit(frame, None)
        yield finished(0)
    except CancelledError:
        if checkpoints is not None and saving is not None:  # the writes under way finish, then the state is saved
            written = finished(held())
            checkpoints.save(saving[0], saving[1], engine.snapshot(), tail)
            log.info("saved the tracking checkpoint at frame %d", saving[1])
            yield written
            raise
        for _, _, future in pending:
            future.cancel()
        yield [Written(frame, future.result(), tracked_frame) for frame, tracked_frame, future in pending if not future.cancelled()]
        pending.clear()
        raise
    finally:  # writes under way finish (each is atomic); those not started are dropped
        for _, _, future in pending:
            future.cancel()
        if smoothing is not None:
            smoothing.close()
        pool.shutdown(wait=True)
