"""Matte controls: defaults, JSON round trip, and every bad value refused naming its field."""

from __future__ import annotations

import re
from typing import Any

import pytest

from rotobridge import controls
from rotobridge.controls import UNCHANGED, MatteControls
from rotobridge.errors import RecipeError

WHERE = "objects[0].matte"


def test_defaults_refine_edges_and_change_nothing_else() -> None:
    c = MatteControls()
    assert c.refine == 1.0 and c.refine_radius == 0.0  # automatic: scaled with the plate
    assert (c.despeckle, c.clip_black, c.clip_white, c.shrink_grow, c.feather) == (0, 0.0, 1.0, 0.0, 0.0)
    assert UNCHANGED.refine == 0.0 and UNCHANGED.to_json() | {"refine": 1.0, "smoothing": 1.0} == c.to_json()


def test_json_round_trip_and_defaults_for_missing_fields() -> None:
    c = MatteControls(refine=0.5, refine_radius=20, despeckle=30, clip_black=0.1, clip_white=0.9, shrink_grow=-1.5, feather=2)
    assert controls.parse(c.to_json(), WHERE) == c
    assert controls.parse({}, WHERE) == MatteControls()
    assert controls.parse({"feather": 3}, WHERE) == MatteControls(feather=3.0)


BAD: list[tuple[dict[str, Any], str, str]] = [
    # (controls, field named in the error, words in the message)
    ({"refine_radius": -1}, "refine_radius", "radius"),
    ({"feather": -0.5}, "feather", "radius"),
    ({"feather": 10_000}, "feather", "between 0 and 512"),
    ({"refine": 1.5}, "refine", "between 0"),
    ({"refine": "full"}, "refine", "finite number"),
    ({"refine_radius": 0.5}, "refine_radius", "0 (automatic) or at least 1"),
    ({"despeckle": -3}, "despeckle", "0 (off) or more"),
    ({"despeckle": 2.5}, "despeckle", "whole number"),
    ({"clip_black": 0.6, "clip_white": 0.5}, "clip_black", "below clip_white"),
    ({"clip_black": 0.5, "clip_white": 0.5}, "clip_black", "below clip_white"),
    ({"clip_white": 1.2}, "clip_white", "at most 1"),
    ({"clip_black": -0.1}, "clip_black", "at least 0"),
    ({"shrink_grow": -600}, "shrink_grow", "between -512 and 512"),
    ({"shrink_grow": True}, "shrink_grow", "finite number"),
    ({"choke": 2}, "choke", "unknown field"),
]


@pytest.mark.parametrize(("data", "field", "words"), BAD)
def test_bad_values_name_the_field(data: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(RecipeError) as caught:
        controls.parse(data, WHERE)
    assert caught.value.field == f"{WHERE}.{field}"
    assert words in str(caught.value) and str(caught.value).startswith(f"{WHERE}.{field}: ")


def test_the_dataclass_itself_refuses_bad_values() -> None:
    with pytest.raises(RecipeError) as caught:
        MatteControls(feather=-1.0)
    assert caught.value.field == "feather"
    with pytest.raises(RecipeError, match="clip_black"):
        MatteControls(clip_black=0.9, clip_white=0.1)


def test_controls_must_be_an_object() -> None:
    with pytest.raises(RecipeError, match=rf"^{re.escape(WHERE)}: must be an object"):
        controls.parse([1, 2], WHERE)
