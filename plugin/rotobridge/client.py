"""The host's connection to a bridge: requests, replies, progress events, liveness.

Host panels (Nuke, Blender) use `Client`; it speaks `docs/protocol.md` through
`rotobridge.protocol` and never decodes anything itself.

Threading model
    One background I/O thread owns the DEALER socket (a ZeroMQ socket belongs to one
    thread). Public methods may be called from any thread: they encode the request in the
    caller's thread (so a bad field raises there), put it on a queue and wake the I/O
    thread through an inproc PAIR. `call` (and the convenience methods built on it) then
    blocks on a `threading.Event` until the I/O thread hands it the reply, an error, or a
    timeout; it never goes through `dispatch`, so it may be called on the host's main
    thread. Everything asynchronous — `submit` callbacks, propagation events, state
    changes, lost sessions — is handed to `dispatch`: pass the host's main-thread
    scheduler (`MainThreadQueue` drained from `bpy.app.timers`, or
    `nuke.executeInMainThread`). Without one, callbacks run on the I/O thread, where they
    must not block or make blocking calls.

Liveness
    ZMTP heartbeats are set on the socket, and the client sends `ping` whenever it has
    heard nothing for `heartbeat` seconds. Hearing nothing at all for `dead_after` seconds,
    or the bridge closing the connection, or the bridge refusing our CURVE key, declares
    the connection lost: every request in flight fails with `BridgeUnreachableError`,
    `on_state("lost", why)` fires, and the client reconnects on a new socket with backoff
    (0.5 s doubling to 5 s; at once when a new request arrives), says `hello` again and
    re-`attach`es every session it holds so a running propagation's events come back.
    A session the bridge no longer knows (it restarted) is reported to
    `on_session_lost(session_id)`, and its propagation's `on_done` gets a `finished`
    event made by the client (`Event.synthetic`).

Stdlib + pyzmq only (numpy optional, imported lazily by `Preview.as_array`): hosts import it.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import os
import queue
import secrets
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, Union

import zmq

from . import protocol
from .errors import BridgeError, BridgeUnreachableError, ProtocolError, RotobridgeError

log = logging.getLogger(__name__)

CONNECTING = "connecting"
CONNECTED = "connected"
LOST = "lost"

#: Reconnection delays: the first, doubling up to the last.
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 5.0
#: Largest message accepted from the bridge (previews: 512 x 512 bytes per object).
MAX_INBOUND_BYTES = 64 << 20

Dispatch = Callable[[Callable[[], None]], None]


@dataclass(frozen=True)
class Reply:
    """A successful reply: the request's id and type, the `result` object, binary frames."""

    id: str
    type: str
    result: Mapping[str, Any]
    binary: tuple[bytes, ...] = ()

    def __getitem__(self, key: str) -> Any:
        return self.result[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.result.get(key, default)


@dataclass(frozen=True)
class Event:
    """An event of a running request (`progress`, `finished`), with the request's id.

    `synthetic` is true for a `finished` event the client made itself because the bridge
    lost the session (it restarted) or the session was closed.
    """

    id: str
    name: str
    fields: Mapping[str, Any]
    synthetic: bool = False

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


#: What a `submit` callback receives: the reply, or the error (never raised at it).
Outcome = Union[Reply, RotobridgeError]


@dataclass(frozen=True)
class Preview:
    """One frame's mattes at preview size: one `width*height` byte plane per object.

    Planes are row-major, top row first, 0-255 = SAM 2's probability (docs/protocol.md,
    Previews). `as_array(i)` gives plane `i` as a numpy (height, width) uint8 array.
    """

    frame: int
    width: int
    height: int
    objects: tuple[int, ...]
    planes: tuple[bytes, ...]

    @classmethod
    def from_reply(cls, reply: Reply) -> Preview:
        info = reply.get("preview")
        if not isinstance(info, dict):
            raise ProtocolError(f"{reply.type} reply without a preview object")
        frame, width, height = info.get("frame"), info.get("width"), info.get("height")
        objects = info.get("objects")
        if not (isinstance(frame, int) and isinstance(width, int) and isinstance(height, int)) or min(width, height) < 1:
            raise ProtocolError(f"preview: frame, width and height must be integers, got {frame!r}, {width!r}, {height!r}")
        if not (isinstance(objects, list) and all(_is_int(o) for o in objects)):
            raise ProtocolError("preview: objects must be a list of object ids")
        if info.get("format", "u8") != "u8":
            raise ProtocolError(f"preview: unknown format {info.get('format')!r}")
        if len(reply.binary) != len(objects):
            raise ProtocolError(f"preview: {len(objects)} objects but {len(reply.binary)} planes")
        for oid, plane in zip(objects, reply.binary):
            if len(plane) != width * height:
                raise ProtocolError(f"preview: object {oid}'s plane has {len(plane)} bytes, not {width}x{height}")
        return cls(frame, width, height, tuple(objects), tuple(reply.binary))

    def plane(self, object_id: int) -> bytes:
        """The plane of object `object_id`."""
        return self.planes[self.objects.index(object_id)]

    def as_array(self, i: int) -> Any:
        """Plane `i` (index into `objects`) as a read-only numpy (height, width) uint8 array."""
        import numpy

        return numpy.frombuffer(self.planes[i], dtype=numpy.uint8).reshape(self.height, self.width)


class MainThreadQueue:
    """A `dispatch` for hosts: queues callables; the host runs them with `drain()`.

    Blender: `bpy.app.timers.register(lambda: (q.drain(), 0.05)[1], persistent=True)`.
    Thread-safe; `drain` runs at most `max_items` callables (by default those queued when
    it started), logs and skips any that raise, and returns how many it ran.
    """

    def __init__(self) -> None:
        self._items: collections.deque[Callable[[], None]] = collections.deque()

    def __call__(self, fn: Callable[[], None]) -> None:
        self._items.append(fn)

    def __len__(self) -> int:
        return len(self._items)

    def drain(self, max_items: int | None = None) -> int:
        limit = len(self._items) if max_items is None else max_items
        ran = 0
        while ran < limit:
            try:
                fn = self._items.popleft()
            except IndexError:
                break
            ran += 1
            try:
                fn()
            except Exception:
                log.exception("a rotobridge callback failed")
        return ran


def load_keys(public_file: str | os.PathLike[str], secret_file: str | os.PathLike[str]) -> tuple[str, str]:
    """(public, secret) z85 keys from ZeroMQ certificate files.

    `zmq.auth.create_certificates(dir, name)` writes `name.key` (public) and
    `name.key_secret` (both keys). Raises OSError or ValueError naming the file.
    """
    from zmq.auth.certs import load_certificate

    public, _ = load_certificate(public_file)
    paired, secret = load_certificate(secret_file)
    if secret is None:
        raise ValueError(f"{os.fspath(secret_file)} holds no secret-key: pass the .key_secret file")
    if paired != public:
        raise ValueError(f"{os.fspath(public_file)} and {os.fspath(secret_file)} are not the same key pair")
    return public.decode("ascii"), secret.decode("ascii")


def load_public_key(public_file: str | os.PathLike[str]) -> str:
    """The z85 public key in a ZeroMQ certificate file (e.g. the bridge's `server.key`)."""
    from zmq.auth.certs import load_certificate

    return load_certificate(public_file)[0].decode("ascii")


@dataclass(eq=False)
class _Request:
    id: str
    type: str
    frames: list[bytes]
    timeout: float
    deadline: float
    on_reply: Callable[[Outcome], None]  # runs on the I/O thread
    on_event: Callable[[Event], None] | None = None  # runs on the I/O thread
    session: str | None = None
    internal: bool = False


@dataclass(eq=False)
class _Job:
    session: str | None
    on_event: Callable[[Event], None]  # runs on the I/O thread
    done: int = 0
    total: int = 0


class Client:
    """A connection to one bridge, shared by a host's panels; see the module docstring."""

    def __init__(
        self,
        address: str = protocol.DEFAULT_ADDRESS,
        *,
        server_key: str | None = None,
        client_public: str | None = None,
        client_secret: str | None = None,
        timeout: float = 10.0,
        heartbeat: float = 1.0,
        dead_after: float = 3.0,
        name: str = "rotobridge-host",
        dispatch: Dispatch | None = None,
        on_state: Callable[[str, str], None] | None = None,
        on_session_lost: Callable[[str], None] | None = None,
    ) -> None:
        if not (timeout > 0 and heartbeat > 0 and dead_after > heartbeat):
            raise ValueError("timeout and heartbeat must be positive and dead_after longer than heartbeat")
        self.address = address
        self.timeout = float(timeout)
        self.heartbeat = float(heartbeat)
        self.dead_after = float(dead_after)
        self.name = name
        self._curve = _curve_keys(server_key, client_public, client_secret)
        self._dispatch = dispatch
        self._on_state = on_state
        self._on_session_lost = on_session_lost

        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()  # guards _closed, _counter, _sessions, _queue puts
        self._closed = False
        self._stop = False
        self._queue: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._sessions: dict[str, dict[str, Any]] = {}
        self._state = CONNECTING
        self._bridge_info: dict[str, Any] | None = None

        self._ctx = zmq.Context()
        wake = f"inproc://rotobridge-client-wake-{self._prefix}-{id(self)}"
        self._wake_r = self._ctx.socket(zmq.PAIR)
        self._wake_r.bind(wake)
        self._wake_w = self._ctx.socket(zmq.PAIR)
        self._wake_w.connect(wake)
        self._wake_lock = threading.Lock()

        # Owned by the I/O thread from here on.
        self._poller = zmq.Poller()
        self._dealer: zmq.Socket[bytes] | None = None
        self._monitor: zmq.Socket[bytes] | None = None
        self._connected = False  # hello answered on the current socket
        self._handshake_ok = False
        self._refusal: str | None = None
        self._pending: dict[str, _Request] = {}
        self._waiting: list[_Request] = []
        self._jobs: dict[str, _Job] = {}
        self._last_heard = self._last_ping = time.monotonic()
        self._retry_at: float | None = None
        self._backoff = BACKOFF_FIRST

        self._thread = threading.Thread(target=self._run, name=f"rotobridge-client-{self._prefix}", daemon=True)
        self._thread.start()

    # ----------------------------------------------------------------- public API

    @property
    def state(self) -> str:
        """"connecting" (first attempt), "connected" or "lost" (retrying in the background)."""
        return self._state

    @property
    def sessions(self) -> tuple[str, ...]:
        """Sessions this client opened or attached and still holds."""
        with self._lock:
            return tuple(self._sessions)

    @property
    def bridge_info(self) -> dict[str, Any] | None:
        """The last `hello` result (bridge version, model, device), None before the first."""
        return self._bridge_info

    @property
    def closed(self) -> bool:
        return self._closed

    def call(self, type_: str, /, timeout: float | None = None, binary: Sequence[bytes] = (), **fields: Any) -> Reply:
        """Send a request and wait for its reply.

        Raises BridgeError(name, message) on an error reply, BridgeUnreachableError when no
        reply comes within `timeout` (default: the client's) or the connection is lost,
        ProtocolError on a malformed reply. `math.inf` waits as long as the bridge lives.
        """
        return self._call(type_, timeout, binary, None, fields)

    def submit(
        self,
        type_: str,
        callback: Callable[[Outcome], None],
        /,
        on_event: Callable[[Event], None] | None = None,
        timeout: float | None = None,
        binary: Sequence[bytes] = (),
        **fields: Any,
    ) -> str:
        """Send a request without waiting; returns its id.

        `callback(reply_or_error)` and `on_event(event)` (each event of this request, until
        `finished`) run through `dispatch`. Errors are passed, not raised.
        """

        def on_reply(outcome: Outcome) -> None:
            self._post(lambda: callback(outcome))

        def on_ev(ev: Event) -> None:
            assert on_event is not None
            self._post(lambda: on_event(ev))

        request = self._request(type_, fields, binary, timeout, on_reply, on_ev if on_event else None)
        self._enqueue(request)
        return request.id

    def hello(self) -> dict[str, Any]:
        """`protocol`, `bridge_version`, `model`, `device`, `heartbeat_ms` of the bridge."""
        return dict(self.call("hello", client=self.name).result)

    def open(
        self,
        plate: Mapping[str, Any],
        output: Mapping[str, Any],
        colour: Mapping[str, Any] | None = None,
        model: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Open a session on a shot: `session`, `frames` [first, last], `width`, `height`."""
        fields: dict[str, Any] = {"plate": dict(plate), "output": dict(output)}
        if colour is not None:
            fields["colour"] = dict(colour)
        if model is not None:
            fields["model"] = dict(model)
        return dict(self.call("open", **fields).result)

    def attach(self, session: str) -> dict[str, Any]:
        """Take over a session (e.g. opened by another panel); its events come here."""
        return dict(self.call("attach", session=session).result)

    def prompt(
        self,
        session: str,
        obj: Mapping[str, Any],
        frame: int,
        points: Sequence[Sequence[float]] = (),
        labels: Sequence[int] = (),
        box: Sequence[float] | None = None,
    ) -> Preview:
        """Replace `obj`'s clicks on `frame` (plate pixels, top-left origin); returns the preview."""
        fields: dict[str, Any] = {
            "session": session,
            "object": dict(obj),
            "frame": frame,
            "points": [list(p) for p in points],
            "labels": list(labels),
        }
        if box is not None:
            fields["box"] = list(box)
        return Preview.from_reply(self.call("prompt", **fields))

    def clear(self, session: str, object_id: int, frame: int) -> None:
        self.call("clear", session=session, object_id=object_id, frame=frame)

    def remove(self, session: str, object_id: int) -> None:
        self.call("remove", session=session, object_id=object_id)

    def preview(self, session: str, frame: int) -> Preview:
        return Preview.from_reply(self.call("preview", session=session, frame=frame))

    def propagate(
        self,
        session: str,
        start: int,
        end: int,
        direction: str = "both",
        overwrite: bool = False,
        on_event: Callable[[Event], None] | None = None,
        on_done: Callable[[Event], None] | None = None,
    ) -> str:
        """Start tracking `start`..`end`; returns the job id once the bridge accepted it.

        Errors (busy, matte_exists, ...) raise here. Then `on_event` gets every event
        (`progress`, then `finished`) and `on_done` the `finished` one, through `dispatch`.
        With the default dispatch they may run before this method returns.
        """

        def handle(ev: Event) -> None:
            if on_event is not None:
                self._post(lambda: on_event(ev))
            if ev.name == "finished" and on_done is not None:
                self._post(lambda: on_done(ev))

        fields = {"session": session, "start": start, "end": end, "direction": direction, "overwrite": overwrite}
        reply = self._call("propagate", None, (), handle, fields)
        return str(reply.get("job", reply.id))

    def cancel(self, session: str) -> bool:
        """Cancel the session's propagation; True when one was running."""
        return bool(self.call("cancel", session=session).get("cancelled", False))

    def export(self, session: str) -> dict[str, Any]:
        """The session as a recipe dict (docs/recipe.md)."""
        recipe = self.call("export", session=session).get("recipe")
        if not isinstance(recipe, dict):
            raise ProtocolError("export reply without a recipe object")
        return recipe

    def close_session(self, session: str) -> None:
        self.call("close", session=session)

    def status(self) -> dict[str, Any]:
        """`sessions`, `queue`, `device`, `memory` of the bridge."""
        return dict(self.call("status").result)

    def close(self) -> None:
        """Stop the I/O thread and close the socket (linger 0); requests in flight fail."""
        with self._lock:
            if self._stop:
                return
            self._stop = True
        self._wake()
        if threading.get_ident() != self._thread.ident:
            self._thread.join(5.0)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ caller threads

    def _call(
        self,
        type_: str,
        timeout: float | None,
        binary: Sequence[bytes],
        on_event: Callable[[Event], None] | None,
        fields: Mapping[str, Any],
    ) -> Reply:
        if threading.get_ident() == self._thread.ident:
            raise RuntimeError("a blocking rotobridge call from the client's I/O thread would deadlock: use submit()")
        box: list[Outcome] = []
        done = threading.Event()

        def finish(outcome: Outcome) -> None:
            box.append(outcome)
            done.set()

        request = self._request(type_, fields, binary, timeout, finish, on_event)
        self._enqueue(request)
        # The I/O thread answers every request by its deadline; the margin only guards
        # against a bug there turning into a hung host.
        limit = None if math.isinf(request.timeout) else request.timeout + self.dead_after + 5.0
        if not done.wait(limit):
            raise BridgeUnreachableError(f"no answer from the bridge at {self.address} to {type_} in {limit:g} s")
        outcome = box[0]
        if isinstance(outcome, RotobridgeError):
            raise outcome
        return outcome

    def _request(
        self,
        type_: str,
        fields: Mapping[str, Any],
        binary: Sequence[bytes],
        timeout: float | None,
        on_reply: Callable[[Outcome], None],
        on_event: Callable[[Event], None] | None,
        internal: bool = False,
    ) -> _Request:
        with self._lock:
            rid = f"{self._prefix}-{next(self._counter)}"
        frames = protocol.request(type_, rid, binary, **fields)  # raises here on unencodable fields
        size = sum(len(f) for f in frames)
        if size > protocol.MAX_MESSAGE_BYTES:
            raise ProtocolError(f"{type_} request is {size} bytes; the bridge accepts at most {protocol.MAX_MESSAGE_BYTES}")
        wait = self.timeout if timeout is None else float(timeout)
        if not wait > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        session = fields.get("session")
        return _Request(
            rid,
            type_,
            frames,
            wait,
            time.monotonic() + wait,
            on_reply,
            on_event,
            session if isinstance(session, str) else None,
            internal,
        )

    def _enqueue(self, request: _Request) -> None:
        with self._lock:
            if self._closed or self._stop:
                raise BridgeUnreachableError("this rotobridge client is closed: create a new one")
            self._queue.put(request)
        self._wake()

    def _wake(self) -> None:
        with self._wake_lock:
            if self._wake_w.closed:
                return
            try:
                self._wake_w.send(b"", zmq.NOBLOCK)
            except zmq.ZMQError:
                pass  # the queue is full: the I/O thread is awake anyway

    def _post(self, fn: Callable[[], None]) -> None:
        """Hand a callback to the host's dispatch (or run it here)."""

        def guarded() -> None:
            try:
                fn()
            except Exception:
                log.exception("a rotobridge callback failed")

        if self._dispatch is None:
            guarded()
            return
        try:
            self._dispatch(guarded)
        except Exception:
            log.exception("the host's dispatch refused a rotobridge callback")

    # ----------------------------------------------------------------- I/O thread

    def _run(self) -> None:
        why = "this rotobridge client was closed"
        self._poller.register(self._wake_r, zmq.POLLIN)
        try:
            self._report(CONNECTING, f"connecting to the bridge at {self.address}")
            self._attempt()
            while not self._stop:
                self._take_requests()
                self._tick()
                wait = max(0.0, min(self._next_wakeup() - time.monotonic(), 1.0))
                ready = dict(self._poller.poll(int(math.ceil(wait * 1000))))
                if self._wake_r in ready:
                    self._drain(self._wake_r)
                if self._dealer is not None and self._dealer in ready:
                    self._read_dealer()
                if self._monitor is not None and self._monitor in ready:
                    self._read_monitor()
        except Exception:
            log.exception("the rotobridge client's I/O thread failed")
            why = "the rotobridge client stopped after an internal error: see the host's log"
            self._report(LOST, why)
        finally:
            with self._lock:
                self._closed = True
            self._close_socket()
            error = BridgeUnreachableError(why)
            leftovers = list(self._pending.values()) + self._waiting
            self._pending.clear()
            self._waiting.clear()
            while True:
                try:
                    leftovers.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for request in leftovers:
                self._complete(request, error)
            self._jobs.clear()
            self._wake_r.close(linger=0)
            with self._wake_lock:
                self._wake_w.close(linger=0)
            self._ctx.term()

    def _drain(self, sock: zmq.Socket[bytes]) -> None:
        while True:
            try:
                sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return

    def _take_requests(self) -> None:
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                return
            if self._connected:
                self._send(request)
            else:
                self._waiting.append(request)
                if self._dealer is None:
                    self._retry_at = time.monotonic()  # someone is waiting: retry now

    def _attempt(self) -> None:
        """A fresh socket, then `hello`; the rest follows its reply."""
        self._retry_at = None
        self._connected = self._handshake_ok = False
        self._refusal = None
        dealer = self._ctx.socket(zmq.DEALER)
        try:
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.setsockopt(zmq.MAXMSGSIZE, MAX_INBOUND_BYTES)
            dealer.setsockopt(zmq.HEARTBEAT_IVL, _ms(self.heartbeat))
            dealer.setsockopt(zmq.HEARTBEAT_TIMEOUT, _ms(self.dead_after))
            dealer.setsockopt(zmq.HEARTBEAT_TTL, min(_ms(self.dead_after), 6553599))
            if self._curve is not None:
                server, public, secret = self._curve
                dealer.setsockopt(zmq.CURVE_SERVERKEY, server)
                dealer.setsockopt(zmq.CURVE_PUBLICKEY, public)
                dealer.setsockopt(zmq.CURVE_SECRETKEY, secret)
            monitor = dealer.get_monitor_socket(
                zmq.EVENT_HANDSHAKE_SUCCEEDED
                | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
                | zmq.EVENT_DISCONNECTED
            )
        except zmq.ZMQError:
            dealer.close(linger=0)
            raise
        self._dealer, self._monitor = dealer, monitor
        self._poller.register(dealer, zmq.POLLIN)
        self._poller.register(monitor, zmq.POLLIN)
        self._last_heard = self._last_ping = time.monotonic()
        try:
            dealer.connect(self.address)
        except zmq.ZMQError as exc:
            self._lose(f"cannot connect to the bridge at {self.address}: {exc}")
            return
        self._send(self._request("hello", {"client": self.name}, (), self.dead_after, self._on_hello, None, internal=True))

    def _on_hello(self, outcome: Outcome) -> None:
        if isinstance(outcome, RotobridgeError):
            if isinstance(outcome, BridgeUnreachableError):
                if self._dealer is not None:  # hello timed out; else _lose already ran
                    self._lose(str(outcome))
                return
            waiting, self._waiting = self._waiting, []
            for request in waiting:
                self._complete(request, outcome)
            self._lose(str(outcome))
            return
        self._connected = True
        self._backoff = BACKOFF_FIRST
        self._bridge_info = dict(outcome.result)
        info = self._bridge_info
        self._report(
            CONNECTED,
            f"connected to rotobridge {info.get('bridge_version', '?')} at {self.address} "
            f"(model {info.get('model', '?')}, {info.get('device', '?')})",
        )
        with self._lock:
            held = list(self._sessions)
        for session in held:
            self._send(self._request("attach", {"session": session}, (), None, self._on_reattach, None, internal=True))
        waiting, self._waiting = self._waiting, []
        for request in waiting:
            self._send(request)

    def _on_reattach(self, outcome: Outcome) -> None:
        # unknown_session is handled for every request in _track; anything else is logged.
        if isinstance(outcome, BridgeUnreachableError) or getattr(outcome, "name", "") == "unknown_session":
            return
        if isinstance(outcome, RotobridgeError):
            log.warning("re-attaching a session to the bridge at %s failed: %s", self.address, outcome)

    def _send(self, request: _Request) -> None:
        assert self._dealer is not None
        try:
            self._dealer.send_multipart(request.frames, zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            self._complete(request, BridgeUnreachableError(f"cannot send to the bridge at {self.address}: {exc}"))
            return
        self._pending[request.id] = request

    def _tick(self) -> None:
        now = time.monotonic()
        if self._dealer is not None:
            silent = now - self._last_heard
            if silent >= self.dead_after:
                why = self._refusal or f"is it running? (`rotobridge serve`; host {self.address})"
                self._lose(f"no answer from the bridge at {self.address} for {silent:.1f} s: {why}; reconnecting")
            elif self._connected and now - max(self._last_heard, self._last_ping) >= self.heartbeat:
                self._last_ping = now
                self._send(self._request("ping", {}, (), self.dead_after, _ignore, None, internal=True))
        elif self._retry_at is not None and now >= self._retry_at:
            self._attempt()
        now = time.monotonic()
        for rid, request in list(self._pending.items()):
            if now >= request.deadline:
                del self._pending[rid]
                self._complete(request, self._timeout_error(request))
        expired = [r for r in self._waiting if now >= r.deadline]
        if expired:
            self._waiting = [r for r in self._waiting if now < r.deadline]
            for request in expired:
                self._complete(request, self._timeout_error(request))

    def _timeout_error(self, request: _Request) -> BridgeUnreachableError:
        if self._connected:
            return BridgeUnreachableError(
                f"the bridge at {self.address} did not answer {request.type} within {request.timeout:g} s; "
                "it is running but busy or stuck (see its log)"
            )
        return BridgeUnreachableError(
            f"no answer from the bridge at {self.address} within {request.timeout:g} s: is it running?"
        )

    def _next_wakeup(self) -> float:
        times = [r.deadline for r in self._pending.values()] + [r.deadline for r in self._waiting]
        if self._dealer is not None:
            times.append(self._last_heard + self.dead_after)
            if self._connected:
                times.append(max(self._last_heard, self._last_ping) + self.heartbeat)
        elif self._retry_at is not None:
            times.append(self._retry_at)
        return min(times, default=time.monotonic() + 1.0)

    def _lose(self, why: str) -> None:
        """The connection is gone: fail what was asked, keep jobs and sessions, retry later."""
        self._close_socket()
        self._connected = False
        failed = [r for r in self._pending.values()] + self._waiting
        self._pending.clear()
        self._waiting = []
        error = BridgeUnreachableError(why)
        for request in failed:
            self._complete(request, error)
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)
        self._report(LOST, why)

    def _close_socket(self) -> None:
        if self._dealer is None:
            return
        for sock in (self._monitor, self._dealer):
            if sock is not None:
                self._poller.unregister(sock)
        try:
            self._dealer.disable_monitor()
        except zmq.ZMQError:
            pass
        if self._monitor is not None:
            self._monitor.close(linger=0)
        self._dealer.close(linger=0)
        self._dealer = self._monitor = None

    def _read_monitor(self) -> None:
        while self._monitor is not None:
            try:
                frames = self._monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2 or len(frames[0]) != 6:
                continue
            event, value = struct.unpack("=Hi", frames[0])
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._handshake_ok = True
            elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._lose(
                    f"the bridge at {self.address} refused this client's key (ZAP status {value}): "
                    "ask for its public key to be added to the bridge's allowed keys"
                )
            elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                self._lose(
                    f"the security handshake with the bridge at {self.address} failed: one side uses CURVE "
                    "encryption and the other does not, or they disagree (set or fix server_key)"
                )
            elif event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL and self._curve is not None:
                self._refusal = "the secure handshake failed: is server_key the bridge's public key?"
            elif event == zmq.EVENT_DISCONNECTED and self._handshake_ok:
                self._lose(f"the bridge at {self.address} closed the connection (stopped or restarted?); reconnecting")
            elif event == zmq.EVENT_DISCONNECTED and self._refusal is None:
                self._refusal = (
                    "it closed the connection during the security handshake: does it need CURVE keys "
                    "(server_key), or are they wrong?"
                )

    def _read_dealer(self) -> None:
        for _ in range(1000):  # then let timers run
            if self._dealer is None:
                return
            try:
                frames = self._dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._last_heard = time.monotonic()
            self._on_message(frames)

    def _on_message(self, frames: list[bytes]) -> None:
        try:
            message = protocol.decode_reply(frames)
        except ProtocolError as exc:
            request = self._pending.pop(exc.request_id, None) if exc.request_id else None
            if request is not None:
                self._complete(request, self._protocol_failure(exc))
            else:
                log.warning("ignored a malformed message from the bridge at %s: %s", self.address, exc)
            return
        binary = message.binary
        if message.type == "event":
            self._on_event(message.id, message.fields)
            return
        request = self._pending.pop(message.id, None)
        if request is None:
            return  # a ping's reply, or a reply after its request timed out
        outcome = self._outcome(request, message.fields, binary)
        self._track(request, outcome)
        if isinstance(outcome, Reply) and request.on_event is not None and (
            request.type == "propagate" or "job" in outcome.result
        ):
            self._jobs[request.id] = _Job(request.session, request.on_event)
        self._complete(request, outcome)

    def _outcome(self, request: _Request, fields: Mapping[str, Any], binary: tuple[bytes, ...]) -> Outcome:
        ok = fields.get("ok")
        if ok is True:
            result = fields.get("result")
            if not isinstance(result, dict):
                return ProtocolError(f"the bridge's reply to {request.type} has no result object")
            if request.type == "hello":
                mismatch = self._version_problem(result.get("protocol"))
                if mismatch is not None:
                    return mismatch
            return Reply(request.id, request.type, result, binary)
        error = fields.get("error")
        if ok is False and isinstance(error, dict):
            name, message = error.get("name"), error.get("message")
            if isinstance(name, str) and isinstance(message, str):
                return BridgeError(name, message)
        return ProtocolError(f"the bridge's reply to {request.type} is neither a result nor an error")

    def _version_problem(self, theirs: Any) -> RotobridgeError | None:
        if not (isinstance(theirs, list) and len(theirs) == 2 and all(_is_int(x) for x in theirs)):
            return ProtocolError(f"the bridge at {self.address} did not say its protocol version in hello")
        if theirs[0] == protocol.PROTOCOL_VERSION[0]:
            return None
        ours = "{}.{}".format(*protocol.PROTOCOL_VERSION)
        return BridgeError(
            "version_mismatch",
            f"the bridge at {self.address} speaks protocol {theirs[0]}.{theirs[1]} and this plugin {ours}: "
            "install matching rotobridge versions on the host and the bridge",
        )

    def _protocol_failure(self, exc: ProtocolError) -> RotobridgeError:
        if exc.name == "version_mismatch":
            return BridgeError("version_mismatch", f"the bridge at {self.address}: {exc}")
        return ProtocolError(f"the bridge at {self.address} sent a malformed reply: {exc}")

    def _track(self, request: _Request, outcome: Outcome) -> None:
        """Keep the set of held sessions in step with what the bridge said."""
        session = request.session
        if isinstance(outcome, Reply):
            if request.type == "open" and isinstance(outcome.get("session"), str):
                with self._lock:
                    self._sessions[outcome["session"]] = dict(outcome.result)
            elif request.type == "attach" and session is not None:
                with self._lock:
                    self._sessions[session] = dict(outcome.result)
            elif request.type == "close" and session is not None:
                with self._lock:
                    self._sessions.pop(session, None)
                self._end_jobs(session, "cancelled", {"name": "cancelled", "message": "the session was closed"})
        elif isinstance(outcome, BridgeError) and outcome.name == "unknown_session" and session is not None:
            with self._lock:
                held = self._sessions.pop(session, None) is not None
            if held:
                self._end_jobs(session, "failed", {"name": "unknown_session", "message": str(outcome)})
                if self._on_session_lost is not None and request.type != "close":
                    lost = self._on_session_lost
                    self._post(lambda: lost(session))

    def _end_jobs(self, session: str, status: str, error: dict[str, str]) -> None:
        for rid, job in list(self._jobs.items()):
            if job.session == session:
                del self._jobs[rid]
                fields = {"written": job.done, "total": job.total, "status": status, "error": error}
                self._deliver(job, Event(rid, "finished", fields, synthetic=True))

    def _on_event(self, rid: str, fields: Mapping[str, Any]) -> None:
        job = self._jobs.get(rid)
        name = fields.get("event")
        if job is None or not isinstance(name, str):
            return  # not ours any more (finished, timed out) or malformed
        body = {k: v for k, v in fields.items() if k != "event"}
        if name == "progress":
            job.done = body["done"] if _is_int(body.get("done")) else job.done
            job.total = body["total"] if _is_int(body.get("total")) else job.total
        if name == "finished":
            del self._jobs[rid]
        self._deliver(job, Event(rid, name, body))

    def _deliver(self, job: _Job, event: Event) -> None:
        try:
            job.on_event(event)
        except Exception:
            log.exception("delivering a rotobridge event failed")

    def _complete(self, request: _Request, outcome: Outcome) -> None:
        try:
            request.on_reply(outcome)
        except Exception:
            log.exception("completing a rotobridge request failed")

    def _report(self, state: str, why: str) -> None:
        if state == self._state and state != CONNECTING:
            return
        self._state = state
        if self._on_state is not None:
            on_state = self._on_state
            self._post(lambda: on_state(state, why))


def _ignore(outcome: Outcome) -> None:
    pass


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _ms(seconds: float) -> int:
    return max(1, int(round(seconds * 1000)))


def _curve_keys(
    server_key: str | None, client_public: str | None, client_secret: str | None
) -> tuple[bytes, bytes, bytes] | None:
    if server_key is None:
        if client_public is not None or client_secret is not None:
            raise ValueError("client keys without server_key: pass the bridge's public key as server_key")
        return None
    if not zmq.has("curve"):
        raise ValueError("this pyzmq/libzmq has no CURVE support; cannot use server_key")
    if (client_public is None) != (client_secret is None):
        raise ValueError("pass both client_public and client_secret, or neither (a throwaway pair is made)")
    if client_public is None or client_secret is None:
        public_b, secret_b = zmq.curve_keypair()
        client_public, client_secret = public_b.decode("ascii"), secret_b.decode("ascii")
    keys = []
    for label, key in (("server_key", server_key), ("client_public", client_public), ("client_secret", client_secret)):
        if not (isinstance(key, str) and len(key) == 40):
            raise ValueError(f"{label}: must be a 40-character z85 CURVE key (see load_keys)")
        keys.append(key.encode("ascii"))
    if zmq.curve_public(keys[2]) != keys[1]:
        raise ValueError("client_public and client_secret are not the same key pair")
    return keys[0], keys[1], keys[2]
