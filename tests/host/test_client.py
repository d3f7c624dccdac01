"""The host client over real ZeroMQ sockets, against a scripted test double of the bridge.

The real bridge (rotobridge.bridge) is not importable in .venv-host, so each test scripts
`FakeBridge`, a ROUTER in a thread that speaks docs/protocol.md through
rotobridge.protocol. Timings are shortened (heartbeat 0.2 s, dead after 1 s).
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pytest
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from rotobridge import protocol
from rotobridge.client import Client
from rotobridge.errors import (
    PlateError,
    BridgeUnreachableError,
    MissingFrameError,
    ProtocolError,
    RotobridgeError,
    UnknownSessionError,
    VersionMismatchError,
)
from rotobridge.keys import Keys, load_keys, load_public_key
from rotobridge.mainthread import MainThreadQueue
from rotobridge.protocol import Message, Preview

HEARTBEAT = 0.2
DEAD_AFTER = 1.0

NO_REPLY = object()


class Raw:
    """Frames a FakeBridge handler sends verbatim instead of an encoded reply."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames


Handler = Callable[["FakeBridge", bytes, protocol.Message], Any]


class FakeBridge:
    """TEST DOUBLE of the bridge — not the product's server (rotobridge.bridge.server).

    A ROUTER socket served by its own thread, speaking docs/protocol.md through
    rotobridge.protocol. It has no sessions, model or files: each test scripts it through
    `handlers`, mapping a request type to `fn(bridge, identity, message)` that returns a
    result dict (sent as a reply), a `(result, binary_frames)` tuple, `Raw(frames)`,
    `NO_REPLY`, or raises a RotobridgeError (sent as an error reply). Every decoded request is
    recorded in `seen`. `post` sends from any thread (events after a reply); `freeze`
    stops reading and answering while keeping the socket open, like a hung process;
    `stop` closes the socket, like a killed one. With `curve` it is a CURVE server that
    accepts the public keys in `allowed` (a certificate folder).
    """

    def __init__(self, port: int = 0, *, curve: tuple[bytes, bytes] | None = None, allowed: Path | None = None) -> None:
        self.port = port
        self.handlers: dict[str, Handler] = {
            "hello": lambda b, i, m: {
                "protocol": list(protocol.PROTOCOL_VERSION),
                "bridge_version": "fake",
                "model": "fake-tiny",
                "device": "cpu",
                "heartbeat_ms": 1000,
            },
            "ping": lambda b, i, m: {},
            "open": lambda b, i, m: {"session": "s-1", "frames": [1001, 1010], "width": 64, "height": 32},
            "attach": lambda b, i, m: {"session": m["session"], "frames": [1001, 1010], "width": 64, "height": 32, "objects": []},
        }
        self.seen: list[tuple[bytes, protocol.Message]] = []
        self.frozen = False
        self._curve = curve
        self._allowed = allowed
        self._outbox: list[list[bytes]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bound = threading.Event()
        self._ctx = zmq.Context()
        self._auth: ThreadAuthenticator | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> FakeBridge:
        if self._curve is not None:
            self._auth = ThreadAuthenticator(self._ctx)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(self._allowed))
        self._thread.start()
        assert self._bound.wait(5)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self._auth is not None:
            self._auth.stop()
        self._ctx.term()

    def post(self, identity: bytes, frames: Sequence[bytes]) -> None:
        with self._lock:
            self._outbox.append([identity, *frames])

    def event(self, identity: bytes, request_id: str, name: str, **fields: Any) -> None:
        self.post(identity, protocol.event(request_id, name, **fields))

    def requests(self, type_: str) -> list[protocol.Message]:
        with self._lock:
            return [m for _, m in self.seen if m.type == type_]

    def wait_for(self, type_: str, count: int = 1, timeout: float = 5.0) -> list[protocol.Message]:
        wait_until(lambda: len(self.requests(type_)) >= count, timeout, f"{count} {type_} request(s)")
        return self.requests(type_)

    def _serve(self) -> None:
        sock = self._ctx.socket(zmq.ROUTER)
        sock.linger = 0
        if self._curve is not None:
            sock.curve_publickey, sock.curve_secretkey = self._curve
            sock.curve_server = True
        if self.port:
            sock.bind(self.address)
        else:
            self.port = sock.bind_to_random_port("tcp://127.0.0.1")
        self._bound.set()
        try:
            while not self._stop.is_set():
                if self.frozen:
                    time.sleep(0.01)
                    continue
                if sock.poll(10):
                    while True:
                        try:
                            identity, *frames = sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._answer(sock, identity, frames)
                with self._lock:
                    outbox, self._outbox = self._outbox, []
                for message in outbox:
                    sock.send_multipart(message)
        finally:
            sock.close(linger=0)

    def _answer(self, sock: zmq.Socket[bytes], identity: bytes, frames: list[bytes]) -> None:
        try:
            message = protocol.decode_request(frames)
        except ProtocolError as exc:
            sock.send_multipart([identity, *protocol.error_reply(exc.request_id, exc)])
            return
        with self._lock:
            self.seen.append((identity, message))
        handler = self.handlers.get(message.type, _empty_result)
        try:
            outcome = handler(self, identity, message)
        except RotobridgeError as exc:
            sock.send_multipart([identity, *protocol.error_reply(message.id, exc)])
            return
        if outcome is NO_REPLY:
            return
        if isinstance(outcome, Raw):
            sock.send_multipart([identity, *outcome.frames])
        elif isinstance(outcome, tuple):
            sock.send_multipart([identity, *_reply(message.id, outcome[0], outcome[1])])
        else:
            sock.send_multipart([identity, *_reply(message.id, outcome)])


def _reply(request_id: str, result: dict[str, Any], binary: Sequence[bytes] = ()) -> list[bytes]:
    """An ok reply with whatever result the test scripted (protocol.reply insists on every documented field)."""
    return protocol.encode({"id": request_id, "type": "reply", "ok": True, "result": result}, binary)


def _empty_result(bridge: FakeBridge, identity: bytes, message: protocol.Message) -> Any:
    return {}


class Recorder:
    """Thread-safe list of what callbacks received, with the thread each ran on."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.threads: list[int] = []
        self._cond = threading.Condition()

    def __call__(self, *args: Any) -> None:
        with self._cond:
            self.items.append(args[0] if len(args) == 1 else args)
            self.threads.append(threading.get_ident())
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float = 5.0) -> list[Any]:
        with self._cond:
            assert self._cond.wait_for(lambda: predicate(self.items), timeout), f"callbacks got only {self.items}"
            return list(self.items)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.005)


@pytest.fixture
def bridge() -> Iterator[FakeBridge]:
    fake = FakeBridge().start()
    yield fake
    fake.stop()


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(address: str, **kwargs: Any) -> Client:
        options: dict[str, Any] = {"heartbeat": HEARTBEAT, "dead_after": DEAD_AFTER, "timeout": 3.0, **kwargs}
        made.append(Client(address, **options))
        return made[-1]

    yield make
    for client in made:
        client.close()
        assert not client.thread.is_alive()


def _plane(frame: int, object_id: int, size: int) -> bytes:
    return bytes((frame + object_id + i) % 256 for i in range(size))


def _preview_handler(bridge: FakeBridge, identity: bytes, m: protocol.Message) -> Any:
    objects = [m["object"]["id"], 9] if m.type == "prompt" else [1]
    frame = m["frame"]
    planes = [_plane(frame, o, 4 * 3) for o in objects]
    return {"preview": {"frame": frame, "width": 4, "height": 3, "objects": objects, "format": "u8"}}, planes


def test_blocking_calls_send_the_documented_fields_and_return_replies(bridge: FakeBridge, clients: Any) -> None:
    bridge.handlers.update(
        prompt=_preview_handler,
        preview=_preview_handler,
        cancel=lambda b, i, m: {"cancelled": True},
        export=lambda b, i, m: {"recipe": {"rotobridge_recipe": 1, "objects": []}},
        status=lambda b, i, m: {"sessions": 1, "queue": 0, "device": "cpu", "memory": {}},
    )
    client = clients(bridge.address, name="nuke-test")
    info = client.hello().result()
    assert info["bridge_version"] == "fake" and bridge.requests("hello")[-1]["client"] == "nuke-test"
    assert client.bridge_info is not None and client.bridge_info["model"] == "fake-tiny"

    plate = {"path": "/shots/sh010/plate/sh010.####.exr", "frames": "1001-1010", "colourspace": "ACEScg"}
    output = {"path": "/shots/sh010/matte/sh010.####.exr"}
    session = client.open(plate, output, colour={"config": "ocio://default"}).result()
    assert session["session"] == "s-1" and client.sessions == ("s-1",)
    sent = bridge.requests("open")[0]
    assert sent["plate"] == plate and sent["output"] == output and sent["colour"] == {"config": "ocio://default"}
    assert "model" not in sent.fields

    car = {"id": 1, "name": "car"}
    preview = client.prompt("s-1", car, 1003, points=[(10.5, 20)], labels=[1], box=(1, 2, 30, 40)).result()
    sent = bridge.requests("prompt")[0]
    assert (sent["object"], sent["frame"], sent["points"], sent["labels"], sent["box"]) == (
        car, 1003, [[10.5, 20]], [1], [1, 2, 30, 40],
    )
    assert (preview.frame, preview.width, preview.height, preview.objects) == (1003, 4, 3, (1, 9))
    assert preview.planes == (_plane(1003, 1, 12), _plane(1003, 9, 12)) and preview.plane(9) == _plane(1003, 9, 12)
    array = preview.as_array(1)
    assert array.shape == (3, 4) and array.dtype.name == "uint8" and array.tobytes() == _plane(1003, 9, 12)
    assert client.preview("s-1", 1004).result().planes == (_plane(1004, 1, 12),)

    client.clear("s-1", 1, 1003).result()
    client.remove("s-1", 1).result()
    assert client.cancel("s-1").result() is True
    assert client.export("s-1").result() == {"rotobridge_recipe": 1, "objects": []}
    assert client.status().result()["device"] == "cpu"
    assert [(m["object_id"], m["frame"]) for m in bridge.requests("clear")] == [(1, 1003)]
    assert [m["object_id"] for m in bridge.requests("remove")] == [1]
    client.close_session("s-1").result()
    assert bridge.requests("close")[0]["session"] == "s-1" and client.sessions == ()


def test_error_replies_raise_bridge_error_with_their_stable_name(bridge: FakeBridge, clients: Any) -> None:
    def missing(b: FakeBridge, i: bytes, m: protocol.Message) -> Any:
        raise MissingFrameError(1043, "/shots/sh010/plate/sh010.1043.exr")

    bridge.handlers["open"] = missing
    client = clients(bridge.address)
    with pytest.raises(MissingFrameError) as err:  # the bridge's own class, on the host too
        client.open({"path": "x"}, {"path": "y"}).result()
    assert err.value.name == "missing_frame" and str(err.value).startswith("plate frame 1043 is missing")
    assert client.sessions == () and client.status().result() == {}  # still usable


def test_malformed_preview_is_a_protocol_error(bridge: FakeBridge, clients: Any) -> None:
    bridge.handlers["preview"] = lambda b, i, m: (
        {"preview": {"frame": 1001, "width": 4, "height": 3, "objects": [1, 2], "format": "u8"}},
        [b"x" * 12],
    )
    with pytest.raises(ProtocolError, match="2 objects but 1 planes"):
        clients(bridge.address).preview("s-1", 1001).result()


def test_unanswered_call_times_out_and_the_client_stays_usable(bridge: FakeBridge, clients: Any) -> None:
    bridge.handlers["open"] = lambda b, i, m: NO_REPLY
    states = Recorder()
    client = clients(bridge.address, on_state=states)
    client.hello().result()
    start = time.monotonic()
    with pytest.raises(BridgeUnreachableError, match=r"did not answer open within 1.5 s"):
        client.call("open", timeout=1.5, plate={}, output={})
    assert 1.4 <= time.monotonic() - start < 2.0  # longer than dead_after: pings kept it alive
    assert client.state == "connected" and "lost" not in [s for s, _ in states.items]
    assert client.status().result() == {}


def test_callbacks_run_only_when_the_host_drains_its_queue(bridge: FakeBridge, clients: Any) -> None:
    bridge.handlers["open"] = lambda b, i, m: (_ for _ in ()).throw(PlateError("not a plate"))

    def propagate(b: FakeBridge, identity: bytes, m: protocol.Message) -> Any:
        b.event(identity, m.id, "progress", frame=1001, path="/m.1001.exr", done=1, total=1)
        b.event(identity, m.id, "finished", written=1, total=1, status="done", error=None)
        return {"job": "j-1"}

    bridge.handlers["propagate"] = propagate
    main = MainThreadQueue()
    states, replies, events, done = Recorder(), Recorder(), Recorder(), Recorder()
    client = clients(bridge.address, dispatch=main, on_state=states)
    rid = client.submit("status", replies)
    client.submit("open", replies, plate={}, output={})
    job = client.propagate("s-1", 1001, 1001, "forward", on_event=events, on_done=done).result()
    assert job == "j-1"
    wait_until(lambda: len(main) >= 6, 3, "callbacks queued")  # state, 2 replies, 2 events, done
    assert replies.items == events.items == done.items == states.items == []

    assert main.drain(max_items=1) == 1 and states.items == [("connecting", f"connecting to the bridge at {bridge.address}")]
    main.drain()
    me = threading.get_ident()
    assert set(states.threads + replies.threads + events.threads + done.threads) == {me}
    ok, failed = replies.items
    assert isinstance(ok, Message) and ok.id == rid and ok.type == "status"
    assert isinstance(failed, PlateError) and failed.name == "bad_plate"
    assert [e.event for e in events.items] == ["progress", "finished"] and events.items[0]["path"] == "/m.1001.exr"
    assert done.items == [events.items[1]] and not done.items[0].synthetic
    assert [s for s, _ in states.items] == ["connecting", "connected"]


def test_progress_events_reach_the_request_that_started_them(bridge: FakeBridge, clients: Any) -> None:
    started: dict[str, tuple[bytes, str]] = {}

    def propagate(b: FakeBridge, identity: bytes, m: protocol.Message) -> Any:
        started[m["session"]] = (identity, m.id)
        return {"job": f"job-{m['session']}"}

    bridge.handlers["propagate"] = propagate
    client = clients(bridge.address)
    seen = {s: Recorder() for s in ("a", "b")}
    finished = {s: Recorder() for s in ("a", "b")}
    jobs = [client.propagate(s, 1001, 1003, on_event=seen[s], on_done=finished[s]).result() for s in ("a", "b")]
    assert jobs == ["job-a", "job-b"]
    assert [(m["start"], m["end"], m["direction"], m["overwrite"]) for m in bridge.requests("propagate")] == [
        (1001, 1003, "both", False)
    ] * 2

    def progress(s: str, frame: int, done: int) -> None:
        identity, rid = started[s]
        bridge.event(identity, rid, "progress", frame=frame, path=f"/{s}.{frame}.exr", done=done, total=3)

    progress("a", 1001, 1)
    progress("b", 2001, 1)
    progress("a", 1002, 2)
    bridge.event(started["b"][0], "nobody-7", "progress", frame=1, path="/x", done=1, total=1)  # ignored
    bridge.event(started["b"][0], started["b"][1], "finished", written=1, total=3, status="cancelled", error=None)
    progress("a", 1003, 3)
    bridge.event(started["a"][0], started["a"][1], "finished", written=3, total=3, status="done", error=None)
    progress("b", 2002, 2)  # after b finished: no longer routed

    finished["a"].wait_for(lambda items: len(items) == 1)
    finished["b"].wait_for(lambda items: len(items) == 1)
    time.sleep(0.1)
    assert [(e.event, e.get("frame")) for e in seen["a"].items] == [
        ("progress", 1001), ("progress", 1002), ("progress", 1003), ("finished", None)
    ]
    assert [(e.event, e.get("frame")) for e in seen["b"].items] == [("progress", 2001), ("finished", None)]
    assert finished["b"].items[0]["status"] == "cancelled" and finished["a"].items[0]["written"] == 3


def test_concurrent_calls_from_many_threads_get_their_own_replies(bridge: FakeBridge, clients: Any) -> None:
    held: list[tuple[bytes, protocol.Message]] = []

    def preview_later(b: FakeBridge, identity: bytes, m: protocol.Message) -> Any:
        held.append((identity, m))  # answered in reverse order, below
        if len(held) >= 8:
            for ident, msg in reversed(held):
                result, planes = _preview_handler(b, ident, msg)
                b.post(ident, _reply(msg.id, result, planes))
            held.clear()
        return NO_REPLY

    bridge.handlers["preview"] = preview_later
    client = clients(bridge.address, timeout=10.0)
    results: dict[int, Preview] = {}
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(10):
                frame = 1000 * (t + 1) + i
                results[frame] = client.preview("s-1", frame).result()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert errors == [] and len(results) == 80
    assert all(p.frame == f and p.planes == (_plane(f, 1, 12),) for f, p in results.items())
    ids = [m.id for m in bridge.requests("preview")]
    assert len(set(ids)) == 80 and all(re.fullmatch(r"[0-9a-f]{8}-\d+", i) for i in ids)
    assert len({i.split("-")[0] for i in ids}) == 1


def test_request_ids_are_unique_per_client(bridge: FakeBridge, clients: Any) -> None:
    first, second = clients(bridge.address), clients(bridge.address)
    first.status().result()
    second.status().result()
    prefixes = {m.id.rsplit("-", 1)[0] for m in bridge.requests("status")}
    assert len(prefixes) == 2


def test_idle_client_sends_pings_and_stays_connected(bridge: FakeBridge, clients: Any) -> None:
    states = Recorder()
    clients(bridge.address, on_state=states)
    bridge.wait_for("hello")
    time.sleep(1.5)  # longer than dead_after: only the pings' replies keep it alive
    pings = len(bridge.requests("ping"))
    assert 4 <= pings <= 9, pings  # about one per heartbeat (0.2 s) of silence
    assert [s for s, _ in states.items] == ["connecting", "connected"]


def test_hung_bridge_fails_the_pending_call_within_dead_after(bridge: FakeBridge, clients: Any) -> None:
    def hang(b: FakeBridge, i: bytes, m: protocol.Message) -> Any:
        b.frozen = True  # from now on it reads and answers nothing, pings included
        return NO_REPLY

    bridge.handlers["open"] = hang
    states = Recorder()
    client = clients(bridge.address, on_state=states)
    client.hello().result()
    start = time.monotonic()
    with pytest.raises(BridgeUnreachableError) as err:
        client.call("open", timeout=30, plate={}, output={})
    assert time.monotonic() - start <= DEAD_AFTER + 1.0
    assert f"no answer from the bridge at {bridge.address}" in str(err.value) and "is it running" in str(err.value)
    states.wait_for(lambda items: [s for s, _ in items] == ["connecting", "connected", "lost"])
    assert client.state == "lost"


def test_stopped_bridge_is_reported_at_once(clients: Any) -> None:
    fake = FakeBridge().start()
    fake.handlers["open"] = lambda b, i, m: NO_REPLY
    states = Recorder()
    client = clients(fake.address, on_state=states, dead_after=3.0)
    client.hello().result()
    timer = threading.Timer(0.2, fake.stop)
    timer.start()
    start = time.monotonic()
    with pytest.raises(BridgeUnreachableError, match="closed the connection"):
        client.call("open", timeout=30, plate={}, output={})
    assert time.monotonic() - start < 1.5  # the closed connection, not the 3 s silence
    timer.join()
    states.wait_for(lambda items: [s for s, _ in items][-1:] == ["lost"])


def test_no_bridge_fails_fast_then_connects_when_it_starts(clients: Any) -> None:
    probe = FakeBridge().start()
    port = probe.port
    probe.stop()
    states = Recorder()
    client = clients(f"tcp://127.0.0.1:{port}", on_state=states)
    start = time.monotonic()
    with pytest.raises(BridgeUnreachableError, match="is it running"):
        client.status().result()
    assert time.monotonic() - start <= DEAD_AFTER + 1.0
    assert client.state == "lost"
    fake = FakeBridge(port).start()
    try:
        assert client.status().result() == {}
        assert client.state == "connected"
        assert [s for s, _ in states.wait_for(lambda i: len(i) >= 3)] == ["connecting", "lost", "connected"]
    finally:
        fake.stop()


def _restart(old: FakeBridge) -> FakeBridge:
    old.stop()
    return FakeBridge(old.port)


def test_restarted_bridge_gets_sessions_reattached_and_events_resume(clients: Any) -> None:
    fake = FakeBridge().start()
    fake.handlers["propagate"] = lambda b, i, m: {"job": "j-1"}
    states, events, done = Recorder(), Recorder(), Recorder()
    client = clients(fake.address, on_state=states)
    client.open({"path": "p"}, {"path": "o"}).result()
    client.propagate("s-1", 1001, 1010, on_event=events, on_done=done).result()
    rid = fake.requests("propagate")[0].id

    def attach(b: FakeBridge, identity: bytes, m: protocol.Message) -> Any:
        # The job kept running on the bridge; its events now go to the new connection.
        b.event(identity, rid, "progress", frame=1005, path="/m.1005.exr", done=5, total=10)
        b.event(identity, rid, "finished", written=10, total=10, status="done", error=None)
        return {"session": m["session"], "frames": [1001, 1010], "width": 64, "height": 32, "objects": [1]}

    fake = _restart(fake)
    fake.handlers["attach"] = attach
    fake.start()
    try:
        states.wait_for(lambda items: [s for s, _ in items] == ["connecting", "connected", "lost", "connected"])
        assert fake.wait_for("attach")[0]["session"] == "s-1"
        assert [m.type for _, m in fake.seen][:2] == ["hello", "attach"]
        done.wait_for(lambda items: len(items) == 1)
        assert [(e.event, e.get("frame")) for e in events.items] == [("progress", 1005), ("finished", None)]
        assert client.sessions == ("s-1",) and client.status().result() == {}
    finally:
        fake.stop()


def test_restarted_bridge_without_the_session_reports_it_lost(clients: Any) -> None:
    fake = FakeBridge().start()
    fake.handlers["propagate"] = lambda b, i, m: {"job": "j-1"}
    lost, done = Recorder(), Recorder()
    client = clients(fake.address, on_session_lost=lost)
    client.open({"path": "p"}, {"path": "o"}).result()
    client.propagate("s-1", 1001, 1010, on_done=done).result()
    progress_to = fake.seen[-1][0], fake.requests("propagate")[0].id
    fake.event(*progress_to, "progress", frame=1001, path="/m.1001.exr", done=1, total=10)
    time.sleep(0.1)

    def unknown(b: FakeBridge, i: bytes, m: protocol.Message) -> Any:
        raise UnknownSessionError(f"no session {m['session']}")

    fake = _restart(fake)
    fake.handlers["attach"] = unknown
    fake.start()
    try:
        assert lost.wait_for(lambda items: len(items) == 1) == ["s-1"]
        (finished,) = done.wait_for(lambda items: len(items) == 1)
        assert finished.synthetic and finished["status"] == "failed" and finished["error"]["name"] == "unknown_session"
        assert (finished["written"], finished["total"]) == (1, 10)
        assert client.sessions == ()
    finally:
        fake.stop()


def _raw_reply(header: dict[str, Any]) -> Raw:
    return Raw([json.dumps(header).encode()])


@pytest.mark.parametrize(
    "answer",
    [
        # a 2.x bridge answers in its own version
        lambda m: _raw_reply({"v": [2, 0], "id": m.id, "type": "reply", "ok": True, "result": {"protocol": [2, 0]}}),
        # a bridge whose hello says another major
        lambda m: {"protocol": [2, 3], "bridge_version": "9", "model": "x", "device": "cpu", "heartbeat_ms": 1000},
        # a bridge that refused our version itself
        lambda m: _raw_reply(
            {"v": [1, 1], "id": m.id, "type": "reply", "ok": False,
             "error": {"name": "version_mismatch", "message": "protocol 1.1 cannot talk to this peer's 2.0"}}
        ),
    ],
    ids=["header-v2", "hello-says-v2", "bridge-refuses"],
)
def test_version_mismatch_is_refused_with_a_clear_error(
    bridge: FakeBridge, clients: Any, answer: Callable[[protocol.Message], Any]
) -> None:
    bridge.handlers["hello"] = lambda b, i, m: answer(m)
    states = Recorder()
    client = clients(bridge.address, on_state=states)
    start = time.monotonic()
    with pytest.raises(VersionMismatchError) as err:
        client.hello().result()
    assert time.monotonic() - start < DEAD_AFTER
    assert err.value.name == "version_mismatch" and "2." in str(err.value) and "1.1" in str(err.value)
    assert states.wait_for(lambda items: len(items) == 2)[1][0] == "lost"


@pytest.fixture
def certificates(tmp_path: Path) -> Path:
    for name in ("server", "client", "stranger"):
        zmq.auth.create_certificates(tmp_path, name)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "client.key").write_bytes((tmp_path / "client.key").read_bytes())
    return tmp_path


@pytest.fixture
def curve_bridge(certificates: Path) -> Iterator[FakeBridge]:
    public, secret = zmq.auth.load_certificate(certificates / "server.key_secret")
    assert secret is not None
    fake = FakeBridge(curve=(public, secret), allowed=certificates / "allowed").start()
    yield fake
    fake.stop()


def test_curve_client_with_a_listed_key_connects(curve_bridge: FakeBridge, certificates: Path, clients: Any) -> None:
    public, secret = load_keys(certificates / "client.key", certificates / "client.key_secret")
    assert len(public) == len(secret) == 40
    server_key = load_public_key(certificates / "server.key")
    client = clients(curve_bridge.address, keys=Keys(server_key, public, secret))
    assert client.hello().result()["bridge_version"] == "fake"


@pytest.mark.parametrize(
    "keys,words",
    [
        ("stranger", "refused this client's key"),
        ("plain", "security handshake"),
        ("wrong-server-key", "server_key"),
    ],
)
def test_curve_bridge_is_unreachable_without_the_right_keys(
    curve_bridge: FakeBridge, certificates: Path, clients: Any, keys: str, words: str
) -> None:
    options: dict[str, Any] = {}
    if keys == "stranger":
        public, secret = load_keys(certificates / "stranger.key", certificates / "stranger.key_secret")
        options = dict(keys=Keys(load_public_key(certificates / "server.key"), public, secret))
    elif keys == "wrong-server-key":
        public, secret = load_keys(certificates / "client.key", certificates / "client.key_secret")
        options = dict(keys=Keys(load_public_key(certificates / "stranger.key"), public, secret))
    client = clients(curve_bridge.address, **options)
    start = time.monotonic()
    with pytest.raises(BridgeUnreachableError, match=words):
        client.hello().result()
    assert time.monotonic() - start <= DEAD_AFTER + 1.0
    assert curve_bridge.seen == []


def test_load_keys_refuses_a_public_file_as_the_secret(certificates: Path) -> None:
    with pytest.raises(ValueError, match="no secret-key"):
        load_keys(certificates / "client.key", certificates / "client.key")
    with pytest.raises(ValueError, match="not the same key pair"):
        load_keys(certificates / "client.key", certificates / "server.key_secret")


def test_close_fails_waiting_calls_and_stops_the_thread(bridge: FakeBridge, clients: Any) -> None:
    bridge.handlers["open"] = lambda b, i, m: NO_REPLY
    client = clients(bridge.address)
    failures: list[BaseException] = []

    def wait_for_open() -> None:
        try:
            client.call("open", timeout=30, plate={}, output={})
        except BaseException as exc:  # noqa: BLE001 - inspected below
            failures.append(exc)

    waiter = threading.Thread(target=wait_for_open)
    waiter.start()
    bridge.wait_for("open")
    client.close()
    waiter.join(2)
    assert not waiter.is_alive() and not client.thread.is_alive()
    assert len(failures) == 1 and isinstance(failures[0], BridgeUnreachableError) and "closed" in str(failures[0])
    with pytest.raises(BridgeUnreachableError, match="closed"):
        client.status().result()
    client.close()  # twice is fine


def test_blocking_call_from_a_direct_callback_is_refused(bridge: FakeBridge, clients: Any) -> None:
    client = clients(bridge.address)
    outcome = Recorder()

    def nested(reply: Message | RotobridgeError) -> None:
        try:
            client.status().result()
        except RuntimeError as exc:
            outcome(exc)

    client.submit("status", nested)
    (error,) = outcome.wait_for(lambda items: len(items) == 1)
    assert "would deadlock" in str(error) and outcome.threads[0] == client.thread.ident


def test_events_are_plain_objects() -> None:
    event = Message("c-1", "event", {"event": "progress", "frame": 1001})
    assert event["frame"] == 1001 and event.get("path") is None and not event.synthetic
