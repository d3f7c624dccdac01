"""The recipe: the complete, host-independent description of a matte job.

Hosts build recipes, `rotobridge render` runs them, a farm job is a recipe plus a frame
range. This module and `rotobridge.parts` (the parts a recipe shares with protocol
requests and stored prompts) are the only places that parse and validate them, so every
consumer gets the same errors, each naming the offending field. `docs/recipe.md`
documents the format and a test keeps the two in step. Stdlib only: the host side imports it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Sequence

from .errors import RecipeError
from .fields import Fields, bounded, join, shown, whole
from .parts import (
    COMPRESSIONS,
    DIRECTIONS,
    LAYERS,
    MAX_OBJECTS,
    MAX_POINTS,
    NUKE_LAYERS,
    Colour,
    Model,
    Object,
    Output,
    Plate,
    Prompt,
    Propagate,
    Shot,
    parse_part,
    part_dict,
    read_colour,
    read_model,
    read_object,
    read_output,
    read_plate,
    read_propagate,
)

#: The parts are `rotobridge.parts`'; they are this module's vocabulary too.
__all__ = [
    "COMPRESSIONS", "DIRECTIONS", "LAYERS", "MAX_OBJECTS", "MAX_POINTS", "NUKE_LAYERS", "RECIPE_VERSION", "VERSION_KEY",
    "Colour", "Model", "Object", "Output", "Plate", "Prompt", "Propagate", "Recipe", "Shot",
    "check_against_plate", "check_prompt", "load", "loads", "parse", "parse_part", "part_dict", "save", "to_dict", "version",
]

#: The newest schema version this code reads. A recipe is written with the lowest version
#: that holds it (version 2 added `objects[].matte`, `output.layers` and `colour.exact`:
#: `_version_2_parts`), so a recipe without them is written exactly as before, keeps its
#: hash (and the mattes and checkpoints that carry it), and an older rotobridge given one
#: it cannot render says to upgrade.
RECIPE_VERSION = 2
VERSION_KEY = "rotobridge_recipe"


@dataclass(frozen=True)
class Recipe:
    plate: Plate
    model: Model
    objects: tuple[Object, ...]
    output: Output
    colour: Colour = field(default_factory=Colour)
    propagate: Propagate = field(default_factory=Propagate)
    #: folder that relative paths in the recipe are relative to (not serialised)
    base_dir: str = field(default=".", compare=False)

    def resolve(self, path: str) -> str:
        """A recipe path made absolute against the recipe's folder (`ocio://` built-in names untouched).

        Only that exact scheme is left alone: `x://../..` is a relative path like any other.
        """
        if path.startswith("ocio://"):
            return path
        return os.path.normpath(os.path.join(self.base_dir, os.path.expanduser(path)))

    def prompt_frames(self) -> list[int]:
        return sorted({p.frame for o in self.objects for p in o.prompts})

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def sha256(self) -> str:
        """Hash of the canonical JSON: identical recipes give identical mattes and hashes."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def parse(data: Any, base_dir: str = ".") -> Recipe:
    """Validate a decoded recipe; the first problem raises RecipeError naming its field."""
    f = Fields(data, "")
    version = f.get(VERSION_KEY, whole)
    if version > RECIPE_VERSION:
        raise RecipeError(
            VERSION_KEY, f"recipe version {version} is newer than this rotobridge understands ({RECIPE_VERSION}); upgrade rotobridge"
        )
    if version < 1:
        raise RecipeError(VERSION_KEY, f"unknown recipe version {version}")
    objects = tuple(read_object(o, f"objects[{i}]") for i, o in enumerate(f.get("objects", bounded(MAX_OBJECTS, "objects"))))
    if not objects:
        raise RecipeError("objects", "needs at least one object")
    for key in ("id", "name"):
        values = [getattr(o, key) for o in objects]
        dup = next((v for v in values if values.count(v) > 1), None)
        if dup is not None:
            raise RecipeError(f"objects[{values.index(dup, values.index(dup) + 1)}].{key}", f"{dup!r} is used twice")
    recipe = Recipe(
        plate=f.get("plate", read_plate),
        colour=f.get("colour", read_colour, Colour()),
        model=f.get("model", read_model),
        objects=objects,
        propagate=f.get("propagate", read_propagate, Propagate()),
        output=f.get("output", read_output),
        base_dir=base_dir,
    )
    f.done()
    late = _version_2_parts(recipe)
    if late and version < 2:
        raise RecipeError(late[0], f"needs recipe version 2 or later (this recipe says {version})")
    _check_layers(recipe)
    return recipe


def _check_layers(recipe: Recipe) -> None:
    """`<object>_<layer>` may not be another object's name."""
    layers = recipe.output.layers
    taken = {f"{o.name}_{layer}" for o in recipe.objects for layer in layers}
    clash = next((i for i, o in enumerate(recipe.objects) if o.name in taken), None)
    if clash is not None:
        raise RecipeError(f"objects[{clash}].name", f"{recipe.objects[clash].name!r} is also another object's layer in output.layers: rename it")


def loads(text: str, base_dir: str = ".") -> Recipe:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecipeError("", f"not valid JSON: {exc}") from None
    return parse(data, base_dir)


def load(path: str | os.PathLike[str]) -> Recipe:
    """Read a recipe file; its relative paths are relative to the file's folder."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError("", f"cannot read recipe {p}: {exc.strerror or exc}") from None
    return loads(text, str(p.resolve().parent))


def to_dict(recipe: Recipe) -> dict[str, Any]:
    """The JSON form of a recipe (parts with only defaults left out)."""
    out = {
        VERSION_KEY: version(recipe),
        "plate": part_dict(recipe.plate),
        "colour": part_dict(recipe.colour),
        "model": part_dict(recipe.model),
        "objects": [part_dict(o) for o in recipe.objects],
        "propagate": part_dict(recipe.propagate),
        "output": part_dict(recipe.output),
    }
    return {key: value for key, value in out.items() if value != {}}


def _version_2_parts(recipe: Recipe) -> list[str]:
    """The fields of `recipe` that version 1 cannot hold."""
    late = [f"objects[{i}].matte" for i, o in enumerate(recipe.objects) if o.matte is not None]
    if recipe.output.layers:
        late.append("output.layers")
    if recipe.colour.exact:
        late.append("colour.exact")
    return late


def version(recipe: Recipe) -> int:
    """The lowest schema version that holds `recipe`: the one it is written with."""
    return 2 if _version_2_parts(recipe) else 1


def save(recipe: Recipe, path: str | os.PathLike[str]) -> None:
    """Write atomically: a host saving mid-crash never leaves half a recipe."""
    p = Path(path)
    text = json.dumps(to_dict(recipe), indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_against_plate(recipe: Recipe, width: int, height: int, frames: Sequence[int]) -> None:
    """Checks that need the plate: prompt frames inside the plate, points inside the image."""
    available = set(frames)
    for i, obj in enumerate(recipe.objects):
        for j, prompt in enumerate(obj.prompts):
            check_prompt(prompt, f"objects[{i}].prompts[{j}]", width, height, available, recipe.plate.frames)
    start = recipe.propagate.start
    if start is not None and start not in available:
        raise RecipeError("propagate.start", f"frame {start} is not in the plate's frames {recipe.plate.frames}")


def check_prompt(
    prompt: Prompt, where: str, width: int, height: int, frames: Collection[int], frames_text: str
) -> None:
    """One prompt against its plate (`frames`, described as `frames_text` in errors).

    Coordinates are display-window pixels; the far edges (x == width) are allowed because
    a click lands on a pixel's edge as often as on its centre.
    """
    if prompt.frame not in frames:
        raise RecipeError(join(where, "frame"), f"frame {shown(prompt.frame)} is not in the plate's frames {frames_text}")
    for k, (x, y) in enumerate(prompt.points):
        if not (0 <= x <= width and 0 <= y <= height):
            raise RecipeError(
                f"{join(where, 'points')}[{k}]", f"({x:g}, {y:g}) is outside the {width}x{height} image (origin top-left)"
            )
    if prompt.box is not None:
        x0, y0, x1, y1 = prompt.box
        if not (0 <= x0 <= width and 0 <= x1 <= width and 0 <= y0 <= height and 0 <= y1 <= height):
            raise RecipeError(join(where, "box"), f"{list(prompt.box)} is outside the {width}x{height} image")
