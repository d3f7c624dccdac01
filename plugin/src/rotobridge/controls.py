"""Per-object matte controls: what an artist sets to turn SAM 2's matte into a shippable one.

The controls compositors know from Roto Brush, Magic Mask and Matte Refine ML, applied at
plate resolution in this order (bridge/src/rotobridge/bridge/refine.py does the work):

1. edge refinement: SAM 2's probabilities re-estimated from the plate's colours near the
   edge (`refine` strength 0-1, `refine_radius` in pixels);
2. reduce chatter: temporal smoothing along the plate's optical flow over neighbouring
   frames (`smoothing` strength 0-1);
3. despeckle: islands and holes smaller than `despeckle` pixels removed / filled;
4. clip: values at or below `clip_black` become 0, at or above `clip_white` 1, linear
   between;
5. shrink/grow: the edge moved by `shrink_grow` pixels (negative shrinks);
6. feather: a Gaussian blur of `feather` pixels (its standard deviation).

Cleaning comes before moving and softening, so a feathered edge is never clipped hard
again. Stdlib only: hosts validate controls before sending them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .errors import RecipeError
from .fields import Fields, join, number, whole

#: The largest radius any control takes, in pixels: a UHD frame's height is 2160.
MAX_RADIUS = 512.0


@dataclass(frozen=True)
class MatteControls:
    """One object's controls; the defaults refine edges, reduce chatter and change nothing else.

    Constructing one with a bad value raises RecipeError naming the field.
    """

    refine: float = 1.0
    refine_radius: float = 0.0
    smoothing: float = 1.0
    despeckle: int = 0
    clip_black: float = 0.0
    clip_white: float = 1.0
    shrink_grow: float = 0.0
    feather: float = 0.0

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """RecipeError naming the first bad field."""

        def refuse(name: str, message: str) -> None:
            raise RecipeError(name, message)

        for f in dataclasses.fields(self):
            (whole if f.type == "int" else number)(getattr(self, f.name), f.name)
        for name in ("refine", "smoothing"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                refuse(name, f"must be between 0 (off) and 1 (full strength), got {value}")
        for name in ("refine_radius", "feather"):
            value = getattr(self, name)
            if not 0.0 <= value <= MAX_RADIUS:
                refuse(name, f"is a radius in pixels: must be between 0 and {MAX_RADIUS:g}, got {value}")
        if 0 < self.refine_radius < 1:
            refuse("refine_radius", f"must be 0 (automatic) or at least 1 pixel, got {self.refine_radius}")
        if abs(self.shrink_grow) > MAX_RADIUS:
            refuse("shrink_grow", f"must be between -{MAX_RADIUS:g} and {MAX_RADIUS:g} pixels, got {self.shrink_grow}")
        if self.despeckle < 0:
            refuse("despeckle", f"is an area in pixels: must be 0 (off) or more, got {self.despeckle}")
        if not 0.0 <= self.clip_black < 1.0:
            refuse("clip_black", f"must be at least 0 and below 1, got {self.clip_black}")
        if not 0.0 < self.clip_white <= 1.0:
            refuse("clip_white", f"must be above 0 and at most 1, got {self.clip_white}")
        if self.clip_black >= self.clip_white:
            refuse("clip_black", f"must be below clip_white ({self.clip_white}), got {self.clip_black}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: The controls that change nothing at all: no refinement, no clean-up.
UNCHANGED = MatteControls(refine=0.0, smoothing=0.0)


def parse(data: Any, where: str) -> MatteControls:
    """Controls from a JSON object; missing fields take the defaults, unknown ones are refused."""
    f = Fields(data, where)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(MatteControls):
        check = whole if field.type == "int" else number
        if field.name in f.data:
            values[field.name] = f.get(field.name, check)
    f.done()
    try:
        return MatteControls(**values)
    except RecipeError as exc:
        raise RecipeError(join(where, exc.field), str(exc).removeprefix(f"{exc.field}: ")) from None
