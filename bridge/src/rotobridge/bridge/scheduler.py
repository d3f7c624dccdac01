"""The device worker: one thread runs all model work, so artists share the GPU in turn.

sam2's state is not thread-safe and a GPU runs one thing at a time anyway, so every engine
call happens on this thread. Interactive tasks (a click, a preview) run before the next
step of any propagation, and a propagation advances one object of one frame per step, so a
click waits at most about one click's worth of someone else's propagation, however many
objects it tracks. Propagations take turns.

Tasks queue per client and the clients take turns, one task each: a client that sends a
hundred requests delays another's click by at most one of them, not a hundred. Each
client's own tasks run in the order it sent them. `pending` counts a client's tasks not
started yet, which the server caps (`protocol.MAX_PENDING`). A task counts no more once it
starts: it queues its reply before it ends, so a client that has the reply and sends again
must not find the request it was answered for still counted against it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from typing import Callable, Hashable, Protocol

log = logging.getLogger(__name__)


class Job(Protocol):
    def step(self) -> bool:
        """Do about one model pass (one object, one frame); False once the job is over."""


#: The queue of the bridge's own tasks (closing expired sessions, shutting down).
BRIDGE: Hashable = b""


class Scheduler:
    def __init__(self) -> None:
        self._cv = threading.Condition()
        #: client -> its tasks not started yet; the first client's turn is next
        self._queues: OrderedDict[Hashable, deque[Callable[[], None]]] = OrderedDict()
        self._waiting = 0
        self._jobs: deque[Job] = deque()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="rotobridge-device", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, task: Callable[[], None], client: Hashable = BRIDGE) -> None:
        """Run `task` before any further propagation step, in `client`'s turn (its tasks in submission order)."""
        with self._cv:
            self._queues.setdefault(client, deque()).append(task)
            self._waiting += 1
            self._cv.notify()

    def pending(self, client: Hashable) -> int:
        """`client`'s tasks submitted and not started yet."""
        with self._cv:
            return len(self._queues.get(client, ()))

    def add_job(self, job: Job) -> None:
        with self._cv:
            self._jobs.append(job)
            self._cv.notify()

    @property
    def waiting(self) -> int:
        """Interactive tasks not started yet."""
        return self._waiting

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

    def _next_task(self) -> tuple[Hashable, Callable[[], None]] | None:
        """The first task of the client whose turn it is; that client goes to the back (lock held).

        A client stays in line with an empty queue until its turn comes round again, so
        one that sends its next request while its last one runs still waits its turn.
        """
        while self._waiting:
            client, tasks = next(iter(self._queues.items()))
            if not tasks:
                del self._queues[client]
                continue
            self._queues.move_to_end(client)
            self._waiting -= 1
            return client, tasks.popleft()
        return None

    def _run(self) -> None:
        while True:
            with self._cv:
                while not (self._waiting or self._jobs or self._stopping):
                    self._cv.wait()
                if not self._waiting and self._stopping:
                    return
                turn = self._next_task()
                job = self._jobs[0] if turn is None else None
            if turn is not None:
                _guarded(turn[1])
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
