"""The host's link to a bridge: one I/O thread, its socket, liveness and reconnection.

Threading model
    One background I/O thread owns the DEALER socket (a ZeroMQ socket belongs to one
    thread). `send` may be called from any thread: it encodes the request in the caller's
    thread (so a bad field raises there), queues it and wakes the I/O thread through an
    inproc PAIR. Its `on_answer` and `on_event` callbacks run on the I/O thread and must
    not block; `post` hands work to the host's `dispatch` (its main thread).

Liveness
    ZMTP heartbeats are set on the socket, and a `ping` goes out whenever nothing was heard
    for `heartbeat` seconds. Hearing nothing at all for `dead_after` seconds, or the bridge
    closing the connection, or the bridge refusing our CURVE key, declares the connection
    lost: every request in flight fails with `BridgeUnreachableError`,
    `on_state("lost", why)` fires, and the connection retries on a new socket with backoff
    (0.5 s doubling to 5 s; at once when a new request arrives), says `hello` again and
    re-`attach`es every session it holds (`Held`), so a running propagation's events come
    back.

Stdlib + pyzmq only: hosts import it.
"""

from __future__ import annotations

import itertools
import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, Union

import zmq

from . import protocol
from .dealer import Dealer
from .errors import BridgeUnreachableError, ProtocolError, RotobridgeError, UnknownSessionError
from .held import Held
from .inbox import Inbox
from .keys import Keys
from .mainthread import Dispatch, post

log = logging.getLogger(__name__)

CONNECTING = "connecting"
CONNECTED = "connected"
LOST = "lost"

#: Reconnection delays: the first, doubling up to the last.
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 5.0
#: What a request's `on_answer` receives: the answer (`protocol.result`) or the error.
Answer = Union[protocol.Message, RotobridgeError]


@dataclass(eq=False)
class Request:
    """A request on its way: its frames, when it gives up, and who hears back (on the I/O thread)."""

    id: str
    type: str
    frames: list[bytes]
    timeout: float
    deadline: float
    on_answer: Callable[[Answer], None]
    on_event: Callable[[protocol.Message], None] | None = None
    session: str | None = None


class Connection:
    """A connection to one bridge, shared by a host's panels; see the module docstring."""

    def __init__(
        self,
        address: str = protocol.DEFAULT_ADDRESS,
        *,
        keys: Keys | None = None,
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
        self._curve = keys.as_bytes() if keys is not None else None
        self._dispatch = dispatch
        self._on_state = on_state

        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()  # guards _closed, _stop, _counter, inbox puts
        self._closed = False
        self._stop = False
        self.held = Held(self.post, on_session_lost)
        self._state = CONNECTING
        self._bridge_info: dict[str, Any] | None = None

        self._ctx = zmq.Context()
        self._inbox: Inbox[Request] = Inbox(self._ctx, f"rotobridge-client-{self._prefix}-{id(self)}")

        # Owned by the I/O thread from here on.
        self._poller = zmq.Poller()
        self._dealer: Dealer | None = None
        self._connected = False  # hello answered on the current socket
        self._pending: dict[str, Request] = {}
        self._waiting: list[Request] = []
        self._last_heard = self._last_ping = time.monotonic()
        self._retry_at: float | None = None
        self._backoff = BACKOFF_FIRST

        self.thread = threading.Thread(target=self._run, name=f"rotobridge-client-{self._prefix}", daemon=True)
        self.thread.start()

    # ----------------------------------------------------------------- any thread

    @property
    def state(self) -> str:
        """"connecting" (first attempt), "connected" or "lost" (retrying in the background)."""
        return self._state

    @property
    def bridge_info(self) -> dict[str, Any] | None:
        """The last `hello` result (bridge version, model, device), None before the first."""
        return self._bridge_info

    @property
    def closed(self) -> bool:
        return self._closed

    def send(
        self,
        type_: str,
        fields: Mapping[str, Any],
        binary: Sequence[bytes],
        timeout: float | None,
        on_answer: Callable[[Answer], None],
        on_event: Callable[[protocol.Message], None] | None = None,
    ) -> Request:
        """Queue a request; its answer (or error) goes to `on_answer` on the I/O thread, by its deadline."""
        request = self._request(type_, fields, binary, timeout, on_answer, on_event)
        with self._lock:
            if self._closed or self._stop:
                raise BridgeUnreachableError("this rotobridge client is closed: create a new one")
            self._inbox.put(request)
        return request

    def post(self, fn: Callable[[], None]) -> None:
        """Hand a callback to the host's dispatch (or run it here); its errors are logged, never raised."""
        post(self._dispatch, fn)

    def close(self) -> None:
        """Stop the I/O thread and close the socket (linger 0); requests in flight fail."""
        with self._lock:
            if self._stop:
                return
            self._stop = True
        self._inbox.wake()
        if threading.get_ident() != self.thread.ident:
            self.thread.join(5.0)

    def _request(
        self,
        type_: str,
        fields: Mapping[str, Any],
        binary: Sequence[bytes],
        timeout: float | None,
        on_answer: Callable[[Answer], None],
        on_event: Callable[[protocol.Message], None] | None,
    ) -> Request:
        with self._lock:
            rid = f"{self._prefix}-{next(self._counter)}"
        frames = protocol.request(type_, rid, binary, **fields)  # raises here on unencodable fields
        wait = self.timeout if timeout is None else float(timeout)
        if not wait > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        session = fields.get("session")
        return Request(rid, type_, frames, wait, time.monotonic() + wait, on_answer, on_event, session if isinstance(session, str) else None)

    # ----------------------------------------------------------------- I/O thread

    def _run(self) -> None:
        why = "this rotobridge client was closed"
        self._poller.register(self._inbox.socket, zmq.POLLIN)
        try:
            self._report(CONNECTING, f"connecting to the bridge at {self.address}")
            self._attempt()
            while not self._stop:
                self._take_requests()
                self._tick()
                wait = max(0.0, min(self._next_wakeup() - time.monotonic(), 1.0))
                ready = dict(self._poller.poll(int(math.ceil(wait * 1000))))
                if self._dealer is not None and self._dealer.socket in ready:
                    self._read_dealer()
                if self._dealer is not None and self._dealer.monitor in ready:
                    lost = self._dealer.read_monitor()
                    if lost is not None:
                        self._lose(lost)
        except Exception:
            log.exception("the rotobridge client's I/O thread failed")
            why = "the rotobridge client stopped after an internal error: see the host's log"
            self._report(LOST, why)
        finally:
            with self._lock:
                self._closed = True
            self._close_socket()
            error = BridgeUnreachableError(why)
            leftovers = list(self._pending.values()) + self._waiting + self._inbox.take()
            self._pending.clear()
            self._waiting.clear()
            for request in leftovers:
                _complete(request, error)
            self.held.forget_jobs()
            self._inbox.close()
            self._ctx.term()

    def _take_requests(self) -> None:
        for request in self._inbox.take():
            if self._connected:
                self._send(request)
            else:
                self._waiting.append(request)
                if self._dealer is None:
                    self._retry_at = time.monotonic()  # someone is waiting: retry now

    def _attempt(self) -> None:
        """A fresh socket, then `hello`; the rest follows its answer."""
        self._retry_at = None
        self._connected = False
        dealer = self._dealer = Dealer(self._ctx, self.address, self.heartbeat, self.dead_after, self._curve)
        self._poller.register(dealer.socket, zmq.POLLIN)
        self._poller.register(dealer.monitor, zmq.POLLIN)
        self._last_heard = self._last_ping = time.monotonic()
        try:
            dealer.connect()
        except zmq.ZMQError as exc:
            self._lose(f"cannot connect to the bridge at {self.address}: {exc}")
            return
        self._send(self._request("hello", {"client": self.name}, (), self.dead_after, self._on_hello, None))

    def _on_hello(self, answer: Answer) -> None:
        if isinstance(answer, RotobridgeError):
            if isinstance(answer, BridgeUnreachableError):
                if self._dealer is not None:  # hello timed out; else _lose already ran
                    self._lose(str(answer))
                return
            waiting, self._waiting = self._waiting, []
            for request in waiting:
                _complete(request, answer)
            self._lose(str(answer))
            return
        self._connected = True
        self._backoff = BACKOFF_FIRST
        self._bridge_info = info = dict(answer.fields)
        self._report(
            CONNECTED,
            f"connected to rotobridge {info.get('bridge_version', '?')} at {self.address} "
            f"(model {info.get('model', '?')}, {info.get('device', '?')})",
        )
        for session in self.held.sessions:
            self._send(self._request("attach", {"session": session}, (), None, self._on_reattach, None))
        waiting, self._waiting = self._waiting, []
        for request in waiting:
            self._send(request)

    def _on_reattach(self, answer: Answer) -> None:
        # unknown_session is handled for every request by Held.track; anything else is logged.
        if isinstance(answer, (BridgeUnreachableError, UnknownSessionError)):
            return
        if isinstance(answer, RotobridgeError):
            log.warning("re-attaching a session to the bridge at %s failed: %s", self.address, answer)

    def _send(self, request: Request) -> None:
        assert self._dealer is not None
        try:
            self._dealer.socket.send_multipart(request.frames, zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            _complete(request, BridgeUnreachableError(f"cannot send to the bridge at {self.address}: {exc}"))
            return
        self._pending[request.id] = request

    def _tick(self) -> None:
        now = time.monotonic()
        if self._dealer is not None:
            silent = now - self._last_heard
            if silent >= self.dead_after:
                why = self._dealer.refusal or f"is it running? (`rotobridge serve`; host {self.address})"
                self._lose(f"no answer from the bridge at {self.address} for {silent:.1f} s: {why}; reconnecting")
            elif self._connected and now - max(self._last_heard, self._last_ping) >= self.heartbeat:
                self._last_ping = now
                self._send(self._request("ping", {}, (), self.dead_after, _ignore, None))
        elif self._retry_at is not None and now >= self._retry_at:
            self._attempt()
        now = time.monotonic()
        for rid, request in list(self._pending.items()):
            if now >= request.deadline:
                del self._pending[rid]
                _complete(request, self._timeout_error(request))
        expired = [r for r in self._waiting if now >= r.deadline]
        if expired:
            self._waiting = [r for r in self._waiting if now < r.deadline]
            for request in expired:
                _complete(request, self._timeout_error(request))

    def _timeout_error(self, request: Request) -> BridgeUnreachableError:
        if self._connected:
            return BridgeUnreachableError(
                f"the bridge at {self.address} did not answer {request.type} within {request.timeout:g} s; "
                "it is running but busy or stuck (see its log)"
            )
        return BridgeUnreachableError(f"no answer from the bridge at {self.address} within {request.timeout:g} s: is it running?")

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
        failed = list(self._pending.values()) + self._waiting
        self._pending.clear()
        self._waiting = []
        error = BridgeUnreachableError(why)
        for request in failed:
            _complete(request, error)
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)
        self._report(LOST, why)

    def _close_socket(self) -> None:
        if self._dealer is None:
            return
        self._poller.unregister(self._dealer.monitor)
        self._poller.unregister(self._dealer.socket)
        self._dealer.close()
        self._dealer = None

    def _read_dealer(self) -> None:
        for _ in range(1000):  # then let timers run
            if self._dealer is None:
                return
            try:
                frames = self._dealer.socket.recv_multipart(zmq.NOBLOCK)
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
                _complete(request, self._failure(exc))
            else:
                log.warning("ignored a malformed message from the bridge at %s: %s", self.address, exc)
            return
        if message.type == "event":
            self.held.event(message)
            return
        request = self._pending.pop(message.id, None)
        if request is None:
            return  # a ping's reply, or a reply after its request timed out
        answer: Answer
        try:
            answer = protocol.result(request.type, message)
        except ProtocolError as exc:
            answer = self._failure(exc)
        except RotobridgeError as exc:
            answer = exc
        self.held.track(request.id, request.type, request.session, answer, request.on_event)
        _complete(request, answer)

    def _failure(self, exc: ProtocolError) -> RotobridgeError:
        """A protocol failure, said of this bridge (version mismatches keep their class)."""
        message = f"the bridge at {self.address}: {exc}" if exc.name == "version_mismatch" else (
            f"the bridge at {self.address} sent a malformed reply: {exc}"
        )
        return type(exc)(message, request_id=exc.request_id)

    def _report(self, state: str, why: str) -> None:
        if state == self._state and state != CONNECTING:
            return
        self._state = state
        if self._on_state is not None:
            on_state = self._on_state
            self.post(lambda: on_state(state, why))


def _complete(request: Request, answer: Answer) -> None:
    try:
        request.on_answer(answer)
    except Exception:
        log.exception("completing a rotobridge request failed")


def _ignore(answer: Answer) -> None:
    pass

