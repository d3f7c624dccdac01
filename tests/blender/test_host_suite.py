"""The shared host suite (tests/host/host_suite.py) run against the Blender adapter, in real Blender.

The plate is a real 2048x858 EXR sequence (frames 1001-1010) that Blender loads as a movie
clip, so the harness keeps the suite's folders under a temporary root: the suite's host path
/shots/… is <root>/shots/… here, and the add-on's path mapping (preferences: Blender path →
bridge path) says so, as it would for a workstation that mounts the show elsewhere; the
bridge sees the suite's PLATE_PATH and MATTES. Gestures are the operators the panel and the
click tool run; the controller's client is the suite's FakeClients.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import bpy
import pytest
import zmq.auth

from rotobridge.keys import Keys

from ..host.fake_client import FakeClients
from ..host.host_suite import FRAMES, MATTES, PLATE, PLATE_PATH
from .conftest import MAIN_THREAD, adapter, comp, compat, load_clip, new_file, prefs, pump, write_plate

from ..host.host_suite import *  # noqa: E402,F401,F403  (the shared suite runs against this adapter)


class BlenderHarness:
    """The host suite's gestures done the Blender way."""

    def __init__(self, clip_name: str, fake: FakeClients, blend: Path, log: dict[str, list[Any]], root: Path) -> None:
        self.clip_name, self.fake, self.blend, self.log, self.root = clip_name, fake, blend, log, root
        self.main_thread = MAIN_THREAD
        adapter.CLIENT_FACTORY = fake

    def here(self, path: str) -> str:
        """A path of the suite's host folders (/shots/…) as it is in this harness."""
        assert path.startswith("/"), path
        return f"{self.root}{path}"

    def suite_path(self, path: str) -> str:
        """A path Blender uses, as a path of the suite's host folders; it must lie under the root."""
        if not path.startswith(f"{self.root}/"):
            raise AssertionError(f"Blender uses {path}, outside the host folders ({self.root})")
        return path[len(str(self.root)) :]

    @property
    def clip(self) -> Any:
        return bpy.data.movieclips[self.clip_name]

    def host(self) -> Any:
        return adapter.host_for(self.clip)

    def connect(self, wait: bool = True) -> None:
        bpy.ops.rotobridge.connect()
        if wait:
            self.pump(lambda: self.host().state == "session_open")

    def map_paths(self, host_folder: str, bridge_folder: str) -> None:
        """Set the add-on's preferences Blender Path and Bridge Path."""
        prefs().host_root, prefs().bridge_root = self.here(host_folder), bridge_folder

    def add_object(self, name: str) -> int:
        bpy.ops.rotobridge.object_add(name=name)
        settings = self.clip.rotobridge
        return int(settings.objects[settings.active_object].object_id)

    def click(self, object_id: int, frame: int, x: float, y: float, positive: bool = True) -> None:
        """Choose the object in the list, go to the frame, click at the plate pixel's clip position."""
        settings = self.clip.rotobridge
        settings.active_object = next(i for i, o in enumerate(settings.objects) if o.object_id == object_id)
        space = self.host().space()
        bpy.context.scene.frame_set(space.scene_frame(frame))
        u, v = space.from_plate(x, y)
        bpy.ops.rotobridge.add_point(location=(u * space.width, v * space.height), negative=not positive)

    def propagate(self, direction: str) -> None:
        bpy.ops.rotobridge.propagate(direction=direction)

    def request_cancel(self) -> None:
        bpy.ops.rotobridge.cancel()

    def export(self, path: str) -> None:
        bpy.ops.rotobridge.export_recipe(filepath=path)

    def pump(self, until: Callable[[], bool], timeout: float = 5.0) -> None:
        pump(until, timeout)

    def stored(self) -> str:
        return str(self.clip["rotobridge_prompts"])

    def reload(self) -> BlenderHarness:
        bpy.ops.wm.save_as_mainfile(filepath=str(self.blend))
        bpy.ops.wm.open_mainfile(filepath=str(self.blend))
        return BlenderHarness(self.clip_name, FakeClients(*PLATE, FRAMES), self.blend, self.log, self.root)

    def errors(self) -> list[str]:
        host = adapter.find_host(self.clip)
        return [f"{title}: {message}" for title, message in (host.errors if host else [])]

    def previews(self) -> list[tuple[int, int]]:
        return list(self.log["previews"])

    def progress(self) -> list[float]:
        return list(self.log["progress"])

    def mattes_shown(self) -> tuple[str, int, int] | None:
        tree = compat.compositor(bpy.context.scene, create=False)
        node = tree and tree.nodes.get(comp.node_name(self.clip, "car", "matte"))
        if node is None or node.image is None:
            return None
        pattern = re.sub(r"\d+(?=\.exr$)", lambda m: "#" * len(m.group(0)), node.image.filepath)
        return (self.suite_path(pattern), node.frame_offset + 1, node.frame_offset + node.frame_duration)


@pytest.fixture(scope="module")
def suite_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The root of the suite's host folders, with the plate at PLATE_PATH below it."""
    root = tmp_path_factory.mktemp("root")
    plate = Path(f"{root}{PLATE_PATH}")
    write_plate(plate.parent, plate.name.split(".")[0], range(FRAMES[0], FRAMES[1] + 1), *PLATE, ext="exr")
    return root


@pytest.fixture
def host(suite_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[BlenderHarness]:
    new_file()
    log: dict[str, list[Any]] = {"previews": [], "progress": []}
    harness = BlenderHarness("", FakeClients(*PLATE, FRAMES), tmp_path / "sh010.blend", log, suite_root)
    harness.map_paths("/shots", "/shots")  # the suite's host and bridge paths are alike: /shots is <root>/shots here
    clip = load_clip(Path(harness.here(PLATE_PATH.replace("####", f"{FRAMES[0]:04d}"))), "ACEScg")
    harness.clip_name = clip.name
    clip.rotobridge.output = harness.here(MATTES)
    show, progress = adapter.BlenderHost.show_preview, adapter.BlenderHost.progress

    def shown(self: Any, preview: Any) -> None:
        log["previews"].append((threading.get_ident(), preview.frame))
        show(self, preview)

    def progressed(self: Any, frame: int, done: int, total: int) -> None:
        progress(self, frame, done, total)
        log["progress"].append(self.tracking[1] / self.tracking[2])

    monkeypatch.setattr(adapter.BlenderHost, "show_preview", shown)
    monkeypatch.setattr(adapter.BlenderHost, "progress", progressed)
    yield harness
    new_file()
    adapter.CLIENT_FACTORY = adapter.Client


def test_the_plate_is_blenders_clip_with_mapped_paths(host: BlenderHarness) -> None:
    host.connect()
    (call,) = host.fake.last.called("open")
    # recipe.part_dict's form: the default first_frame (1) is left out
    assert call.args["plate"] == {"path": PLATE_PATH, "frames": "1001-1010", "colourspace": "ACEScg"}
    assert call.args["colour"] == {"config": "ocio://studio-config-latest"}
    assert tuple(host.clip.size) == PLATE


def test_an_ocio_config_file_is_mapped_and_a_builtin_is_not(host: BlenderHarness) -> None:
    host.map_paths("/shots", "/mnt/gpu/shots")
    prefs().ocio_config = host.here("/shots/ocio/config.ocio")
    host.connect()
    prefs().ocio_config = "ocio://studio-config-latest"
    host.connect()
    assert [f.called("open")[0].args["colour"] for f in host.fake.made] == [
        {"config": "/mnt/gpu/shots/ocio/config.ocio"}, {"config": "ocio://studio-config-latest"}
    ]


def test_the_key_preferences_give_the_client_its_keys_or_say_what_is_missing(host: BlenderHarness, tmp_path: Path) -> None:
    server, _ = zmq.auth.create_certificates(str(tmp_path), "server")
    _, secret = zmq.auth.create_certificates(str(tmp_path), "artist")
    prefs().server_key = server
    host.connect(wait=False)
    host.pump(lambda: bool(host.errors()))
    assert "Setup" in host.errors()[0] and ".key_secret" in host.errors()[0] and not host.fake.made
    prefs().client_key = secret
    host.connect()
    (server_public, _), (artist_public, artist_secret) = zmq.auth.load_certificate(server), zmq.auth.load_certificate(secret)
    assert artist_secret is not None
    assert host.fake.last.keys == Keys(server_public.decode(), artist_public.decode(), artist_secret.decode())


def test_matte_properties_edit_the_objects_controls_and_round_trip_through_the_blend(host: BlenderHarness) -> None:
    from rotobridge.controls import MatteControls
    from rotobridge.prompts import PromptModel

    host.connect()
    car = host.add_object("car")
    host.click(car, 1001, 412.5, 220.25)
    host.pump(lambda: len(host.previews()) >= 1)
    item = host.clip.rotobridge.objects[0]
    assert item.matte_on is False and item.refine == 1.0  # no controls yet: SAM 2's raw matte
    shown = len(host.previews())
    item.matte_on = True
    item.feather = 2.5
    item.despeckle = 40
    wanted = MatteControls(feather=2.5, despeckle=40)

    def sent() -> Any:
        calls = host.fake.last.called("matte")
        return calls and host.fake.last.controls.get((calls[-1].args["session"], car))

    host.pump(lambda: len(host.previews()) > shown and sent() == wanted)
    assert PromptModel.loads(host.stored()).object(car).matte == wanted and host.errors() == []
    item.clip_white = 0.5
    item.clip_black = 0.75  # refused, named, and the property reverts
    assert "clip_black" in host.errors()[-1] and item.clip_black == 0.0
    assert PromptModel.loads(host.stored()).object(car).matte == MatteControls(feather=2.5, despeckle=40, clip_white=0.5)

    again = host.reload()
    item = again.clip.rotobridge.objects[0]
    assert item.matte_on is True and (item.feather, item.despeckle, item.clip_white) == (2.5, 40, 0.5)
    assert PromptModel.loads(again.stored()).object(car).matte == MatteControls(feather=2.5, despeckle=40, clip_white=0.5)
