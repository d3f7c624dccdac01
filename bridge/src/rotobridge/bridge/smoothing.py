"""Temporal smoothing of written mattes: the stage between edge refinement and the rest of
the controls (rotobridge.controls gives the order), for the objects whose controls smooth.

A smoothed frame needs its RADIUS neighbours each side (temporal.py), so its matte is
finished only when the pass has reached RADIUS frames further. To keep the model from
waiting on the flow (about 100 ms of CPU per 1080p frame per object), and to use every
core the writers' pool has, the work runs in four steps: each frame's edge mattes
(`MatteWriter.edge_mattes`) in the writers' pool; the smoothers' bookkeeping on one worker
thread of their own, which takes the frames in the order they were pushed; each completed
frame's smoothing, one job per object (`TemporalSmoother.push_later`), in the writers'
pool, frames and objects side by side; and, once a frame's jobs are all done, its
finishing and EXR write in the pool again. No pool task waits on another (each step is
chained from the last one's completion), so a small pool cannot deadlock. `push` returns
at once with a Future for the frame's written path.

One `TemporalSmoother` per object per stretch of consecutive frames of a pass: `flush` ends
a pass (the last RADIUS frames are smoothed with the neighbours they have), a push that is
not the frame after the last one (a gap in a pass) flushes first. `held` says which pushed
frames are still held back: a caller waiting for writes must not wait for those.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Mapping

import torch

from .mattes import MatteWriter
from .temporal import RADIUS, Job, Motion, TemporalSmoother


@dataclass
class _Frame:
    """A pushed frame until its smoothers release it; a neighbour only (out None) keeps nothing."""

    logits: torch.Tensor | None
    guide: torch.Tensor | None
    #: the frame's written path, or None when it is pushed only as a neighbour
    out: Future[str] | None


class Smoothing:
    """The smoothing stage of one `tracking.write_mattes` run (`rotobridge refine`, one frame
    at a time, runs its smoothers in its own loop)."""

    def __init__(self, writer: MatteWriter, pool: ThreadPoolExecutor) -> None:
        self.writer, self.pool = writer, pool
        self.objects = writer.smoothed
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rotobridge-smooth")
        self._recent: deque[int] = deque(maxlen=RADIUS)  # the last frames pushed since a flush
        self._last: int | None = None
        # owned by the worker thread
        self._smoothers: dict[int, TemporalSmoother] = {}
        self._frames: dict[int, _Frame] = {}
        self._error: BaseException | None = None

    def held(self) -> list[int]:
        """The pushed frames whose mattes wait for more frames (or `flush`), oldest first."""
        return list(self._recent)

    def push(self, frame: int, logits: torch.Tensor, *, write: bool, after: int | None) -> Future[str] | None:
        """Add the next frame of a pass; `after` is the frame before it in the pass (None at
        its start). With `write`, returns a Future of the frame's written path."""
        if self._last is None or self._last != after:
            self.flush()
        edges = self.pool.submit(self._edges, frame, logits)
        out: Future[str] | None = Future() if write else None
        self._worker.submit(self._push, frame, logits, edges, out)
        self._recent.append(frame)
        self._last = frame
        return out

    def flush(self) -> None:
        """End of a pass (or of a stretch of it): the frames held back are finished with
        the neighbours they have."""
        if self._recent:
            self._worker.submit(self._flush)
        self._recent.clear()
        self._last = None

    def close(self) -> None:
        """Stop: pushes not yet taken are dropped, one under way finishes."""
        self._worker.shutdown(wait=True, cancel_futures=True)

    # --- on the worker thread ---------------------------------------------------------

    def _edges(self, frame: int, logits: torch.Tensor) -> tuple[torch.Tensor | None, dict[int, torch.Tensor]]:
        guide = self.writer.read_guide(frame)
        return guide, self.writer.edge_mattes(frame, logits, guide)

    def _push(self, frame: int, logits: torch.Tensor, edges: Future[tuple[torch.Tensor | None, dict[int, torch.Tensor]]], out: Future[str] | None) -> None:
        try:
            guide, mattes = edges.result()
            if self._error is not None:
                raise self._error
            if not self._smoothers:
                motion = Motion()  # the objects' plates are the same: their flows are too
                self._smoothers = {i: TemporalSmoother(self._strength(i), motion) for i in self.objects}
            self._frames[frame] = _Frame(logits, guide, out) if out is not None else _Frame(None, None, None)
            self._release({i: s.push_later(frame, mattes[i], guide) for i, s in self._smoothers.items()})
        except BaseException as exc:  # a frame that cannot be smoothed fails the frames after it
            self._fail(exc, out)

    def _flush(self) -> None:
        try:
            self._release({i: s.flush_later() for i, s in self._smoothers.items()})
        except BaseException as exc:
            self._fail(exc, None)
        self._smoothers = {}

    def _strength(self, index: int) -> float:
        controls = self.writer.controls[index]
        assert controls is not None
        return controls.smoothing

    def _release(self, finished: dict[int, list[Job]]) -> None:
        """Every object's smoother completes the same frames (same pushes, same radius): each
        frame's jobs go to the pool, and its write follows once they are all done."""
        frames = [f for f, _ in next(iter(finished.values()))] if finished else []
        for k, frame in enumerate(frames):
            held = self._frames.pop(frame)
            if held.out is None or held.out.cancelled():
                continue
            jobs = {i: self.pool.submit(out[k][1]) for i, out in finished.items()}
            _when_all(jobs, functools.partial(self._smoothed, frame, held))

    def _smoothed(self, frame: int, held: _Frame, jobs: Mapping[int, Future[torch.Tensor]]) -> None:
        """A frame's smoothing jobs are done: its write goes to the pool (or its Future fails)."""
        assert held.out is not None
        if held.out.cancelled():
            return
        if any(job.cancelled() for job in jobs.values()):  # dropped: the run is stopping
            held.out.cancel()
            return
        failed = next((e for e in (job.exception() for job in jobs.values()) if e is not None), None)
        if failed is not None:  # never lost in a callback: the frame's waiter gets it
            _settle(held.out, failed)
            return
        try:
            self.pool.submit(self._write, frame, held, {i: job.result() for i, job in jobs.items()})
        except RuntimeError:  # the pool is shut: the run is stopping, writes not started are dropped
            held.out.cancel()

    def _write(self, frame: int, held: _Frame, smoothed: dict[int, torch.Tensor]) -> None:
        """In the pool: a released frame finished and written, unless its Future was
        cancelled first (a run stopping drops writes not started, as it does unsmoothed)."""
        assert held.out is not None
        if not held.out.set_running_or_notify_cancel():
            return
        try:
            path = self.writer.write(frame, held.logits, smoothed, held.guide)
        except BaseException as exc:
            held.out.set_exception(exc)
        else:
            held.out.set_result(path)

    def _fail(self, exc: BaseException, out: Future[str] | None) -> None:
        self._error = exc
        for target in [h.out for h in self._frames.values()] + [out]:
            if target is not None:
                _settle(target, exc)
        self._frames.clear()


def _when_all(futures: Mapping[int, Future[torch.Tensor]], then: Callable[[Mapping[int, Future[torch.Tensor]]], None]) -> None:
    """`then(futures)` once all are done, on the thread that finished the last."""
    left = [len(futures)]
    lock = threading.Lock()

    def one(_: Future[torch.Tensor]) -> None:
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            then(futures)

    for future in futures.values():
        future.add_done_callback(one)


def _settle(target: Future[str], exc: BaseException) -> None:
    """Fail a frame's Future once; one cancelled or finished meanwhile stays so."""
    try:
        target.set_exception(exc)
    except InvalidStateError:
        pass
