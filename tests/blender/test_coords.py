"""Clip positions and scene frames ↔ plate pixels and plate frames, through real Blender clips.

Host → recipe → host: clicks made with the operators on clips of several sizes, first
frames and offsets come back exactly from the exported recipe. And the frame mapping is
Blender's own: the compositor's Movie Clip node shows, at each scene frame, the file of the
plate frame the adapter computes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import bpy
import numpy as np
import pytest

from rotobridge import recipe

from ..host.fake_client import FakeClients
from .conftest import adapter, compat, load_clip, new_file, pump, write_plate

CLIPS = [  # (width, height, first plate frame, clip.frame_start, clip.frame_offset)
    (97, 41, 1, 1, 0),
    (64, 48, 1001, 1001, 0),
    (120, 68, 1001, 1, 2),
    (41, 97, 1001, 1020, 1),
]


@pytest.fixture
def fake() -> Iterator[None]:
    yield
    adapter.CLIENT_FACTORY = adapter.Client
    new_file()


def _clip(tmp_path: Path, width: int, height: int, first: int, frame_start: int, offset: int) -> Any:
    new_file()
    plate = write_plate(tmp_path / "plate", "sh", range(first, first + 8), width, height)
    clip = load_clip(plate, frame_start=frame_start)
    clip.frame_offset = offset
    clip.rotobridge.output = str(tmp_path / "mattes" / "sh.####.exr")
    return clip


@pytest.mark.parametrize(("width", "height", "first", "frame_start", "offset"), CLIPS)
def test_clicks_round_trip_through_the_recipe_exactly(
    tmp_path: Path, fake: None, width: int, height: int, first: int, frame_start: int, offset: int
) -> None:
    clip = _clip(tmp_path, width, height, first, frame_start, offset)
    assert tuple(clip.size) == (width, height)
    adapter.CLIENT_FACTORY = FakeClients(width, height, (first, first + 7))
    host = adapter.host_for(clip)
    bpy.ops.rotobridge.connect()
    pump(lambda: host.state == "session_open", what="for the session")
    bpy.ops.rotobridge.object_add(name="car")
    frames = [first + 3, first + 7]
    scene_frames = [frame_start + f - first - offset for f in frames]  # Blender shows plate frame f there
    rng = np.random.default_rng(width)
    clicks = []  # (scene frame, clip location as Blender keeps it: float32)
    for scene_frame in scene_frames:
        bpy.context.scene.frame_set(scene_frame)
        for _ in range(3):
            location = (rng.uniform(0, width), rng.uniform(0, height))
            bpy.ops.rotobridge.add_point(location=location)
            clicks.append((scene_frame, tuple(np.float32(c) for c in location)))
    bpy.context.scene.frame_set(scene_frames[0])
    bpy.ops.rotobridge.set_box(corner=(0.0, 0.0), other=(float(width), float(height)))
    path = tmp_path / "sh.recipe.json"
    assert bpy.ops.rotobridge.export_recipe(filepath=str(path)) == {"FINISHED"}, host.errors
    loaded = recipe.load(path)
    (car,) = loaded.objects
    assert [p.frame for p in car.prompts] == frames
    assert loaded.plate.frames == f"{first}-{first + 7}"
    assert car.prompts[0].box == (0.0, 0.0, float(width), float(height))  # top-left, then bottom-right
    space = host.space()
    back = [
        (space.scene_frame(p.frame), tuple(np.float32(c * size) for c, size in zip(space.from_plate(*xy), (width, height))))
        for p in car.prompts for xy in p.points
    ]
    assert back == clicks
    assert host.errors == []


@pytest.mark.parametrize(("width", "height", "first", "frame_start", "offset"), CLIPS[1:3])
def test_blender_shows_the_plate_frame_the_adapter_computes(
    tmp_path: Path, width: int, height: int, first: int, frame_start: int, offset: int
) -> None:
    """The plate's blue channel is (frame % 8) / 8: the composite of a Movie Clip node says which file it read."""
    clip = _clip(tmp_path, width, height, first, frame_start, offset)
    scene = bpy.context.scene
    tree = compat.compositor(scene)
    tree.nodes.clear()
    node = tree.nodes.new("CompositorNodeMovieClip")
    node.clip = clip
    tree.links.new(node.outputs["Image"], compat.output_input(tree))
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = width, height, 100
    scene.render.image_settings.file_format, scene.render.image_settings.color_depth = "OPEN_EXR", "32"
    space = adapter.host_for(clip).space()
    linear = [_srgb_to_linear(round(255 * k / 8) / 255) for k in range(8)]
    for scene_frame in range(frame_start, frame_start + 8 - offset):
        scene.frame_set(scene_frame)
        scene.render.filepath = str(tmp_path / f"c{scene_frame}.exr")
        bpy.ops.render.render(write_still=True)
        image = bpy.data.images.load(scene.render.filepath)
        blue = np.array(image.pixels[:]).reshape(height, width, 4)[0, 0, 2]  # a corner, away from the square
        bpy.data.images.remove(image)
        shown = int(np.argmin([abs(blue - v) for v in linear]))
        assert shown == space.plate_frame(scene_frame) % 8, (scene_frame, blue)


def _srgb_to_linear(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
