"""The bundled example stays runnable: its recipes parse and its clicks land on its objects."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from rotobridge import recipe as recipes
from rotobridge.bridge.plate import open_plate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _make_shot():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("make_shot", EXAMPLES / "make_shot.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["sh010.recipe.json", "sh010.offline.recipe.json"])
def test_example_recipe_prompts_hit_the_objects(tmp_path: Path, name: str) -> None:
    shot = _make_shot()
    pattern = shot.write_shot(tmp_path / "shot")
    recipe = recipes.load(EXAMPLES / name)
    with open_plate(pattern, recipe.plate.frames) as plate:
        display = plate.info.display
        recipes.check_against_plate(recipe, display.width, display.height, plate.info.frames)
        ball, crate = recipe.objects
        for prompt in ball.prompts:
            (x, y), _ = prompt.points
            r, g, b = plate.read(prompt.frame)[int(y), int(x)]
            assert r > 5 * g and r > 5 * b, "the ball's positive click must land on the red ball"
        for prompt in crate.prompts:
            if prompt.box:
                assert tuple(prompt.box) == shot.crate_box(prompt.frame - shot.FIRST)
            for x, y in prompt.points:
                x0, y0, x1, y1 = shot.crate_box(prompt.frame - shot.FIRST)
                assert x0 < x < x1 and y0 < y < y1
