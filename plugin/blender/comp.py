"""A clip's mattes in the compositor (its tree and output as `compat` finds them per version).

Blender reads a matte file's channel `car.A` as the pass `car` of an unnamed layer, so the
matte sequence loads as one multilayer image whose Image node has one output per object,
named after it. Per clip this module keeps a Movie Clip node (the plate) and, per object,
an Image node (`<clip> <object> matte`) and a Set Alpha node (plate with the matte as
alpha); the active object's Set Alpha feeds the compositor's output and the Viewer (choosing another
object in the list switches them). Nodes are found
by name, so a rerun reloads the image and relinks instead of adding nodes.

Frames: an Image node shows file frame `scene − frame_start + 1 + frame_offset`, so
`frame_start = clip.frame_start` and `frame_offset = plate frame at clip.frame_start − 1`
put plate frame N on the scene frame where the clip shows plate frame N.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import bpy

from rotobridge.coords import BlenderClip

from . import compat

PREFIX = "RotoBridge"
_FRAME = re.compile(r"#+|@+|%0?(\d*)d|\$F(\d*)")


def frame_path(pattern: str, frame: int) -> str:
    """One file of a matte sequence pattern (`####`, `@`, `%04d` or `$F4`)."""
    match = _FRAME.search(pattern)
    if match is None:
        return pattern
    token = match.group(0)
    width = len(token) if token[0] in "#@" else int(match.group(1) or match.group(2) or 1)
    return pattern[: match.start()] + f"{frame:0{width}d}" + pattern[match.end():]


def node_name(clip: bpy.types.MovieClip, *parts: str) -> str:
    return " ".join((PREFIX, clip.name, *parts))


def matte_image(clip: bpy.types.MovieClip, path: str) -> bpy.types.Image:
    """The clip's matte sequence as an image (data: Non-Color), reloaded from disk."""
    name = node_name(clip, "mattes")
    image = bpy.data.images.get(name)
    if image is None:  # made empty, then pointed at the files, which may not all exist yet
        image = bpy.data.images.new(name, 1, 1, float_buffer=True)
    image.source = "SEQUENCE"
    image.filepath = path
    image.colorspace_settings.name = "Non-Color"
    image.reload()
    return image


def show_mattes(
    scene: bpy.types.Scene,
    clip: bpy.types.MovieClip,
    pattern: str,
    objects: Sequence[str],
    space: BlenderClip,
    frames: tuple[int, int],
    active: str | None,
) -> None:
    """Load (or reload) the clip's mattes and wire them into the scene's compositor."""
    tree = compat.compositor(scene)
    first = space.plate_frame(clip.frame_start)
    image = matte_image(clip, frame_path(pattern, max(first, frames[0])))
    plate = _node(tree, node_name(clip, "plate"), "CompositorNodeMovieClip", (-600, 0))
    plate.clip = clip
    for row, name in enumerate(objects):
        matte = _node(tree, node_name(clip, name, "matte"), "CompositorNodeImage", (-600, -300 - 250 * row))
        matte.image = None  # assigning again refreshes the outputs to the file's passes
        matte.image = image
        matte.frame_start, matte.frame_offset = clip.frame_start, first - 1
        matte.frame_duration = max(frames[1] - first + 1, 1)
        matte.use_auto_refresh = True
        alpha = _node(tree, node_name(clip, name, "set alpha"), "CompositorNodeSetAlpha", (-300, -300 - 250 * row))
        compat.apply_mask(alpha)
        tree.links.new(plate.outputs["Image"], alpha.inputs["Image"])
        if name in matte.outputs:
            tree.links.new(matte.outputs[name], alpha.inputs["Alpha"])
    _remove_stale(tree, clip, objects)
    show_object(scene, clip, active if active in objects else (objects[0] if objects else None))


def show_object(scene: bpy.types.Scene, clip: bpy.types.MovieClip, name: str | None) -> None:
    """Feed the compositor's output and the Viewer from the object's Set Alpha, if it has one."""
    tree = compat.compositor(scene, create=False)
    shown = tree.nodes.get(node_name(clip, name, "set alpha")) if tree is not None and name else None
    if shown is None:
        return
    viewer = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeViewer"), None)
    viewer = viewer or _node(tree, "Viewer", "CompositorNodeViewer", (0, -200))
    for target in (compat.output_input(tree), viewer.inputs["Image"]):
        tree.links.new(shown.outputs["Image"], target)


def _node(tree: Any, name: str, kind: str, location: tuple[int, int]) -> Any:
    node = tree.nodes.get(name)
    if node is None or node.bl_idname != kind:
        if node is not None:
            tree.nodes.remove(node)
        node = tree.nodes.new(kind)
        node.name = node.label = name
        node.location = location
    return node


def _remove_stale(tree: Any, clip: bpy.types.MovieClip, objects: Sequence[str]) -> None:
    """Drop the nodes of objects that are gone."""
    keep = {node_name(clip, o, part) for o in objects for part in ("matte", "set alpha")}
    prefix = node_name(clip, "")
    for node in [n for n in tree.nodes if n.name.startswith(prefix) and n.name.endswith((" matte", " set alpha"))]:
        if node.name not in keep:
            tree.nodes.remove(node)
