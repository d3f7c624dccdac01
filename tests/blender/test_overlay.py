"""The overlay drawn for real, headless, into an offscreen framebuffer: the preview tinted over
the clip, positive and negative points, a box. Blender 5.2 can start its GPU module without a
window (`gpu.init()`); 4.5 cannot, so there this test is skipped and says why."""

from __future__ import annotations

from typing import Any

import gpu
import numpy as np
import pytest
from mathutils import Matrix

from rotobridge import recipe
from rotobridge.coords import BlenderClip
from rotobridge.protocol import Preview

from .conftest import overlay

W, H = 64, 48
RED = (1.0, 0.0, 0.0)


def _paint(prompt: recipe.Prompt, preview: Preview | None) -> Any:
    """The framebuffer after `overlay.paint`, (H, W, RGBA) with row 0 at the bottom, as Blender draws."""
    gpu.init()
    offscreen = gpu.types.GPUOffScreen(W, H)
    try:
        with offscreen.bind():
            framebuffer = gpu.state.active_framebuffer_get()
            framebuffer.clear(color=(0.0, 0.0, 0.0, 0.0))
            with gpu.matrix.push_pop():  # region pixels, as a POST_PIXEL handler gets them
                gpu.matrix.load_matrix(Matrix.Identity(4))
                gpu.matrix.load_projection_matrix(Matrix(((2 / W, 0, 0, -1), (0, 2 / H, 0, -1), (0, 0, 1, 0), (0, 0, 0, 1))))
                car = recipe.Object(1, "car", (prompt,), RED)
                overlay.paint(lambda x, y: (x, y), BlenderClip(W, H), 1001, [car], preview)
            pixels = framebuffer.read_color(0, 0, W, H, 4, 0, "FLOAT")
            return np.array(pixels.to_list(), np.float32).reshape(H, W, 4)
    finally:
        offscreen.free()


@pytest.mark.skipif(not hasattr(gpu, "init"), reason="this Blender cannot draw without a window (gpu.init() came in 5.x)")
def test_the_overlay_draws_preview_points_and_box_headless() -> None:
    # plate pixels (top-left origin): a positive click, a negative click, a box
    prompt = recipe.Prompt(1001, points=((16.0, 12.0), (48.0, 36.0)), labels=(1, 0), box=(4.0, 4.0, 60.0, 44.0))
    preview = Preview(1001, 8, 6, (1,), (bytes([255]) * 48,))  # the matte covers the whole frame
    drawn = _paint(prompt, preview)
    # the preview: red at OPACITY, premultiplied, where nothing else is drawn
    np.testing.assert_allclose(drawn[24, 30], [overlay.OPACITY, 0, 0, overlay.OPACITY], atol=2e-3)
    # the positive click in the object's colour at clip pixel (16, 48 - 12), the negative one in black
    np.testing.assert_allclose(drawn[36, 16], [1, 0, 0, 1], atol=1e-3)
    np.testing.assert_allclose(drawn[12, 48], [0, 0, 0, 1], atol=1e-3)
    # the box's four edges, opaque red: left x = 4, right x = 60, bottom y = 48 - 44, top y = 48 - 4
    for row, column in ((24, slice(3, 6)), (24, slice(59, 62)), (slice(3, 6), 30), (slice(43, 46), 30)):
        assert (drawn[row, column] == [1, 0, 0, 1]).all(axis=-1).any(), (row, column)
    # and nothing outside it but the preview
    np.testing.assert_allclose(drawn[46, 62], [overlay.OPACITY, 0, 0, overlay.OPACITY], atol=2e-3)


@pytest.mark.skipif(not hasattr(gpu, "init"), reason="this Blender cannot draw without a window (gpu.init() came in 5.x)")
def test_without_a_preview_only_the_clicks_are_drawn() -> None:
    drawn = _paint(recipe.Prompt(1001, points=((16.0, 12.0),), labels=(1,)), None)
    np.testing.assert_allclose(drawn[36, 16], [1, 0, 0, 1], atol=1e-3)
    assert drawn[:, 40:].max() == 0  # far from the click: untouched
