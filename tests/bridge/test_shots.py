"""Shot templates and OpenTimelineIO edits become recipes (no model, no plates read)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import opentimelineio as otio
import pytest

from rotobridge import recipe as recipes
from rotobridge.bridge import cli
from rotobridge.errors import FarmError, RecipeError

TEMPLATE: dict[str, Any] = {
    "rotobridge_recipe": 1,
    "plate": {"path": "${PLATE}", "frames": "${FRAMES}", "colourspace": "${COLOURSPACE}"},
    "model": {"name": "sam2.1-hiera-tiny"},
    "output": {"path": "${SHOW_ROOT}/${SEQ}/${SHOT}/${SHOT}_sam.####.exr"},
}


def _range(first: int, count: int) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(otio.opentime.RationalTime(first, 24), otio.opentime.RationalTime(count, 24))


def _timeline(path: Path, clips: list[otio.schema.Clip]) -> Path:
    timeline = otio.schema.Timeline(name="sq010")
    track = otio.schema.Track()
    timeline.tracks.append(track)
    for clip in clips:
        track.append(clip)
    otio.adapters.write_to_file(timeline, str(path))
    return path


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    template = tmp_path / "template.json"
    template.write_text(json.dumps(TEMPLATE))
    (tmp_path / "prompts").mkdir()
    for shot in ("sh010", "sh020", "sh030"):
        (tmp_path / "prompts" / f"{shot}.json").write_text(json.dumps(
            {"objects": [{"id": 1, "name": "car", "prompts": [{"frame": {"sh010": 1001, "sh020": 1010, "sh030": 5}[shot], "points": [[10, 10]], "labels": [1]}]}]}
        ))
    return template, tmp_path / "prompts" / "${SHOT}.json"


def test_a_three_clip_edit_gives_three_recipes_with_their_plates_and_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    template, prompts = _setup(tmp_path)
    sequence = otio.schema.ImageSequenceReference(
        target_url_base="file:///shows/x/sh010/plate/", name_prefix="sh010_plate.", name_suffix=".exr",
        start_frame=1001, rate=24, frame_zero_padding=4,
    )
    edit = _timeline(tmp_path / "edit.otio", [
        otio.schema.Clip(name="sh010", media_reference=sequence, source_range=_range(1001, 48)),
        otio.schema.Clip(name="sh020", media_reference=otio.schema.ExternalReference(target_url="/shows/x/sh020/plate.%04d.dpx"),
                         source_range=_range(1005, 20)),
        otio.schema.Clip(name="sh030", media_reference=otio.schema.ExternalReference(target_url="file:///shows/x/sh030.mov"),
                         source_range=_range(1, 30)),
    ])
    monkeypatch.setenv("SHOW_ROOT", "/mattes")
    monkeypatch.setenv("COLOURSPACE", "set in the environment, beaten by --set")
    out = tmp_path / "recipes"
    assert cli.main(["shots", str(edit), "--template", str(template), "--prompts", str(prompts), "--out", str(out),
                     "--set", "COLOURSPACE=ACEScg"]) == 0
    assert capsys.readouterr().out.split() == [str(out / f"sh0{i}0.json") for i in (1, 2, 3)]
    made = {p.stem: recipes.load(p) for p in sorted(out.iterdir())}
    assert {k: (r.plate.path, r.plate.frames, r.plate.colourspace) for k, r in made.items()} == {
        "sh010": ("/shows/x/sh010/plate/sh010_plate.####.exr", "1001-1048", "ACEScg"),
        "sh020": ("/shows/x/sh020/plate.%04d.dpx", "1005-1024", "ACEScg"),
        "sh030": ("/shows/x/sh030.mov", "1-30", "ACEScg"),
    }
    assert made["sh020"].output.path == "/mattes/sq010/sh020/sh020_sam.####.exr"
    assert made["sh020"].objects[0].prompts[0].frame == 1010


def test_a_clip_without_media_is_an_error_naming_it_and_nothing_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template, prompts = _setup(tmp_path)
    edit = _timeline(tmp_path / "edit.otio", [
        otio.schema.Clip(name="sh010", media_reference=otio.schema.ExternalReference(target_url="/p/a.####.exr"),
                         source_range=_range(1001, 10)),
        otio.schema.Clip(name="sh020", source_range=_range(1001, 10)),
    ])
    args = ["shots", str(edit), "--template", str(template), "--prompts", str(prompts), "--out", str(tmp_path / "r"),
            "--set", "COLOURSPACE=ACEScg", "--set", "SHOW_ROOT=/m"]
    assert cli.main(args) == FarmError.exit_code
    assert "clip 'sh020' has no media reference" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_templates_fill_strings_only_and_name_unknown_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    template = tmp_path / "t.json"
    data = {**TEMPLATE, "objects": [{"id": 1, "name": "car", "prompts": [{"frame": 1001, "points": [[1, 1]], "labels": [1]}]}]}
    data["plate"] = {"path": "/p/${SHOT}.####.exr", "frames": "1001-1010", "colourspace": "${CS}"}
    template.write_text(json.dumps(data))
    monkeypatch.setenv("SHOW_ROOT", "/m")
    monkeypatch.setenv("CS", "ACEScct")
    out = tmp_path / "sh040.json"
    assert cli.main(["template", str(template), "--shot", "sh040", "--seq", "sq02", "--out", str(out)]) == 0
    recipe = recipes.load(out)
    assert (recipe.plate.path, recipe.plate.colourspace, recipe.output.path) == (
        "/p/sh040.####.exr", "ACEScct", "/m/sq02/sh040/sh040_sam.####.exr")
    monkeypatch.delenv("CS")
    assert cli.main(["template", str(template), "--shot", "sh040", "--seq", "sq02", "--out", str(out)]) == RecipeError.exit_code
    assert "plate.colourspace: unknown template variable ${CS}" in capsys.readouterr().err
    monkeypatch.setenv("CS", '", "colourspace": "sneaky')  # a value is text in a string, never JSON
    assert cli.main(["template", str(template), "--shot", "sh040", "--seq", "sq02", "--out", str(out)]) == 0
    assert recipes.load(out).plate.colourspace == '", "colourspace": "sneaky'
