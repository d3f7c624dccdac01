"""The prompts a host keeps with its shot: objects, and their clicks per plate frame.

A Nuke node or a .blend stores this model as one compact JSON string (a hidden knob, an
ID property), so a reopened script still has its prompts and can rebuild its recipe. The
objects *are* `recipe.Object`s and every part is validated by `recipe.parse_part`:
coordinates are plate pixels (display window, origin top-left), frames are plate frames,
and the model turns into a valid recipe as soon as every object has a prompt.

Stored form, version 1: `{"rotobridge_prompts": 1, "objects": [<recipe object>, ...]}`,
where an object may have no prompts yet and keeps its matte controls (`matte`, as in a
recipe; a plugin older than them skips the field). Reading skips fields it does not know (a newer
plugin may add some) but is strict on types and values. Stdlib only.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Iterable, Sequence

from . import recipe
from .controls import MatteControls
from .coords import Box
from .errors import PromptError, RecipeError

FORMAT_KEY = "rotobridge_prompts"
FORMAT_VERSION = 1
#: Fields this version reads; others are skipped when loading.
_OBJECT_FIELDS = ("id", "name", "colour", "matte")
_PROMPT_FIELDS = ("frame", "points", "labels", "box")

Colour = tuple[float, float, float]


class PromptModel:
    """Objects with their prompts, as a host panel edits them.

    Ids are stable: removing an object never renumbers the others, and an id is not
    reused while the model lives (the bridge session may still remember it). Every edit
    is validated before it is applied, so a failed edit leaves the model unchanged.
    """

    def __init__(self, objects: Iterable[recipe.Object] = ()) -> None:
        self._objects: dict[int, recipe.Object] = {}
        for obj in objects:
            if obj.id in self._objects:
                raise PromptError(f"object id {obj.id} is used twice")
            self._check_unique(obj)
            self._objects[obj.id] = obj
        self._next_id = max(self._objects, default=0) + 1

    @property
    def objects(self) -> tuple[recipe.Object, ...]:
        return tuple(self._objects.values())

    def object(self, object_id: int) -> recipe.Object:
        try:
            return self._objects[object_id]
        except KeyError:
            known = ", ".join(f"{o.id} ({o.name})" for o in self._objects.values()) or "none"
            raise PromptError(f"there is no object {object_id} (objects: {known})") from None

    def prompt(self, object_id: int, frame: int) -> recipe.Prompt | None:
        return next((p for p in self.object(object_id).prompts if p.frame == frame), None)

    def frames(self, object_id: int | None = None) -> list[int]:
        """Plate frames holding prompts, of one object or of all."""
        objects = self.objects if object_id is None else (self.object(object_id),)
        return sorted({p.frame for o in objects for p in o.prompts})

    # --- objects ---------------------------------------------------------------------

    def add_object(self, name: str, colour: Colour | None = None) -> recipe.Object:
        obj = _checked_object(self._next_id, name, colour)
        self._check_unique(obj)
        self._objects[obj.id] = obj
        self._next_id += 1
        return obj

    def rename(self, object_id: int, name: str) -> recipe.Object:
        old = self.object(object_id)
        return self._replace(old, _checked_object(object_id, name, old.colour))

    def recolour(self, object_id: int, colour: Colour | None) -> recipe.Object:
        old = self.object(object_id)
        return self._replace(old, _checked_object(object_id, old.name, colour))

    def remove(self, object_id: int) -> None:
        self.object(object_id)
        del self._objects[object_id]

    def set_matte(self, object_id: int, controls: MatteControls | None) -> recipe.Object:
        """Set an object's matte controls (None: SAM 2's raw matte)."""
        obj = self.object(object_id)
        if controls is not None and not isinstance(controls, MatteControls):
            raise PromptError(f"{obj.name}'s matte controls must be MatteControls, not {type(controls).__name__}")
        self._objects[object_id] = dataclasses.replace(obj, matte=controls)
        return self._objects[object_id]

    # --- prompts ---------------------------------------------------------------------

    def add_point(self, object_id: int, frame: int, x: float, y: float, positive: bool = True) -> recipe.Prompt:
        old = self.prompt(object_id, frame) or recipe.Prompt(frame)
        new = dataclasses.replace(old, points=(*old.points, (x, y)), labels=(*old.labels, 1 if positive else 0))
        return self._set_prompt(object_id, new)

    def move_point(self, object_id: int, frame: int, index: int, x: float, y: float) -> recipe.Prompt:
        old = self.prompt(object_id, frame)
        if old is None or not 0 <= index < len(old.points):
            count = 0 if old is None else len(old.points)
            raise PromptError(f"{self.object(object_id).name} has no point {index + 1} on frame {frame} ({count} there)")
        points = list(old.points)
        points[index] = (x, y)
        return self._set_prompt(object_id, dataclasses.replace(old, points=tuple(points)))

    def set_box(self, object_id: int, frame: int, box: Box | None) -> recipe.Prompt | None:
        """Set or remove (None) the box; a frame left with neither points nor box is cleared."""
        old = self.prompt(object_id, frame) or recipe.Prompt(frame)
        new = dataclasses.replace(old, box=box)
        if not (new.points or new.box):
            self.clear(object_id, frame)
            return None
        return self._set_prompt(object_id, new)

    def clear(self, object_id: int, frame: int) -> None:
        obj = self.object(object_id)
        self._objects[object_id] = dataclasses.replace(obj, prompts=tuple(p for p in obj.prompts if p.frame != frame))

    # --- storage and recipes ---------------------------------------------------------

    def dumps(self) -> str:
        """The compact stored form (see the module docstring)."""
        data = {FORMAT_KEY: FORMAT_VERSION, "objects": [recipe.part_dict(o) for o in self.objects]}
        return json.dumps(data, separators=(",", ":"), allow_nan=False)

    @classmethod
    def loads(cls, text: str) -> PromptModel:
        """Read the stored form; an empty string is an empty model (a new node)."""
        if not text.strip():
            return cls()
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise PromptError(f"the stored prompts are not JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get(FORMAT_KEY), int):
            raise PromptError(f"the stored prompts lack their version ({FORMAT_KEY})")
        if data[FORMAT_KEY] > FORMAT_VERSION:
            raise PromptError(
                f"the prompts were saved by a newer rotobridge (version {data[FORMAT_KEY]}, this one reads "
                f"{FORMAT_VERSION}): upgrade the plugin"
            )
        objects = data.get("objects", [])
        if not isinstance(objects, list):
            raise PromptError("the stored prompts' objects must be a list")
        try:
            return cls(_stored_object(o, f"objects[{i}]") for i, o in enumerate(objects))
        except RecipeError as exc:
            raise PromptError(f"the stored prompts are damaged: {exc}") from None

    def to_recipe(
        self,
        plate: recipe.Plate,
        output: recipe.Output,
        model: recipe.Model,
        colour: recipe.Colour = recipe.Colour(),
        propagate: recipe.Propagate = recipe.Propagate(),
    ) -> recipe.Recipe:
        """The recipe for these prompts, validated by recipe.py like any recipe file."""
        empty = [o.name for o in self.objects if not o.prompts]
        if empty:
            raise PromptError(f"no clicks yet on {', '.join(empty)}: click on each object or remove it first")
        if not self._objects:
            raise PromptError("there are no objects yet: add one and click on it first")
        draft = recipe.Recipe(plate=plate, model=model, objects=self.objects, output=output, colour=colour, propagate=propagate)
        return recipe.parse(recipe.to_dict(draft))

    # --- internals -------------------------------------------------------------------

    def _set_prompt(self, object_id: int, prompt: recipe.Prompt) -> recipe.Prompt:
        obj = self.object(object_id)
        checked: recipe.Prompt = recipe.parse_part("prompt", recipe.part_dict(prompt), f"{obj.name}.prompts")
        others = [p for p in obj.prompts if p.frame != prompt.frame]
        prompts = tuple(sorted((*others, checked), key=lambda p: p.frame))
        self._objects[object_id] = dataclasses.replace(obj, prompts=prompts)
        return checked

    def _replace(self, old: recipe.Object, new: recipe.Object) -> recipe.Object:
        self._check_unique(new)
        self._objects[old.id] = dataclasses.replace(new, prompts=old.prompts, matte=old.matte)
        return self._objects[old.id]

    def _check_unique(self, obj: recipe.Object) -> None:
        """Names must differ between objects: they become the mattes' layer names."""
        if any(o.id != obj.id and o.name == obj.name for o in self._objects.values()):
            raise PromptError(f"there is already an object called {obj.name!r}: object names become matte layers")


def wire_object(obj: recipe.Object) -> dict[str, Any]:
    """The protocol's `object` for a prompt request: id, name, colour and matte controls, no prompts."""
    return {k: v for k, v in recipe.part_dict(obj).items() if k != "prompts"}


def _checked_object(object_id: int, name: str, colour: Colour | None) -> recipe.Object:
    data = {"id": object_id, "name": name, "colour": None if colour is None else list(colour)}
    obj: recipe.Object = recipe.parse_part("object", data, "")
    return obj


def _known(data: Any, fields: Sequence[str]) -> Any:
    """`data` without the fields this version does not read (non-objects pass through to fail)."""
    return {k: v for k, v in data.items() if k in fields} if isinstance(data, dict) else data


def _stored_object(data: Any, where: str) -> recipe.Object:
    obj: recipe.Object = recipe.parse_part("object", _known(data, _OBJECT_FIELDS), where)
    raw = data.get("prompts", [])
    if not isinstance(raw, list):
        raise RecipeError(f"{where}.prompts", "must be a list")
    prompts = [recipe.parse_part("prompt", _known(p, _PROMPT_FIELDS), f"{where}.prompts[{i}]") for i, p in enumerate(raw)]
    frames = [p.frame for p in prompts]
    duplicate = next((f for f in frames if frames.count(f) > 1), None)
    if duplicate is not None:
        raise RecipeError(f"{where}.prompts", f"frame {duplicate} appears twice")
    return dataclasses.replace(obj, prompts=tuple(sorted(prompts, key=lambda p: p.frame)))
