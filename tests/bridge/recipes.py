"""Recipe files for the bridge's render tests: the tiny random model on a plate, with the
objects, output and changes each test asks for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..conftest import SMALL_SIZE, TINY_CONFIG


def car(frame: int) -> dict[str, Any]:
    """Object 1, a click at (20, 20) on `frame`."""
    return {"id": 1, "name": "car", "prompts": [{"frame": frame, "points": [[20, 20]], "labels": [1]}]}


def person(frame: int) -> dict[str, Any]:
    """Object 7, a box on `frame`."""
    return {"id": 7, "name": "person", "prompts": [{"frame": frame, "box": [30, 10, 60, 40]}]}


def write_recipe(
    path: Path,
    checkpoint: Path,
    plate: str,
    frames: str,
    out: Path,
    /,
    *,
    objects: list[dict[str, Any]] | None = None,
    version: int = 1,
    colourspace: str = "ACEScg",
    **changes: Any,
) -> Path:
    """A recipe at `path` rendering `frames` of `plate` to `out`/m.####.exr (objects: the car,
    clicked on the first frame). A dict in `changes` updates the part it names (`output=
    {"compression": "none"}`, `plate={"first_frame": 1001}`), anything else replaces or adds it."""
    data: dict[str, Any] = {
        "rotobridge_recipe": version,
        "plate": {"path": plate, "frames": frames, "colourspace": colourspace},
        "model": {"config": TINY_CONFIG, "checkpoint": str(checkpoint), "overrides": SMALL_SIZE},
        "objects": objects if objects is not None else [car(int(frames.split("-")[0]))],
        "output": {"path": str(out / "m.####.exr")},
    }
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
    path.write_text(json.dumps(data))
    return path
