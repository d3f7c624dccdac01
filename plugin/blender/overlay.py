"""The preview mattes and the clicks of the current frame, drawn over the Movie Clip Editor.

`overlay_pixels` turns a preview (one 8-bit plane per object, top row first) into the RGBA
picture the draw handler uploads as a texture (premultiplied, bottom row first, as GPU
textures are); it needs no GPU and is what tests check. The draw handler maps the clip's
corners through the region's View2D, which the Clip Editor keeps in clip pixels times the
clip's display aspect (`view_aspect`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import bpy
import numpy as np

from rotobridge import recipe
from rotobridge.coords import BlenderClip
from rotobridge.protocol import Preview
from rotobridge.prompts import Colour

from . import adapter

OPACITY = 0.5
POINT_SIZE = 9.0
#: A rectangle's corners (counter-clockwise from bottom-left) as two triangles, and as its four edges.
QUAD = ((0, 1, 2), (0, 2, 3))
OUTLINE = ((0, 1), (1, 2), (2, 3), (3, 0))
_cache: dict[str, Any] = {}
_handle: Any = None


def overlay_pixels(preview: Preview, colours: Mapping[int, Colour], opacity: float = OPACITY) -> np.ndarray:
    """(height, width, 4) float32, premultiplied: each object's colour over the last, by its matte."""
    out = np.zeros((preview.height, preview.width, 4), np.float32)
    for i, object_id in enumerate(preview.objects):
        alpha = preview.as_array(i)[::-1].astype(np.float32) * (opacity / 255.0)
        colour = np.array([*colours.get(object_id, (1.0, 1.0, 1.0)), 1.0], np.float32)
        out = colour * alpha[..., None] + out * (1.0 - alpha[..., None])
    return out


def view_aspect(display_aspect: tuple[float, float]) -> tuple[float, float]:
    """The Clip Editor's view scale per clip pixel (ED_space_clip_get_aspect): the smaller is 1."""
    x, y = display_aspect
    return (1.0, y / x) if x < y else (x / y, 1.0)


def view_to_clip(view: tuple[float, float], display_aspect: tuple[float, float]) -> tuple[float, float]:
    """A point of the Clip Editor's View2D as clip pixels from the bottom-left corner."""
    ax, ay = view_aspect(display_aspect)
    return (view[0] / ax, view[1] / ay)


def _texture(preview: Preview, colours: Mapping[int, Colour]) -> Any:
    import gpu

    key = (id(preview), tuple(sorted(colours.items())))
    if _cache.get("key") != key:
        pixels = overlay_pixels(preview, colours)
        buffer = gpu.types.Buffer("FLOAT", pixels.size, pixels.ravel())
        _cache.update(key=key, texture=gpu.types.GPUTexture((preview.width, preview.height), format="RGBA16F", data=buffer))
    return _cache["texture"]


def draw() -> None:
    """SpaceClipEditor draw handler (POST_PIXEL): the clip's host's preview and clicks, in region pixels."""
    context = bpy.context
    space, region = context.space_data, context.region
    clip = getattr(space, "clip", None)
    host = adapter.find_host(clip)
    if host is None or clip is None:
        return
    try:
        shape = host.space()
        frame = host.plate_frame()
    except Exception:  # a clip Blender cannot read: nothing to draw
        return
    ax, ay = view_aspect(tuple(clip.display_aspect))
    to_region = lambda x, y: tuple(region.view2d.view_to_region(x * ax, y * ay, clip=False))  # noqa: E731
    preview = host.preview if host.preview is not None and host.preview.frame == frame else None
    paint(to_region, shape, frame, host.controller.prompts.objects, preview)


def paint(
    to_region: Callable[[float, float], tuple[float, float]],
    shape: BlenderClip,
    frame: int,
    objects: Sequence[recipe.Object],
    preview: Preview | None,
) -> None:
    """Draw into the bound framebuffer: `preview` over the clip, then each object's points and box on `frame`.

    `to_region` maps clip pixels (bottom-left origin) to the framebuffer's pixels.
    """
    import gpu
    from gpu_extras.batch import batch_for_shader

    colours = {o.id: o.colour or adapter.PALETTE[0] for o in objects}
    gpu.state.blend_set("ALPHA_PREMULT")
    if preview is not None:
        (x0, y0), (x1, y1) = to_region(0, 0), to_region(shape.width, shape.height)
        shader = gpu.shader.from_builtin("IMAGE")
        quad = {"pos": ((x0, y0), (x1, y0), (x1, y1), (x0, y1)), "texCoord": ((0, 0), (1, 0), (1, 1), (0, 1))}
        batch = batch_for_shader(shader, "TRIS", quad, indices=QUAD)
        shader.uniform_sampler("image", _texture(preview, colours))
        batch.draw(shader)
    points, lines = gpu.shader.from_builtin("POINT_UNIFORM_COLOR"), gpu.shader.from_builtin("UNIFORM_COLOR")
    gpu.state.point_size_set(POINT_SIZE)
    for obj in objects:
        prompt = next((p for p in obj.prompts if p.frame == frame), None)
        if prompt is None:
            continue
        for positive in (1, 0):
            spots = [to_region(*shape.plate_to_pixel(*p)) for p, label in zip(prompt.points, prompt.labels) if label == positive]
            if spots:
                points.uniform_float("color", (*colours[obj.id], 1.0) if positive else (0.0, 0.0, 0.0, 1.0))
                batch_for_shader(points, "POINTS", {"pos": spots}).draw(points)
        if prompt.box is not None:
            left, top, right, bottom = prompt.box
            corners = [to_region(*shape.plate_to_pixel(*c)) for c in ((left, top), (right, top), (right, bottom), (left, bottom))]
            lines.uniform_float("color", (*colours[obj.id], 1.0))
            batch_for_shader(lines, "LINES", {"pos": corners}, indices=OUTLINE).draw(lines)
    gpu.state.blend_set("NONE")


def register() -> None:
    global _handle
    _handle = bpy.types.SpaceClipEditor.draw_handler_add(draw, (), "WINDOW", "POST_PIXEL")


def unregister() -> None:
    global _handle
    if _handle is not None:
        bpy.types.SpaceClipEditor.draw_handler_remove(_handle, "WINDOW")
    _handle = None
    _cache.clear()
