"""FakeClient: an in-memory TEST DOUBLE of rotobridge.client.Client, not the product's client.

It has the methods and signatures of the real client that hosts use and returns the real
value types (`Pending` answers, `Preview`, event `Message`s), but there is no socket and no
bridge behind it: like the real client's I/O thread, a worker thread of its own answers
each request, in order, and callbacks come through `dispatch`. It keeps sessions, prompts
and "written" mattes in memory, checks the recipe parts it receives with recipe.py like
the bridge does, raises the bridge's own error classes, and records every call with the
thread it ran on. Propagation answers with a job id and leaves the events to the test
(`step`, `finish`), which delivers them through `dispatch` exactly as the real client
does. A client made by `FakeClients(reachable=False)` answers every request with
BridgeUnreachableError, like a client whose bridge is down. The real client is tested
over ZeroMQ in test_client.py.
"""

from __future__ import annotations

import functools
import itertools
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

from rotobridge import recipe
from rotobridge.client import Pending
from rotobridge.controls import MatteControls
from rotobridge.errors import (
    BridgeUnreachableError,
    BusyError,
    MatteExistsError,
    NotTrackedError,
    RecipeError,
    RotobridgeError,
    UnknownSessionError,
)
from rotobridge.keys import Keys
from rotobridge.protocol import Message, Preview

T = TypeVar("T")


def _answered(method: Callable[..., T]) -> Callable[..., Pending[T]]:
    """A request method of the double: its body runs on the client's worker, its value or error answers a Pending."""

    @functools.wraps(method)
    def request(self: FakeClient, *args: Any, **kwargs: Any) -> Pending[T]:
        return self._answer(lambda: method(self, *args, **kwargs))

    return request

MODEL = {"name": "sam2.1-hiera-tiny"}
#: Previews are tiny: the controller and hosts never look inside the planes' pixels.
PREVIEW = (8, 4)


@dataclass
class Call:
    name: str
    args: dict[str, Any]
    thread: int


@dataclass
class _Job:
    id: str
    session: str
    frames: list[int]
    on_event: Callable[[Message], None] | None
    written: int = 0


@dataclass
class FakeClients:
    """A client factory for the controller that remembers the clients it made."""

    width: int = 2048
    height: int = 858
    frames: tuple[int, int] = (1001, 1010)
    reachable: bool = True
    made: list[FakeClient] = field(default_factory=list)

    def __call__(self, address: str, **options: Any) -> FakeClient:
        client = FakeClient(address, self, **options)
        self.made.append(client)
        return client

    @property
    def last(self) -> FakeClient:
        return self.made[-1]


class FakeClient:
    """See the module docstring."""

    def __init__(
        self,
        address: str,
        plate: FakeClients,
        *,
        keys: Keys | None = None,
        timeout: float = 10.0,
        dispatch: Callable[[Callable[[], None]], None] | None = None,
        on_state: Callable[[str, str], None] | None = None,
        on_session_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.address = address
        self.keys = keys
        self.dead_after = 3.0
        self.plate = plate
        self.dispatch = dispatch or (lambda fn: fn())
        self.on_state = on_state
        self.on_session_lost = on_session_lost
        self.calls: list[Call] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        #: (session, object id, frame) -> {"object", "points", "labels", "box"}
        self.prompts: dict[tuple[str, int, int], dict[str, Any]] = {}
        self.written: set[int] = set()
        #: (session, object id) -> the matte controls a `matte` request set
        self.controls: dict[tuple[str, int], MatteControls | None] = {}
        self.job: _Job | None = None
        self.closed = False
        self._lock = threading.Lock()
        self._session_ids = itertools.count(1)
        self._job_ids = itertools.count(1)
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, name="fake-client-io", daemon=True)
        self.thread.start()

    # --- what tests look at --------------------------------------------------------

    def called(self, name: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.name == name]

    def step(self, count: int = 1) -> None:
        """Write the next `count` mattes of the running job: one `progress` event each."""
        job = self.job
        assert job is not None, "no propagation is running"
        for _ in range(count):
            frame = job.frames[job.written]
            job.written += 1
            self.written.add(frame)
            self._emit(job, "progress", frame=frame, path=f"/mattes/sh010.{frame}.exr", done=job.written, total=len(job.frames))

    def finish(self, status: str = "done", error: dict[str, str] | None = None) -> None:
        job, self.job = self.job, None
        assert job is not None, "no propagation is running"
        self._emit(job, "finished", written=job.written, total=len(job.frames), status=status, error=error)

    def lose(self) -> None:
        """The connection drops and comes back (the real client re-attaches on its own)."""
        assert self.on_state is not None
        on_state = self.on_state
        self.dispatch(lambda: on_state("lost", "no heartbeat"))

    def post(self, fn: Callable[[], None]) -> None:
        """What the real connection does with callbacks: hand them to dispatch."""
        self.dispatch(fn)

    def _answer(self, work: Callable[[], T]) -> Pending[T]:
        """A Pending that the worker answers with `work()` or its error, in order."""
        pending: Pending[T] = Pending(self, lambda message: message["value"])

        def run() -> None:
            try:
                value = work()
            except RotobridgeError as exc:
                pending._complete(exc)
            else:
                pending._complete(Message("fake", "reply", {"value": value}))

        self._work.put(run)
        return pending

    def _serve(self) -> None:
        while True:
            self._work.get()()

    # --- the Client API: each answered on the worker, as a Pending -------------------

    @_answered
    def hello(self) -> dict[str, Any]:
        self._record("hello")
        return {"protocol": [1, 0], "bridge_version": "fake", "model": MODEL["name"], "untrained": False, "device": "cpu", "heartbeat_ms": 1000}

    @_answered
    def open(
        self,
        plate: dict[str, Any],
        output: dict[str, Any],
        colour: dict[str, Any] | None = None,
        model: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        self._record("open", plate=plate, output=output, colour=colour, model=model)
        for kind, part in (("plate", plate), ("output", output), ("colour", colour or {})):
            self._check(kind, part)
        session = f"s-{next(self._session_ids)}"
        self.sessions[session] = {"plate": plate, "output": output, "colour": colour}
        return self._summary(session)

    @_answered
    def attach(self, session: str) -> dict[str, Any]:
        self._record("attach", session=session)
        self._session(session)
        return self._summary(session)

    @_answered
    def prompt(
        self,
        session: str,
        obj: dict[str, Any],
        frame: int,
        points: Sequence[Sequence[float]] = (),
        labels: Sequence[int] = (),
        box: Sequence[float] | None = None,
    ) -> Preview:
        self._record("prompt", session=session, object=obj, frame=frame, points=[tuple(p) for p in points], labels=list(labels), box=box)
        self._session(session)
        self._check("object", obj)
        data = {"frame": frame, "points": [list(p) for p in points], "labels": list(labels)}
        self._check("prompt", {**data, **({"box": list(box)} if box is not None else {})})
        self.prompts[(session, obj["id"], frame)] = {"object": obj, **data, "box": box}
        return self._preview(session, frame)

    @_answered
    def clear(self, session: str, object_id: int, frame: int) -> None:
        self._record("clear", session=session, object_id=object_id, frame=frame)
        self._session(session)
        self.prompts.pop((session, object_id, frame), None)

    @_answered
    def remove(self, session: str, object_id: int) -> None:
        self._record("remove", session=session, object_id=object_id)
        self._session(session)
        for key in [k for k in self.prompts if k[:2] == (session, object_id)]:
            del self.prompts[key]

    @_answered
    def preview(self, session: str, frame: int) -> Preview:
        self._record("preview", session=session, frame=frame)
        self._session(session)
        return self._preview(session, frame)

    @_answered
    def matte(self, session: str, object_id: int, controls: MatteControls | None, frame: int) -> Preview:
        self._record("matte", session=session, object_id=object_id, controls=controls, frame=frame)
        self._session(session)
        if not any(k[:2] == (session, object_id) for k in self.prompts):
            raise RecipeError("object_id", f"the session has no object {object_id}")
        self.controls[(session, object_id)] = controls
        return self._preview(session, frame)

    @_answered
    def propagate(
        self,
        session: str,
        start: int,
        end: int,
        direction: str = "both",
        overwrite: bool = False,
        on_event: Callable[[Message], None] | None = None,
        on_done: Callable[[Message], None] | None = None,
    ) -> str:
        self._record("propagate", session=session, start=start, end=end, direction=direction, overwrite=overwrite)
        self._session(session)
        if self.job is not None:
            raise BusyError("the session already runs a propagation")
        frames = list(range(start, end + 1))
        existing = sorted(self.written & set(frames))
        if existing and not overwrite:
            raise MatteExistsError([f"/mattes/sh010.{f}.exr" for f in existing])
        self.job = _Job(f"job-{next(self._job_ids)}", session, frames, on_event)
        return self.job.id

    @_answered
    def cancel(self, session: str) -> bool:
        self._record("cancel", session=session)
        self._session(session)
        if self.job is None:
            return False
        self.finish("cancelled")
        return True

    @_answered
    def export(self, session: str) -> dict[str, Any]:
        self._record("export", session=session)
        info = self._session(session)
        return {"rotobridge_recipe": 1, "plate": info["plate"], "model": MODEL, "output": info["output"], "objects": []}

    @_answered
    def close_session(self, session: str) -> None:
        self._record("close", session=session)
        self._session(session)
        del self.sessions[session]

    @_answered
    def status(self) -> dict[str, Any]:
        self._record("status")
        return {"sessions": len(self.sessions), "queue": 0, "device": "cpu", "memory": {}}

    def close(self) -> None:
        with self._lock:  # like the real client, closing never fails
            self.calls.append(Call("close_client", {}, threading.get_ident()))
        self.closed = True

    # --- internals -----------------------------------------------------------------

    def _record(self, name: str, **args: Any) -> None:
        with self._lock:
            self.calls.append(Call(name, args, threading.get_ident()))
        if not self.plate.reachable:
            raise BridgeUnreachableError(f"no answer from {self.address} within 10 s")
        if self.closed:
            raise BridgeUnreachableError("the client is closed")

    def _summary(self, session: str) -> dict[str, Any]:
        frames, width, height = list(self.plate.frames), self.plate.width, self.plate.height
        return {"session": session, "frames": frames, "width": width, "height": height, "model": MODEL, "objects": [], "job": None}

    def _session(self, session: str) -> dict[str, Any]:
        try:
            return self.sessions[session]
        except KeyError:
            raise UnknownSessionError(f"no session {session}") from None

    @staticmethod
    def _check(kind: str, part: dict[str, Any]) -> None:
        try:
            recipe.parse_part(kind, part, kind)
        except RecipeError as exc:
            raise RecipeError("", str(exc)) from None

    def _preview(self, session: str, frame: int) -> Preview:
        ids = sorted(oid for (s, oid, f) in self.prompts if s == session and f == frame)
        if not ids:
            raise NotTrackedError(f"frame {frame} holds no prompts")
        width, height = PREVIEW
        planes = tuple(bytes([len(self.prompts[(session, oid, frame)]["points"])]) * (width * height) for oid in ids)
        return Preview(frame, width, height, tuple(ids), planes)

    def _emit(self, job: _Job, name: str, **fields: Any) -> None:
        if job.on_event is not None:
            on_event, event = job.on_event, Message(job.id, "event", {"event": name, **fields})
            self.dispatch(lambda: on_event(event))
