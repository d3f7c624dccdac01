"""The device worker: one thread runs all model work, so artists share the GPU in turn.

sam2's state is not thread-safe and a GPU runs one thing at a time anyway, so every engine
call happens on this thread. Interactive tasks (a click, a preview) run before the next
step of any propagation, and a propagation advances one frame per step, so a click waits
at most about one frame of someone else's propagation. Propagations take turns.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable, Protocol

log = logging.getLogger(__name__)


class Job(Protocol):
    def step(self) -> bool:
        """Do about one frame of work; False once the job is over."""


class Scheduler:
    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._tasks: deque[Callable[[], None]] = deque()
        self._jobs: deque[Job] = deque()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="rotobridge-device", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, task: Callable[[], None]) -> None:
        """Run `task` before any further propagation step (tasks run in submission order)."""
        with self._cv:
            self._tasks.append(task)
            self._cv.notify()

    def add_job(self, job: Job) -> None:
        with self._cv:
            self._jobs.append(job)
            self._cv.notify()

    @property
    def waiting(self) -> int:
        """Interactive tasks not started yet."""
        return len(self._tasks)

    @property
    def jobs(self) -> int:
        """Propagations in progress."""
        return len(self._jobs)

    def stop(self, timeout: float | None = None) -> None:
        """Finish the tasks already submitted (e.g. closing sessions), then end the thread."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not (self._tasks or self._jobs or self._stopping):
                    self._cv.wait()
                if not self._tasks and self._stopping:
                    return
                task = self._tasks.popleft() if self._tasks else None
                job = self._jobs[0] if task is None else None
            if task is not None:
                _guarded(task)
            elif job is not None:
                alive = _guarded(job.step)
                with self._cv:
                    if alive:
                        self._jobs.rotate(-1)
                    else:
                        self._jobs.remove(job)


def _guarded(work: Callable[[], bool | None]) -> bool:
    """Run `work`; tasks and jobs report their own errors, this only keeps the worker alive."""
    try:
        return bool(work())
    except Exception:
        log.exception("device worker: unexpected error (the job is dropped)")
        return False
