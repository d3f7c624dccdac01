"""Recipe parsing: every bad input names its field; good recipes round-trip unchanged."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from rotobridge import recipe as recipes
from rotobridge.controls import MatteControls
from rotobridge.errors import RecipeError

DOC = Path(__file__).resolve().parents[2] / "docs" / "recipe.md"

BASE: dict[str, Any] = {
    "rotobridge_recipe": 1,
    "plate": {"path": "plate/sh010.####.exr", "frames": "1001-1010", "colourspace": "ACEScg"},
    "model": {"name": "sam2.1-hiera-tiny"},
    "objects": [
        {"id": 1, "name": "car", "prompts": [{"frame": 1001, "points": [[10, 20]], "labels": [1]}]},
        {"id": 2, "name": "person", "prompts": [{"frame": 1005, "box": [1, 2, 30, 40]}]},
    ],
    "output": {"path": "mattes/sh010.####.exr"},
}


def _with(path: str, value: Any) -> dict[str, Any]:
    """BASE with one field set (value ... deletes it); path like 'objects[0].prompts[0].frame'."""
    data = copy.deepcopy(BASE)
    keys = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", path)]
    target = data
    for key in keys[:-1]:
        target = target[key]
    if value is ...:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return data


BAD = [
    # (field changed, new value, field named in the error, words in the message)
    ("rotobridge_recipe", 3, "rotobridge_recipe", "newer"),
    ("rotobridge_recipe", ..., "rotobridge_recipe", "required"),
    ("rotobridge_recipe", "1", "rotobridge_recipe", "whole number"),
    ("colour_space", "x", "colour_space", "unknown field"),
    ("plate.path", ..., "plate.path", "required"),
    ("plate.frames", "1001 to 1010", "plate.frames", "frame range"),
    ("plate.colourspace", "", "plate.colourspace", "non-empty"),
    ("plate.first_frame", 1.5, "plate.first_frame", "whole number"),
    ("plate.extra", True, "plate.extra", "unknown field"),
    ("model", {}, "model", "either 'name'"),
    ("model", {"checkpoint": "a.pt"}, "model.config", "required"),
    ("model.overrides", ["image_size=5"], "model.overrides[0]", "override"),
    ("objects", [], "objects", "at least one"),
    ("objects[0].id", -1, "objects[0].id", "0 or more"),
    ("objects[0].id", True, "objects[0].id", "whole number"),
    ("objects[1].id", 1, "objects[1].id", "used twice"),
    ("objects[1].name", "car", "objects[1].name", "used twice"),
    ("objects[0].name", "my.car", "objects[0].name", "layer name"),
    ("objects[0].name", "2cars", "objects[0].name", "layer name"),
    # Nuke's built-in layers take no alpha channel: the matte would arrive empty (issue 13)
    ("objects[0].name", "mask", "objects[0].name", "built into Nuke"),
    ("objects[0].name", "depth", "objects[0].name", "built into Nuke"),
    ("objects[0].name", "motion", "objects[0].name", "built into Nuke"),
    ("objects[0].name", "forward", "objects[0].name", "built into Nuke"),
    ("objects[0].name", "backward", "objects[0].name", "built into Nuke"),
    ("objects[0].name", "rgba", "objects[0].name", "built into Nuke"),
    ("objects[0].prompts", [], "objects[0].prompts", "at least one"),
    ("objects[0].prompts[0].frame", ..., "objects[0].prompts[0].frame", "required"),
    ("objects[0].prompts[0].points", [[1, 2, 3]], "objects[0].prompts[0].points[0]", "[x, y]"),
    ("objects[0].prompts[0].points", [[1, "a"]], "objects[0].prompts[0].points[0][1]", "finite number"),
    ("objects[0].prompts[0].points", [[1, float("nan")]], "objects[0].prompts[0].points[0][1]", "finite number"),
    ("objects[0].prompts[0].labels", [2], "objects[0].prompts[0].labels[0]", "1 (positive)"),
    ("objects[0].prompts[0].labels", [1, 0], "objects[0].prompts[0].labels", "2 labels for 1 points"),
    ("objects[1].prompts[0].box", [30, 2, 1, 40], "objects[1].prompts[0].box", "x1 > x0"),
    ("objects[1].prompts[0].box", [1, 2, 3], "objects[1].prompts[0].box", "[x0, y0, x1, y1]"),
    ("objects[1].prompts[0].mask", "m.png", "objects[1].prompts[0].mask", "cannot be combined"),
    ("objects[1].prompts[0]", {"frame": 1005}, "objects[1].prompts[0]", "needs points, a box or a mask"),
    ("objects[0].prompts", [{"frame": 1001, "box": [1, 1, 2, 2]}] * 2, "objects[0].prompts", "appears twice"),
    ("propagate", {"direction": "sideways"}, "propagate.direction", "one of both, forward, backward"),
    ("output.path", "mattes/sh010.####.png", "output.path", ".exr"),
    ("output.path", "mattes/sh010.exr", "output.path", "no frame number placeholder"),
    ("output.path", "mattes/sh010.1001.exr", "output.path", "no frame number placeholder"),
    ("output.path", "mattes/sh010.####_v1.exr", "output.path", "no frame number placeholder"),
    ("output.compression", "dwaa", "output.compression", "one of zip"),
    ("output.binary", "yes", "output.binary", "true or false"),
    # hostile values: typed refusals naming the field, never a crash (issue 14)
    ("objects[0].prompts[0].points", [[10**400, 20]], "objects[0].prompts[0].points[0][0]", "too large"),
    ("objects[1].prompts[0].box", [1, 2, 10**400, 40], "objects[1].prompts[0].box[2]", "too large"),
    ("objects[0].colour", [-(10**400), 0, 0], "objects[0].colour[0]", "too large"),
    ("colour", {"exact": "yes"}, "colour.exact", "true or false"),
    ("colour", {"exact": 1}, "colour.exact", "true or false"),
    ("plate.frames", "1-100000000", "plate.frames", "at most 100000"),
    ("plate.frames", "1-99999999999999999999", "plate.frames", "at most 100000"),
    ("plate.frames", "1-1000000x10,5-5", "plate.frames", "names 100001 frames"),
    ("plate.path", "plate/sh\0.####.exr", "plate.path", "NUL"),
    ("plate.path", "plate/sh\ud800.####.exr", "plate.path", "surrogate"),
    ("plate.colourspace", "ACES\udfffcg", "plate.colourspace", "surrogate"),
    ("plate.path", "p/" * 2100 + "sh.####.exr", "plate.path", "at most 4096"),
    ("output.path", "mattes/\0/sh010.####.exr", "output.path", "NUL"),
    ("output.path", "mattes//sh010.####.exr", "output.path", "'//'"),
    ("plate.path", "plate//sh010.####.exr", "plate.path", "'//'"),
    ("objects[0].prompts[0].points", [[1, 1]] * 65, "objects[0].prompts[0].points", "at most 64"),
    ("objects", [{"id": i, "name": f"o{i}", "prompts": [{"frame": 1001, "box": [1, 1, 2, 2]}]} for i in range(65)], "objects", "at most 64"),
    ("propagate", {"direction": "x" * 5000}, "propagate.direction", "…"),
]


@pytest.mark.parametrize("path,value,field,words", BAD, ids=[f"{b[0]}={repr(b[1])[:40]}" for b in BAD])
def test_bad_recipes_name_the_field(path: str, value: Any, field: str, words: str) -> None:
    with pytest.raises(RecipeError) as err:
        recipes.parse(_with(path, value))
    assert err.value.field == field
    assert words in str(err.value)


#: Matte paths the recipe accepts; tests/bridge/test_mattes.py checks the matte writer reads each.
GOOD_MATTE_PATHS = ["m/sh010.####.exr", "m/sh010.#.exr", "m/sh010_%04d.exr", "m/sh010.%d.exr", "m/sh010.@@@@.exr", "m/sh010.$F4.exr", "m/SH.####.EXR"]


@pytest.mark.parametrize("path", GOOD_MATTE_PATHS)
def test_matte_paths_with_a_frame_placeholder_are_accepted(path: str) -> None:
    assert recipes.parse(_with("output.path", path)).output.path == path


def test_a_shot_travels_as_the_recipe_parts_of_open() -> None:
    recipe = recipes.parse(BASE)
    shot = recipes.Shot(recipe.plate, recipe.output, recipe.colour, size=(100, 50))
    fields = shot.fields()
    assert fields == {key: BASE[key] for key in ("plate", "output", "colour") if key in BASE}
    assert recipes.Shot.parse(fields) == shot  # `size` stays with the host


def test_a_recipe_file_with_a_number_too_large_for_a_float_is_a_recipe_error(tmp_path: Path) -> None:
    text = json.dumps(_with("objects[0].prompts[0].points", [[10, 20]])).replace("[[10, 20]]", "[[1" + "0" * 400 + ", 20]]")
    (tmp_path / "r.json").write_text(text)
    with pytest.raises(RecipeError) as err:
        recipes.load(tmp_path / "r.json")
    assert err.value.field == "objects[0].prompts[0].points[0][0]" and "too large" in str(err.value)


def test_a_leading_double_slash_is_a_network_path_and_stays() -> None:
    assert recipes.parse(_with("plate.path", "//server/shows/sh010.####.exr")).plate.path == "//server/shows/sh010.####.exr"


def test_not_json_is_a_recipe_error() -> None:
    with pytest.raises(RecipeError, match="not valid JSON"):
        recipes.loads("{nope")


def test_round_trip_is_lossless_and_hash_stable(tmp_path: Path) -> None:
    recipe = recipes.parse(BASE, base_dir=str(tmp_path))
    path = tmp_path / "r.json"
    recipes.save(recipe, path)
    again = recipes.load(path)
    assert again == recipe
    assert again.sha256() == recipe.sha256()
    assert recipes.to_dict(again) == BASE
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp file left


def test_colour_exact_round_trips_and_is_left_out_when_false(tmp_path: Path) -> None:
    data = _with("colour", {"exact": True})
    data["rotobridge_recipe"] = 2
    exact = recipes.parse(data, base_dir=str(tmp_path))
    assert exact.colour.exact and not recipes.parse(BASE).colour.exact
    recipes.save(exact, tmp_path / "r.json")
    assert recipes.load(tmp_path / "r.json") == exact
    assert recipes.to_dict(exact)["colour"] == {"exact": True}
    assert "colour" not in recipes.to_dict(recipes.parse(_with("colour", {"exact": False})))
    assert exact.sha256() != recipes.parse(BASE).sha256()  # a different picture reaches the model
    shot = recipes.Shot(exact.plate, exact.output, exact.colour)
    assert recipes.Shot.parse(shot.fields()).colour.exact  # the protocol's `open` carries it


def test_hash_changes_with_any_prompt() -> None:
    moved = _with("objects[0].prompts[0].points", [[11, 20]])
    assert recipes.parse(moved).sha256() != recipes.parse(BASE).sha256()


def test_relative_paths_resolve_against_the_recipe_folder(tmp_path: Path) -> None:
    path = tmp_path / "shot" / "r.json"
    path.parent.mkdir()
    path.write_text(json.dumps(BASE))
    recipe = recipes.load(path)
    assert recipe.resolve(recipe.plate.path) == str(tmp_path / "shot" / "plate" / "sh010.####.exr")
    assert recipe.resolve("/abs/x.exr") == "/abs/x.exr"
    assert recipe.resolve("ocio://studio-config-latest") == "ocio://studio-config-latest"


@pytest.mark.parametrize(
    "path,value,field,words",
    [
        ("objects[0].prompts[0].frame", 1011, "objects[0].prompts[0].frame", "not in the plate"),
        ("objects[0].prompts[0].points", [[100.5, 20]], "objects[0].prompts[0].points[0]", "outside the 100x50"),
        ("objects[0].prompts[0].points", [[10, -1]], "objects[0].prompts[0].points[0]", "outside"),
        ("objects[1].prompts[0].box", [1, 2, 30, 51], "objects[1].prompts[0].box", "outside"),
        ("propagate", {"start": 999}, "propagate.start", "not in the plate"),
    ],
)
def test_plate_checks_name_the_field(path: str, value: Any, field: str, words: str) -> None:
    recipe = recipes.parse(_with(path, value))
    with pytest.raises(RecipeError) as err:
        recipes.check_against_plate(recipe, 100, 50, range(1001, 1011))
    assert err.value.field == field and words in str(err.value)


def test_points_on_the_far_edge_are_inside() -> None:
    recipe = recipes.parse(_with("objects[0].prompts[0].points", [[100, 50]]))
    recipes.check_against_plate(recipe, 100, 50, range(1001, 1011))


NESTED = {
    (recipes.Recipe, "plate"): recipes.Plate,
    (recipes.Recipe, "colour"): recipes.Colour,
    (recipes.Recipe, "model"): recipes.Model,
    (recipes.Recipe, "propagate"): recipes.Propagate,
    (recipes.Recipe, "output"): recipes.Output,
    (recipes.Recipe, "objects"): recipes.Object,
    (recipes.Object, "prompts"): recipes.Prompt,
    (recipes.Object, "matte"): MatteControls,
}


def _fields(cls: type, prefix: str) -> set[str]:
    out = set()
    for f in dataclasses.fields(cls):
        if f.name == "base_dir":
            continue
        name = f"{prefix}{f.name}"
        inner = NESTED.get((cls, f.name))
        if inner is not None:
            out |= _fields(inner, name + ("[]." if f.name in ("objects", "prompts") else "."))
        else:
            out.add(name)
    return out


def test_doc_table_lists_exactly_the_fields_the_code_reads() -> None:
    documented = set(re.findall(r"^\| `([^`]+)` \|", DOC.read_text(), re.M))
    assert documented == _fields(recipes.Recipe, "") | {recipes.VERSION_KEY}


def test_doc_example_is_a_valid_recipe() -> None:
    example = re.search(r"```json\n(.*?)```", DOC.read_text(), re.S)
    assert example is not None
    recipe = recipes.loads(example.group(1))
    assert [o.name for o in recipe.objects] == ["ball", "crate"]


def _with_matte(matte: dict[str, Any], version: int = 2) -> dict[str, Any]:
    data = _with("objects[0].matte", matte)
    data["rotobridge_recipe"] = version
    return data


def test_matte_controls_round_trip_as_version_2(tmp_path: Path) -> None:
    recipe = recipes.parse(_with_matte({"feather": 2, "despeckle": 40}))
    assert recipe.objects[0].matte == MatteControls(feather=2.0, despeckle=40)
    assert recipe.objects[1].matte is None
    saved = tmp_path / "r.json"
    recipes.save(recipe, saved)
    data = json.loads(saved.read_text())
    assert data["rotobridge_recipe"] == 2
    assert data["objects"][0]["matte"]["feather"] == 2.0 and "matte" not in data["objects"][1]
    assert recipes.load(saved) == recipe and recipes.load(saved).sha256() == recipe.sha256()


def test_a_recipe_without_matte_controls_is_written_as_version_1_with_its_old_hash() -> None:
    recipe = recipes.parse(BASE)
    assert recipe.to_dict()["rotobridge_recipe"] == 1
    assert recipes.parse(_with("rotobridge_recipe", 2)).sha256() == recipe.sha256()
    assert recipes.parse(_with_matte({})).sha256() != recipe.sha256()


@pytest.mark.parametrize(
    ("matte", "version", "field", "words"),
    [
        ({}, 1, "objects[0].matte", "version 2"),
        ({"feather": -1}, 2, "objects[0].matte.feather", "between 0"),
        ({"clip_black": 0.8, "clip_white": 0.2}, 2, "objects[0].matte.clip_black", "below clip_white"),
        ({"smoothing": 2}, 2, "objects[0].matte.smoothing", "between 0"),
        ({"choke": 1}, 2, "objects[0].matte.choke", "unknown field"),
        ([], 2, "objects[0].matte", "object"),
    ],
)
def test_bad_matte_controls_name_the_field(matte: Any, version: int, field: str, words: str) -> None:
    with pytest.raises(RecipeError) as err:
        recipes.parse(_with_matte(matte, version))
    assert err.value.field == field and words in str(err.value)


def test_output_layers_round_trip_as_version_2(tmp_path: Path) -> None:
    data = _with("output.layers", ["raw", "trimap"])
    data["rotobridge_recipe"] = 2
    recipe = recipes.parse(data)
    assert recipe.output.layers == ("raw", "trimap") and recipes.version(recipe) == 2
    saved = tmp_path / "r.json"
    recipes.save(recipe, saved)
    assert json.loads(saved.read_text())["output"]["layers"] == ["raw", "trimap"]
    assert recipes.load(saved) == recipe
    assert recipes.parse(_with("output.layers", [])).to_dict()["rotobridge_recipe"] == 1


@pytest.mark.parametrize(
    ("layers", "version", "names", "field", "words"),
    [
        (["raw"], 1, None, "output.layers", "version 2"),
        (["alpha"], 2, None, "output.layers[0]", "one of raw, edge, trimap"),
        (["edge", "edge"], 2, None, "output.layers", "twice"),
        ("raw", 2, None, "output.layers", "list"),
        (["raw"], 2, ["car", "car_raw"], "objects[1].name", "layer"),
    ],
)
def test_bad_output_layers_name_the_field(layers: Any, version: int, names: list[str] | None, field: str, words: str) -> None:
    data = _with("output.layers", layers)
    data["rotobridge_recipe"] = version
    if names:
        for obj, name in zip(data["objects"], names):
            obj["name"] = name
    with pytest.raises(RecipeError) as err:
        recipes.parse(data)
    assert err.value.field == field and words in str(err.value)


def test_exact_colour_needs_version_2_and_is_written_as_version_2() -> None:
    with pytest.raises(RecipeError) as err:
        recipes.parse(_with("colour", {"exact": True}))
    assert err.value.field == "colour.exact" and "version 2" in str(err.value)
    data = _with("colour", {"exact": True})
    data["rotobridge_recipe"] = 2
    assert recipes.parse(data).to_dict()["rotobridge_recipe"] == 2
