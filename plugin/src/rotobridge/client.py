"""The typed client hosts use: one method per request of docs/protocol.md.

Each method sends at once and returns a `Pending` answer, which a caller either waits for
(`result()`: scripts, tests, the CLI) or hands callbacks to (`then(ok, failed)`: host
panels, whose callbacks then run through the client's `dispatch`, on the host's main
thread, and never block it). Propagation events go to `on_event`/`on_done` the same way.
Without a dispatch, callbacks run on the client's I/O thread, where they must not block.
The connection underneath (I/O thread, heartbeats, reconnection, CURVE) is
`connection.py`; what travels is `protocol.py`'s. Stdlib + pyzmq only: hosts import it.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Callable, Generic, Mapping, Protocol, Sequence, TypeVar

from .connection import Answer, Connection
from .controls import MatteControls
from .errors import BridgeUnreachableError, ProtocolError, RotobridgeError
from .protocol import Message, Preview

T = TypeVar("T")
Failed = Callable[[RotobridgeError], None]


class Link(Protocol):
    """What a `Pending` needs of the connection that answers it."""

    address: str
    dead_after: float
    thread: threading.Thread

    def post(self, fn: Callable[[], None]) -> None: ...


class Pending(Generic[T]):
    """The answer to one request, once it comes: wait for it or hand it callbacks.

    The bridge (or the connection, by the request's deadline) always answers, so neither
    way can hang for longer than the request's timeout.
    """

    def __init__(self, connection: Link, decode: Callable[[Message], T]) -> None:
        self._connection = connection
        self._decode = decode
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._value: T | None = None
        self._error: RotobridgeError | None = None
        self._callbacks: list[tuple[Callable[[T], None] | None, Failed | None]] = []
        self._finally: list[Callable[[], None]] = []
        self.id = self.request_type = ""
        self._limit: float | None = None

    def _start(self, request_id: str, type_: str, timeout: float) -> None:
        self.id, self.request_type = request_id, type_
        # The I/O thread answers every request by its deadline; the margin only guards
        # against a bug there turning into a hung host.
        self._limit = None if math.isinf(timeout) else timeout + self._connection.dead_after + 5.0

    def _complete(self, answer: Answer) -> None:
        """On the I/O thread: decode, keep, and hand to the callbacks given so far."""
        if isinstance(answer, Message):
            try:
                self._value = self._decode(answer)
            except RotobridgeError as exc:
                self._error = exc
        else:
            self._error = answer
        with self._lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
            finals, self._finally = self._finally, []
        for ok, failed in callbacks:
            self._deliver(ok, failed)
        for fn in finals:
            fn()

    def when_done(self, fn: Callable[[], None]) -> None:
        """Run `fn()` once answered, on the thread that completes it, not through dispatch.

        For clean-up that must happen even while the host's main thread is busy (closing
        the client after its session); `fn` must not block.
        """
        with self._lock:
            if not self._done.is_set():
                self._finally.append(fn)
                return
        fn()

    def then(self, ok: Callable[[T], None] | None = None, failed: Failed | None = None) -> None:
        """Run `ok(value)` or `failed(error)` through the client's dispatch once the answer is in."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append((ok, failed))
                return
        self._deliver(ok, failed)

    def result(self) -> T:
        """Wait for the answer; raises the error it stands for (the bridge's own class)."""
        if threading.get_ident() == self._connection.thread.ident:
            raise RuntimeError("a blocking rotobridge call from the client's I/O thread would deadlock: use then()")
        if not self._done.wait(self._limit):
            raise BridgeUnreachableError(
                f"no answer from the bridge at {self._connection.address} to {self.request_type} in {self._limit:g} s"
            )
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set whenever no error is

    def _deliver(self, ok: Callable[[T], None] | None, failed: Failed | None) -> None:
        error, value = self._error, self._value
        if error is not None:
            if failed is not None:
                self._connection.post(lambda: failed(error))
        elif ok is not None:
            self._connection.post(lambda: ok(value))  # type: ignore[arg-type]  # value is T here


class Client(Connection):
    """A connection to one bridge with a method per request; see the module docstring."""

    @property
    def sessions(self) -> tuple[str, ...]:
        """Sessions this client opened or attached and still holds."""
        return self.held.sessions

    # --- any request -----------------------------------------------------------------

    def request(
        self,
        type_: str,
        /,
        decode: Callable[[Message], T],
        timeout: float | None = None,
        binary: Sequence[bytes] = (),
        on_event: Callable[[Message], None] | None = None,
        **fields: Any,
    ) -> Pending[T]:
        """Send any request; its answer decoded by `decode`.

        Events (of a propagation) go to `on_event` on the I/O thread: post them on.
        """
        pending: Pending[T] = Pending(self, decode)
        sent = self.send(type_, fields, binary, timeout, pending._complete, on_event)
        pending._start(sent.id, type_, sent.timeout)
        return pending

    def call(self, type_: str, /, timeout: float | None = None, binary: Sequence[bytes] = (), **fields: Any) -> Message:
        """Send a request and wait for its answer (`math.inf` waits as long as the bridge lives)."""
        return self.request(type_, _answer, timeout, binary, **fields).result()

    def submit(self, type_: str, callback: Callable[[Message | RotobridgeError], None], /, **fields: Any) -> str:
        """Send a request without waiting; `callback` gets its answer or error through dispatch. Its id."""
        pending = self.request(type_, _answer, **fields)
        pending.then(callback, callback)
        return pending.id

    # --- the protocol's requests -----------------------------------------------------

    def hello(self) -> Pending[dict[str, Any]]:
        """`protocol`, `bridge_version`, `model`, `untrained`, `device`, `heartbeat_ms` of the bridge."""
        return self.request("hello", _fields, client=self.name)

    def open(
        self,
        plate: Mapping[str, Any],
        output: Mapping[str, Any],
        colour: Mapping[str, Any] | None = None,
        model: Mapping[str, Any] | None = None,
    ) -> Pending[dict[str, Any]]:
        """Open a session on a shot (recipe parts): `session`, `frames`, `width`, `height`, `model`, ..."""
        fields: dict[str, Any] = {"plate": dict(plate), "output": dict(output)}
        if colour is not None:
            fields["colour"] = dict(colour)
        if model is not None:
            fields["model"] = dict(model)
        return self.request("open", _fields, **fields)

    def attach(self, session: str) -> Pending[dict[str, Any]]:
        """Take over a session (e.g. opened by another panel); its events come here."""
        return self.request("attach", _fields, session=session)

    def prompt(
        self,
        session: str,
        obj: Mapping[str, Any],
        frame: int,
        points: Sequence[Sequence[float]] = (),
        labels: Sequence[int] = (),
        box: Sequence[float] | None = None,
    ) -> Pending[Preview]:
        """Replace `obj`'s clicks on `frame` (plate pixels, top-left origin); answers the preview."""
        fields: dict[str, Any] = {"points": [list(p) for p in points], "labels": list(labels)}
        if box is not None:
            fields["box"] = list(box)
        return self.request("prompt", Preview.decode, session=session, object=dict(obj), frame=frame, **fields)

    def clear(self, session: str, object_id: int, frame: int) -> Pending[None]:
        return self.request("clear", _nothing, session=session, object_id=object_id, frame=frame)

    def remove(self, session: str, object_id: int) -> Pending[None]:
        return self.request("remove", _nothing, session=session, object_id=object_id)

    def preview(self, session: str, frame: int) -> Pending[Preview]:
        return self.request("preview", Preview.decode, session=session, frame=frame)

    def matte(self, session: str, object_id: int, controls: MatteControls | None, frame: int) -> Pending[Preview]:
        """Set an object's matte controls (None: SAM 2's raw matte); answers `frame`'s preview
        with them, made without tracking."""
        fields: dict[str, Any] = {} if controls is None else {"controls": controls.to_json()}
        return self.request("matte", Preview.decode, session=session, object_id=object_id, frame=frame, **fields)

    def propagate(
        self,
        session: str,
        start: int,
        end: int,
        direction: str = "both",
        overwrite: bool = False,
        on_event: Callable[[Message], None] | None = None,
        on_done: Callable[[Message], None] | None = None,
    ) -> Pending[str]:
        """Track `start`..`end`; answers the job id once the bridge accepted it.

        Then `on_event` gets every event (`progress`, then `finished`) and `on_done` the
        `finished` one, through dispatch — possibly before the answer's own callbacks.
        """

        post = self.post

        def handle(event: Message) -> None:
            if on_event is not None:
                post(lambda: on_event(event))
            if event.event == "finished" and on_done is not None:
                post(lambda: on_done(event))

        return self.request(
            "propagate", _job, on_event=handle, session=session, start=start, end=end, direction=direction, overwrite=overwrite
        )

    def cancel(self, session: str) -> Pending[bool]:
        """Cancel the session's propagation; answers True when one was running."""
        return self.request("cancel", lambda m: bool(m.get("cancelled", False)), session=session)

    def export(self, session: str) -> Pending[dict[str, Any]]:
        """The session as a recipe dict (docs/recipe.md)."""
        return self.request("export", _recipe, session=session)

    def close_session(self, session: str) -> Pending[None]:
        return self.request("close", _nothing, session=session)

    def status(self) -> Pending[dict[str, Any]]:
        """`sessions`, `queue`, `device`, `memory` of the bridge."""
        return self.request("status", _fields)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _answer(message: Message) -> Message:
    return message


def _fields(message: Message) -> dict[str, Any]:
    return dict(message.fields)


def _nothing(message: Message) -> None:
    return None


def _job(message: Message) -> str:
    return str(message.get("job", message.id))


def _recipe(message: Message) -> dict[str, Any]:
    recipe = message.get("recipe")
    if not isinstance(recipe, dict):
        raise ProtocolError("export reply without a recipe object")
    return recipe
