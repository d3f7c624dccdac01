"""What a connection holds on the bridge: its sessions, and the jobs whose events it routes.

The I/O thread keeps this in step with what the bridge says, so that after a reconnect it
can re-`attach` every held session (and get a running propagation's events again), and so
that a job whose session the bridge lost (it restarted) still ends: its `on_event` gets a
`finished` the client made itself (`Message.synthetic`). Only the I/O thread changes it;
`sessions` may be read from any thread.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Union

from . import protocol
from .errors import RotobridgeError, UnknownSessionError

log = logging.getLogger(__name__)

Answer = Union[protocol.Message, RotobridgeError]


@dataclass(eq=False)
class _Job:
    session: str | None
    on_event: Callable[[protocol.Message], None]  # runs on the I/O thread
    done: int = 0
    total: int = 0


class Held:
    """Sessions opened or attached and still held, and running jobs by request id."""

    def __init__(self, post: Callable[[Callable[[], None]], None], on_session_lost: Callable[[str], None] | None) -> None:
        self._post = post
        self._on_session_lost = on_session_lost
        self._lock = threading.Lock()
        self._sessions: dict[str, dict[str, Any]] = {}
        self._jobs: dict[str, _Job] = {}

    @property
    def sessions(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._sessions)

    def track(
        self, rid: str, type_: str, session: str | None, answer: Answer, on_event: Callable[[protocol.Message], None] | None
    ) -> None:
        """Follow what an answer says about sessions and jobs."""
        if isinstance(answer, protocol.Message):
            if type_ == "open" and isinstance(answer.get("session"), str):
                with self._lock:
                    self._sessions[answer["session"]] = dict(answer.fields)
            elif type_ == "attach" and session is not None:
                with self._lock:
                    self._sessions[session] = dict(answer.fields)
            elif type_ == "close" and session is not None:
                with self._lock:
                    self._sessions.pop(session, None)
                self._end_jobs(session, "cancelled", {"name": "cancelled", "message": "the session was closed"})
            if on_event is not None and (type_ == "propagate" or "job" in answer.fields):
                self._jobs[rid] = _Job(session, on_event)
        elif isinstance(answer, UnknownSessionError) and session is not None:
            with self._lock:
                held = self._sessions.pop(session, None) is not None
            if held:
                self._end_jobs(session, "failed", {"name": answer.name, "message": str(answer)})
                if self._on_session_lost is not None and type_ != "close":
                    lost = self._on_session_lost
                    self._post(lambda: lost(session))

    def event(self, message: protocol.Message) -> None:
        """Route an event to the job that asked for it (dropped when no job is waiting)."""
        job = self._jobs.get(message.id)
        name = message.event
        if job is None or not name:
            return  # not ours any more (finished, timed out) or malformed
        if name == "progress":
            done, total = message.get("done"), message.get("total")
            job.done = done if _is_int(done) else job.done
            job.total = total if _is_int(total) else job.total
        if name == "finished":
            del self._jobs[message.id]
        _deliver(job, message)

    def forget_jobs(self) -> None:
        self._jobs.clear()

    def _end_jobs(self, session: str, status: str, error: dict[str, str]) -> None:
        for rid, job in list(self._jobs.items()):
            if job.session == session:
                del self._jobs[rid]
                fields = {"event": "finished", "written": job.done, "total": job.total, "status": status, "error": error}
                _deliver(job, protocol.Message(rid, "event", fields, synthetic=True))


def _deliver(job: _Job, message: protocol.Message) -> None:
    try:
        job.on_event(message)
    except Exception:
        log.exception("delivering a rotobridge event failed")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
