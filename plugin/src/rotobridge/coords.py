"""Host coordinates and frames to plate pixels and plate frames, and back.

Plate pixels (recipes, the protocol) are the plate's display window at full resolution,
origin top-left, y down; a point may lie on the far edge (x == width) but not outside
the display window, overscan included (docs/recipe.md). Pixel aspect plays no part:
every space here counts pixels, not squares.

- **Nuke**: pixels of the full-size format, origin bottom-left, y up:
  `x = x_nuke`, `y = height - y_nuke`. XY_Knob and BBox_Knob values stay full size in
  proxy mode (they are "proxy adaptive": Nuke scales them only when it renders), so
  proxy mode changes no conversion; it only scales what is measured on images, such as
  `node.bbox()`, which is compared as `x_full * sx`.
- **Blender** (Movie Clip Editor): normalised to the clip's size, origin bottom-left:
  `x = u * width`, `y = height - v * height`; or clip pixels, origin bottom-left (what
  the click tool measures): `x = x_clip`, `y = height - y_clip`. Frames: a clip plays its first image at
  scene frame `clip.frame_start`, and `clip.frame_offset` shifts which file is read, so
  `plate frame = first_frame + scene frame - frame_start + frame_offset`, where
  `first_frame` is the plate frame of the clip's first image (the number in
  `clip.filepath`; a movie's `plate.first_frame`).

Exactness. No formula can make `y -> height - y` invertible for every double (there are
far more doubles near 0 than near the height), so these are exact where hosts produce
values, and tests pin each claim:
- Nuke: a round trip returns the same value whenever `height - y` is representable:
  every y >= height / 2 and every multiple of 2**-32 px (formats below 2**21 px). Any
  other double comes back within half an ulp of the height (1e-13 px at 2K) and is
  stable from then on.
- Blender stores marker positions as 32-bit floats; for those `u * width` and
  `height - v * height` are exact in double (24 + 13 bits), so u and v come back exactly
  (v >= 2**-17, sizes up to 8192). Its operators take clip pixels as 32-bit floats
  too; for those `height - y` is exact (y == 0 or y >= 2**-16, sizes up to 8192), so
  `height - plate y` gives back the clip pixel's y exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import PromptError

Point = tuple[float, float]
#: Plate box: left, top, right, bottom (top-left corner then bottom-right), plate pixels.
Box = tuple[float, float, float, float]


def _check_inside(x: float, y: float, width: int, height: int, shown: str, overscan: bool = False) -> None:
    if not (0 <= x <= width and 0 <= y <= height):
        where = "in the overscan, outside" if overscan else "outside"
        raise PromptError(
            f"{shown} is {where} the {width}x{height} image: rotobridge prompts must lie inside the "
            "format (display window)"
        )


@dataclass(frozen=True)
class NukeSpace:
    """A plate as Nuke shows it: its full-size format, and its bbox to explain refusals.

    `bbox` is the data window (x, y, r, t) as `node.bbox()` reports it, which may exceed
    the format (overscan); while proxy mode is on it is in proxy pixels and `proxy` is
    the active scale (sx, sy) from `nuke_proxy_scale`.
    """

    width: int
    height: int
    proxy: tuple[float, float] = (1.0, 1.0)
    bbox: tuple[float, float, float, float] | None = None

    def to_plate(self, x: float, y: float) -> Point:
        """A Nuke position as plate pixels; PromptError when it is outside the format."""
        _check_inside(x, y, self.width, self.height, f"Nuke position ({x:g}, {y:g})", self._in_bbox(x, y))
        return (x, self.height - y)

    def from_plate(self, x: float, y: float) -> Point:
        return (x, self.height - y)

    def box_to_plate(self, x: float, y: float, r: float, t: float) -> Box:
        """A BBox_Knob value (x, y, r, t: bottom-left then top-right) as a plate box."""
        left, bottom = self.to_plate(x, y)
        right, top = self.to_plate(r, t)
        return (left, top, right, bottom)

    def box_from_plate(self, box: Box) -> tuple[float, float, float, float]:
        x, y = self.from_plate(box[0], box[3])
        r, t = self.from_plate(box[2], box[1])
        return (x, y, r, t)

    def _in_bbox(self, x: float, y: float) -> bool:
        if self.bbox is None:
            return False
        bx, by, br, bt = self.bbox
        px, py = x * self.proxy[0], y * self.proxy[1]
        return bx <= px <= br and by <= py <= bt


def nuke_proxy_scale(
    proxy_type: str, scale: float, full: tuple[int, int], proxy_format: tuple[int, int]
) -> tuple[float, float]:
    """(sx, sy) of Nuke's proxy mode from the root's proxy_type, proxy_scale, format and proxy_format.

    "scale" scales both axes by proxy_scale; "format" maps the full-size format onto the
    proxy format, axis by axis.
    """
    if proxy_type == "scale":
        return (scale, scale)
    return (proxy_format[0] / full[0], proxy_format[1] / full[1])


@dataclass(frozen=True)
class BlenderClip:
    """A Movie Clip as Blender shows it: normalised bottom-left positions, scene frames."""

    width: int
    height: int
    frame_start: int = 1
    frame_offset: int = 0
    first_frame: int = 1

    def to_plate(self, u: float, v: float) -> Point:
        x, y = u * self.width, self.height - v * self.height
        _check_inside(x, y, self.width, self.height, f"clip position ({u:g}, {v:g})")
        return (x, y)

    def from_plate(self, x: float, y: float) -> Point:
        return (x / self.width, (self.height - y) / self.height)

    def pixel_to_plate(self, x: float, y: float) -> Point:
        """Clip pixels (origin bottom-left) as plate pixels, with no detour through u, v
        (`x / width * width` need not give x back)."""
        plate = (x, self.height - y)
        _check_inside(*plate, self.width, self.height, f"clip pixel ({x:g}, {y:g})")
        return plate

    def plate_to_pixel(self, x: float, y: float) -> Point:
        """Plate pixels as clip pixels (origin bottom-left): where the overlay draws a click."""
        return (x, self.height - y)

    def plate_frame(self, scene_frame: int) -> int:
        return self.first_frame + scene_frame - self.frame_start + self.frame_offset

    def scene_frame(self, plate_frame: int) -> int:
        return plate_frame - self.first_frame + self.frame_start - self.frame_offset
