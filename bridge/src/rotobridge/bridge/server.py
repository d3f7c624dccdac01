"""`rotobridge serve`: the ZeroMQ server hosts drive interactively (docs/protocol.md).

Two threads. The I/O thread owns the ROUTER socket (a socket belongs to one thread): it
decodes every message, answers the cheap requests itself (hello, ping, status, cancel)
and hands the rest to the device worker (`scheduler.py`), which owns all model work.
Whatever the worker has to send — replies, previews, job events — comes back through a
queue and a wake-up socket, and the I/O thread sends it. Nothing a client sends can stop
the loop: malformed messages get error replies, bugs become `internal` errors, and a
client that vanished or stopped reading just loses its messages.

The I/O thread is also where a session ends: `close` (and expiry) takes it off the list
and marks it closed at once, so every later request, and every one still waiting for the
worker, is answered `unknown_session`; the worker then frees it. The worker serves the
clients in turn and each client may keep at most `protocol.MAX_PENDING` requests waiting,
so a client that floods the bridge delays nobody else's clicks by more than one request.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import secrets
import socket
import threading
import time
from typing import Any, Callable

import torch
import zmq

from rotobridge import controls, protocol
from rotobridge import recipe as recipes
from rotobridge.errors import BusyError, ConfigError, ProtocolError, RotobridgeError, UnknownSessionError
from rotobridge.version import __version__

from .config import BridgeConfig
from .logs import internal_error
from .model import LoadedModel
from .scheduler import Scheduler
from .security import private_ipc, secure_server
from .session import Session, checked_shot

log = logging.getLogger(__name__)

#: ZMTP heartbeats: a silent peer is dropped after HEARTBEAT_TIMEOUT_MS.
HEARTBEAT_MS = 1000
HEARTBEAT_TIMEOUT_MS = 3000
#: How often idle sessions are looked for.
SWEEP_SECONDS = 1.0
#: Messages read in one go before the outbox is flushed, so replies keep flowing under a flood.
READ_BATCH = 256

#: A reply's result fields and binary frames.
Result = tuple[dict[str, Any], list[bytes]]
#: Handlers take (identity, message), plus the session for requests that name one.
Handler = Callable[..., Result]


def memory() -> dict[str, Any]:
    """The process's resident memory and, on CUDA, the device memory torch holds."""
    try:
        with open("/proc/self/statm") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the peak is what the platform offers
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if os.uname().sysname == "Darwin" else 1024)
    cuda = None
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        cuda = {"allocated_bytes": torch.cuda.memory_allocated(), "reserved_bytes": torch.cuda.memory_reserved()}
    return {"rss_bytes": rss, "cuda": cuda}


class Server:
    """One bridge: a model loaded once, served to any number of sessions."""

    def __init__(self, config: BridgeConfig, loaded: LoadedModel) -> None:
        self.config = config
        self.loaded = loaded
        self.served = config.model_section()
        self.roots = config.allowed_roots
        self.endpoint = ""
        self.scheduler = Scheduler()
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._outbox: queue.SimpleQueue[tuple[bytes | Session, list[bytes]]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._io_thread = 0  # the ident of the thread running serve_forever
        self._error: BaseException | None = None
        #: request type → (handler, whether it runs on the device worker); the rest answer at once
        self._routes: dict[str, tuple[Handler, bool]] = {
            "hello": (self._hello, False),
            "ping": (lambda identity, msg: ({}, []), False),
            "status": (self._status, False),
            "cancel": (self._cancel, False),
            "open": (self._open, True),
            "attach": (lambda identity, msg, session: (session.summary(), []), True),
            "prompt": (self._prompt, True),
            "clear": (self._clear, True),
            "remove": (self._remove, True),
            "preview": (self._preview, True),
            "matte": (self._matte, True),
            "propagate": (self._propagate, True),
            "export": (lambda identity, msg, session: ({"recipe": recipes.to_dict(session.recipe())}, []), True),
            "close": (self._close, True),
        }

    # --- running -----------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Bind and serve on this thread until `stop()`; binding problems raise ConfigError."""
        self._io_thread = threading.get_ident()
        context = zmq.Context()
        router = context.socket(zmq.ROUTER)
        auth = None
        try:
            router.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a vanished client is an error we can drop, not a silent loss
            # no ROUTER_HANDOVER: a peer naming the routing id of a connected one is refused, never handed its messages
            router.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_MESSAGE_BYTES)
            router.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_MS)
            router.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
            router.setsockopt(zmq.HEARTBEAT_TTL, HEARTBEAT_TIMEOUT_MS)
            router.linger = 500  # let the last events (a closing session's `finished`) leave
            if self.config.curve_secret and self.config.curve_authorized:
                auth = secure_server(router, context, self.config.curve_secret, self.config.curve_authorized)
            private = private_ipc(self.config.address)
            try:
                router.bind(self.config.address)
            except zmq.ZMQError as exc:
                raise ConfigError(f"address: cannot listen on {self.config.address}: {exc} (is another bridge running?)") from None
            self.endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
            self.scheduler.start()
            log.info(
                "serving %s on %s at %s%s; allowed roots: %s%s",
                self.loaded.name,
                self.loaded.device,
                self.endpoint,
                " with CURVE" if auth else "",
                ", ".join(self.roots),
                "" if self.config.roots else " (default: the home folder)",
            )
            if auth is None and private is None:
                log.warning(
                    "%s has no CURVE keys and is not a private ipc:// socket: every user of this machine can "
                    "connect, read under the roots and write mattes there; on a shared machine use "
                    "ipc://$XDG_RUNTIME_DIR/rotobridge/bridge.sock or CURVE keys (docs/bridge.md, Threat model)",
                    self.endpoint,
                )
            self._ready.set()
            self._loop(router)
        finally:
            self._shutdown()
            self._flush(router)
            router.close()
            if auth is not None:
                auth.stop()
            context.term()
            self._wake_r.close()
            self._wake_w.close()

    def start(self) -> None:
        """Serve on a background thread; returns once listening (or raises why it could not)."""

        def run() -> None:
            try:
                self.serve_forever()
            except BaseException as exc:
                self._error = exc
                self._ready.set()

        self._thread = threading.Thread(target=run, name="rotobridge-io", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def stop(self, timeout: float | None = 10) -> None:
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self, router: zmq.Socket[bytes]) -> None:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(self._wake_r, zmq.POLLIN)
        next_sweep = time.monotonic() + SWEEP_SECONDS
        while not self._stop.is_set():
            ready = dict(poller.poll(max(0, int((next_sweep - time.monotonic()) * 1000))))
            if self._wake_r.fileno() in ready:
                self._drain_wake()
            if router in ready:
                for _ in range(READ_BATCH):
                    try:
                        frames = router.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self._receive(frames)
            self._flush(router)
            if time.monotonic() >= next_sweep:
                self._expire()
                next_sweep = time.monotonic() + SWEEP_SECONDS

    def _shutdown(self) -> None:
        for session in self._forget(lambda s: True):
            self.scheduler.submit(session.close)
        self.scheduler.stop()

    def _forget(self, which: Callable[[Session], bool]) -> list[Session]:
        """Take the sessions `which` picks off the list and mark them closed, atomically.

        From here on no request reaches them: a lookup fails, and a request already
        waiting for the worker finds `closed` set (`_answer`). Freeing them is the worker's.
        """
        with self._lock:
            gone = [s for s in self._sessions.values() if which(s)]
            for session in gone:
                del self._sessions[session.id]
                session.closed = True
        return gone

    # --- messages in and out -------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # the buffer is full (a wake-up is pending anyway) or the server has stopped
            pass

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _post(self, target: bytes | Session, frames: list[bytes]) -> None:
        """Queue a message for the I/O thread (any thread); a Session means its current owner.

        The I/O thread flushes after every batch it reads, so only other threads wake it: a
        wake-up per refusal would double what a flood of bad messages costs it.
        """
        self._outbox.put((target, frames))
        if threading.get_ident() != self._io_thread:
            self._wake()

    def _flush(self, router: zmq.Socket[bytes]) -> None:
        while True:
            try:
                target, frames = self._outbox.get_nowait()
            except queue.Empty:
                return
            identity = target.owner if isinstance(target, Session) else target
            try:
                router.send_multipart([identity, *frames], zmq.NOBLOCK)
            except zmq.Again:
                log.debug("dropped a message to client %s, which does not read its messages", identity.hex()[:8])
            except zmq.ZMQError as exc:  # EHOSTUNREACH: the client is gone (ROUTER_MANDATORY)
                log.debug("dropped a message to client %s: %s", identity.hex()[:8], exc)

    def _receive(self, frames: list[bytes]) -> None:
        identity, rid = frames[0], None
        try:
            msg = protocol.decode_request(frames[1:])
            rid = msg.id
            session = None
            args: tuple[Any, ...] = (identity, msg)
            handler, on_worker = self._routes[msg.type]
            if on_worker and msg.type != "close" and self.scheduler.pending(identity) >= protocol.MAX_PENDING:
                raise BusyError(
                    f"this client has {protocol.MAX_PENDING} requests waiting for the bridge (the most it may): "
                    "wait for their replies, then send again"
                )
            if "session" in protocol.REQUESTS[msg.type]:
                session = self._session(msg["session"])
                session.touch(identity)
                args += (session,)
                if msg.type == "close":
                    self._forget(lambda s: s is session)
            answer = functools.partial(self._answer, identity, msg, session, functools.partial(handler, *args))
            if on_worker:
                self.scheduler.submit(answer, identity)
            else:
                answer()
        except ProtocolError as exc:
            log.debug("refused a message from %s: %s", identity.hex()[:8], exc)
            self._post(identity, protocol.error_reply(exc.request_id, exc))
        except RotobridgeError as exc:
            self._post(identity, protocol.error_reply(rid, exc))
        except Exception:
            self._post(identity, protocol.error_reply(rid, internal_error(log, "reading a request", request=rid or "?")))

    def _session(self, session_id: str) -> Session:
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise UnknownSessionError(
                f"no session {session_id[:8]}… on this bridge (closed, expired or never opened): open the shot again"
            )
        return session

    def _answer(self, identity: bytes, msg: protocol.Message, session: Session | None, handle: Callable[[], Result]) -> None:
        """Run a request's handler and queue its reply; errors become error replies."""
        context = {"request": msg.id, **({"session": session.label} if session else {})}
        try:
            if session is not None and session.closed and msg.type != "close":
                raise UnknownSessionError(f"session {session.label}… was closed before this request ran: open the shot again")
            fields, binary = handle()
            frames = protocol.reply(msg.id, msg.type, fields, binary)
        except RotobridgeError as exc:
            log.info("%s refused: %s: %s", msg.type, exc.name, exc, extra=context)
            frames = protocol.error_reply(msg.id, exc)
        except Exception:
            frames = protocol.error_reply(msg.id, internal_error(log, f"handling {msg.type}", **context))
        self._post(identity, frames)

    def _expire(self) -> None:
        now = time.monotonic()
        idle = self._forget(lambda s: s.idle_seconds(now) > self.config.session_timeout)
        for session in idle:
            log.info("session expired after %.0f s idle; closing it", self.config.session_timeout, extra={"session": session.label})
            self.scheduler.submit(session.close)

    # --- requests (docs/protocol.md) -------------------------------------------------------

    def _hello(self, identity: bytes, msg: protocol.Message) -> Result:
        log.info("hello from %r (%s)", msg["client"][:80], identity.hex()[:8], extra={"request": msg.id})
        return {
            "protocol": list(protocol.PROTOCOL_VERSION),
            "bridge_version": __version__,
            "model": self.loaded.name,
            "untrained": self.loaded.untrained,
            "device": str(self.loaded.device),
            "heartbeat_ms": HEARTBEAT_MS,
        }, []

    def _status(self, identity: bytes, msg: protocol.Message) -> Result:
        now = time.monotonic()
        with self._lock:
            sessions = list(self._sessions.values())
        return {
            "sessions": [s.status(now) for s in sessions],
            "queue": {"requests": self.scheduler.waiting, "jobs": self.scheduler.jobs},
            "device": str(self.loaded.device),
            "memory": memory(),
        }, []

    def _cancel(self, identity: bytes, msg: protocol.Message, session: Session) -> Result:
        job = session.running
        if job is not None:
            job.cancel.set()
            log.info("cancelling job %s", job.id, extra={"session": session.label, "request": msg.id})
        return {"cancelled": job is not None}, []

    def _open(self, identity: bytes, msg: protocol.Message) -> Result:
        with self._lock:
            held = sum(s.owner == identity for s in self._sessions.values())
        if held >= protocol.MAX_SESSIONS:
            raise BusyError(
                f"this client holds {held} sessions, the most it may ({protocol.MAX_SESSIONS} sessions): close one first"
            )
        shot = checked_shot(msg.fields, self.roots, self.loaded, self.served)
        opened = Session(secrets.token_urlsafe(16), shot, self.loaded, self.served, self.roots)
        opened.touch(identity)
        with self._lock:
            self._sessions[opened.id] = opened
        log.info("opened %s", shot.plate.path, extra={"session": opened.label, "request": msg.id})
        return opened.summary(), []

    def _prompt(self, identity: bytes, msg: protocol.Message, session: Session) -> Result:
        obj = recipes.parse_part("object", msg["object"], "object")
        prompt = recipes.parse_part("prompt", {k: msg[k] for k in ("frame", "points", "labels", "box") if k in msg.fields}, "")
        fields, binary = session.prompt(obj, prompt).encode()
        return {"preview": fields}, binary

    def _preview(self, identity: bytes, msg: protocol.Message, session: Session) -> Result:
        fields, binary = session.preview(msg["frame"]).encode()
        return {"preview": fields}, binary

    def _matte(self, identity: bytes, msg: protocol.Message, session: Session) -> Result:
        raw = msg.get("controls")
        matte = None if raw is None else controls.parse(raw, "controls")
        fields, binary = session.matte(msg["object_id"], matte, msg["frame"]).encode()
        return {"preview": fields}, binary

    def _clear(self, identity: bytes, msg: protocol.Message, session: Session) -> Result:
        session.clear(msg["object_id"], msg["frame"])
        return {}, []

    def _remove(self, identity: bytes, msg: protocol.Message, session: Session) -> Result:
        session.remove(msg["object_id"])
        return {}, []

    def _propagate(self, identity: bytes, msg: protocol.Message, session: Session) -> Result:
        job = session.propagate(
            msg.id, msg["start"], msg["end"], msg["direction"], bool(msg.get("overwrite", False)),
            lambda frames: self._post(session, frames),
        )
        with self._lock:  # a close arriving now either sees the job (and stops it) or came first
            if session.closed:
                raise UnknownSessionError(f"session {session.label}… was closed: open the shot again")
            self.scheduler.add_job(job)  # this is the worker thread: the job cannot step before the reply is queued
        log.info("propagating %d frame(s) %s", job.total, msg["direction"], extra={"session": session.label, "request": msg.id})
        return {"job": job.id}, []

    def _close(self, identity: bytes, msg: protocol.Message, session: Session) -> Result:
        session.close()  # already off the list: the I/O thread took it off when the request arrived
        log.info("closed", extra={"session": session.label, "request": msg.id})
        return {}, []
