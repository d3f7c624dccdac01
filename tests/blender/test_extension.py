"""The extension as Blender installs it: the built zip, its core and pyzmq wheels, and
what register/unregister set up and take down."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import bpy
import pytest

from ..host.fake_client import FakeClients
from .conftest import (
    CORE_BEFORE, EXTENSION, MODULE, REPO, ROOT, SITE, USER, ZIP, ZMQ_BEFORE, adapter, load_clip, new_file, overlay, pump, write_plate,
)

MANIFEST = tomllib.loads((ROOT / "plugin" / "blender" / "blender_manifest.toml").read_text())
CORE = ROOT / "plugin" / "src" / "rotobridge"
CORE_WHEEL = f"wheels/rotobridge-{tomllib.loads((ROOT / 'plugin' / 'pyproject.toml').read_text())['project']['version']}-py3-none-any.whl"
BUILD = ROOT / "install" / "build_blender_extension.py"


def test_the_zip_holds_the_extension_the_core_and_the_wheels() -> None:
    assert ZIP == ROOT / "dist" / f"rotobridge-{MANIFEST['version']}.zip"
    archive = zipfile.ZipFile(ZIP)
    names = set(archive.namelist())
    ours = {p.name for p in (ROOT / "plugin" / "blender").glob("*.py")}
    core = {p.relative_to(CORE).as_posix() for p in CORE.rglob("*.py")}
    assert {"blender_manifest.toml", *ours} <= names
    assert f"./{CORE_WHEEL}" in MANIFEST["wheels"] and CORE_WHEEL in names
    with zipfile.ZipFile(archive.open(CORE_WHEEL)) as wheel:  # the core as a wheel, nothing else of plugin/
        packed = {n for n in wheel.namelist() if n.endswith(".py")}
    assert packed == {f"rotobridge/{name}" for name in core}
    assert not [n for n in names if n.startswith(("rotobridge/", "_vendor/"))]
    assert {w.lstrip("./") for w in MANIFEST["wheels"]} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert (MANIFEST["blender_version_min"], MANIFEST["blender_version_max"]) == ("4.5.0", "6.0.0")
    pyzmq = [w for w in MANIFEST["wheels"] if "/pyzmq-" in w]
    for python in ("cp311", "cp313"):  # Blender 4.5/5.0, and 5.1+: every platform for each
        assert {p for p in ("manylinux_2_28_x86_64", "aarch64", "macosx", "win_amd64") if any(python in w and p in w for w in pyzmq)} == {
            "manylinux_2_28_x86_64", "aarch64", "macosx", "win_amd64"
        }, python
    assert set(MANIFEST["permissions"]) == {"network", "files"}


def test_blender_installed_the_zip_and_its_core_is_the_one_in_git() -> None:
    installed = USER / "extensions" / REPO / "rotobridge"
    assert Path(EXTENSION.__file__) == installed / "__init__.py"
    assert MODULE in bpy.context.preferences.addons
    assert CORE_BEFORE is None, f".venv-blender must not have its own rotobridge (found {CORE_BEFORE})"
    files = sorted(p.relative_to(SITE / "rotobridge") for p in (SITE / "rotobridge").rglob("*.py"))
    assert files == sorted(p.relative_to(CORE) for p in CORE.rglob("*.py"))
    for name in files:
        assert (SITE / "rotobridge" / name).read_bytes() == (CORE / name).read_bytes()
    import rotobridge.controller

    assert Path(rotobridge.controller.__file__) == SITE / "rotobridge" / "controller.py"  # the shared suite tests this copy
    assert sys.modules[f"{MODULE}.adapter"].Controller is rotobridge.controller.Controller  # and the extension uses it


def test_a_manifest_that_names_another_core_wheel_stops_the_build() -> None:
    """After a version bump in plugin/pyproject.toml the manifest's entry must follow."""
    spec = importlib.util.spec_from_file_location("build_blender_extension", BUILD)
    assert spec is not None and spec.loader is not None
    build: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    pyzmq, core = "./wheels/pyzmq-26.4.0-cp311-cp311-win_amd64.whl", "./wheels/rotobridge-0.1.0-py3-none-any.whl"
    assert build.core_dist() == "rotobridge"
    assert build.core_entry([pyzmq, core], "rotobridge") == core
    build.check_core_wheel("rotobridge-0.1.0-py3-none-any.whl", core)
    with pytest.raises(SystemExit) as bumped:
        build.check_core_wheel("rotobridge-0.2.0-py3-none-any.whl", core)
    assert str(bumped.value) == (
        "plugin/ builds rotobridge-0.2.0-py3-none-any.whl, but plugin/blender/blender_manifest.toml lists "
        "./wheels/rotobridge-0.1.0-py3-none-any.whl: change that entry of `wheels` to ./wheels/rotobridge-0.2.0-py3-none-any.whl"
    )
    with pytest.raises(SystemExit, match=r"must list the host core's wheel \(rotobridge-<version>-py3-none-any.whl\) once"):
        build.core_entry([pyzmq, "./wheels/rotobridge_bridge-0.1.0-py3-none-any.whl"], "rotobridge")


def test_pyzmq_is_the_bundled_wheel() -> None:
    assert ZMQ_BEFORE is None, f".venv-blender must not have its own pyzmq (found {ZMQ_BEFORE.origin})"
    import zmq

    site = USER / "extensions" / ".local" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    assert Path(zmq.__file__).is_relative_to(site) and zmq.pyzmq_version() == "26.4.0"
    assert zmq.has("curve")


def test_register_sets_up_the_timer_the_drawing_and_the_settings() -> None:
    assert bpy.app.timers.is_registered(adapter.tick)
    assert overlay._handle is not None
    assert hasattr(bpy.types.MovieClip, "rotobridge") and hasattr(bpy.ops.rotobridge, "click_tool")


def test_disabling_the_extension_stops_everything_it_started(tmp_path: Path) -> None:
    """In a fresh Blender with a copy of the user folder: disabling removes the extension's
    wheels (the core, pyzmq) from it, and this Blender keeps them for the other tests."""
    user = tmp_path / "user"
    shutil.copytree(USER, user, symlinks=True)
    code = f"""
        import os, sys, threading, time
        os.environ["BLENDER_USER_RESOURCES"] = {str(user)!r}
        import bpy, addon_utils
        addon_utils.enable({MODULE!r}, default_set=True)
        adapter = sys.modules[{MODULE + ".adapter"!r}]
        overlay = sys.modules[{MODULE + ".overlay"!r}]
        image = bpy.data.images.new("plate", 8, 8)
        image.filepath_raw = os.path.join(bpy.app.tempdir, "plate.1001.png")
        image.file_format = "PNG"
        image.save()
        clip = bpy.data.movieclips.load(image.filepath_raw)
        bpy.context.scene.active_clip = clip
        host = adapter.host_for(clip)
        host.controller.connect("tcp://127.0.0.1:9")
        time.sleep(0.3)
        threads = sorted({{t.name.split("-")[1] for t in threading.enumerate() if t.name.startswith("rotobridge")}})
        addon_utils.disable({MODULE!r}, default_set=True)
        time.sleep(0.5)
        left = [t.name for t in threading.enumerate() if t.name.startswith("rotobridge")]
        print(threads, left, bpy.app.timers.is_registered(adapter.tick), overlay._handle, hasattr(bpy.types.MovieClip, "rotobridge"))
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    # the client's I/O thread is the only thread a connection starts (the controller has none)
    assert result.stdout.strip().splitlines()[-1] == "['client'] [] False None False"
    assert (SITE / "rotobridge" / "keys.py").is_file() and (SITE / "zmq" / "auth").is_dir()  # still here for the other tests


@pytest.mark.parametrize(("display_aspect", "view", "clip"), [((1.0, 1.0), (10.0, 5.0), (10.0, 5.0)), ((2.0, 1.0), (10.0, 5.0), (5.0, 5.0)), ((1.0, 2.0), (10.0, 5.0), (10.0, 2.5))])
def test_clip_editor_view_to_clip_pixels(display_aspect: tuple[float, float], view: tuple[float, float], clip: tuple[float, float]) -> None:
    """The Clip Editor's View2D spans width × aspect_x by height × aspect_y (the smaller aspect is 1)."""
    assert overlay.view_to_clip(view, display_aspect) == clip


class _Layout:
    """Stands in for a UILayout (a panel draws only in a window): records what it is asked to show."""

    def __init__(self, shown: list[str]) -> None:
        self.shown = shown

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> _Layout:
            icon = kwargs.get("icon")
            if icon is not None:
                assert icon in ICONS, icon
            self.shown.append(f"{name}:{kwargs.get('text', args[1] if name in ('prop', 'operator') and len(args) > 1 else args[0] if args else '')}")
            return self

        return call


ICONS = set(bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items.keys())


def test_the_panel_and_the_status_bar_draw_every_state(tmp_path: Path) -> None:
    new_file()
    clip = load_clip(write_plate(tmp_path, "sh", range(1, 4), 16, 8))
    clip.rotobridge.output = str(tmp_path / "m.####.exr")
    ui = sys.modules[f"{MODULE}.ui"]
    shown: list[str] = []
    panel = type("Panel", (), {"layout": _Layout(shown)})()
    ui.ROTOBRIDGE_PT_panel.draw(panel, bpy.context)  # no host yet
    assert "operator:Connect" in shown
    adapter.CLIENT_FACTORY = FakeClients(16, 8, (1, 3))
    try:
        bpy.ops.rotobridge.connect()
        host = adapter.host_for(clip)
        pump(lambda: host.state == "session_open")
        bpy.ops.rotobridge.object_add(name="car")
        bpy.ops.rotobridge.add_point(location=(4.0, 4.0))
        bpy.ops.rotobridge.propagate(direction="forward")
        pump(lambda: host.client is not None and host.client.job is not None)
        host.client.step()
        pump(lambda: host.tracking is not None)
        host.on_error("Bridge busy", "the session already runs a propagation " * 3)
        shown.clear()
        ui.ROTOBRIDGE_PT_panel.draw(panel, bpy.context)
        ui.status_bar(panel, bpy.context)
        assert {"operator:Reconnect", "progress:frame 1: 1/3", "operator:rotobridge.cancel", "label:Bridge busy"} <= set(shown)
        assert any(s.startswith("label:RotoBridge: tracking frame 1 (1/3)") for s in shown)
    finally:
        adapter.CLIENT_FACTORY = adapter.Client
        new_file()


def test_a_local_bridge_that_cannot_start_is_reported(tmp_path: Path) -> None:
    new_file()
    clip = load_clip(write_plate(tmp_path, "sh", range(1, 3), 16, 8))
    host = adapter.host_for(clip)
    settings = bpy.context.preferences.addons[MODULE].preferences
    settings.bridge = str(tmp_path)
    bpy.ops.rotobridge.start_bridge()
    assert host.errors[-1] == ("Setup", f"{tmp_path} has no bin/rotobridge: set the bridge's venv folder (made by install/setup.sh)")
    program = tmp_path / "rotobridge"
    program.write_text("#!/bin/sh\necho 'no CUDA device' >&2\nexit 3\n")
    program.chmod(0o755)
    settings.bridge = str(program)
    assert bpy.ops.rotobridge.start_bridge() == {"FINISHED"}
    pump(lambda: len(host.errors) == 2, what="for the bridge to exit")
    title, message = host.errors[-1]
    assert title == "Local bridge stopped" and "exited with status 3" in message and "no CUDA device" in message
    assert not adapter.local_bridge.running()
    new_file()


def test_the_object_list_edits_the_prompt_model(tmp_path: Path) -> None:
    """Rename and recolour in the list, remove, clear a frame: the stored model follows; a bad name reverts."""
    import json

    new_file()
    clip = load_clip(write_plate(tmp_path, "sh", range(1, 3), 16, 8))
    clip.rotobridge.output = str(tmp_path / "m.####.exr")
    bpy.ops.rotobridge.object_add(name="car")
    bpy.ops.rotobridge.object_add()
    items = clip.rotobridge.objects
    assert [i.name for i in items] == ["car", "object1"] and clip.rotobridge.active_object == 1
    bpy.ops.rotobridge.add_point(location=(2.0, 2.0))
    items[1].name = "person"
    items[1].colour = (0.0, 1.0, 0.0)
    items[0].name = "no spaces allowed"
    host = adapter.host_for(clip)
    assert host.errors[-1][0] == "Invalid settings" and items[0].name == "car"
    stored = json.loads(clip["rotobridge_prompts"])["objects"]
    assert [(o["name"], o["colour"], len(o["prompts"])) for o in stored] == [("car", [1.0, 0.3, 0.2], 0), ("person", [0.0, 1.0, 0.0], 1)]
    bpy.ops.rotobridge.clear_frame()
    assert json.loads(clip["rotobridge_prompts"])["objects"][1]["prompts"] == []
    clip.rotobridge.active_object = 0
    bpy.ops.rotobridge.object_remove()
    assert [i.name for i in items] == ["person"] and [o["id"] for o in json.loads(clip["rotobridge_prompts"])["objects"]] == [2]
    new_file()
