"""The extension in real Blender against a live `rotobridge serve` (started by the add-on's
Start Local Bridge button, from the bridge venv .venv, with a random-weight tiny model).

The whole artist workflow, headless: clicks on two objects on two frames, previews, tracking
both ways, the mattes in the compositor (a rendered composite's alpha is the matte file's
channel, read independently with OpenImageIO in .venv), save and reopen, export a recipe
and rerender it with `rotobridge render`, cancel, and a bridge that is not there.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import bpy
import numpy as np
import pytest

from .conftest import ROOT, adapter, comp, compat, load_clip, new_file, overlay, prefs, pump, write_plate

BRIDGE_VENV = ROOT / ".venv"
FRAMES = (1001, 1016)
SIZE = (120, 68)  # not square, not a power of two
TINY = "configs/sam2.1/sam2.1_hiera_t.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bridge_python(code: str, timeout: float = 120) -> str:
    """Run Python in the bridge venv (OpenImageIO, torch): what a host's Python does not have."""
    result = subprocess.run([str(BRIDGE_VENV / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def read_mattes(paths: list[Path], into: Path) -> dict[str, dict[str, np.ndarray]]:
    """{path: {channel: (h, w) float32}} read by the bridge's own matte reader (OpenImageIO)."""
    bridge_python(
        "import numpy as np; from rotobridge.bridge.mattes import read_matte\n"
        f"out = {{}}\nfor i, p in enumerate({[str(p) for p in paths]!r}):\n"
        "    for name, plane in read_matte(p)[0].items(): out[f'{i}|{name}'] = np.asarray(plane, np.float32)\n"
        f"np.savez({str(into)!r}, **out)\n"
    )
    found: dict[str, dict[str, np.ndarray]] = {str(p): {} for p in paths}
    with np.load(into) as data:
        for key in data.files:
            index, name = key.split("|")
            found[str(paths[int(index)])][name] = data[key]
    return found


@pytest.fixture(scope="module")
def shot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A plate, a random checkpoint, and the add-on's preferences for a local bridge."""
    root = tmp_path_factory.mktemp("live")
    if not (BRIDGE_VENV / "bin" / "rotobridge").exists():
        pytest.fail("the bridge venv .venv is missing: run install/setup.sh")
    checkpoint = root / "tiny_random.pt"
    subprocess.run([str(BRIDGE_VENV / "bin" / "rotobridge"), "checkpoint", "random", "--config", TINY, str(checkpoint)],
                   check=True, capture_output=True, timeout=120)
    first = write_plate(root / "plate", "sh010", range(FRAMES[0], FRAMES[1] + 1), *SIZE)
    arguments = f"--root {root} --config-file {TINY} --checkpoint {checkpoint} --override ++model.image_size=256 --device cpu"
    info = {"root": root, "plate": first, "address": f"tcp://127.0.0.1:{_free_port()}", "arguments": arguments}
    open_shot(info, "start", start=True)  # the add-on's Start Local Bridge, connecting once it serves
    yield info
    adapter.release_all()
    adapter.local_bridge.stop()


def open_shot(shot: dict[str, Any], name: str, start: bool = False, output: str = "") -> Any:
    """A saved .blend with the plate as a clip, connected to the local bridge (started if `start`)."""
    new_file()
    bpy.ops.wm.save_as_mainfile(filepath=str(shot["root"] / f"{name}.blend"))
    prefs().address, prefs().bridge, prefs().bridge_arguments = shot["address"], str(BRIDGE_VENV), shot["arguments"]
    clip = load_clip(shot["plate"])
    clip.rotobridge.output = output
    host = adapter.host_for(clip)
    if start:
        assert bpy.ops.rotobridge.start_bridge() == {"FINISHED"}
        assert adapter.local_bridge.running()
    else:
        bpy.ops.rotobridge.connect()
    pump(lambda: host.state == "session_open" or bool(host.errors), 90, "for the session to open")
    assert host.errors == [] and host.state == "session_open"
    return clip


def click(clip: Any, obj: str, frame: int, x: float, y: float, positive: bool = True) -> None:
    settings = clip.rotobridge
    settings.active_object = next(i for i, o in enumerate(settings.objects) if o.name == obj)
    space = adapter.host_for(clip).space()
    bpy.context.scene.frame_set(space.scene_frame(frame))
    bpy.ops.rotobridge.add_point(location=(x, space.height - y), negative=not positive)


def track(clip: Any, direction: str) -> adapter.BlenderHost:
    host = adapter.host_for(clip)
    assert bpy.ops.rotobridge.propagate(direction=direction) == {"FINISHED"}
    pump(lambda: host.state == "propagating", 10, "for tracking to start")
    pump(lambda: host.state == "session_open", 120, "for tracking to end")
    return host


def render_alpha(scene: Any, frame: int, path: Path) -> np.ndarray:
    """Render the compositor at `frame` to a float EXR and read its alpha back with Blender (top row first)."""
    scene.frame_set(frame)
    scene.render.filepath = str(path)
    assert bpy.ops.render.render(write_still=True) == {"FINISHED"}
    image = bpy.data.images.load(str(path))
    image.colorspace_settings.name = "Non-Color"
    pixels = np.empty(len(image.pixels), np.float32)
    image.pixels.foreach_get(pixels)
    width, height = image.size
    bpy.data.images.remove(image)
    return pixels.reshape(height, width, 4)[::-1, :, 3]


def test_click_preview_track_and_comp_in_real_blender(shot: dict[str, Any], tmp_path: Path) -> None:
    assert adapter.local_bridge.running()
    clip = open_shot(shot, "sh010")
    host = adapter.host_for(clip)
    assert bpy.ops.rotobridge.object_add(name="car") == {"FINISHED"}
    assert bpy.ops.rotobridge.object_add(name="person") == {"FINISHED"}
    click(clip, "car", 1003, 40.5, 30.25)
    click(clip, "car", 1003, 100.0, 10.0, positive=False)
    pump(lambda: host.preview is not None and host.preview.frame == 1003, 30, "for the car's preview")
    click(clip, "person", 1010, 80.0, 40.0)
    settings = clip.rotobridge
    bpy.ops.rotobridge.set_box(corner=(60.0, 10.0), other=(110.0, 50.0))  # clip pixels, bottom-left origin
    pump(lambda: host.preview.frame == 1010 and host.preview.objects == (1, 2), 30, "for the person's preview")
    preview = host.preview
    assert (preview.width, preview.height) == SIZE  # small plates preview at full size
    pixels = overlay.overlay_pixels(preview, {1: (1.0, 0.0, 0.0), 2: (0.0, 0.0, 1.0)})
    car_alpha, person_alpha = (preview.as_array(i)[::-1] / 255 * overlay.OPACITY for i in range(2))
    np.testing.assert_allclose(pixels[..., 2], person_alpha, rtol=1e-5, atol=1e-6)  # blue: the person, over the car
    np.testing.assert_allclose(pixels[..., 0], car_alpha * (1 - person_alpha), rtol=1e-5, atol=1e-6)
    assert person_alpha.std() > 0
    stored = json.loads(clip["rotobridge_prompts"])
    assert [(o["name"], [p["frame"] for p in o["prompts"]]) for o in stored["objects"]] == [("car", [1003]), ("person", [1010])]
    assert stored["objects"][1]["prompts"][0] == {"frame": 1010, "points": [[80.0, 40.0]], "labels": [1], "box": [60.0, 18.0, 110.0, 58.0]}
    bpy.context.scene.frame_set(3)
    assert bpy.ops.rotobridge.preview() == {"FINISHED"}
    pump(lambda: host.preview.frame == 1003, 30, "for the preview of frame 1003")

    track(clip, "both")
    assert host.notice == "16 of 16 mattes written (done)" and host.errors == []
    mattes = sorted((shot["root"] / "mattes" / "sh010").glob("sh010.*.exr"))
    assert [m.name for m in mattes] == [f"sh010.{f}.exr" for f in range(FRAMES[0], FRAMES[1] + 1)]

    scene = bpy.context.scene
    tree = compat.compositor(scene, create=False)
    image = bpy.data.images[comp.node_name(clip, "mattes")]
    assert (image.source, image.colorspace_settings.name, image.type) == ("SEQUENCE", "Non-Color", "MULTILAYER")
    car, person = (tree.nodes[comp.node_name(clip, name, "matte")] for name in ("car", "person"))
    assert [o.name for o in car.outputs] == ["car", "person"]  # channels car.A, person.A: one pass per object
    assert (car.frame_start, car.frame_offset, car.frame_duration) == (1, 1000, 16)
    assert compat.output_input(tree).links[0].from_node.name == comp.node_name(clip, "person", "set alpha")
    assert not [n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"]

    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = *SIZE, 100
    scene.render.image_settings.file_format, scene.render.image_settings.color_depth = "OPEN_EXR", "32"
    scene.render.image_settings.color_mode = "RGBA"
    files = {f: shot["root"] / "mattes" / "sh010" / f"sh010.{1000 + f}.exr" for f in (1, 3, 9, 16)}
    truth = read_mattes(list(files.values()), tmp_path / "truth.npz")
    for name in ("person", "car"):
        settings.active_object = [o.name for o in settings.objects].index(name)  # the comp follows the list
        for frame, path in files.items():
            alpha = render_alpha(scene, frame, tmp_path / f"{name}_{frame}.exr")
            matte = truth[str(path)][f"{name}.A"]
            assert matte.std() > 0  # not a trivial matte
            np.testing.assert_array_equal(alpha, matte)

    nodes = len(tree.nodes)
    click(clip, "car", 1012, 20.0, 20.0)  # a correction, then a rerun replaces this session's mattes
    host = track(clip, "both")
    assert host.notice == "16 of 16 mattes written (done)" and len(tree.nodes) == nodes and host.errors == []

    before = clip["rotobridge_prompts"]
    bpy.ops.wm.save_mainfile()
    bpy.ops.wm.open_mainfile(filepath=str(shot["root"] / "sh010.blend"))
    clip = bpy.data.movieclips["sh010.1001.png"]
    assert clip["rotobridge_prompts"] == before
    assert [(o.object_id, o.name) for o in clip.rotobridge.objects] == [(1, "car"), (2, "person")]
    assert bpy.data.images[comp.node_name(clip, "mattes")].source == "SEQUENCE"

    host = adapter.host_for(clip)
    bpy.ops.rotobridge.connect()  # a new session: the stored prompts are sent again
    pump(lambda: host.state == "session_open", 30, "for the reopened shot")
    clip.rotobridge.overwrite = True  # the mattes on disk are the last session's
    host = track(clip, "both")
    assert host.notice == "16 of 16 mattes written (done)" and host.errors == []
    recipe_path = tmp_path / "sh010.recipe.json"
    assert bpy.ops.rotobridge.export_recipe(filepath=str(recipe_path)) == {"FINISHED"}
    data = json.loads(recipe_path.read_text())
    assert [o["name"] for o in data["objects"]] == ["car", "person"] and data.get("propagate", {}).get("direction", "both") == "both"
    data["output"]["path"] = str(shot["root"] / "render" / "sh010.####.exr")
    recipe_path.write_text(json.dumps(data))
    result = subprocess.run([str(BRIDGE_VENV / "bin" / "rotobridge"), "render", str(recipe_path), "--device", "cpu"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    frames = range(FRAMES[0], FRAMES[1] + 1)
    ours = [shot["root"] / "mattes" / "sh010" / f"sh010.{f}.exr" for f in frames]
    theirs = [shot["root"] / "render" / f"sh010.{f}.exr" for f in frames]
    read = read_mattes(ours + theirs, tmp_path / "both.npz")
    for a, b in zip(ours, theirs):
        assert list(read[str(a)]) == ["car.A", "person.A"]
        for name in ("car.A", "person.A"):
            np.testing.assert_array_equal(read[str(a)][name], read[str(b)][name])


def test_escape_cancels_tracking_and_keeps_whole_mattes(shot: dict[str, Any]) -> None:
    clip = open_shot(shot, "cancel", output=str(shot["root"] / "cancelled" / "c.####.exr"))
    bpy.ops.rotobridge.object_add(name="car")
    click(clip, "car", 1001, 30.0, 30.0)
    host = adapter.host_for(clip)
    bpy.ops.rotobridge.propagate(direction="forward")
    pump(lambda: host.tracking is not None, 60, "for the first matte")
    assert bpy.ops.rotobridge.cancel() == {"FINISHED"}
    assert host.state == "cancelling"
    pump(lambda: host.state == "session_open", 60, "for the cancel")
    written = int(host.notice.split()[0])
    assert host.notice.endswith("(cancelled)") and 1 <= written < 16, host.notice
    assert len(list((shot["root"] / "cancelled").glob("c.*.exr"))) == written
    assert host.errors == []


def test_a_bridge_that_is_not_there_is_reported_within_seconds(shot: dict[str, Any]) -> None:
    new_file()
    prefs().address = f"tcp://127.0.0.1:{_free_port()}"
    clip = load_clip(shot["plate"])
    start = time.monotonic()
    assert bpy.ops.rotobridge.connect() == {"FINISHED"}  # returns at once: the UI does not wait
    assert time.monotonic() - start < 0.5
    host = adapter.host_for(clip)
    assert host.errors == [("Setup", "save the .blend first, or set the clip's matte path (RotoBridge panel, Mattes)")]
    pump(lambda: len(host.errors) == 2, 8, "for the error")
    assert time.monotonic() - start < 8
    title, message = host.errors[-1]
    assert title == "Bridge unreachable" and prefs().address in message and "rotobridge serve" in message
    assert host.state == "disconnected"
