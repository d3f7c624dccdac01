"""One shot's interactive state on the bridge: plate, colour, engine, objects and prompts.

A session is what an artist's panel drives: clicks become prompts (kept as recipe
prompts, so the session can always be exported as a recipe that `rotobridge render`
reproduces), each object's matte controls are kept with it, previews are computed from
the engine's logits with those controls applied (a prompted frame's from sam2's state,
any other tracked frame's from the logits its propagation kept: a control change never
re-tracks), and a propagation is a
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

import numpy as np

import torch

from rotobridge import protocol
from rotobridge import recipe as recipes
from rotobridge.controls import MatteControls
from rotobridge.errors import BusyError, CancelledError, ModelError, NotTrackedError, RecipeError, RotobridgeError
from rotobridge.protocol import Preview

from . import refine, tracking
from .colour import ColourPipeline, config_file
from .engine import Engine, FrameResult
from .logitstore import LogitStore
from .logs import internal_error
from .mattes import matte_sequence, upsample_logits
from .plate import FILESEQ_ERRORS
from .model import LoadedModel
from .plate import open_plate
from .security import allowed_path

log = logging.getLogger(__name__)

#: Longest side of a preview in pixels: small enough to send on every click.
PREVIEW_MAX = 512
#: Bytes of tracked frames' logits one session keeps (docs/protocol.md, Previews): 8,192
#: frame-objects at sam2's 1024 input.
MAX_STORED_LOGITS = 1 << 30

Emit = Callable[[list[bytes]], None]


def preview_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of a plate's preview: at most PREVIEW_MAX on the long side, same aspect, never enlarged."""
    scale = min(1.0, PREVIEW_MAX / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def preview_controls(controls: MatteControls, scale: float) -> MatteControls:
    """An object's controls for a picture `scale` times the plate's size: pixel distances
    scaled, areas by the square; a set refine radius stays at least 1 pixel."""
    radius = max(1.0, controls.refine_radius * scale) if controls.refine_radius else 0.0
    return dataclasses.replace(
        controls,
        refine_radius=radius,
        despeckle=round(controls.despeckle * scale * scale),
        shrink_grow=controls.shrink_grow * scale,
        feather=controls.feather * scale,
    )


def preview(
    result: FrameResult,
    width: int,
    height: int,
    controls: Sequence[MatteControls | None] = (),
    guide: Callable[[int, int], torch.Tensor] | None = None,
) -> Preview:
    """The protocol's preview of a frame: one uint8 plane per object.

    An object without controls (`controls[i]` None or missing): its low-resolution logits
    resampled straight to the preview size (as the matte writer resamples them to the
    plate's), as probabilities 0-255. With controls: `refine.apply` at preview size, the
    controls scaled to it, guided by `guide(w, h)`, the display-referred plate at that
    size, (1, 3, h, w) in 0-1 (asked for once, only when some object refines).
    """
    w, h = preview_size(width, height)
    planes = []
    picture: torch.Tensor | None = None
    with torch.inference_mode():
        for row in range(len(result.obj_ids)):
            logits = result.logits[row : row + 1]
            c = controls[row] if row < len(controls) else None
            if c is None:
                matte = torch.sigmoid(upsample_logits(logits, h, w))
            else:
                if c.refine > 0 and picture is None:
                    if guide is None:
                        raise ValueError("a preview with edge refinement needs the plate as a guide")
                    picture = guide(w, h).to(logits.device)
                matte = refine.apply(logits.float(), picture, preview_controls(c, w / width), h, w)
            planes.append(torch.round(matte[0, 0] * 255).to(torch.uint8).cpu().numpy().tobytes())
    return Preview(result.frame, w, h, tuple(result.obj_ids), tuple(planes))


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
        #: every tracked frame's logits, so a control change re-previews without tracking
        self.kept = LogitStore(MAX_STORED_LOGITS)
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

    def previewed(self, result: FrameResult, objects: Mapping[int, recipes.Object] | None = None) -> Preview:
        """A frame's preview, each object's controls (those in `objects`, default the session's) applied."""
        objects = self.objects if objects is None else objects
        controls = [objects[oid].matte if oid in objects else None for oid in result.obj_ids]
        return preview(result, self.width, self.height, controls, lambda w, h: self.guide(result.frame, w, h))

    def guide(self, frame: int, width: int, height: int) -> torch.Tensor:
        """The plate's display-referred picture of `frame` at width x height: (1, 3, h, w), 0-1."""
        rgb = self.colour.display_rgb(self.plate.read(frame), width, height)
        return torch.from_numpy(rgb.astype(np.float32) / np.float32(255.0)).permute(2, 0, 1)[None].contiguous()

    def prompt(self, obj: recipes.Object, prompt: recipes.Prompt) -> Preview:
        """Replace the object's clicks on the prompt's frame; the frame's preview.

        An `obj` without controls keeps those the object has (a click does not reset them).
        """
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
        old = self.objects.get(obj.id)
        prompts = {p.frame: p for p in old.prompts} if old is not None else {}
        prompts[prompt.frame] = prompt
        matte = obj.matte if obj.matte is not None or old is None else old.matte
        self.objects[obj.id] = dataclasses.replace(obj, prompts=tuple(prompts[f] for f in sorted(prompts)), matte=matte)
        self.kept.forget(obj.id)
        return self.previewed(result)

    def logits(self, frame: int) -> FrameResult:
        """Every object's logits on a frame: sam2's own on a prompted frame, else those the
        last propagation kept (objects without any are left out); NotTrackedError for none."""
        self.engine.index(frame)
        if frame in self.engine.prompted_frames():
            return self.engine.logits_at(frame)
        found = [(oid, self.kept.get(frame, oid)) for oid in self.engine.obj_ids]
        kept = [(oid, logits) for oid, logits in found if logits is not None]
        if not kept:
            raise NotTrackedError(f"frame {frame} holds no prompt and was not tracked: click on it or propagate first")
        return FrameResult(frame, tuple(oid for oid, _ in kept), torch.cat([logits for _, logits in kept]))

    def preview(self, frame: int) -> Preview:
        return self.previewed(self.logits(frame))

    def matte(self, object_id: int, controls: MatteControls | None, frame: int) -> Preview:
        """Set an object's matte controls (None: SAM 2's raw matte) and preview `frame` with
        them, from logits the session holds: never tracks. A refused object or frame number
        changes nothing; a frame without logits (NotTrackedError) is refused after the
        controls are set, so a panel's change reaches the session whatever frame it shows."""
        self._not_busy()
        obj = self.objects.get(object_id)
        if obj is None:
            raise RecipeError("object_id", f"the session has no object {object_id}: click it first")
        self.engine.index(frame)
        self.objects[object_id] = dataclasses.replace(obj, matte=controls)
        return self.preview(frame)

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
            self.kept.forget(object_id)
        else:
            self.remove(object_id)

    def remove(self, object_id: int) -> None:
        self._not_busy()
        if self.objects.pop(object_id, None) is not None:
            self.engine.remove_object(object_id)
            self.kept.forget(object_id)

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
        writer = tracking.matte_writer(
            recipe, self.plate.info, self.colour, self.loaded, overwrite=overwrite, roots=self.roots, plate=self.plate
        )
        writer.check(frames)
        cancel = threading.Event()
        steps = tracking.write_mattes(
            self.engine, writer, list(self.objects), tracking.passes(recipe, frames), frames, cancel=cancel,
            on_tracked=lambda out: self.kept.put(out.frame, out.obj_ids, out.logits),
        )
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
