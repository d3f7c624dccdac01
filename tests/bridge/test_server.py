"""`rotobridge serve` over real sockets: sessions, previews, propagation, sharing, failures.

In-process servers (their I/O thread in the background) for most checks, and a real
`rotobridge serve` subprocess for the things only a process can show: two artists at
once, a killed client, a cancelled job, and the bridge itself killed and restarted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rotobridge import recipe as recipes
from rotobridge.bridge import cli
from rotobridge.bridge import render as rendering
from rotobridge.bridge.colour import ColourPipeline
from rotobridge.bridge.engine import Engine
from rotobridge.bridge.mattes import read_matte, upsample_logits
from rotobridge.bridge.plate import open_plate
from rotobridge.controls import MatteControls

from ..conftest import SMALL_SIZE, TINY_CONFIG
from .conftest import COLOURSPACE, mattes, shot
from .wire import Peer, preview_planes

ROOT = Path(__file__).resolve().parents[2]
CAR = {"id": 1, "name": "car"}
PERSON = {"id": 7, "name": "person", "colour": [1.0, 0.5, 0.0]}


def _click(peer: Peer, session: str, obj: dict[str, Any] = CAR, frame: int = 1001, **prompt: Any) -> dict[str, Any]:
    return peer.ok("prompt", session=session, object=obj, frame=frame, **(prompt or {"points": [[20, 20]], "labels": [1]}))


def test_hello_ping_and_status(start_bridge: Any, tmp_path: Path) -> None:
    server = start_bridge(tmp_path)
    peer = Peer(server.endpoint)
    hello = peer.ok("hello", client="test")
    assert hello["protocol"] == [1, 1] and hello["device"] == "cpu" and hello["heartbeat_ms"] == 1000
    assert hello["model"] == "sam2.1_hiera_t" and hello["untrained"] is True
    assert peer.ok("ping") == {}
    session = peer.ok("open", **shot(tmp_path))["session"]
    _click(peer, session)
    status = peer.ok("status")
    assert status["queue"] == {"requests": 0, "jobs": 0} and status["device"] == "cpu"
    assert status["memory"]["rss_bytes"] > 100 << 20 and status["memory"]["cuda"] is None
    [entry] = status["sessions"]
    assert entry["session"] == session[:8] + "…" and entry["objects"] == 1 and entry["job"] is None
    assert 0 <= entry["idle_s"] < 5
    peer.close()


def test_preview_is_the_engines_logits_resampled_to_512(start_bridge: Any, tmp_path: Path, loaded: Any) -> None:
    server = start_bridge(tmp_path)
    peer = Peer(server.endpoint)
    fields = shot(tmp_path, frames=2, width=640, height=360)
    session = peer.ok("open", **fields)["session"]
    clicks = {"points": [[300.5, 200.0], [100, 50]], "labels": [1, 0]}
    reply = peer.call("prompt", session=session, object=CAR, frame=1002, **clicks)
    box = peer.call("prompt", session=session, object=PERSON, frame=1002, box=[400, 100, 600, 300])
    assert reply["result"]["preview"] == {"frame": 1002, "width": 512, "height": 288, "objects": [1], "format": "u8"}
    assert box["result"]["preview"]["objects"] == [1, 7]

    plate = open_plate(fields["plate"]["path"], "1001-1002")
    engine = Engine(loaded, plate, ColourPipeline(COLOURSPACE))
    engine.add_points(1002, 1, **clicks)
    expected = engine.add_points(1002, 7, box=[400, 100, 600, 300])
    want = torch.sigmoid(upsample_logits(expected.logits, 288, 512)[:, 0]).numpy()
    engine.close()
    plate.close()
    for planes in (preview_planes(box), preview_planes(peer.call("preview", session=session, frame=1002))):
        assert list(planes) == [1, 7]
        for row, plane in enumerate(planes.values()):
            assert plane.shape == (288, 512)  # 640x360 keeps its 16:9 aspect
            assert np.abs(plane / 255.0 - want[row]).max() <= 1 / 255
    assert preview_planes(box)[1].std() > 0
    peer.close()


def test_propagation_streams_progress_and_writes_what_render_writes_from_the_export(
    start_bridge: Any, tmp_path: Path
) -> None:
    server = start_bridge(tmp_path)
    peer = Peer(server.endpoint)
    session = peer.ok("open", **shot(tmp_path, frames=8))["session"]
    _click(peer, session, CAR, 1003)
    _click(peer, session, PERSON, 1003, box=[30, 10, 60, 40])
    peer.ok("matte", session=session, object_id=7, controls={"shrink_grow": -1.5, "feather": 2}, frame=1003)
    rid = peer.send("propagate", session=session, start=1001, end=1008, direction="both")
    assert peer.reply(rid)["result"] == {"job": rid}
    events = peer.wait_events(rid)
    progress, finished = events[:-1], events[-1]
    assert finished.fields == {"event": "finished", "written": 8, "total": 8, "status": "done", "error": None}
    assert sorted(e["frame"] for e in progress) == list(range(1001, 1009))
    assert [e["done"] for e in progress] == list(range(1, 9)) and {e["total"] for e in progress} == {8}
    assert sorted(e["path"] for e in progress) == mattes(tmp_path)

    exported = peer.ok("export", session=session)["recipe"]
    recipe = recipes.parse(exported)
    assert [o.name for o in recipe.objects] == ["car", "person"] and recipe.objects[1].colour == (1.0, 0.5, 0.0)
    assert recipe.objects[0].matte is None and recipe.objects[1].matte == MatteControls(shrink_grow=-1.5, feather=2)
    assert recipe.model == recipes.Model(config=TINY_CONFIG, checkpoint=recipe.model.checkpoint, overrides=tuple(SMALL_SIZE))
    again = recipes.parse({**exported, "output": {"path": str(tmp_path / "render" / "r.####.exr")}})
    result = rendering.render(again, device="cpu")
    assert result.complete
    for frame, path in result.written.items():
        ours, header = read_matte(str(tmp_path / "sh_mattes" / f"sh.{frame}.exr"))
        theirs, _ = read_matte(path)
        assert list(ours) == ["car.A", "person.A"]
        for name in ours:
            np.testing.assert_array_equal(ours[name], theirs[name])
        assert header["rotobridge:recipe_sha256"] == recipe.sha256()
    peer.close()


def test_two_clients_work_at_once(start_bridge: Any, tmp_path: Path) -> None:
    server = start_bridge(tmp_path)
    peers = [Peer(server.endpoint), Peer(server.endpoint)]
    sessions = [p.ok("open", **shot(tmp_path, name)) for p, name in zip(peers, ("a", "b"))]
    jobs = []
    for peer, opened in zip(peers, sessions):
        _click(peer, opened["session"])
        jobs.append(peer.send("propagate", session=opened["session"], start=1001, end=1006, direction="forward"))
    for peer, rid in zip(peers, jobs):
        assert peer.reply(rid)["ok"]
    for peer, rid, name in zip(peers, jobs, ("a", "b")):
        events = peer.wait_events(rid)
        assert events[-1]["status"] == "done" and len(events) == 7
        assert all(e["path"].startswith(str(tmp_path / f"{name}_mattes")) for e in events[:-1])
        assert list(peer.events) == [rid]  # only its own job's events
        assert len(mattes(tmp_path, name)) == 6
    for peer in peers:
        peer.close()


def _propagating(endpoint: str, root: Path, frames: int) -> tuple[Peer, str, str]:
    """A new client, its session on a new shot with one click, propagating all `frames` forward."""
    peer = Peer(endpoint)
    session = peer.ok("open", **shot(root, frames=frames))["session"]
    _click(peer, session)
    rid = peer.send("propagate", session=session, start=1001, end=1000 + frames, direction="forward")
    assert peer.reply(rid)["ok"]
    return peer, session, rid


def _cancel_after_3_frames(peer: Peer, session: str, rid: str, root: Path, frames: int) -> None:
    """Cancel a running propagation after 3 frames; it must stop within a frame or two."""
    peer.wait_events(rid, 3)
    assert peer.ok("cancel", session=session) == {"cancelled": True}
    on_disk = len(mattes(root))
    finished = peer.finished(rid)
    assert finished["status"] == "cancelled" and finished["error"]["name"] == "cancelled"
    written = mattes(root)
    assert len(written) - on_disk <= 2, (len(written), on_disk)
    assert finished["written"] == len(written) < frames
    assert sorted(e["path"] for e in peer.events[rid][:-1]) == written
    for path in written:
        channels, _ = read_matte(path)
        assert channels["car.A"].shape == (48, 64) and np.isfinite(channels["car.A"]).all()
    assert peer.ok("cancel", session=session) == {"cancelled": False}


def test_cancel_stops_within_a_frame_and_leaves_whole_mattes(start_bridge: Any, tmp_path: Path) -> None:
    peer, session, rid = _propagating(start_bridge(tmp_path).endpoint, tmp_path, 40)
    _cancel_after_3_frames(peer, session, rid, tmp_path, 40)
    peer.close()


def test_existing_mattes_are_refused_before_any_work(start_bridge: Any, tmp_path: Path) -> None:
    server = start_bridge(tmp_path)
    peer = Peer(server.endpoint)
    session = peer.ok("open", **shot(tmp_path, frames=3))["session"]
    _click(peer, session)
    (tmp_path / "sh_mattes").mkdir()
    (tmp_path / "sh_mattes" / "sh.1002.exr").write_bytes(b"precious")
    name, message = peer.error("propagate", session=session, start=1001, end=1003, direction="both")
    assert name == "matte_exists" and "sh.1002.exr" in message
    assert mattes(tmp_path) == [str(tmp_path / "sh_mattes" / "sh.1002.exr")]
    rid = peer.send("propagate", session=session, start=1001, end=1003, direction="both", overwrite=True)
    assert peer.reply(rid)["ok"] and peer.finished(rid)["status"] == "done"
    assert len(mattes(tmp_path)) == 3 and read_matte(mattes(tmp_path)[1])[0]["car.A"].shape == (48, 64)
    peer.close()


def test_session_rules_busy_not_tracked_clear_remove(start_bridge: Any, tmp_path: Path) -> None:
    server = start_bridge(tmp_path)
    peer = Peer(server.endpoint)
    session = peer.ok("open", **shot(tmp_path, frames=30))["session"]
    assert peer.error("propagate", session=session, start=1001, end=1002, direction="forward")[0] == "not_tracked"
    assert peer.error("export", session=session)[0] == "bad_recipe"
    _click(peer, session, frame=1001)
    _click(peer, session, frame=1003, points=[[10, 10], [30, 30]], labels=[1, 0])
    assert peer.error("preview", session=session, frame=1002)[0] == "not_tracked"
    assert peer.error("prompt", session=session, object={"id": 2, "name": "car"}, frame=1001, box=[1, 1, 9, 9]) == (
        "bad_recipe", "object.name: 'car' is already the name of object 1 in this session")
    assert peer.error("prompt", session=session, object=CAR, frame=1001, points=[[65, 2]], labels=[1])[1].startswith(
        "points[0]: (65, 2) is outside the 64x48 image")
    assert peer.error("prompt", session=session, object=CAR, frame=1001, points=[])[0] == "bad_recipe"
    assert peer.error("propagate", session=session, start=1005, end=1002, direction="both")[1].startswith("end: ")
    assert peer.error("propagate", session=session, start=1001, end=1002, direction="sideways")[0] == "bad_recipe"

    rid = peer.send("propagate", session=session, start=1001, end=1030, direction="forward")
    assert peer.reply(rid)["ok"]
    assert peer.error("prompt", session=session, object=CAR, frame=1001, points=[[5, 5]], labels=[1])[0] == "busy"
    assert peer.error("propagate", session=session, start=1001, end=1002, direction="forward")[0] == "busy"
    assert peer.ok("preview", session=session, frame=1003)["preview"]["objects"] == [1]  # reading is fine
    assert peer.ok("attach", session=session)["job"]["id"] == rid
    peer.ok("cancel", session=session)
    peer.finished(rid)

    peer.ok("clear", session=session, object_id=1, frame=1003)
    peer.ok("clear", session=session, object_id=1, frame=1003)  # again: nothing left to clear
    assert peer.error("preview", session=session, frame=1003)[0] == "not_tracked"
    [car] = peer.ok("export", session=session)["recipe"]["objects"]
    assert car["prompts"] == [{"frame": 1001, "points": [[20.0, 20.0]], "labels": [1]}]
    assert peer.ok("attach", session=session)["objects"] == [car]
    peer.ok("remove", session=session, object_id=1)
    assert peer.ok("attach", session=session)["objects"] == []
    _click(peer, session, PERSON, 1002, box=[5, 5, 40, 40])  # sam2 state is usable again after removal
    peer.ok("clear", session=session, object_id=7, frame=1002)  # its last prompt: the object goes
    assert peer.ok("attach", session=session)["objects"] == []
    peer.close()


def test_requests_fail_with_their_error_names(start_bridge: Any, tmp_path: Path, tiny_checkpoint: Path) -> None:
    server = start_bridge(tmp_path)
    peer = Peer(server.endpoint)
    good = shot(tmp_path, frames=3)
    cases = [
        ({**good, "plate": {**good["plate"], "frames": "1001-1005"}}, "missing_frame", "plate frame 1004 is missing"),
        ({**good, "plate": {**good["plate"], "colourspace": "ACEScgg"}}, "bad_colour", "ACEScgg"),
        ({**good, "plate": {"path": good["plate"]["path"]}}, "bad_recipe", "plate.frames: is required"),
        ({**good, "output": {"path": str(tmp_path / "m.exr")}}, "bad_recipe", "output.path: "),  # refused as it is parsed
        ({**good, "model": {"name": "sam2.1-hiera-large"}}, "bad_model", "this bridge serves sam2.1_hiera_t"),
        ({**good, "model": {"config": TINY_CONFIG, "checkpoint": "/elsewhere.pt"}}, "bad_model", "model.checkpoint"),
    ]
    for fields, name, words in cases:
        got = peer.error("open", **fields)
        assert got[0] == name and words in got[1], got
    served = {"config": TINY_CONFIG, "checkpoint": str(tiny_checkpoint), "overrides": SMALL_SIZE}  # as `export` says
    assert peer.ok("open", **good, model=served)["frames"] == [1001, 1003]
    assert peer.error("attach", session="nope")[0] == "unknown_session"
    assert peer.error("format_disk")[0] == "unknown_type"
    peer.socket.send_multipart([json.dumps({"v": [2, 0], "id": "x1", "type": "ping"}).encode()])
    assert peer.reply("x1").fields["error"]["name"] == "version_mismatch"
    peer.socket.send_multipart([b"{nope"])
    assert peer.reply("").fields["error"]["name"] == "bad_message"
    peer.close()


def test_a_bug_becomes_an_internal_error_and_the_bridge_keeps_serving(
    start_bridge: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_bridge(tmp_path)
    peer = Peer(server.endpoint)
    session = peer.ok("open", **shot(tmp_path))["session"]

    def broken(*args: Any) -> None:
        raise ZeroDivisionError("oops")

    monkeypatch.setattr("rotobridge.bridge.session.Session.summary", broken)
    monkeypatch.setattr("rotobridge.bridge.server.memory", broken)
    for request in ({"type_": "attach", "session": session}, {"type_": "status"}):
        name, message = peer.error(**request)
        assert name == "internal" and f"process {os.getpid()}" in message
    monkeypatch.undo()
    assert peer.ok("attach", session=session)["session"] == session
    assert server.alive
    peer.close()


def test_a_new_client_attaches_and_gets_the_running_jobs_events(start_bridge: Any, tmp_path: Path) -> None:
    """A client killed mid-propagation: the job goes on, others are served, a new client takes over."""
    server = start_bridge(tmp_path)
    first, session, rid = _propagating(server.endpoint, tmp_path, 30)
    other = Peer(server.endpoint)
    first.wait_events(rid, 2)
    first.close()  # abruptly: linger 0, events in flight are lost

    assert other.ok("ping") == {}
    mine = other.ok("open", **shot(tmp_path, "other", frames=2))["session"]
    _click(other, mine)
    summary = other.ok("attach", session=session)
    assert summary["job"]["id"] == rid and summary["objects"][0]["name"] == "car"
    finished = other.finished(rid)
    assert finished["status"] == "done" and finished["written"] == 30 == len(mattes(tmp_path))
    assert other.events[rid][0]["event"] == "progress"
    other.close()


def test_idle_sessions_expire_and_close_frees_at_once(start_bridge: Any, tmp_path: Path) -> None:
    server = start_bridge(tmp_path, session_timeout=0.5)
    peer = Peer(server.endpoint)
    expiring = peer.ok("open", **shot(tmp_path))["session"]
    closing = peer.ok("open", **shot(tmp_path))["session"]
    engines = {s.id: s.engine for s in server._sessions.values()}
    peer.ok("close", session=closing)
    assert engines[closing].state == {} and peer.error("attach", session=closing)[0] == "unknown_session"
    time.sleep(2.5)
    assert peer.error("attach", session=expiring)[0] == "unknown_session"
    assert engines[expiring].state == {} and peer.ok("status")["sessions"] == []
    peer.close()


def test_closing_a_session_stops_its_job(start_bridge: Any, tmp_path: Path) -> None:
    peer, session, rid = _propagating(start_bridge(tmp_path).endpoint, tmp_path, 30)
    peer.wait_events(rid, 2)
    assert peer.ok("close", session=session) == {}
    finished = peer.finished(rid)
    assert finished["status"] == "cancelled" and finished["error"]["message"] == "the session was closed"
    assert finished["written"] == len(mattes(tmp_path)) < 30
    peer.close()


# --- a real `rotobridge serve` process --------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(root: Path, checkpoint: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "rotobridge.bridge.cli", "--log-format", "json", "serve",
        "--address", f"tcp://127.0.0.1:{port}", "--root", str(root), "--config-file", TINY_CONFIG,
        "--checkpoint", str(checkpoint), "--override", SMALL_SIZE[0], "--device", "cpu",
    ]
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=out)


def _hello(peer: Peer, timeout: float) -> bool:
    try:
        return bool(peer.call("hello", client="test", timeout=timeout)["ok"])
    except TimeoutError:
        return False


def test_serve_process_two_clients_kill_cancel_restart(tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port, log = _free_port(), tmp_path / "bridge.log"
    endpoint = f"tcp://127.0.0.1:{port}"
    bridge = _serve(tmp_path, tiny_checkpoint, port, log)
    try:
        a, b = Peer(endpoint), Peer(endpoint)
        assert _hello(a, 60), log.read_text()
        # two artists at once, each on its own shot
        sa = a.ok("open", **shot(tmp_path, "sh", frames=60))["session"]
        sb = b.ok("open", **shot(tmp_path, "b", frames=6))["session"]
        _click(a, sa)
        _click(b, sb)
        ra = a.send("propagate", session=sa, start=1001, end=1060, direction="forward")
        rb = b.send("propagate", session=sb, start=1001, end=1006, direction="forward")
        assert a.reply(ra)["ok"] and b.reply(rb)["ok"]
        assert b.finished(rb)["written"] == 6 and len(mattes(tmp_path, "b")) == 6
        # operations: `rotobridge status` sees both sessions
        assert cli.main(["status", "--address", endpoint]) == 0
        out = capsys.readouterr().out
        assert "2 session(s):" in out and f"job {ra}" in out and "device cpu" in out
        # b is killed while a propagates; a cancels and the bridge stops within a frame
        b.close()
        _cancel_after_3_frames(a, sa, ra, tmp_path, 60)
        # the bridge is killed: no more replies; restarted on the same address, hello works again
        bridge.send_signal(signal.SIGKILL)
        bridge.wait()
        assert not _hello(a, 1.5)
        bridge = _serve(tmp_path, tiny_checkpoint, port, log)
        assert _hello(a, 60), log.read_text()
        assert a.error("attach", session=sa)[0] == "unknown_session"
        a.close()
    finally:
        bridge.send_signal(signal.SIGTERM)
        assert bridge.wait(20) == 0
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r.get("request") == ra and r.get("session") == sa[:8] for r in records)


def test_status_says_when_no_bridge_answers(capsys: pytest.CaptureFixture[str]) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    assert cli.main(["status", "--address", address, "--timeout", "0.5"]) == 1
    assert f"bridge_unreachable: no answer from the bridge at {address} within 0.5 s" in capsys.readouterr().err


def test_refused_configuration_exits_before_loading_a_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--address", "tcp://0.0.0.0:47400", "--model", "sam2.1-hiera-tiny"]) == 2
    assert "needs CURVE encryption" in capsys.readouterr().err
