"""The Nuke layer (plugin/nuke) against the `nuke` test double (nuke_double.py).

Runs the shared host suite through `NukeHarness`, then what only Nuke has: the node's
inside, plate and colour discovery, proxy and overscan, knob mirroring, Nuke as artists
run it (issue 13: one test per finding, against the double's strict rules; every test
also fails if the plugin did what the double records as a violation, such as a modal
dialog from a callback), init.py and menu.py, and the installer. Subprocess checks run
with `python -S` (no site packages, so no .pth puts plugin/ on the path) and with pyzmq
and PySide blocked.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import zmq.auth

from rotobridge.coords import NukeSpace
from rotobridge.keys import Keys
from rotobridge.prompts import PromptModel

from . import nuke_double
from .fake_client import FakeClients
from .host_suite import FRAMES, MATTES, PLATE, PLATE_PATH, _wait_for_points

ROOT = Path(__file__).resolve().parents[2]
NUKE_FOLDER = ROOT / "plugin" / "nuke"
sys.modules.setdefault("nuke", nuke_double)
sys.path.insert(0, str(NUKE_FOLDER))

import nuke  # noqa: E402  (the double, installed above)

from rotobridge_nuke import adapter, node  # noqa: E402

from .host_suite import *  # noqa: E402,F401,F403  (the shared suite runs against this adapter)


class NukeHarness:
    """The host suite's gestures done the Nuke way, on the double."""

    def __init__(self, group: Any, fake: FakeClients) -> None:
        self.node, self.fake = group, fake
        self.main_thread = threading.get_ident()
        self._previews: list[tuple[int, int]] = []
        self._errors: list[str] = []
        adapter.CLIENT_FACTORY = fake
        adapter.listen(self._hear)

    @classmethod
    def new_scene(cls, script: Path) -> NukeHarness:
        nuke_double.double_reset()
        fake = adapter.CLIENT_FACTORY = FakeClients(*PLATE, FRAMES)  # before the node exists: its knobs' changes make its host
        nuke.root()["name"].setValue(str(script))
        read = nuke.nodes.Read(file=PLATE_PATH, first=FRAMES[0], last=FRAMES[1], colorspace="ACEScg")
        read["format"].setValue(nuke.Format(*PLATE))
        nuke_double.double_select(read)
        group = node.create()
        group[node.OUTPUT].setValue(MATTES)
        return cls(group, fake)

    def _hear(self, name: str, event: str, payload: Any) -> None:
        if name != self.node.fullName():
            return
        if event == "preview":
            self._previews.append((threading.get_ident(), payload.frame))
        elif event == "error":
            self._errors.append(f"RotoBridge {self.node.name()}: {payload[0]}\n\n{payload[1]}")

    def press(self, button: str) -> None:
        nuke_double.double_press(self.node[button])

    def connect(self, wait: bool = True) -> None:
        self.press(node.CONNECT)
        if wait:
            self.pump(lambda: self.node[node.STATUS].value() == "session open")

    def map_paths(self, host_folder: str, bridge_folder: str) -> None:
        """Type the folders into the node's `host path` and `bridge path` knobs."""
        nuke_double.double_edit(self.node[node.HOST_ROOT], host_folder)
        nuke_double.double_edit(self.node[node.BRIDGE_ROOT], bridge_folder)

    def add_object(self, name: str) -> int:
        nuke_double.double_answer(name)
        self.press(node.ADD_OBJECT)
        return PromptModel.loads(self.stored()).objects[-1].id

    def click(self, object_id: int, frame: int, x: float, y: float, positive: bool = True) -> None:
        """Go to the frame, press '+ point' or '- point', then drag the new knob's handle to (x, y)."""
        nuke_double.double_edit(self.node[node.OBJECT], PromptModel.loads(self.stored()).object(object_id).name)
        nuke_double.double_set_frame(frame)
        nuke_double.double_run_main_thread()
        before = set(self.node.knobs())
        self.press(node.ADD_POSITIVE if positive else node.ADD_NEGATIVE)
        (added,) = set(self.node.knobs()) - before
        assert added in nuke_double.double_handles(self.node), "the new point's handle is not in the Viewer"
        nuke_double.double_edit(self.node[added], list(NukeSpace(*PLATE).from_plate(x, y)))

    def propagate(self, direction: str) -> None:
        self.press(direction)

    def request_cancel(self) -> None:
        nuke_double.double_state("tasks")[-1].double_cancelled = True

    def export(self, path: str) -> None:
        nuke_double.double_answer(path)
        self.press(node.EXPORT)

    def pump(self, until: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            if not nuke_double.double_run_main_thread():
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out; Nuke showed: {self.errors()}")
                time.sleep(0.002)

    def stored(self) -> str:
        """The prompt knob's text as saved (getText: never Tcl-evaluated)."""
        return str(self.node[node.PROMPTS].getText())

    def reload(self) -> NukeHarness:
        script = str(nuke.root()["name"].value())
        nuke.scriptSaveAs(script)
        fake = adapter.CLIENT_FACTORY = FakeClients(*PLATE, FRAMES)
        nuke.scriptOpen(script)
        adapter.unlisten(self._hear)
        return NukeHarness(nuke.toNode(self.node.name()), fake)

    def errors(self) -> list[str]:
        """The errors the node showed the artist (its status knob and the panel; a dialog too
        when a button caused them). Other messages, such as "Recipe written", are not errors."""
        return list(self._errors)

    def dialogs(self) -> list[str]:
        """The modal error dialogs Nuke showed."""
        return [m for m in nuke_double.double_state("messages") if m.startswith(f"RotoBridge {self.node.name()}: ")]

    def previews(self) -> list[tuple[int, int]]:
        return list(self._previews)

    def progress(self) -> list[float]:
        return [p / 100 for task in nuke_double.double_state("tasks") for p in task.double_progress]

    def mattes_shown(self) -> tuple[str, int, int] | None:
        read = nuke.toNode(f"{self.node.fullName()}.{node.MATTES}")
        assert read is not None
        if f"{read.fullName()}.reload" not in nuke_double.double_state("executed"):
            return None
        return (str(read["file"].value()), int(read["first"].value()), int(read["last"].value()))


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NukeHarness]:
    monkeypatch.delenv("OCIO", raising=False)  # set, it overrides the script's OCIO config
    harness = NukeHarness.new_scene(tmp_path / "sh010.nk")
    yield harness
    adapter.release_all()
    adapter._listeners.clear()
    assert nuke_double.double_state("violations") == [], "the plugin did what Nuke does not allow"


# --- the node ------------------------------------------------------------------------


def test_the_node_reads_its_mattes_as_data_with_the_first_object_in_alpha(host: NukeHarness) -> None:
    host.connect()
    host.add_object("car")
    host.add_object("person")
    read, copy = (nuke.toNode(f"{host.node.name()}.{name}") for name in (node.MATTES, node.FIRST_OBJECT))
    assert read is not None and copy is not None
    assert read["raw"].value() is True and copy.input(0) is read and copy.input(1) is read
    assert (copy["from0"].value(), copy["to0"].value()) == ("car.alpha", "rgba.alpha")
    assert "car" in nuke.layers() and host.node.input(0).Class() == "Read"
    assert (host.node[node.FIRST].value(), host.node[node.LAST].value()) == FRAMES
    assert [n.Class() for n in host.node.nodes()] == ["Input", "Read", "Copy", "Output"]


def test_point_and_box_knobs_mirror_the_prompts(host: NukeHarness) -> None:
    host.connect()
    car = host.add_object("car")
    host.click(car, 1001, 412.5, 220.25)
    host.click(car, 1001, 10.0, 20.0, positive=False)
    host.press(node.ADD_BOX)
    knobs = {name: (k.label(), k.value()) for name, k in host.node.knobs().items() if name.startswith(("rb_pt_", "rb_box_"))}
    assert knobs == {
        "rb_pt_1_1001_0": ("car 1001 +1", [412.5, 637.75]),
        "rb_pt_1_1001_1": ("car 1001 -2", [10.0, 838.0]),
        "rb_box_1_1001": ("car 1001 box", [512.0, 214.5, 1536.0, 643.5]),  # x, y, r, t: Nuke's way up
    }
    nuke_double.double_edit(host.node["rb_box_1_1001"], [0.0, 0.0, 100.0, 50.0])
    assert PromptModel.loads(host.stored()).prompt(car, 1001).box == (0.0, 808.0, 100.0, 858.0)
    host.press(node.CLEAR_FRAME)
    assert not [k for k in host.node.knobs() if k.startswith(("rb_pt_", "rb_box_"))]


@pytest.mark.parametrize("scale", [0.5, 0.25])
def test_proxy_mode_changes_no_knob_coordinates(host: NukeHarness, scale: float) -> None:
    nuke.root()["proxy"].setValue(True)
    nuke.root()["proxy_scale"].setValue(scale)
    host.connect()
    car = host.add_object("car")
    host.click(car, 1002, 1000.25, 500.5)
    assert PromptModel.loads(host.stored()).prompt(car, 1002).points == ((1000.25, 500.5),)
    assert host.node["rb_pt_1_1002_0"].value() == [1000.25, 357.5]


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_a_point_dragged_into_the_overscan_is_refused_and_springs_back(host: NukeHarness, scale: float) -> None:
    read = host.node.input(0)
    read.double_data_window = (-64.0, -64.0, PLATE[0] + 64.0, PLATE[1] + 64.0)
    nuke.root()["proxy"].setValue(scale != 1.0)
    nuke.root()["proxy_scale"].setValue(scale)
    host.connect()
    car = host.add_object("car")
    host.click(car, 1001, 100.0, 100.0)
    nuke_double.double_edit(host.node["rb_pt_1_1001_0"], [2100.0, 10.0])
    assert "Nuke position (2100, 10) is in the overscan, outside the 2048x858 image" in host.errors()[-1]
    assert host.node["rb_pt_1_1001_0"].value() == [100.0, 758.0]
    assert PromptModel.loads(host.stored()).prompt(car, 1001).points == ((100.0, 100.0),)


PLATE_SETUPS: list[tuple[str, Callable[[Any], None], str]] = [
    ("not a Read", lambda read: None, "connect the plate input straight to the plate's Read"),
    ("retimed", lambda read: read["frame"].setValue("frame+10"), "retimes its file (frame 'frame+10')"),
    ("no colorspace", lambda read: read["colorspace"].setValue("default"), "set the colorspace of the Read 'Read1'"),
    ("Nuke colour", lambda read: nuke.root()["colorManagement"].setValue("Nuke"), "switch it to OCIO"),
    ("inner config", lambda read: nuke.root()["OCIO_config"].setValue("aces_1.2"), "'aces_1.2' ships inside Nuke"),
    ("custom, no path", lambda read: nuke.root()["OCIO_config"].setValue("custom"), "'custom' but has no path"),
]


@pytest.mark.parametrize(("what", "change", "words"), PLATE_SETUPS, ids=[s[0] for s in PLATE_SETUPS])
def test_plate_setups_the_bridge_cannot_use_are_explained(
    host: NukeHarness, what: str, change: Callable[[Any], None], words: str
) -> None:
    read = host.node.input(0)
    change(read)
    if what == "not a Read":
        grade = nuke.nodes.Grade()
        grade.setInput(0, read)
        host.node.setInput(0, grade)
    host.connect(wait=False)
    host.pump(lambda: bool(host.errors()))
    assert words in host.errors()[0] and "Setup" in host.errors()[0]


COLOUR = [
    ("fn-nuke_cg-config-v1.0.0_aces-v1.3_ocio-v2.1", "", "ACEScg", "ocio://cg-config-v1.0.0_aces-v1.3_ocio-v2.1", "ACEScg"),
    ("custom", "/show/ocio/config.ocio", "default (ACEScg)", "/show/ocio/config.ocio", "ACEScg"),
]


@pytest.mark.parametrize(("config", "custom", "colorspace", "sent_config", "sent_space"), COLOUR)
def test_colour_settings_reach_the_bridge(
    host: NukeHarness, config: str, custom: str, colorspace: str, sent_config: str, sent_space: str
) -> None:
    nuke.root()["OCIO_config"].setValue(config)
    nuke.root()["customOCIOConfigPath"].setValue(custom)
    host.node.input(0)["colorspace"].setValue(colorspace)
    host.connect()
    (call,) = host.fake.last.called("open")
    assert (call.args["colour"], call.args["plate"]["colourspace"]) == ({"config": sent_config}, sent_space)


def test_a_custom_ocio_config_file_is_mapped_and_a_builtin_is_not(host: NukeHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    host.map_paths("/show", "/mnt/show")
    nuke.root()["OCIO_config"].setValue("custom")
    nuke.root()["customOCIOConfigPath"].setValue("/show/ocio/config.ocio")
    host.connect()
    nuke.root()["customOCIOConfigPath"].setValue("")  # then $OCIO, here one of OCIO's built-in configs
    monkeypatch.setenv("OCIO", "ocio://studio-config-latest")
    host.connect()
    assert [c.args["colour"] for c in (f.called("open")[0] for f in host.fake.made)] == [
        {"config": "/mnt/show/ocio/config.ocio"}, {"config": "ocio://studio-config-latest"}
    ]


def test_path_mapping_is_saved_with_the_node_and_old_nodes_map_nothing(host: NukeHarness) -> None:
    host.map_paths("/shots", "/mnt/shots")
    again = host.reload()
    assert (again.node[node.HOST_ROOT].value(), again.node[node.BRIDGE_ROOT].value()) == ("/shots", "/mnt/shots")
    for name in (node.HOST_ROOT, node.BRIDGE_ROOT):  # a node made before the knobs existed
        again.node.removeKnob(again.node[name])
    again.connect()
    assert again.fake.last.called("open")[0].args["plate"]["path"] == PLATE_PATH


def test_the_key_knobs_give_the_client_its_keys_or_say_what_is_missing(host: NukeHarness, tmp_path: Path) -> None:
    server, _ = zmq.auth.create_certificates(str(tmp_path), "server")
    public, secret = zmq.auth.create_certificates(str(tmp_path), "artist")
    host.node[node.SERVER_KEY].setValue(server)
    host.connect(wait=False)
    host.pump(lambda: bool(host.errors()))
    assert "Setup" in host.errors()[0] and ".key_secret" in host.errors()[0] and not host.fake.made
    host.node[node.CLIENT_KEY].setValue(secret)
    host.connect()
    (server_public, _), (artist_public, artist_secret) = zmq.auth.load_certificate(server), zmq.auth.load_certificate(secret)
    assert artist_secret is not None and artist_public == zmq.auth.load_certificate(public)[0]
    assert host.fake.last.keys == Keys(server_public.decode(), artist_public.decode(), artist_secret.decode())


def test_mattes_default_next_to_the_script(host: NukeHarness, tmp_path: Path) -> None:
    host.node[node.OUTPUT].setValue("")
    host.connect()
    assert host.fake.last.called("open")[0].args["output"]["path"] == str(tmp_path / "mattes" / "RotoBridge1" / "RotoBridge1.####.exr")
    nuke.root()["name"].setValue("")
    host.connect(wait=False)
    host.pump(lambda: bool(host.errors()))
    assert "save the script first" in host.errors()[0]


def test_without_a_gui_errors_go_to_the_terminal(host: NukeHarness) -> None:
    nuke_double.env["gui"] = False
    host.press(node.PREVIEW)
    host.propagate("both")
    assert nuke_double.double_state("messages") == []
    assert "cannot track now (disconnected)" in nuke_double.double_state("printed")[0]


def test_reopening_a_script_makes_a_new_host_and_drops_the_old_session(host: NukeHarness) -> None:
    host.connect()
    old = host.fake.last
    again = host.reload()
    again.connect()
    assert old.closed and again.fake.last is not old


# --- Nuke as artists run it (issue 13): one test per finding, on the strict double -----


def _status(host: NukeHarness) -> str:
    return str(host.node[node.STATUS].value())


def test_errors_from_callbacks_go_to_the_status_knob_and_only_buttons_open_dialogs(host: NukeHarness) -> None:
    """1. A refused drag (knobChanged) and a bridge error (executeInMainThread) open no modal dialog."""
    host.connect()
    car = host.add_object("car")
    host.click(car, 1001, 100.0, 100.0)
    nuke_double.double_edit(host.node["rb_pt_1_1001_0"], [2100.0, 10.0])  # the double fails a dialog from here
    assert "is outside the 2048x858 image" in _status(host) and "is outside the 2048x858 image" in host.errors()[-1]
    host.fake.reachable = False
    host.click(car, 1001, 200.0, 200.0)
    host.pump(lambda: "Bridge unreachable" in _status(host))
    assert host.dialogs() == []
    host.node[node.OBJECT].setValue("")
    host.press(node.REMOVE_OBJECT)  # a button: its own refusal is a dialog
    assert "add an object first" in host.dialogs()[-1]
    assert nuke_double.double_state("violations") == []


def test_unreadable_stored_prompts_are_reported_in_the_status_when_the_node_is_first_used(host: NukeHarness) -> None:
    adapter.release_all()
    host.node[node.PROMPTS].setValue('{"rotobridge_prompts": 9}')
    nuke_double.double_run_main_thread()  # the idle updateUI callback makes the node's host anew
    assert "newer rotobridge" in _status(host) and host.dialogs() == []


def test_only_the_current_frames_handles_show_in_the_viewer(host: NukeHarness) -> None:
    """2. A handle of another frame would place a click on the wrong picture."""
    host.connect()
    car = host.add_object("car")
    host.click(car, 1001, 10.0, 10.0)
    host.click(car, 1005, 20.0, 20.0)
    host.press(node.ADD_BOX)
    assert nuke_double.double_handles(host.node) == {"rb_pt_1_1005_0", "rb_box_1_1005"}
    nuke_double.double_set_frame(1001)
    nuke_double.double_run_main_thread()
    assert nuke_double.double_handles(host.node) == {"rb_pt_1_1001_0"}
    nuke_double.double_set_frame(1003)
    nuke_double.double_run_main_thread()
    assert nuke_double.double_handles(host.node) == set()
    again = host.reload()  # a reopened script shows the frame's handles only, too
    nuke_double.double_run_main_thread()
    assert nuke_double.double_handles(again.node) == set()
    nuke_double.double_set_frame(1005)
    nuke_double.double_run_main_thread()
    assert nuke_double.double_handles(again.node) == {"rb_pt_1_1005_0", "rb_box_1_1005"}


@pytest.mark.parametrize("name", ["mask", "depth", "motion", "forward", "backward", "rgba"])
def test_object_names_nuke_keeps_for_its_own_layers_are_refused(host: NukeHarness, name: str) -> None:
    """3. Nuke cannot put the matte into one of its built-in layers: it would arrive empty."""
    host.connect()
    nuke_double.double_answer(name)
    host.press(node.ADD_OBJECT)
    assert f"{name!r} is a layer built into Nuke" in host.errors()[-1] and host.dialogs()
    assert PromptModel.loads(host.stored()).objects == ()
    before = nuke_double.channels()
    nuke.Layer(name, [f"{name}.alpha"])
    assert nuke_double.channels() == before  # what the double enforces, as Nuke does


def test_a_set_ocio_variable_wins_and_a_custom_config_path_is_evaluated(
    host: NukeHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """4. Nuke itself uses $OCIO over the script's choice; the custom path may hold Tcl."""
    monkeypatch.setenv("OCIO", "/studio/ocio/config.ocio")
    host.connect()
    monkeypatch.delenv("OCIO")
    monkeypatch.setenv("RB_SHOW", "/show")
    nuke.root()["OCIO_config"].setValue("custom")
    nuke.root()["customOCIOConfigPath"].setValue("[getenv RB_SHOW]/ocio/config.ocio")
    host.connect()
    assert [f.called("open")[0].args["colour"] for f in host.fake.made] == [
        {"config": "/studio/ocio/config.ocio"}, {"config": "/show/ocio/config.ocio"}
    ]


def test_prompts_are_plain_text_that_tcl_never_evaluates_and_old_scripts_still_load(host: NukeHarness) -> None:
    """5. The prompts' JSON is full of [...], which Tcl would run as commands."""
    assert not isinstance(host.node[node.PROMPTS], nuke.EvalString_Knob)
    host.connect()
    car = host.add_object("car")
    host.click(car, 1001, 412.5, 220.25)
    before = host.stored()
    assert "[[412.5,220.25]]" in before
    script = Path(str(nuke.root()["name"].value()))
    nuke.scriptSaveAs(str(script))
    saved = json.loads(script.read_text())
    group = next(c for c in saved["children"] if c["class"] == "Group")
    knob = next(k for k in group["knobs"] if k["name"] == node.PROMPTS)
    knob["class"] = "Multiline_Eval_String_Knob"  # what nodes made by rotobridge 0.1 have
    script.write_text(json.dumps(saved))
    fake = adapter.CLIENT_FACTORY = FakeClients(*PLATE, FRAMES)
    nuke.scriptOpen(str(script))
    old = NukeHarness(nuke.toNode(host.node.name()), fake)
    assert isinstance(old.node[node.PROMPTS], nuke.Multiline_Eval_String_Knob)
    old.connect()
    old.pump(lambda: bool(old.fake.last.called("prompt")))
    assert old.fake.last.called("prompt")[0].args["points"] == [(412.5, 220.25)] and old.stored() == before
    assert old.errors() == []


def test_the_matte_read_covers_what_was_tracked_and_renders_black_where_no_matte_is(host: NukeHarness) -> None:
    """6. A cancel or a narrower range must not make `nuke -x` renders of the script fail."""
    read = nuke.toNode(f"{host.node.name()}.{node.MATTES}")
    assert read is not None and read["on_error"].value() == "black"
    host.connect()
    car = host.add_object("car")
    host.click(car, 1004, 10.0, 10.0)
    host.node[node.FIRST].setValue(1004)
    host.node[node.LAST].setValue(1007)
    host.propagate(node.FORWARD)
    host.pump(lambda: host.fake.last.job is not None)
    host.fake.last.step(2)
    host.pump(lambda: len(host.progress()) == 2)
    host.request_cancel()
    host.fake.last.step()
    host.pump(lambda: host.mattes_shown() is not None)
    assert host.mattes_shown() == (MATTES, 1004, 1007)
    assert [read[k].value() for k in ("on_error", "before", "after")] == ["black", "black", "black"]
    host.node[node.FIRST].setValue(1002)
    host.node[node.LAST].setValue(1005)
    host.propagate(node.BACKWARD)  # a rerun over part of it: the Read keeps what the first run wrote
    host.pump(lambda: host.fake.last.job is not None)
    host.fake.last.step(4)
    host.fake.last.finish()
    host.pump(lambda: host.fake.last.job is None and host.mattes_shown() == (MATTES, 1002, 1007))


@pytest.mark.parametrize("major", [15, 17])
def test_proxy_mode_sends_the_full_size_plate_not_the_proxy_file(
    host: NukeHarness, monkeypatch: pytest.MonkeyPatch, major: int
) -> None:
    """7. In proxy mode nuke.filename answers with the Read's proxy file."""
    monkeypatch.setattr(nuke_double, "NUKE_VERSION_MAJOR", major)
    read = host.node.input(0)
    read["proxy"].setValue("/shots/sh010/plate_half/sh010_half.####.exr")
    nuke.root()["proxy"].setValue(True)
    assert nuke.filename(read) == "/shots/sh010/plate_half/sh010_half.%04d.exr"
    host.connect()
    assert host.fake.last.called("open")[0].args["plate"]["path"] == PLATE_PATH


def test_plate_matte_and_key_paths_are_evaluated_and_made_absolute_as_a_read_does(
    host: NukeHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8. Tcl in a path is evaluated; a relative path is relative to the project directory."""
    (tmp_path / "keys").mkdir()
    server, _ = zmq.auth.create_certificates(str(tmp_path / "keys"), "server")
    _, secret = zmq.auth.create_certificates(str(tmp_path / "keys"), "artist")
    monkeypatch.setenv("RB_SHOT", "sh010")
    nuke.root()["project_directory"].setValue("[python {nuke.script_directory()}]")
    host.node.input(0)["file"].setValue("plate/[getenv RB_SHOT].%04d.exr")
    host.node[node.OUTPUT].setValue("mattes/[getenv RB_SHOT]_sam.####.exr")
    host.node[node.SERVER_KEY].setValue("keys/server.key")
    host.node[node.CLIENT_KEY].setValue("[file dirname [value root.name]]/keys/artist.key_secret")
    host.connect()
    (opened,) = host.fake.last.called("open")
    assert (opened.args["plate"]["path"], opened.args["output"]["path"]) == (
        f"{tmp_path}/plate/sh010.####.exr", f"{tmp_path}/mattes/sh010_sam.####.exr"
    )
    assert host.fake.last.keys == Keys.from_files(server, secret)


@pytest.mark.parametrize("how", ["session lost", "script closed", "Connect pressed"])
def test_the_progress_bar_ends_whenever_tracking_does(host: NukeHarness, how: str) -> None:
    """9. Not only a finished propagation ends Nuke's progress bar."""
    host.connect()
    car = host.add_object("car")
    host.click(car, 1001, 10.0, 10.0)
    host.propagate(node.FORWARD)
    host.pump(lambda: host.fake.last.job is not None)
    host.fake.last.step(2)
    host.pump(lambda: len(host.progress()) == 2)
    assert nuke_double.double_state("tasks")[-1].double_open
    if how == "session lost":
        assert host.fake.last.on_session_lost is not None
        host.fake.last.on_session_lost("s-1")
    elif how == "script closed":
        adapter.release_all()
    else:
        host.press(node.CONNECT)
    assert [t.double_open for t in nuke_double.double_state("tasks")] == [False]


def test_a_drag_sends_only_its_latest_position(host: NukeHarness) -> None:
    """10. Each knob change of a drag would otherwise queue a full prompt request."""
    host.connect()
    car = host.add_object("car")
    host.click(car, 1001, 10.0, 10.0)
    _wait_for_points(host, [(10.0, 10.0)])
    host.pump(lambda: bool(host.previews()))  # answered: nothing on its way
    sent = len(host.fake.last.called("prompt"))
    for step in range(1, 21):  # one drag: Nuke changes the knob many times before its event loop idles
        nuke_double.double_edit(host.node["rb_pt_1_1001_0"], list(NukeSpace(*PLATE).from_plate(10.0 + step, 10.0)))
    _wait_for_points(host, [(30.0, 10.0)])
    time.sleep(0.05)
    host.pump(lambda: True)
    assert [c.args["points"] for c in host.fake.last.called("prompt")][sent:] == [[(11.0, 10.0)], [(30.0, 10.0)]]
    assert host.previews()[-1][1] == 1001


def test_undo_never_separates_the_stored_prompts_from_the_session(host: NukeHarness) -> None:
    """11. Ctrl+Z may undo the artist's knob changes, never the plugin's own bookkeeping."""
    host.connect()
    car = host.add_object("car")
    host.click(car, 1001, 10.0, 10.0)
    host.press(node.ADD_POSITIVE)  # a second point, then Ctrl+Z, then Ctrl+Z again (the drag)
    controller = adapter.host_for(host.node).controller

    def in_step() -> None:
        assert host.stored() == controller.prompts.dumps()
        model = {f"rb_pt_{o.id}_{p.frame}_{i}" for o in controller.prompts.objects for p in o.prompts for i in range(len(p.points))}
        assert {k for k in host.node.knobs() if k.startswith("rb_pt_")} == model

    for _ in range(3):
        nuke_double.double_undo()
        in_step()
    assert PromptModel.loads(host.stored()).prompt(car, 1001) is not None


@pytest.mark.parametrize(("major", "binding"), [(15, "PySide2"), (16, "PySide6"), (17, "PySide6")])
def test_qt_is_the_binding_of_the_running_nuke(monkeypatch: pytest.MonkeyPatch, major: int, binding: str) -> None:
    """12. A PySide6 on the path must not load into Nuke 15, whose Qt is 5."""
    for name in ("PySide2", "PySide6"):
        package = types.ModuleType(name)
        for part in ("QtCore", "QtGui", "QtWidgets"):
            module = types.ModuleType(f"{name}.{part}")
            setattr(package, part, module)
            monkeypatch.setitem(sys.modules, f"{name}.{part}", module)
        monkeypatch.setitem(sys.modules, name, package)
    monkeypatch.setattr(nuke_double, "NUKE_VERSION_MAJOR", major)
    monkeypatch.delitem(sys.modules, "rotobridge_nuke.qt", raising=False)
    qt = importlib.import_module("rotobridge_nuke.qt")
    assert qt.QtCore is sys.modules[f"{binding}.QtCore"] and qt.QtWidgets is sys.modules[f"{binding}.QtWidgets"]
    monkeypatch.delitem(sys.modules, "rotobridge_nuke.qt")


# --- init.py, menu.py, the installer ------------------------------------------------

_BLOCKED = "sys.modules.update(dict.fromkeys(['zmq', 'PySide2', 'PySide6', 'numpy']))  # importing them fails"


def run_in_bare_python(code: str) -> subprocess.CompletedProcess[str]:
    """`code` in `python -S` with the nuke double as `nuke` and pyzmq, PySide and numpy blocked."""
    prelude = f"""
import sys
{_BLOCKED}
sys.path.insert(0, {str(Path(__file__).parent)!r})
import nuke_double
sys.modules["nuke"] = nuke_double
"""
    return subprocess.run(
        [sys.executable, "-S", "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )


def test_init_py_sets_up_paths_only_and_needs_no_gui_pyzmq_or_qt() -> None:
    result = run_in_bare_python(f"""
        nuke_double.double_reset(gui=False)
        nuke_double.pluginAddPath({str(NUKE_FOLDER)!r})
        import rotobridge.recipe, rotobridge_nuke.node
        loaded = sorted(m for m, mod in sys.modules.items() if mod and m.split(".")[0] in ("zmq", "PySide2", "PySide6", "rotobridge_nuke"))
        print(loaded, nuke_double.double_state("menus"))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['rotobridge_nuke', 'rotobridge_nuke.node'] {}"


def test_a_farm_render_session_opens_the_script_without_the_bridge(host: NukeHarness, tmp_path: Path) -> None:
    host.connect()
    car = host.add_object("car")
    host.click(car, 1001, 10.0, 10.0)
    host.propagate("both")
    host.pump(lambda: host.fake.last.job is not None)
    host.fake.last.step(10)
    host.fake.last.finish()
    host.pump(lambda: host.mattes_shown() is not None)
    script = tmp_path / "farm.nk"
    nuke.scriptSaveAs(str(script))
    result = run_in_bare_python(f"""
        nuke_double.double_reset(gui=False)  # nuke -x farm.nk
        nuke_double.pluginAddPath({str(NUKE_FOLDER)!r})
        nuke_double.scriptOpen({str(script)!r})
        read, copy = nuke_double.toNode("RotoBridge1.mattes"), nuke_double.toNode("RotoBridge1.first_object")
        print(read["file"].value(), read["first"].value(), read["last"].value(), read["raw"].value(), copy["from0"].value())
        print([m for m, mod in sys.modules.items() if mod and m.split(".")[0] in ("zmq", "rotobridge")])
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{MATTES} 1001 1010 True car.alpha", "[]"]


def test_menu_py_adds_the_node_the_panel_and_closes_sessions_with_the_script(host: NukeHarness) -> None:
    sys.modules["nukescripts"] = nuke_double.nukescripts
    sys.modules["nukescripts.panels"] = nuke_double.nukescripts_panels
    nuke_double.nukescripts_panels.registered.clear()
    exec(compile((NUKE_FOLDER / "menu.py").read_text(), "menu.py", "exec"), {"__name__": "__main__"})
    command = nuke.menu("Nodes").double_commands["RotoBridge/RotoBridge"]
    exec(command, {})
    assert nuke.toNode("RotoBridge2") is not None
    ((widget, title, panel_id),) = nuke_double.nukescripts_panels.registered
    assert (widget, title, panel_id) == (
        "__import__('rotobridge_nuke.panel', fromlist=['make_panel']).make_panel", "RotoBridge", "io.rotobridge.panel"
    )
    host.connect()
    nuke.scriptClear()
    host.pump(lambda: host.fake.last.closed)
    assert host.fake.last.called("close")


def install(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "install" / "install_nuke.py"), "--nuke-home", str(home / ".nuke"), *args],
        capture_output=True, text=True, timeout=60,
    )


def test_installer_adds_the_plugin_path_once_and_nuke_then_finds_it(tmp_path: Path) -> None:
    (tmp_path / ".nuke").mkdir()
    (tmp_path / ".nuke" / "init.py").write_text("import nuke\nnuke.pluginAddPath('./gizmos')\n")
    for _ in range(2):
        result = install(tmp_path)
        assert result.returncode == 0, result.stderr
    text = (tmp_path / ".nuke" / "init.py").read_text()
    assert text.startswith("import nuke\nnuke.pluginAddPath('./gizmos')\n")
    assert text.count(f"nuke.pluginAddPath({str(NUKE_FOLDER)!r})") == 1
    started = run_in_bare_python(f"""
        nuke_double.double_reset(gui=True)
        exec(open({str(tmp_path / '.nuke' / 'init.py')!r}).read(), {{"__name__": "__main__"}})
        import rotobridge_nuke.node, rotobridge.prompts
        print(rotobridge_nuke.node.__file__)
    """)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == str(NUKE_FOLDER / "rotobridge_nuke" / "node.py")


def test_installer_prints_the_nuke_path_and_the_vendoring_command(tmp_path: Path) -> None:
    printed = install(tmp_path, "--print")
    assert printed.stdout.strip() == f"export NUKE_PATH={NUKE_FOLDER}${{NUKE_PATH:+:$NUKE_PATH}}"
    assert not (tmp_path / ".nuke").exists()
    vendor = install(tmp_path, "--print", "--vendor", "3.10")
    pin = next(line for line in (ROOT / "install" / "requirements-host.txt").read_text().splitlines() if line.startswith("pyzmq"))
    assert vendor.stdout.splitlines()[-1] == (
        f"{sys.executable} -m pip install --upgrade --target {NUKE_FOLDER / 'lib' / 'py3.10'} "
        f"--python-version 3.10 --only-binary=:all: {pin}"
    )


@pytest.mark.parametrize(("nuke_major", "python"), [("15", "3.10"), ("16", "3.11"), ("17", "3.11")])
def test_installer_vendors_pyzmq_for_the_python_of_each_nuke(tmp_path: Path, nuke_major: str, python: str) -> None:
    """Nuke 15 runs Python 3.10; Nuke 16 and 17 run 3.11 (Foundry's third-party library lists)."""
    printed = install(tmp_path, "--print", "--for-nuke", nuke_major)
    assert printed.returncode == 0, printed.stderr
    command = printed.stdout.splitlines()[-1]
    assert f"--python-version {python} " in command and f"--target {NUKE_FOLDER / 'lib' / f'py{python}'} " in command


def test_matte_knobs_edit_the_chosen_objects_controls_and_round_trip_through_save_and_load(host: NukeHarness) -> None:
    from rotobridge.controls import MatteControls

    host.connect()
    car = host.add_object("car")
    person = host.add_object("person")
    host.click(car, 1001, 412.5, 220.25)
    host.click(person, 1001, 100.0, 80.0)
    nuke_double.double_edit(host.node[node.OBJECT], "car")
    assert host.node[node.MATTE_ON].value() is False  # no controls yet: SAM 2's raw matte
    shown = len(host.previews())
    nuke_double.double_edit(host.node[node.MATTE_ON], True)
    nuke_double.double_edit(host.node["matte_feather"], 2.5)
    nuke_double.double_edit(host.node["matte_despeckle"], 40)
    host.pump(lambda: len(host.fake.last.called("matte")) >= 1 and len(host.previews()) > shown)
    host.pump(lambda: host.fake.last.controls.get((host.fake.last.called("matte")[0].args["session"], car))
              == MatteControls(feather=2.5, despeckle=40))
    model = PromptModel.loads(host.stored())
    assert model.object(car).matte == MatteControls(feather=2.5, despeckle=40) and model.object(person).matte is None
    assert host.errors() == []

    nuke_double.double_edit(host.node[node.OBJECT], "person")  # the knobs show the other object's (none)
    assert host.node[node.MATTE_ON].value() is False and host.node["matte_feather"].value() == 0.0
    nuke_double.double_edit(host.node[node.MATTE_ON], True)
    nuke_double.double_edit(host.node["matte_clip_white"], 0.5)
    nuke_double.double_edit(host.node["matte_clip_black"], 0.7)  # refused, named, and the knob springs back
    assert "clip_black" in host.errors()[-1] and host.node["matte_clip_black"].value() == 0.0
    assert PromptModel.loads(host.stored()).object(person).matte == MatteControls(clip_white=0.5)
    assert nuke_double.double_state("violations") == []

    again = host.reload()
    stored = PromptModel.loads(again.stored())
    assert stored.object(car).matte == MatteControls(feather=2.5, despeckle=40)
    assert stored.object(person).matte == MatteControls(clip_white=0.5)
    nuke_double.double_edit(again.node[node.OBJECT], "car")
    assert again.node[node.MATTE_ON].value() is True and again.node["matte_feather"].value() == 2.5
    assert again.node["matte_despeckle"].value() == 40
    again.connect()  # a reopened script sends its controls with its prompts
    again.pump(lambda: len(again.fake.last.called("prompt")) == 2)
    sent = {c.args["object"]["name"]: c.args["object"].get("matte") for c in again.fake.last.called("prompt")}
    assert sent == {"car": MatteControls(feather=2.5, despeckle=40).to_json(), "person": MatteControls(clip_white=0.5).to_json()}
