"""QC contact sheet: a few frames with each object's matte tinted over the plate.

A glance tells a supervisor (or a farm log reviewer) whether the right things were tracked,
without opening the EXRs in a compositor.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from rotobridge.bridge.colour import resize
from rotobridge.bridge.atomic import atomic_file
from rotobridge.bridge.mattes import channel_name, read_display_mattes
from rotobridge.errors import OutputError

if TYPE_CHECKING:
    from rotobridge.bridge.render import Job

#: distinct, saturated colours (RGB 0–1), cycled when there are more objects
PALETTE: tuple[tuple[float, float, float], ...] = (
    (1.0, 0.25, 0.25),
    (0.2, 0.6, 1.0),
    (0.3, 0.9, 0.3),
    (1.0, 0.8, 0.1),
    (0.8, 0.3, 1.0),
    (0.1, 0.9, 0.9),
    (1.0, 0.5, 0.0),
    (1.0, 0.4, 0.8),
)
#: pixels between tiles and around the sheet
GAP = 4
OPACITY = 0.5
_BACKGROUND = 24
_COLUMNS = 4


def _tile(
    picture: np.ndarray,
    mattes: Sequence[np.ndarray],
    colours: Sequence[tuple[float, float, float]],
    frame: int,
    width: int,
    height: int,
) -> np.ndarray:
    """One frame: tinted mattes, a solid outline at the 0.5 level, the frame number."""
    tile = resize(picture, width, height).astype(np.float32)
    outlines = []
    for matte, colour in zip(mattes, colours):
        alpha = np.clip(resize(matte.astype(np.float32), width, height), 0.0, 1.0)[..., None] * OPACITY
        rgb = np.array(colour, np.float32) * 255.0
        tile = tile * (1.0 - alpha) + rgb * alpha
        inside = (alpha[..., 0] >= OPACITY * 0.5).astype(np.uint8)
        contours, _ = cv2.findContours(inside, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        outlines.append((contours, tuple(float(c) for c in rgb)))
    tile = np.rint(tile).astype(np.uint8)
    for contours, edge in outlines:  # 1 px, on the matte's own edge pixels: the plate stays visible
        cv2.drawContours(tile, contours, -1, edge, thickness=1, lineType=cv2.LINE_8)
    scale = max(0.4, height / 400)
    for ink, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):  # shadowed: readable on any plate
        cv2.putText(tile, str(frame), (6, 6 + int(22 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    ink, thickness, cv2.LINE_AA)
    return tile


def write_qc(
    path_png: str,
    frames: Sequence[tuple[int, np.ndarray, dict[str, np.ndarray]]],
    colours: Sequence[tuple[float, float, float]] | None = None,
    max_width: int = 1600,
) -> str:
    """Write a contact sheet PNG of (frame, display_rgb picture, {object: matte}); returns its path.

    Tiles keep the first picture's aspect, are never enlarged, and shrink so up to four
    columns fit in `max_width`. Each object keeps one colour across tiles, in order of appearance.
    """
    if not frames:
        raise OutputError(f"no frames for the QC picture {path_png}")
    palette = list(colours or PALETTE)
    names = dict.fromkeys(name for _, _, mattes in frames for name in mattes)
    colour_of = {name: palette[i % len(palette)] for i, name in enumerate(names)}
    height0, width0 = frames[0][1].shape[:2]
    columns = min(len(frames), _COLUMNS)
    rows = math.ceil(len(frames) / columns)
    width = max(1, min(width0, (max_width - GAP * (columns + 1)) // columns))
    height = max(1, round(height0 * width / width0))

    sheet = np.full((rows * (height + GAP) + GAP, columns * (width + GAP) + GAP, 3), _BACKGROUND, np.uint8)
    for n, (frame, picture, mattes) in enumerate(frames):
        top = GAP + (n // columns) * (height + GAP)
        left = GAP + (n % columns) * (width + GAP)
        sheet[top : top + height, left : left + width] = _tile(
            picture, list(mattes.values()), [colour_of[k] for k in mattes], frame, width, height
        )
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path_png)), exist_ok=True)
        with atomic_file(path_png) as tmp:
            if not cv2.imwrite(tmp, np.ascontiguousarray(sheet[..., ::-1])):  # OpenCV writes BGR
                raise OutputError("OpenCV could not write the PNG")
    except (OSError, cv2.error, OutputError) as exc:
        raise OutputError(f"cannot write QC picture {path_png}: {exc}") from exc
    return path_png


def write_render_qc(path_png: str, job: Job, written: Sequence[tuple[int, str]], tiles: int = 8) -> str:
    """The QC sheet of a finished render: up to `tiles` frames spread over the shot."""
    if not written:
        raise OutputError(f"no mattes were written, so there is no QC picture {path_png}")
    count = min(tiles, len(written))
    picks = sorted({written[round(i * (len(written) - 1) / max(1, count - 1))] for i in range(count)})
    display = job.plate.info.display
    frames = []
    for frame, path in picks:
        picture = job.colour.display_rgb(job.plate.read(frame), display.width, display.height)
        planes = read_display_mattes(path, display)
        mattes = {obj.name: planes[channel_name(obj.name)] for obj in job.recipe.objects}
        frames.append((frame, picture, mattes))
    colours = [o.colour or PALETTE[i % len(PALETTE)] for i, o in enumerate(job.recipe.objects)]
    return write_qc(path_png, frames, colours)
