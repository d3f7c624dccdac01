"""Recipe parts: plate, colour, model, prompt, object, propagate and output.

A recipe file, an `open` request and the prompts a host saves with its scene are all
made of these parts, so each is validated here once (errors name the field) and
serialised by one function, `part_dict`. `rotobridge.recipe` puts them together into the
recipe format and re-exports them. Stdlib only: the host side imports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from . import controls
from .controls import MatteControls
from .errors import RecipeError
from .fields import MAX_FRAMES, Fields, boolean, bounded, box, choice, frameset, join, label, listing, point, rgb, shown, string, whole

DIRECTIONS = ("both", "forward", "backward")
#: Extra matte layers an output may ask for per object (docs/recipe.md, Output layers):
#: `raw` SAM 2's own matte, `edge` where the final matte is soft, `trimap` 0 / 0.5 / 1.
LAYERS = ("raw", "edge", "trimap")
COMPRESSIONS = ("zip", "zips", "piz", "rle", "none")
#: Object names become EXR layer names; Nuke splits channel names on dots and keeps
#: letters, digits and underscores, so anything else would arrive renamed.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
#: Layers built into Nuke, which take no new channels, so `<name>.alpha` would be dropped
#: and the matte arrive empty (Foundry's Nuke guide, "Creating Channels and Layers" and
#: "Renaming Channels": "You can't create new channels into layers that are built into Nuke").
NUKE_LAYERS = frozenset({
    "rgba", "rgb", "alpha", "depth", "motion", "forward", "backward", "deep", "disparity", "disparityL",
    "disparityR", "mask", "rotopaint_mask", "mask_planartrack", "mask_splinewarp", "none", "all",
})
#: A matte path's frame number placeholder, just before `.exr`, as rotobridge.bridge.mattes
#: (fileseq) reads it: `####`/`#` (Nuke: one digit each), `%04d`, `@@@@`, `$F4`.
_PLACEHOLDER = re.compile(r"(#+|@+|%0?\d*d|\$F\d*)\.exr$", re.IGNORECASE)
#: Clicks in one prompt: SAM 2 is prompted with a few; each costs every later click of the session.
MAX_POINTS = 64
#: Objects in one recipe or session: a preview carries one plane per object, and every
#: click and tracked frame runs the model once per object.
MAX_OBJECTS = 64


@dataclass(frozen=True)
class Plate:
    path: str
    frames: str
    colourspace: str
    layer: str | None = None
    part: str | int | None = None
    first_frame: int = 1


@dataclass(frozen=True)
class Colour:
    config: str | None = None
    display: str | None = None
    view: str | None = None
    #: OCIO's exact CPU processor on every pixel instead of the baked LUT (slow; the reference)
    exact: bool = False


@dataclass(frozen=True)
class Model:
    name: str | None = None
    config: str | None = None
    checkpoint: str | None = None
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prompt:
    """Prompts for one object on one frame; coordinates are plate pixels, top-left origin."""

    frame: int
    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None
    mask: str | None = None


@dataclass(frozen=True)
class Object:
    id: int
    name: str
    prompts: tuple[Prompt, ...]
    colour: tuple[float, float, float] | None = None
    #: the artist's matte controls (rotobridge.controls); None: SAM 2's matte as it is
    matte: MatteControls | None = None


@dataclass(frozen=True)
class Propagate:
    direction: str = "both"
    start: int | None = None


@dataclass(frozen=True)
class Output:
    path: str
    compression: str = "zip"
    binary: bool = False
    overwrite: bool = False
    #: extra layers per object (LAYERS), written as `<object>_<layer>.A`
    layers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Shot:
    """The shot a session is opened on: the recipe parts an `open` request carries.

    `size` is what only a host knows, the display window it converts clicks with; it is
    not sent, but checked against the plate the bridge reads, since a mismatch would
    misplace every click.
    """

    plate: Plate
    output: Output
    colour: Colour = field(default_factory=Colour)
    size: tuple[int, int] | None = field(default=None, compare=False)

    def fields(self) -> dict[str, Any]:
        """The `open` request's fields (docs/protocol.md)."""
        out = {"plate": part_dict(self.plate), "output": part_dict(self.output)}
        colour = part_dict(self.colour)
        return {**out, "colour": colour} if colour else out

    @classmethod
    def parse(cls, fields: Mapping[str, Any]) -> Shot:
        """An `open` request's shot, validated like the same parts of a recipe file."""
        return cls(
            plate=read_plate(fields.get("plate"), "plate"),
            output=read_output(fields.get("output"), "output"),
            colour=read_colour(fields.get("colour") or {}, "colour"),
        )


# --- parsing -------------------------------------------------------------------------


def _part(value: Any, where: str) -> str | int:
    if isinstance(value, str):
        return string(value, where)
    return whole(value, where)


def _pattern(value: Any, where: str) -> str:
    """A plate or matte path: fileseq cannot read an empty folder name (`a//b`), except a leading `//` (a network path)."""
    path = string(value, where)
    if "//" in path[1:]:
        raise RecipeError(where, f"{shown(path)} has an empty folder name ('//'): write each folder once")
    return path


def read_plate(data: Any, where: str) -> Plate:
    f = Fields(data, where)
    plate = Plate(
        path=f.get("path", _pattern),
        frames=f.get("frames", frameset),
        colourspace=f.get("colourspace", string),
        layer=f.get("layer", string, None),
        part=f.get("part", _part, None),
        first_frame=f.get("first_frame", whole, 1),
    )
    f.done()
    return plate


def read_colour(data: Any, where: str) -> Colour:
    f = Fields(data, where)
    colour = Colour(
        config=f.get("config", string, None),
        display=f.get("display", string, None),
        view=f.get("view", string, None),
        exact=f.get("exact", boolean, False),
    )
    f.done()
    return colour


def _overrides(value: Any, where: str) -> tuple[str, ...]:
    items = listing(value, where)
    for i, item in enumerate(items):
        text = string(item, f"{where}[{i}]")
        if not re.match(r"^\+{0,2}model\.[A-Za-z0-9_.]+=\S+$", text):
            raise RecipeError(f"{where}[{i}]", f"{shown(text)} is not a sam2 config override such as '++model.image_size=512'")
    return tuple(items)


def read_model(data: Any, where: str) -> Model:
    f = Fields(data, where)
    model = Model(
        name=f.get("name", string, None),
        config=f.get("config", string, None),
        checkpoint=f.get("checkpoint", string, None),
        overrides=f.get("overrides", _overrides, ()),
    )
    f.done()
    if model.name is None and model.checkpoint is None:
        raise RecipeError(where, "needs either 'name' (a registry model) or 'checkpoint' (a checkpoint file)")
    if model.checkpoint is not None and model.config is None and model.name is None:
        raise RecipeError(f"{where}.config", "is required with 'checkpoint' unless 'name' says which model it is")
    return model


def read_prompt(data: Any, where: str) -> Prompt:
    f = Fields(data, where)
    clicks = bounded(MAX_POINTS, "points")
    points = tuple(point(p, f"{f.path('points')}[{i}]") for i, p in enumerate(f.get("points", clicks, [])))
    labels = tuple(label(v, f"{f.path('labels')}[{i}]") for i, v in enumerate(f.get("labels", bounded(MAX_POINTS, "labels"), [])))
    prompt = Prompt(
        frame=f.get("frame", whole),
        points=points,
        labels=labels,
        box=f.get("box", box, None),
        mask=f.get("mask", string, None),
    )
    f.done()
    if len(points) != len(labels):
        raise RecipeError(f.path("labels"), f"has {len(labels)} labels for {len(points)} points")
    if prompt.mask is not None and (points or prompt.box):
        raise RecipeError(f.path("mask"), "a mask prompt cannot be combined with points or a box on the same frame")
    if not (points or prompt.box or prompt.mask):
        raise RecipeError(where or "points", "needs points, a box or a mask")
    return prompt


def read_object(data: Any, where: str, *, with_prompts: bool = True) -> Object:
    """An object; without `with_prompts`, only its id, name and colour (the protocol's `object`)."""
    f = Fields(data, where)
    obj_id = f.get("id", whole)
    if obj_id < 0:
        raise RecipeError(f.path("id"), "must be 0 or more")
    name = f.get("name", string)
    if not _NAME.match(name):
        raise RecipeError(
            f.path("name"),
            f"{shown(name)} cannot be an EXR layer name: use a letter then letters, digits or '_' (at most 63)",
        )
    if name in NUKE_LAYERS:
        raise RecipeError(f.path("name"), f"{name!r} is a layer built into Nuke, which cannot hold the matte: choose another name")
    prompts: tuple[Prompt, ...] = ()
    if with_prompts:
        raw_prompts = f.get("prompts", bounded(MAX_FRAMES, "prompts"))
        if not raw_prompts:
            raise RecipeError(f.path("prompts"), "needs at least one prompt")
        prompts = tuple(read_prompt(p, f"{f.path('prompts')}[{i}]") for i, p in enumerate(raw_prompts))
        seen: set[int] = set()
        for prompt in prompts:
            if prompt.frame in seen:
                raise RecipeError(f.path("prompts"), f"frame {prompt.frame} appears twice: put all its clicks in one prompt")
            seen.add(prompt.frame)
    obj = Object(
        id=obj_id,
        name=name,
        prompts=prompts,
        colour=f.get("colour", rgb, None),
        matte=f.get("matte", controls.parse, None),
    )
    f.done()
    return obj


def read_propagate(data: Any, where: str) -> Propagate:
    f = Fields(data, where)
    prop = Propagate(direction=f.get("direction", choice(DIRECTIONS), "both"), start=f.get("start", whole, None))
    f.done()
    return prop


def _layers(value: Any, where: str) -> tuple[str, ...]:
    names = tuple(choice(LAYERS)(v, f"{where}[{i}]") for i, v in enumerate(bounded(len(LAYERS), "layers")(value, where)))
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise RecipeError(where, f"names {dup!r} twice")
    return names


def read_output(data: Any, where: str) -> Output:
    f = Fields(data, where)
    out = Output(
        path=f.get("path", _pattern),
        compression=f.get("compression", choice(COMPRESSIONS), "zip"),
        binary=f.get("binary", boolean, False),
        overwrite=f.get("overwrite", boolean, False),
        layers=f.get("layers", _layers, ()),
    )
    f.done()
    if not out.path.lower().endswith(".exr"):
        raise RecipeError(join(where, "path"), "mattes are OpenEXR: the path must end in .exr")
    if not _PLACEHOLDER.search(out.path):
        raise RecipeError(
            join(where, "path"),
            f"{shown(out.path)} has no frame number placeholder before .exr (e.g. sh010.####.exr, %04d, @@@@ or $F4)",
        )
    return out


#: Parsers of the recipe parts that protocol requests carry on their own (`open`, `prompt`).
_PARTS: Mapping[str, Callable[[Any, str], Any]] = {
    "plate": read_plate,
    "colour": read_colour,
    "model": read_model,
    "output": read_output,
    "prompt": read_prompt,
    "object": lambda data, where: read_object(data, where, with_prompts=False),
}


def parse_part(kind: str, data: Any, where: str) -> Any:
    """Validate one part: plate, colour, model, output, prompt, or an object without prompts.

    Errors name fields under `where` ("" for fields at the top of a message).
    """
    return _PARTS[kind](data, where)


# --- serialising ---------------------------------------------------------------------


#: Each part's fields left out of its JSON form when they hold these (defaults, or nothing yet).
_OMITTED: Mapping[type, Mapping[str, Any]] = {
    Plate: {"layer": None, "part": None, "first_frame": 1},
    Colour: {"config": None, "display": None, "view": None, "exact": False},
    Model: {"name": None, "config": None, "checkpoint": None, "overrides": ()},
    Prompt: {"points": (), "labels": (), "box": None, "mask": None},
    Object: {"colour": None, "matte": None},
    Propagate: {"direction": "both", "start": None},
    Output: {"compression": "zip", "binary": False, "overwrite": False, "layers": ()},
}


def part_dict(part: Plate | Colour | Model | Prompt | Object | Propagate | Output) -> dict[str, Any]:
    """A recipe part's JSON form (an object's with its prompts): the one serialiser of recipe parts.

    Defaults are left out so recipes stay short and diffable; recipe files, protocol
    requests and the prompts a host stores all use it.
    """
    omitted = _OMITTED[type(part)]
    out: dict[str, Any] = {}
    for key, value in part.__dict__.items():
        if key in omitted and value == omitted[key]:
            continue
        if key == "prompts":
            value = [part_dict(p) for p in value]
        elif isinstance(value, MatteControls):
            value = value.to_json()
        out[key] = _jsonable(value)
    return out


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, tuple) else value
