"""The host-agnostic controller: states, prompt sync, tracking, errors, against FakeClient.

`RecordingHost` is a minimal in-memory `Host`: its main thread is the test's thread, which
runs what was dispatched when the test pumps (`pump`), like a host's event loop.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest
import zmq.auth

from rotobridge import recipe
from rotobridge.mainthread import MainThreadQueue
from rotobridge.protocol import Preview
from rotobridge.controller import (
    CANCELLING,
    CONNECTING,
    DISCONNECTED,
    PROPAGATING,
    READY,
    SESSION_OPEN,
    Controller,
)
from rotobridge.errors import HostError, RotobridgeError
from rotobridge.controls import MatteControls
from rotobridge.keys import Keys
from rotobridge.prompts import PromptModel
from rotobridge.recipe import Shot

from .fake_client import FakeClients

ADDRESS = "tcp://gpu01:47400"
SHOT = Shot(
    recipe.Plate("/shots/sh010/plate/sh010.####.exr", "1001-1010", "ACEScg"),
    recipe.Output("/shots/sh010/mattes/sh010.####.exr"),
    recipe.Colour(config="ocio://studio-config-latest"),
    size=(2048, 858),
)


class RecordingHost:
    """A `Host` that records what the controller tells it."""

    def __init__(self, stored: str = "", shot: Shot | RotobridgeError = SHOT) -> None:
        self.stored = stored
        self._shot = shot
        self.queue = MainThreadQueue()
        self.main = threading.get_ident()
        self.states: list[str] = []
        self.previews: list[tuple[int, Preview]] = []
        self.progress_seen: list[tuple[int, int, int]] = []
        self.ended: list[tuple[str, int, int]] = []
        self.errors: list[tuple[str, str]] = []

    def shot(self) -> Shot:
        if isinstance(self._shot, RotobridgeError):
            raise self._shot
        return self._shot

    def load_prompts(self) -> str:
        return self.stored

    def store_prompts(self, text: str) -> None:
        self.stored = text

    def dispatch(self, fn: Callable[[], None]) -> None:
        self.queue(fn)

    def state_changed(self, state: str) -> None:
        self.states.append(state)

    def show_preview(self, preview: Preview) -> None:
        self.previews.append((threading.get_ident(), preview))

    def progress(self, frame: int, done: int, total: int) -> None:
        self.progress_seen.append((frame, done, total))

    def mattes_written(self, output: recipe.Output, status: str, written: int, total: int) -> None:
        self.ended.append((status, written, total))

    def on_error(self, title: str, message: str) -> None:
        self.errors.append((title, message))

    def pump(self, until: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.queue.drain()
            if until():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; errors: {self.errors}")
            time.sleep(0.002)


def opened(stored: str = "", fake: FakeClients | None = None) -> tuple[Controller, RecordingHost, FakeClients]:
    fake = fake or FakeClients()
    host = RecordingHost(stored)
    ctl = Controller(host, client_factory=fake)
    ctl.connect(ADDRESS)
    ctl.open_shot()  # asked while connecting: opens once the bridge answers
    host.pump(lambda: ctl.state == SESSION_OPEN)
    return ctl, host, fake


def test_states_through_a_session() -> None:
    ctl, host, fake = opened()
    car = ctl.add_object("car")
    assert car == 1
    ctl.click(1, 1003, 412.0, 220.5)
    host.pump(lambda: bool(host.previews))
    ctl.propagate("forward")
    host.pump(lambda: fake.last.job is not None)
    fake.last.step(2)
    ctl.cancel()
    host.pump(lambda: bool(host.ended))
    ctl.disconnect()
    assert host.states == [CONNECTING, READY, SESSION_OPEN, PROPAGATING, CANCELLING, SESSION_OPEN, DISCONNECTED]
    assert host.progress_seen == [(1001, 1, 10), (1002, 2, 10)]
    assert host.ended == [("cancelled", 2, 10)]
    host.pump(lambda: fake.last.closed)
    assert [c.name for c in fake.last.calls] == [
        "hello", "open", "prompt", "propagate", "cancel", "close", "close_client"
    ]
    assert host.errors == []


def test_bridge_calls_run_off_the_main_thread_and_results_on_it() -> None:
    ctl, host, fake = opened()
    ctl.add_object("car")
    ctl.click(1, 1003, 412.0, 220.5)
    host.pump(lambda: bool(host.previews))
    assert {c.thread for c in fake.last.calls} - {host.main} == {c.thread for c in fake.last.calls}
    assert [thread for thread, _ in host.previews] == [host.main]
    assert host.previews[0][1].frame == 1003


def test_open_sends_the_shot_as_recipe_parts() -> None:
    ctl, host, fake = opened()
    (call,) = fake.last.called("open")
    assert call.args == {
        # recipe parts as recipe.part_dict writes them: defaults (first_frame 1, zip, ...) left out
        "plate": {"path": "/shots/sh010/plate/sh010.####.exr", "frames": "1001-1010", "colourspace": "ACEScg"},
        "output": {"path": "/shots/sh010/mattes/sh010.####.exr"},
        "colour": {"config": "ocio://studio-config-latest"},
        "model": None,
    }
    assert (ctl.session, ctl.frames, ctl.bridge["model"]) == ("s-1", (1001, 1010), "sam2.1-hiera-tiny")


EDITS: list[tuple[str, Callable[[Controller], None], str, dict[str, Any]]] = [
    ("click", lambda c: c.click(1, 1003, 5.0, 6.0, positive=False), "prompt",
     {"frame": 1003, "points": [(412.0, 220.5), (5.0, 6.0)], "labels": [1, 0], "box": None}),
    ("move", lambda c: c.move_point(1, 1003, 0, 400.0, 200.0), "prompt",
     {"frame": 1003, "points": [(400.0, 200.0)], "labels": [1], "box": None}),
    ("box", lambda c: c.set_box(1, 1003, (1.0, 2.0, 30.0, 40.0)), "prompt",
     {"frame": 1003, "points": [(412.0, 220.5)], "labels": [1], "box": (1.0, 2.0, 30.0, 40.0)}),
    ("clear", lambda c: c.clear(1, 1003), "clear", {"object_id": 1, "frame": 1003}),
    ("remove", lambda c: c.remove_object(1), "remove", {"object_id": 1}),
    ("rename", lambda c: c.rename_object(1, "truck"), "prompt",
     {"object": {"id": 1, "name": "truck"}, "frame": 1003}),
]


@pytest.mark.parametrize(("what", "edit", "call", "args"), EDITS, ids=[e[0] for e in EDITS])
def test_edits_reach_the_session_and_the_host_storage(
    what: str, edit: Callable[[Controller], None], call: str, args: dict[str, Any]
) -> None:
    ctl, host, fake = opened()
    ctl.add_object("car")
    ctl.click(1, 1003, 412.0, 220.5)
    host.pump(lambda: len(fake.last.called("prompt")) == 1)
    before = len(fake.last.calls)
    edit(ctl)
    assert host.stored == ctl.prompts.dumps()
    host.pump(lambda: len(fake.last.calls) > before)
    assert fake.last.calls[-1].name == call
    sent = fake.last.calls[-1].args
    assert {k: sent[k] for k in args} == args
    assert host.errors == []


def test_a_drag_sends_the_first_and_then_only_the_latest_prompt() -> None:
    """While the bridge answers one prompt for an object's frame, newer edits of it wait and
    merge: a drag of twenty steps costs two requests, not twenty (issue 13)."""
    ctl, host, fake = opened()
    ctl.add_object("car")
    ctl.click(1, 1003, 412.0, 220.5)
    ctl.set_box(1, 1005, (1.0, 2.0, 30.0, 40.0))  # another frame: its own request
    host.pump(lambda: len(host.previews) == 2)
    for step in range(1, 21):
        ctl.move_point(1, 1003, 0, 400.0 + step, 200.0)
    assert host.stored == ctl.prompts.dumps()  # the model and the host's copy follow every step
    host.pump(lambda: fake.last.called("prompt")[-1].args["points"] == [(420.0, 200.0)] and len(host.previews) == 3)
    time.sleep(0.05)
    host.queue.drain()
    sent = [(c.args["frame"], c.args["points"]) for c in fake.last.called("prompt")]
    assert sent == [(1003, [(412.0, 220.5)]), (1005, []), (1003, [(401.0, 200.0)]), (1003, [(420.0, 200.0)])]
    assert [p.frame for _, p in host.previews] == [1003, 1005, 1003] and host.errors == []


def test_edits_after_a_removal_or_a_lost_session_are_not_stuck_behind_an_old_request() -> None:
    ctl, host, fake = opened()
    ctl.add_object("car")
    ctl.click(1, 1003, 412.0, 220.5)
    ctl.move_point(1, 1003, 0, 1.0, 1.0)  # waits for the click's answer...
    ctl.remove_object(1)  # ...and is dropped with the object
    host.pump(lambda: bool(fake.last.called("remove")))
    time.sleep(0.05)
    host.queue.drain()
    assert [c.name for c in fake.last.calls][2:] == ["prompt", "remove"] and host.errors == []
    ctl.add_object("truck")
    ctl.click(2, 1004, 5.0, 5.0)
    assert fake.last.on_session_lost is not None
    fake.last.on_session_lost("s-1")  # its answer is dropped with the session...
    ctl.open_shot()
    host.pump(lambda: ctl.state == SESSION_OPEN)
    ctl.move_point(2, 1004, 0, 6.0, 6.0)  # ...and the new session's edits go out at once
    host.pump(lambda: fake.last.called("prompt")[-1].args["points"] == [(6.0, 6.0)])


def test_adding_an_object_is_local_until_its_first_click() -> None:
    ctl, host, fake = opened()
    ctl.add_object("car")
    ctl.recolour_object(1, (1.0, 0.0, 0.0))
    assert "car" in host.stored and [c.name for c in fake.last.calls] == ["hello", "open"]


def test_edits_without_a_session_are_kept_and_replayed_when_it_opens() -> None:
    host = RecordingHost()
    ctl = Controller(host, client_factory=FakeClients())
    ctl.add_object("car")
    ctl.click(1, 1001, 1.0, 2.0)
    ctl.set_box(1, 1005, (1.0, 2.0, 3.0, 4.0))
    again, host2, fake = opened(stored=host.stored)
    host2.pump(lambda: len(fake.last.called("prompt")) == 2)
    assert [(c.args["frame"], c.args["points"], c.args["box"]) for c in fake.last.called("prompt")] == [
        (1001, [(1.0, 2.0)], None),
        (1005, [], (1.0, 2.0, 3.0, 4.0)),
    ]
    assert host2.previews == []  # replaying is not clicking


def test_edits_while_tracking_are_refused_and_change_nothing() -> None:
    ctl, host, fake = opened()
    ctl.add_object("car")
    ctl.click(1, 1003, 412.0, 220.5)
    ctl.propagate()
    stored = host.stored
    ctl.click(1, 1003, 1.0, 1.0)
    assert host.stored == stored
    assert host.errors == [("Prompt", "tracking is running: wait for it to finish or cancel it before changing prompts")]


def test_reruns_replace_only_mattes_this_session_wrote() -> None:
    ctl, host, fake = opened()
    ctl.add_object("car")
    ctl.click(1, 1003, 412.0, 220.5)
    overwrites = []
    for _ in range(2):
        ctl.propagate()
        host.pump(lambda: fake.last.job is not None)
        overwrites.append(fake.last.called("propagate")[-1].args["overwrite"])
        fake.last.step(10)
        fake.last.finish()
        host.pump(lambda: ctl.state == SESSION_OPEN)
    assert overwrites == [False, True]
    ctl.open_shot()  # a new session has not written anything yet
    host.pump(lambda: ctl.session == "s-2")
    ctl.propagate()
    host.pump(lambda: bool(host.errors))
    assert fake.last.called("propagate")[-1].args["overwrite"] is False
    assert host.errors[0][0] == "Mattes already exist" and ctl.state == SESSION_OPEN
    ctl.propagate(overwrite=True)
    host.pump(lambda: fake.last.job is not None)


def test_propagate_range_and_direction() -> None:
    ctl, host, fake = opened()
    ctl.add_object("car")
    ctl.click(1, 1003, 412.0, 220.5)
    ctl.propagate("backward", first=1001, last=1003)
    host.pump(lambda: fake.last.job is not None)
    args = fake.last.called("propagate")[0].args
    assert (args["start"], args["end"], args["direction"]) == (1001, 1003, "backward")


def test_a_failed_propagation_is_reported_with_the_bridge_s_message() -> None:
    ctl, host, fake = opened()
    ctl.add_object("car")
    ctl.click(1, 1003, 412.0, 220.5)
    ctl.propagate()
    host.pump(lambda: fake.last.job is not None)
    fake.last.step()
    fake.last.finish("failed", {"name": "missing_frame", "message": "plate frame 1002 is missing: /shots/sh010.1002.exr"})
    host.pump(lambda: ctl.state == SESSION_OPEN)
    assert host.ended == [("failed", 1, 10)]
    assert host.errors == [("Plate frame missing", "plate frame 1002 is missing: /shots/sh010.1002.exr")]


@pytest.mark.parametrize(
    ("do", "words"),
    [
        (lambda c: c.propagate(), "there are no clicks yet"),
        (lambda c: c.preview(1001), "frame 1001 holds no prompts"),
    ],
)
def test_refusals_name_what_to_do(do: Callable[[Controller], None], words: str) -> None:
    ctl, host, fake = opened()
    do(ctl)
    host.pump(lambda: bool(host.errors))
    assert words in host.errors[0][1]


def test_tracking_needs_an_open_session() -> None:
    host = RecordingHost()
    ctl = Controller(host, client_factory=FakeClients())
    ctl.propagate()
    ctl.open_shot()
    assert host.errors == [
        ("Prompt", "cannot track now (disconnected): open the shot first"),
        ("Prompt", "not connected to a bridge: connect first"),
    ]


def test_unreachable_bridge_is_reported_at_once_with_what_to_do() -> None:
    host = RecordingHost()
    ctl = Controller(host, client_factory=FakeClients(reachable=False))
    ctl.connect(ADDRESS)
    ctl.open_shot()
    host.pump(lambda: bool(host.errors), timeout=3)
    ((title, message),) = host.errors
    assert title == "Bridge unreachable"
    assert ADDRESS in message and "rotobridge serve" in message
    assert ctl.state == DISCONNECTED and host.states[-1] == DISCONNECTED


def test_a_lost_connection_shows_as_connecting_until_the_client_is_back() -> None:
    ctl, host, fake = opened()
    fake.last.lose()
    host.pump(lambda: ctl.state == CONNECTING)
    assert fake.last.on_state is not None
    fake.last.on_state("connected", "")
    assert ctl.state == SESSION_OPEN and host.errors == []


def test_a_session_the_bridge_forgot_is_reported_and_can_be_reopened() -> None:
    ctl, host, fake = opened()
    assert fake.last.on_session_lost is not None
    fake.last.on_session_lost("s-1")
    assert ctl.state == READY and host.errors[0][0] == "Session lost"
    ctl.open_shot()
    host.pump(lambda: ctl.state == SESSION_OPEN)


def test_results_of_a_closed_connection_are_dropped() -> None:
    ctl, host, fake = opened()
    ctl.add_object("car")
    ctl.click(1, 1003, 412.0, 220.5)
    ctl.disconnect()
    host.pump(lambda: fake.last.closed)
    time.sleep(0.02)
    host.queue.drain()
    assert host.previews == [] and ctl.state == DISCONNECTED


def test_plate_size_mismatch_is_an_error_and_no_session() -> None:
    host = RecordingHost()
    ctl = Controller(host, client_factory=FakeClients(width=1920, height=1080))
    ctl.connect(ADDRESS)
    ctl.open_shot()
    host.pump(lambda: bool(host.errors))
    assert "the plate the bridge reads is 1920x1080 but the host shows 2048x858" in host.errors[0][1]
    assert ctl.state == READY


def test_host_setup_errors_are_reported() -> None:
    host = RecordingHost(shot=HostError("the plate input must be a Read node"))
    ctl = Controller(host, client_factory=FakeClients())
    ctl.connect(ADDRESS)
    host.pump(lambda: ctl.state == READY)
    ctl.open_shot()
    assert host.errors == [("Setup", "the plate input must be a Read node")]


def test_damaged_stored_prompts_are_reported_and_start_empty() -> None:
    host = RecordingHost(stored='{"rotobridge_prompts": 9}')
    ctl = Controller(host, client_factory=FakeClients())
    assert ctl.prompts.objects == ()
    assert host.errors[0][0] == "Prompt" and "newer rotobridge" in host.errors[0][1]


def test_export_writes_the_recipe_with_the_served_model(tmp_path: Path) -> None:
    ctl, host, fake = opened()
    ctl.add_object("car")
    ctl.click(1, 1003, 412.0, 220.5)
    ctl.propagate("forward")
    path = tmp_path / "sh010.recipe.json"
    made = ctl.export_recipe(path)
    assert made is not None and recipe.load(path) == made
    assert made == ctl.prompts.to_recipe(
        SHOT.plate, SHOT.output, recipe.Model(name="sam2.1-hiera-tiny"), SHOT.colour, recipe.Propagate("forward")
    )


def test_export_needs_a_session(tmp_path: Path) -> None:
    host = RecordingHost()
    ctl = Controller(host, client_factory=FakeClients())
    assert ctl.export_recipe(tmp_path / "r.json") is None
    assert "export needs the open session" in host.errors[0][1]
    assert not (tmp_path / "r.json").exists()


def test_keys_from_certificate_files(tmp_path: Path) -> None:
    server_public, _ = zmq.auth.create_certificates(tmp_path, "bridge")
    _, artist_secret = zmq.auth.create_certificates(tmp_path, "artist")
    keys = Keys.from_files(server_public, artist_secret)
    assert keys.server_key == zmq.auth.load_certificate(server_public)[0].decode()
    fake = FakeClients()
    ctl = Controller(RecordingHost(), client_factory=fake)
    ctl.connect(ADDRESS, keys)
    assert fake.last.keys == keys


def test_the_real_client_drives_the_controller_alike() -> None:
    """Once with rotobridge.client.Client over ZeroMQ (test_client's scripted FakeBridge), so
    what FakeClient hands the controller (Preview, Event, dispatch) is what the real one does."""
    from .test_client import FakeBridge, _preview_handler

    def propagate(bridge: FakeBridge, identity: bytes, message: Any) -> Any:
        bridge.event(identity, message.id, "progress", frame=1001, path="/m.1001.exr", done=1, total=2)
        bridge.event(identity, message.id, "finished", written=1, total=2, status="done", error=None)
        return {"job": "j-1"}

    bridge = FakeBridge().start()
    bridge.handlers.update(
        open=lambda b, i, m: {"session": "s-1", "frames": [1001, 1010], "width": 2048, "height": 858},
        prompt=_preview_handler,
        propagate=propagate,
    )
    try:
        host = RecordingHost()
        ctl = Controller(host)
        ctl.connect(bridge.address)
        ctl.open_shot()
        host.pump(lambda: ctl.state == SESSION_OPEN)
        ctl.add_object("car")
        ctl.click(1, 1003, 412.0, 220.5)
        host.pump(lambda: bool(host.previews))
        ctl.propagate()
        host.pump(lambda: bool(host.ended))
        ctl.disconnect()
    finally:
        bridge.stop()
    assert [(thread, p.frame, p.objects) for thread, p in host.previews] == [(host.main, 1003, (1, 9))]
    assert (host.progress_seen, host.ended, host.errors) == ([(1001, 1, 2)], [("done", 1, 2)], [])
    (sent,) = bridge.requests("prompt")
    assert (sent["object"], sent["points"], sent["labels"]) == ({"id": 1, "name": "car"}, [[412.0, 220.5]], [1])


def test_matte_controls_are_stored_sent_and_shown_and_travel_with_prompts_on_reopen() -> None:
    feather = MatteControls(feather=2.0, clip_black=0.1)
    ctl, host, fake = opened()
    ctl.add_object("car")
    ctl.set_matte(1, feather, 1003)  # no clicks yet: stored, nothing to send
    assert fake.last.called("matte") == []
    assert PromptModel.loads(host.stored).object(1).matte == feather
    ctl.click(1, 1003, 412.0, 220.5)
    host.pump(lambda: bool(host.previews))
    assert fake.last.called("prompt")[0].args["object"]["matte"] == feather.to_json()  # it travels with the click

    grown = MatteControls(shrink_grow=4.0)
    ctl.set_matte(1, grown, 1003)
    ctl.set_matte(1, None, 1003)  # changed again while the first is on its way: the latest follows
    host.pump(lambda: len(fake.last.called("matte")) == 2 and len(host.previews) == 2)
    assert [c.args["controls"] for c in fake.last.called("matte")] == [grown, None]
    assert fake.last.controls[(ctl.session, 1)] is None and host.previews[-1][1].frame == 1003
    assert PromptModel.loads(host.stored).object(1).matte is None

    ctl.set_matte(1, grown, 1007)  # a frame the bridge cannot preview: the controls are set all the same, no error
    host.pump(lambda: len(fake.last.called("matte")) == 3 and not ctl.sending)
    assert host.errors == [] and fake.last.controls[(ctl.session, 1)] == grown
    ctl.rename_object(1, "auto")  # renaming keeps the controls
    assert PromptModel.loads(host.stored).object(1).matte == grown

    again, host2, fake2 = opened(host.stored)  # a reopened script sends its controls with its prompts
    host2.pump(lambda: bool(fake2.last.called("prompt")))
    assert fake2.last.called("prompt")[0].args["object"]["matte"] == grown.to_json()


def test_bad_matte_controls_and_edits_while_tracking_are_refused() -> None:
    ctl, host, fake = opened()
    ctl.add_object("car")
    ctl.click(1, 1003, 412.0, 220.5)
    host.pump(lambda: bool(host.previews))
    ctl.set_matte(2, MatteControls(), 1003)
    assert "no object 2" in host.errors[-1][1]
    ctl.propagate("forward")
    host.pump(lambda: fake.last.job is not None)
    ctl.set_matte(1, MatteControls(feather=1.0), 1003)
    assert "tracking is running" in host.errors[-1][1] and fake.last.called("matte") == []
    assert PromptModel.loads(host.stored).object(1).matte is None
