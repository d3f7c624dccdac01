"""The prompt model hosts store with a shot: edits, refusals, the stored form, recipes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from rotobridge import recipe
from rotobridge.errors import PromptError, RecipeError
from rotobridge.prompts import PromptModel, wire_object

PLATE = recipe.Plate("/shots/sh010/plate/sh010.####.exr", "1001-1010", "ACEScg")
OUTPUT = recipe.Output("/shots/sh010/mattes/sh010_sam.####.exr")
MODEL = recipe.Model(name="sam2.1-hiera-tiny")


def two_objects() -> PromptModel:
    model = PromptModel()
    model.add_object("car", (1.0, 0.5, 0.0))
    model.add_object("person")
    model.add_point(1, 1001, 412.0, 220.5)
    model.add_point(1, 1001, 100.25, 80.0, positive=False)
    model.add_point(2, 1005, 10.0, 20.0)
    model.set_box(2, 1009, (80.0, 300.0, 260.0, 460.0))
    return model


def as_json(model: PromptModel) -> list[dict[str, Any]]:
    return list(json.loads(model.dumps())["objects"])


EDITS: list[tuple[str, Callable[[PromptModel], object], list[dict[str, Any]]]] = [
    (
        "points keep their order and labels",
        lambda m: None,
        [
            {"id": 1, "name": "car", "colour": [1.0, 0.5, 0.0], "prompts": [
                {"frame": 1001, "points": [[412.0, 220.5], [100.25, 80.0]], "labels": [1, 0]}]},
            {"id": 2, "name": "person", "prompts": [
                {"frame": 1005, "points": [[10.0, 20.0]], "labels": [1]}, {"frame": 1009, "box": [80.0, 300.0, 260.0, 460.0]}]},
        ],
    ),
    (
        "move a point (a dragged Nuke knob)",
        lambda m: m.move_point(1, 1001, 1, 101.5, 81.0),
        [{"frame": 1001, "points": [[412.0, 220.5], [101.5, 81.0]], "labels": [1, 0]}],
    ),
    (
        "a box joins the points of its frame",
        lambda m: m.set_box(1, 1001, (1.0, 2.0, 3.0, 4.0)),
        [{"frame": 1001, "points": [[412.0, 220.5], [100.25, 80.0]], "labels": [1, 0], "box": [1.0, 2.0, 3.0, 4.0]}],
    ),
    (
        "frames stay sorted whatever the click order",
        lambda m: m.add_point(1, 990, 5.0, 5.0),
        [{"frame": 990, "points": [[5.0, 5.0]], "labels": [1]},
         {"frame": 1001, "points": [[412.0, 220.5], [100.25, 80.0]], "labels": [1, 0]}],
    ),
    ("clear a frame", lambda m: m.clear(1, 1001), []),
]


@pytest.mark.parametrize(("what", "edit", "car_or_all"), EDITS, ids=[e[0] for e in EDITS])
def test_edits(what: str, edit: Callable[[PromptModel], object], car_or_all: list[dict[str, Any]]) -> None:
    model = two_objects()
    edit(model)
    got = as_json(model)
    assert (got if what.startswith("points") else got[0]["prompts"]) == car_or_all


def test_removing_the_box_of_a_box_only_frame_clears_it() -> None:
    model = two_objects()
    assert model.set_box(2, 1009, None) is None
    assert model.frames(2) == [1005] and model.frames() == [1001, 1005]


def test_rename_and_recolour_keep_prompts_and_ids() -> None:
    model = two_objects()
    before = model.object(1).prompts
    model.rename(1, "truck")
    model.recolour(1, None)
    assert (model.object(1).name, model.object(1).colour, model.object(1).prompts) == ("truck", None, before)


def test_ids_are_stable_and_never_reused() -> None:
    model = two_objects()
    model.remove(2)
    assert model.add_object("tree").id == 3
    model.remove(1)
    assert [o.id for o in model.objects] == [3]
    assert model.add_object("car").id == 4


REFUSED: list[tuple[Callable[[PromptModel], object], type[Exception], str]] = [
    (lambda m: m.add_object("my car"), RecipeError, "cannot be an EXR layer name"),
    (lambda m: m.add_object("2cars"), RecipeError, "cannot be an EXR layer name"),
    (lambda m: m.add_object("car"), PromptError, "already an object called 'car'"),
    (lambda m: m.rename(2, "car"), PromptError, "already an object called 'car'"),
    (lambda m: m.add_object("tree", (1.0, 0.0)), RecipeError, "[r, g, b]"),
    (lambda m: m.add_point(7, 1001, 1.0, 1.0), PromptError, "no object 7 (objects: 1 (car), 2 (person))"),
    (lambda m: m.add_point(1, 1001, float("nan"), 1.0), RecipeError, "finite number"),
    (lambda m: m.add_point(1, 1003.5, 1.0, 1.0), RecipeError, "frame: must be a whole number"),
    (lambda m: m.move_point(1, 1001, 2, 1.0, 1.0), PromptError, "car has no point 3 on frame 1001 (2 there)"),
    (lambda m: m.move_point(1, 1002, 0, 1.0, 1.0), PromptError, "no point 1 on frame 1002 (0 there)"),
    (lambda m: m.set_box(1, 1001, (10.0, 10.0, 5.0, 20.0)), RecipeError, "x1 > x0"),
    (lambda m: m.remove(9), PromptError, "no object 9"),
]


@pytest.mark.parametrize(("edit", "error", "words"), REFUSED)
def test_refused_edits_name_the_problem_and_change_nothing(
    edit: Callable[[PromptModel], object], error: type[Exception], words: str
) -> None:
    model = two_objects()
    before = model.dumps()
    with pytest.raises(error) as info:
        edit(model)
    assert words in str(info.value)
    assert model.dumps() == before


def test_stored_form_is_compact_versioned_json() -> None:
    model = PromptModel()
    model.add_object("car")
    model.add_point(1, 1001, 412.0, 220.5)
    assert model.dumps() == (
        '{"rotobridge_prompts":1,"objects":[{"id":1,"name":"car","prompts":'
        '[{"frame":1001,"points":[[412.0,220.5]],"labels":[1]}]}]}'
    )


def test_stored_form_round_trips_exactly() -> None:
    model = two_objects()
    model.add_object("tree")  # no clicks yet
    model.add_point(1, 1002, 0.1 + 0.2, 1 / 3)
    again = PromptModel.loads(model.dumps())
    assert again.objects == model.objects
    assert again.dumps() == model.dumps()


def test_reading_skips_fields_a_newer_plugin_added() -> None:
    data = json.loads(two_objects().dumps())
    data["selected"] = 2
    data["objects"][0]["visible"] = False
    data["objects"][1]["prompts"][0]["tracked"] = True
    assert PromptModel.loads(json.dumps(data)).objects == two_objects().objects


def test_empty_storage_is_an_empty_model() -> None:
    assert PromptModel.loads("").objects == () and PromptModel.loads("  \n").objects == ()


DAMAGED = [
    ("{", "not JSON"),
    ("[]", "lack their version"),
    ('{"objects": []}', "lack their version"),
    ('{"rotobridge_prompts": 2, "objects": []}', "newer rotobridge (version 2"),
    ('{"rotobridge_prompts": 1, "objects": {}}', "must be a list"),
    ('{"rotobridge_prompts": 1, "objects": [{"id": "1", "name": "car"}]}', "objects[0].id: must be a whole number"),
    ('{"rotobridge_prompts": 1, "objects": [{"id": 1, "name": "car", "prompts": {}}]}', "objects[0].prompts: must be a list"),
    (
        '{"rotobridge_prompts": 1, "objects": [{"id": 1, "name": "car", "prompts": [{"frame": 1, "points": [[1, "2"]], "labels": [1]}]}]}',
        "objects[0].prompts[0].points[0][1]: must be a finite number",
    ),
    (
        '{"rotobridge_prompts": 1, "objects": [{"id": 1, "name": "car", "prompts": [{"frame": 1, "box": [1, 2, 3, 4]}, {"frame": 1, "box": [1, 2, 3, 4]}]}]}',
        "frame 1 appears twice",
    ),
    ('{"rotobridge_prompts": 1, "objects": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]}', "object id 1 is used twice"),
    ('{"rotobridge_prompts": 1, "objects": [{"id": 1, "name": "a"}, {"id": 2, "name": "a"}]}', "already an object called 'a'"),
]


@pytest.mark.parametrize(("text", "words"), DAMAGED)
def test_damaged_storage_is_refused_with_the_field(text: str, words: str) -> None:
    with pytest.raises(PromptError) as info:
        PromptModel.loads(text)
    assert words in str(info.value)


def test_recipe_from_prompts_saves_and_loads_equal(tmp_path: Path) -> None:
    made = two_objects().to_recipe(PLATE, OUTPUT, MODEL, recipe.Colour(config="ocio://studio-config-latest"))
    recipe.save(made, tmp_path / "sh010.recipe.json")
    loaded = recipe.load(tmp_path / "sh010.recipe.json")
    assert loaded == made
    assert loaded.objects == two_objects().objects and loaded.plate == PLATE


def test_recipe_needs_a_click_on_every_object() -> None:
    model = two_objects()
    model.add_object("tree")
    with pytest.raises(PromptError, match="no clicks yet on tree: click on each object"):
        model.to_recipe(PLATE, OUTPUT, MODEL)
    with pytest.raises(PromptError, match="no objects yet"):
        PromptModel().to_recipe(PLATE, OUTPUT, MODEL)


def test_recipe_validation_is_recipe_py_s() -> None:
    with pytest.raises(RecipeError, match="output.path: mattes are OpenEXR"):
        two_objects().to_recipe(PLATE, recipe.Output("/mattes/sh010.####.png"), MODEL)


def test_wire_object_is_the_protocol_object() -> None:
    model = two_objects()
    assert wire_object(model.object(1)) == {"id": 1, "name": "car", "colour": [1.0, 0.5, 0.0]}
    assert wire_object(model.object(2)) == {"id": 2, "name": "person"}
