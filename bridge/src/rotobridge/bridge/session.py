"""One shot's interactive state on the bridge: plate, colour, engine, objects and prompts.

A session is what an artist's panel drives: clicks become prompts (kept as recipe
prompts, so the session can always be exported as a recipe that `rotobridge render`
reproduces), previews are computed from the engine's logits, and a propagation is a
`PropagationJob` the device worker steps one object of one frame at a time, through the same
`tracking.write_mattes` loop a batch render uses. A session is built and changed only on
the device worker thread; the I/O thread only reads its owner, idle time and job, and marks
it `closed` the moment a `close` (or expiry) takes it off the bridge's list: every request
that has not started by then is answered `unknown_session`.

Every file a session reads or writes is held to the bridge's roots when it is used, not
only when the session opens: plate frames as they are read, matte folders as each matte is
written, the OCIO config and the files it names before OCIO opens them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from typing import Any, Callable, Generator, Mapping, Sequence

import torch

from rotobridge import protocol
from rotobridge import recipe as recipes
from rotobridge.errors import BusyError, CancelledError, ModelError, NotTrackedError, RecipeError, RotobridgeError
from rotobridge.protocol import Preview

from . import tracking
from .colour import ColourPipeline, config_file
from .engine import Engine, FrameResult
from .logs import internal_error
from .mattes import matte_sequence, upsample_logits
from .plate import FILESEQ_ERRORS
from .model import LoadedModel
from .plate import open_plate
from .security import allowed_path

log = logging.getLogger(__name__)

#: Longest side of a preview in pixels: small enough to send on every click.
PREVIEW_MAX = 512

Emit = Callable[[list[bytes]], None]


def preview_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of a plate's preview: at most PREVIEW_MAX on the long side, same aspect, never enlarged."""
    scale = min(1.0, PREVIEW_MAX / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def preview(result: FrameResult, width: int, height: int) -> Preview:
    """The protocol's preview of a frame: one uint8 plane per object.

    The low-resolution logits are resampled straight to the preview size (as the matte
    writer resamples them to the plate's) and turned into probabilities, 0-255.
    """
    w, h = preview_size(width, height)
    with torch.inference_mode():
        probability = torch.sigmoid(upsample_logits(result.logits, h, w)[:, 0])
        planes = torch.round(probability * 255).to(torch.uint8).cpu().numpy()
    return Preview(result.frame, w, h, tuple(result.obj_ids), tuple(plane.tobytes() for plane in planes))


def checked_shot(fields: Mapping[str, Any], roots: Sequence[str], loaded: LoadedModel, served: recipes.Model) -> recipes.Shot:
    """What `open` asks for, validated: recipe parts whose paths lie inside the allowed roots.

    Cheap checks, done before any file is opened: parts, model, paths.
    """
    shot = recipes.Shot.parse(fields)
    if fields.get("model") is not None:
        _check_model(recipes.parse_part("model", fields["model"], "model"), loaded, served)
    allowed_path(shot.plate.path, roots, "plate")
    allowed_path(shot.output.path, roots, "output")
    if shot.colour.config:
        config_file(shot.colour.config, roots)  # only the exact built-in names skip the roots
    try:
        matte_sequence(shot.output.path)
    except FILESEQ_ERRORS as exc:
        raise RecipeError("output.path", f"fileseq cannot read this matte pattern: {exc}") from None
    return shot


def _check_model(asked: recipes.Model, loaded: LoadedModel, served: recipes.Model) -> None:
    have = {"name": loaded.name, "config": loaded.config, "checkpoint": os.path.realpath(loaded.checkpoint)}
    want = {"name": asked.name, "config": asked.config, "checkpoint": asked.checkpoint and os.path.realpath(asked.checkpoint)}
    wrong = [key for key, value in want.items() if value is not None and value != have[key]]
    if asked.overrides and asked.overrides != served.overrides:
        wrong.append("overrides")
    if wrong:
        raise ModelError(
            f"model.{wrong[0]}: this bridge serves {loaded.name} ({loaded.config}, checkpoint {loaded.checkpoint}"
            f"{', overrides ' + ' '.join(served.overrides) if served.overrides else ''}); open without `model` "
            "or use a bridge that serves the model you asked for"
        )


class Session:
    """An opened shot; sessions are keyed by an unguessable id (the capability to use it)."""

    def __init__(self, session_id: str, shot: recipes.Shot, loaded: LoadedModel, served: recipes.Model, roots: Sequence[str]) -> None:
        self.id = session_id
        self.shot = shot
        self.loaded = loaded
        self.served = served
        self.roots = roots
        p = shot.plate
        self.plate = open_plate(p.path, p.frames, layer=p.layer, part=p.part, first_frame=p.first_frame, roots=roots)
        try:
            c = shot.colour
            self.colour = ColourPipeline(p.colourspace, config=c.config, display=c.display, view=c.view, roots=roots, exact=c.exact)
            self.engine = Engine(loaded, self.plate, self.colour)
        except BaseException:
            self.plate.close()
            raise
        self.width, self.height = self.plate.info.display.width, self.plate.info.display.height
        self.objects: dict[int, recipes.Object] = {}
        self.direction = "both"
        self.job: PropagationJob | None = None
        #: the client identity that last used the session: where replies and job events go
        self.owner = b""
        self.last_used = time.monotonic()
        #: set (by the I/O thread, under the server's lock) once the session left the bridge's list
        self.closed = False

    # --- read by the I/O thread ----------------------------------------------------

    @property
    def label(self) -> str:
        """The id's first characters, for logs and `status`: the whole id lets whoever knows it drive the session."""
        return self.id[:8]

    @property
    def running(self) -> PropagationJob | None:
        job = self.job
        return job if job is not None and not job.over else None

    def idle_seconds(self, now: float) -> float:
        """Seconds since the last request or the end of the last job; 0 while a job runs."""
        if self.running is not None:
            return 0.0
        ended = self.job.ended if self.job is not None else 0.0
        return max(0.0, now - max(self.last_used, ended))

    def touch(self, identity: bytes) -> None:
        self.owner = identity
        self.last_used = time.monotonic()

    def status(self, now: float) -> dict[str, Any]:
        job = self.running
        return {
            "session": self.label + "…",
            "plate": self.shot.plate.path,
            "idle_s": round(self.idle_seconds(now), 1),
            "objects": len(self.objects),
            "job": job.describe() if job is not None else None,
        }

    # --- device worker ---------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        frames = self.plate.info.frames
        job = self.running
        return {
            "session": self.id,
            "frames": [frames[0], frames[-1]],
            "width": self.width,
            "height": self.height,
            "model": recipes.part_dict(self.served),
            "objects": [recipes.part_dict(o) for o in self.objects.values()],
            "job": job.describe() if job is not None else None,
        }

    def _not_busy(self) -> None:
        job = self.running
        if job is not None:
            raise BusyError(
                f"the session is propagating (job {job.id}, {job.done}/{job.total} frames): cancel it or wait"
            )

    def prompt(self, obj: recipes.Object, prompt: recipes.Prompt) -> FrameResult:
        """Replace the object's clicks on the prompt's frame; every object's logits there."""
        self._not_busy()
        recipes.check_prompt(prompt, "", self.width, self.height, self.plate.info.frames, self.shot.plate.frames)
        clash = next((o.id for o in self.objects.values() if o.name == obj.name and o.id != obj.id), None)
        if clash is not None:
            raise RecipeError("object.name", f"{obj.name!r} is already the name of object {clash} in this session")
        if obj.id not in self.objects and len(self.objects) >= recipes.MAX_OBJECTS:
            raise RecipeError(
                "object.id", f"the session has {len(self.objects)} objects, at most {recipes.MAX_OBJECTS} are allowed: remove one first"
            )
        result = self.engine.add_points(prompt.frame, obj.id, prompt.points, prompt.labels, prompt.box)
        prompts = {p.frame: p for p in self.objects[obj.id].prompts} if obj.id in self.objects else {}
        prompts[prompt.frame] = prompt
        self.objects[obj.id] = dataclasses.replace(obj, prompts=tuple(prompts[f] for f in sorted(prompts)))
        return result

    def preview(self, frame: int) -> FrameResult:
        self.engine.index(frame)
        if frame not in self.engine.prompted_frames():
            raise NotTrackedError(f"frame {frame} holds no prompt: preview a frame you clicked on")
        return self.engine.logits_at(frame)

    def clear(self, object_id: int, frame: int) -> None:
        """Drop an object's clicks on a frame; an object left without clicks is removed (sam2 cannot track it)."""
        self._not_busy()
        self.engine.index(frame)
        obj = self.objects.get(object_id)
        if obj is None or frame not in {p.frame for p in obj.prompts}:
            return
        left = tuple(p for p in obj.prompts if p.frame != frame)
        if left:
            self.engine.clear_prompts(frame, object_id)
            self.objects[object_id] = dataclasses.replace(obj, prompts=left)
        else:
            self.remove(object_id)

    def remove(self, object_id: int) -> None:
        self._not_busy()
        if self.objects.pop(object_id, None) is not None:
            self.engine.remove_object(object_id)

    def recipe(self, *, check: bool = True) -> recipes.Recipe:
        """The session as a recipe: what `rotobridge render` needs to reproduce its mattes."""
        if check and not self.objects:
            raise RecipeError("objects", "the session has no prompts yet: click an object first")
        return recipes.Recipe(
            plate=self.shot.plate,
            colour=self.shot.colour,
            model=self.served,
            objects=tuple(self.objects.values()),
            output=self.shot.output,
            propagate=recipes.Propagate(direction=self.direction),
        )

    def propagate(self, request_id: str, start: int, end: int, direction: str, overwrite: bool, emit: Emit) -> PropagationJob:
        """Check everything a propagation needs (mattes that exist included) and return its job, not started."""
        self._not_busy()
        if direction not in recipes.DIRECTIONS:
            raise RecipeError("direction", f"must be one of {', '.join(recipes.DIRECTIONS)}, got {direction!r}")
        self.engine.index(start, "start")
        self.engine.index(end, "end")
        if end < start:
            raise RecipeError("end", f"frame {end} is before start {start}")
        if not self.objects:
            raise NotTrackedError("nothing to propagate: no object has a prompt yet")
        allowed_path(self.shot.output.path, self.roots, "output")  # the folder may have changed since open
        self.direction = direction
        recipe = self.recipe()
        frames = [f for f in self.plate.info.frames if start <= f <= end]
        writer = tracking.matte_writer(recipe, self.plate.info, self.colour, self.loaded, overwrite=overwrite, roots=self.roots)
        writer.check(frames)
        cancel = threading.Event()
        steps = tracking.write_mattes(self.engine, writer, list(self.objects), tracking.passes(recipe, frames), frames, cancel=cancel)
        self.job = PropagationJob(request_id, len(frames), steps, cancel, emit)
        return self.job

    def close(self) -> None:
        """Free everything: a running job stops (its writes under way finish), then the engine and plate."""
        job = self.running
        if job is not None:
            job.abort("the session was closed")
        self.engine.close()
        self.plate.close()


class PropagationJob:
    """A propagation the device worker steps one object of one frame at a time, emitting protocol events.

    `cancel` may be set from any thread; the job then stops before its next frame.
    """

    def __init__(
        self, request_id: str, total: int, steps: Generator[list[tracking.Written], None, None], cancel: threading.Event, emit: Emit
    ) -> None:
        self.id = request_id
        self.total = total
        self.done = 0
        self.cancel = cancel
        self.over = False
        self.ended = 0.0
        self._steps = steps
        self._emit = emit

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "done": self.done, "total": self.total}

    def step(self) -> bool:
        """One frame of propagation and the progress of writes that finished; False when over."""
        return self._advance(lambda: next(self._steps))

    def abort(self, why: str) -> None:
        """Stop now, from the device worker (the session is closing); writes under way finish and count."""
        self.cancel.set()
        stop = CancelledError(why)
        if self._advance(lambda: self._steps.throw(stop)):
            self._advance(lambda: next(self._steps))  # the cancellation, once the last writes are reported

    def _advance(self, step: Callable[[], list[tracking.Written]]) -> bool:
        if self.over:
            return False
        try:
            batch = step()
        except StopIteration:
            self._finish("done", None)
        except CancelledError as exc:
            self._finish("cancelled", exc)
        except RotobridgeError as exc:
            self._finish("failed", exc)
        except Exception:
            self._finish("failed", internal_error(log, "propagating", request=self.id))
        else:
            for written in batch:
                self.done += 1
                self._emit(protocol.event(self.id, "progress", frame=written.frame, path=written.path, done=self.done, total=self.total))
            return True
        return False

    def _finish(self, status: str, error: RotobridgeError | None) -> None:
        self.over = True
        self.ended = time.monotonic()
        self._emit(
            protocol.event(
                self.id,
                "finished",
                written=self.done,
                total=self.total,
                status=status,
                error=protocol.error_object(error) if error is not None else None,
            )
        )
