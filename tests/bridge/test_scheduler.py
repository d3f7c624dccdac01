"""The device worker's order: clicks before the next propagation frame, propagations in turn."""

from __future__ import annotations

import threading
import time

from rotobridge.bridge.scheduler import Scheduler


class _Job:
    """Records each step; the first step waits for `release` so tasks can queue up meanwhile."""

    def __init__(self, name: str, steps: int, log: list[str], release: threading.Event | None = None, fail_at: int = -1) -> None:
        self.name, self.left, self.log, self.release, self.fail_at = name, steps, log, release, fail_at
        self.started = threading.Event()

    def step(self) -> bool:
        self.log.append(self.name)
        self.started.set()
        if self.release is not None:
            self.release.wait(10)
            self.release = None
        self.left -= 1
        if self.left == self.fail_at:
            raise RuntimeError("a bug in a job")
        return self.left > 0


def test_tasks_jump_ahead_of_propagation_and_jobs_take_turns() -> None:
    log: list[str] = []
    release = threading.Event()
    scheduler = Scheduler()
    scheduler.start()
    first = _Job("A", 3, log, release)
    scheduler.add_job(first)
    assert first.started.wait(10)
    scheduler.add_job(_Job("B", 2, log))
    for name in ("click1", "click2"):
        scheduler.submit(lambda name=name: log.append(name))
    assert scheduler.waiting == 2 and scheduler.jobs == 2
    release.set()
    _until_idle(scheduler)
    # A's frame in progress finishes, both clicks run before any further frame, then A and B alternate
    assert log == ["A", "click1", "click2", "B", "A", "B", "A"]


def _until_idle(scheduler: Scheduler) -> None:
    deadline = time.monotonic() + 10
    while scheduler.jobs and time.monotonic() < deadline:
        time.sleep(0.01)
    scheduler.stop(10)


def test_a_failing_task_or_job_does_not_stop_the_worker() -> None:
    log: list[str] = []
    scheduler = Scheduler()
    scheduler.start()
    scheduler.submit(lambda: 1 / 0)  # type: ignore[func-returns-value]
    broken = _Job("X", 5, log, fail_at=3)
    scheduler.add_job(broken)
    scheduler.add_job(_Job("Y", 3, log))
    _until_idle(scheduler)
    assert log.count("X") == 2 and log.count("Y") == 3 and scheduler.jobs == 0


def test_clients_take_turns_one_task_each_and_pending_counts_those_not_started() -> None:
    log: list[str] = []
    gate, running = threading.Event(), threading.Event()
    scheduler = Scheduler()
    scheduler.start()
    scheduler.submit(lambda: running.set() or gate.wait(10), b"flood")  # type: ignore[func-returns-value]
    assert running.wait(10)
    for i in range(5):
        scheduler.submit(lambda i=i: log.append(f"flood{i}"), b"flood")
    scheduler.submit(lambda: log.append("artist0"), b"artist")
    scheduler.submit(lambda: log.append("artist1"), b"artist")
    # the running task counts no more: its reply may already be with the client, which may send again
    assert scheduler.pending(b"flood") == 5 and scheduler.pending(b"artist") == 2 and scheduler.waiting == 7
    gate.set()
    scheduler.stop(10)
    # the artist's clicks wait for one flood task each, not for the whole flood; each client's own order holds
    assert log == ["flood0", "artist0", "flood1", "artist1", "flood2", "flood3", "flood4"]
    assert scheduler.pending(b"flood") == 0 and scheduler.waiting == 0
