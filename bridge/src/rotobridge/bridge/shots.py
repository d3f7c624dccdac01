"""Recipes for many shots: a recipe template filled in per shot, and shots read from an edit.

A template is a recipe whose strings may hold `${NAME}` variables (`string.Template`
syntax; `$$` is a literal `$`). Values come from, strongest first: `--set NAME=VALUE`,
the shot (`SHOT`, `SEQ`, and from an edit `PLATE`, `FRAMES`, `FIRST`, `LAST`), then the
environment. Only JSON string values are filled in, never the JSON text itself, so a value
cannot change the recipe's structure; the result is validated like any recipe, and an
unknown variable is an error naming the field.

`shots_from_timeline` reads an OpenTimelineIO edit: each clip is a shot (its name), its
media reference the plate (an image sequence, or a file such as a movie), its source range
the frames, in the media's own frame numbers. Each shot's objects and prompts come from
its prompt file (`{"objects": [...]}`, optionally `"propagate"`), named by a pattern such
as `prompts/${SHOT}.json`.
"""

from __future__ import annotations

import json
import os
import string
from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import unquote, urlparse

from rotobridge import recipe as recipes
from rotobridge.errors import FarmError, RecipeError

from .atomic import atomic_file


@dataclass(frozen=True)
class ShotInfo:
    """A shot as an edit describes it."""

    name: str
    plate: str
    first: int
    last: int

    def variables(self) -> dict[str, str]:
        return {"SHOT": self.name, "PLATE": self.plate, "FRAMES": f"{self.first}-{self.last}",
                "FIRST": str(self.first), "LAST": str(self.last)}


def fill(value: Any, variables: Mapping[str, str], where: str = "") -> Any:
    """`value` (decoded JSON) with `${NAME}` replaced in every string; RecipeError names the field of an unknown one."""
    if isinstance(value, str):
        try:
            return string.Template(value).substitute(variables)
        except KeyError as exc:
            raise RecipeError(where, f"unknown template variable ${{{exc.args[0]}}}: set it with --set {exc.args[0]}=VALUE or in the environment") from None
        except ValueError as exc:
            raise RecipeError(where, f"{value!r} is not a valid template string ({exc}); write $$ for a literal $") from None
    if isinstance(value, list):
        return [fill(v, variables, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: fill(v, variables, f"{where}.{k}" if where else k) for k, v in value.items()}
    return value


def load_json(path: str, what: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as exc:
        raise RecipeError("", f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise RecipeError("", f"{what} {path} is not valid JSON: {exc}") from None


def variables(shot: Mapping[str, str], overrides: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables a template sees: the environment, then the shot's, then --set."""
    return {**(os.environ if environ is None else environ), **shot, **overrides}


def recipe_from_template(template: Any, values: Mapping[str, str], base_dir: str) -> recipes.Recipe:
    """A template (decoded JSON) filled in and validated as a recipe whose paths are relative to `base_dir`."""
    return recipes.parse(fill(template, values), base_dir)


def write_recipe(recipe: recipes.Recipe, path: str) -> None:
    with atomic_file(os.path.abspath(path)) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(recipe.to_dict(), indent=2) + "\n")


def _path(url: str) -> str:
    parsed = urlparse(url)
    return unquote(parsed.path) if parsed.scheme == "file" else url


def shots_from_timeline(path: str) -> tuple[str, list[ShotInfo]]:
    """The timeline's name and its clips as shots, in edit order; FarmError names a clip
    without a usable media reference or source range."""
    import opentimelineio as otio

    try:
        timeline = otio.adapters.read_from_file(path)
    except Exception as exc:  # OTIO raises its own exception types per adapter
        raise FarmError(f"cannot read the timeline {path}: {exc}") from None
    shots = []
    for clip in timeline.find_clips():
        ref = clip.media_reference
        if ref is None or ref.is_missing_reference:
            raise FarmError(f"{path}: clip {clip.name!r} has no media reference: link it to its plate in the edit")
        if isinstance(ref, otio.schema.ImageSequenceReference):
            plate = _path(ref.target_url_base) + ref.name_prefix + "#" * max(ref.frame_zero_padding, 1) + ref.name_suffix
        elif isinstance(ref, otio.schema.ExternalReference) and ref.target_url:
            plate = _path(ref.target_url)
        else:
            raise FarmError(f"{path}: clip {clip.name!r} has a {type(ref).__name__}, not a plate file or image sequence")
        source = clip.source_range or (ref.available_range if ref.available_range else None)
        if source is None:
            raise FarmError(f"{path}: clip {clip.name!r} has no source range: set its in and out points")
        first = int(round(source.start_time.to_frames()))
        count = int(round(source.duration.to_frames()))
        if count < 1:
            raise FarmError(f"{path}: clip {clip.name!r} has an empty source range")
        shots.append(ShotInfo(clip.name, plate, first, first + count - 1))
    names = [s.name for s in shots]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise FarmError(f"{path}: two clips are called {dup!r}; each clip name is a shot and must be unique")
    return str(timeline.name or os.path.splitext(os.path.basename(path))[0]), shots


def recipes_from_timeline(
    timeline: str,
    template_path: str,
    prompts: str,
    out_dir: str,
    overrides: Mapping[str, str],
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """One recipe per clip, written to `out_dir/<SHOT>.json`; returns their paths.

    Every recipe is built and validated before any is written, so a bad clip writes nothing.
    """
    template = load_json(template_path, "recipe template")
    sequence, shots = shots_from_timeline(timeline)
    out_dir = os.path.abspath(out_dir)
    made = []
    for shot in shots:
        values = variables({"SEQ": sequence, **shot.variables()}, overrides, environ)
        prompt_path = fill(prompts, values, "--prompts")
        data = load_json(prompt_path, f"prompt file of clip {shot.name!r}")
        if not isinstance(data, dict) or "objects" not in data or set(data) - {"objects", "propagate"}:
            raise FarmError(f"prompt file {prompt_path} of clip {shot.name!r} must be an object with 'objects' (and optionally 'propagate')")
        filled = fill(template, values)
        if not isinstance(filled, dict):
            raise RecipeError("", f"recipe template {template_path} must be a JSON object")
        try:
            recipe = recipes.parse({**filled, **data}, out_dir)
        except RecipeError as exc:
            error = RecipeError("", f"clip {shot.name!r}: {exc}")
            error.field = exc.field
            raise error from None
        made.append((os.path.join(out_dir, f"{shot.name}.json"), recipe))
    os.makedirs(out_dir, exist_ok=True)
    for path, recipe in made:
        write_recipe(recipe, path)
    return [path for path, _ in made]
