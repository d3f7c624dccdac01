"""Matte controls in the batch path: the writer's final mattes and extra layers, renders of
recipes with `objects[].matte` / `output.layers`, and `rotobridge refine` on existing mattes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio
import pytest
import torch

from rotobridge.bridge import cli, refine, tracking
from rotobridge.bridge.colour import ColourPipeline
from rotobridge.bridge.mattes import MatteWriter, object_matte, plate_guide, read_matte
from rotobridge.bridge.plate import Window, open_plate
from rotobridge.controls import UNCHANGED, MatteControls
from rotobridge.errors import OutputError

from .recipes import car, person, write_recipe
from .plates import write_sequence

OBJECTS = [(2, "person"), (1, "car")]
DISPLAY = Window(0, 0, 40, 30)
OVERSCAN = Window(-3, -2, 46, 34)
ACES = "ACEScg"


def _logits(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 4


def _writer(tmp: Path, **options: Any) -> MatteWriter:
    return MatteWriter(str(tmp / "m.####.exr"), DISPLAY, OVERSCAN, OBJECTS, **options)


def _half(matte: torch.Tensor) -> np.ndarray:
    """A display-window matte as the writer stores it in OVERSCAN: half, overscan 0."""
    out = np.zeros((OVERSCAN.height, OVERSCAN.width), np.float16)
    out[2:32, 3:43] = matte.reshape(DISPLAY.height, DISPLAY.width).to(torch.float16).numpy()
    return out


def _guide(frame: int) -> torch.Tensor:
    """A plate with a vertical edge at x = 17 + frame: what edge refinement reads."""
    out = torch.full((1, 3, DISPLAY.height, DISPLAY.width), 0.1)
    out[..., 17 + frame :] = 0.9
    return out


# --- the writer ----------------------------------------------------------------------------


def test_without_controls_or_layers_the_matte_is_the_raw_path_bit_for_bit(tmp_path: Path) -> None:
    """An object with no `matte` block gets exactly what the writer always wrote, also when
    another object's controls or an extra layer send the frame through the new path."""
    logits = _logits()
    raw = _writer(tmp_path).frame_pixels(1, logits)
    for options in ({"layers": ["raw"]}, {"controls": [None, MatteControls(refine=0, feather=2)]}):
        mixed = _writer(tmp_path, **options).frame_pixels(1, logits)
        assert np.array_equal(mixed[..., 0], raw[..., 0])
    assert np.array_equal(_writer(tmp_path, layers=["raw"]).frame_pixels(1, logits)[..., :2], raw)
    binary = _writer(tmp_path, binary=True).frame_pixels(1, logits)
    assert np.array_equal(_writer(tmp_path, binary=True, layers=["edge"]).frame_pixels(1, logits)[..., :2], binary)
    for i in range(2):  # the one function makes the same matte
        assert np.array_equal(_half(object_matte(logits[i : i + 1], None, None, 30, 40)), raw[..., i])


def test_controls_apply_as_refine_defines_them(tmp_path: Path) -> None:
    logits = _logits(1)
    grow = MatteControls(refine=0, smoothing=0, shrink_grow=3)
    feather = MatteControls(refine=0, smoothing=0, feather=2.5)
    pixels = _writer(tmp_path, controls=[grow, feather]).frame_pixels(5, logits)
    raw = _writer(tmp_path).frame_pixels(5, logits)
    for i, controls in enumerate((grow, feather)):
        want = refine.apply(logits[i : i + 1], None, controls, 30, 40)
        assert np.array_equal(pixels[..., i], _half(want))
    display = (slice(2, 32), slice(3, 43))
    assert (pixels[display][..., 0] >= raw[display][..., 0]).all() and pixels[..., 0].sum() > raw[..., 0].sum() + 10
    assert np.abs(np.diff(pixels[display][..., 1].astype(np.float32), axis=1)).max() < np.abs(
        np.diff(raw[display][..., 1].astype(np.float32), axis=1)
    ).max()
    assert (pixels[:2] == 0).all() and (pixels[:, :3] == 0).all()  # overscan stays empty


def test_edge_refinement_reads_the_plate_of_the_frame(tmp_path: Path) -> None:
    logits = torch.full((2, 1, 8, 8), -6.0)
    logits[..., 4:] = 6.0  # SAM 2 puts a hard edge at x = 20 of 40; the plate's is elsewhere
    asked: list[int] = []

    def guide(frame: int) -> torch.Tensor:
        asked.append(frame)
        return _guide(frame)

    controls = [MatteControls(smoothing=0), None]
    writer = _writer(tmp_path, controls=controls, guide=guide)
    first, second = writer.frame_pixels(0, logits), writer.frame_pixels(4, logits)
    assert asked == [0, 4]
    for frame, pixels in ((0, first), (4, second)):
        assert np.array_equal(pixels[..., 0], _half(refine.apply(logits[:1], _guide(frame), controls[0], 30, 40)))
    assert not np.array_equal(first[..., 0], second[..., 0])  # the plate moved the edge
    assert np.array_equal(first[..., 1], second[..., 1])  # the raw object ignores the plate
    with pytest.raises(ValueError, match="guide"):
        _writer(tmp_path, controls=controls)
    unread = _writer(tmp_path, controls=[UNCHANGED, None], guide=lambda f: pytest.fail("read the plate"))
    unread.frame_pixels(0, logits)


def test_extra_layers_are_named_written_and_defined(tmp_path: Path) -> None:
    logits = _logits(2) * 10  # mostly solid or empty, so every trimap value appears
    feather = MatteControls(refine=0, smoothing=0, feather=1.5)
    writer = _writer(tmp_path, controls=[feather, None], layers=["raw", "edge", "trimap"], binary=True)
    writer.write(7, logits)
    channels, header = read_matte(writer.path(7))
    assert writer.all_channels == [
        "person.A", "car.A", "person_raw.A", "person_edge.A", "person_trimap.A", "car_raw.A", "car_edge.A", "car_trimap.A"
    ]
    assert sorted(channels) == sorted(writer.all_channels)  # EXR sorts them on disk
    described = json.loads(str(header["rotobridge:objects"]))
    assert described[0]["layers"] == {"raw": "person_raw.A", "edge": "person_edge.A", "trimap": "person_trimap.A"}
    soft = refine.apply(logits[:1], None, feather, 30, 40)
    raw = object_matte(logits[:1], None, None, 30, 40)
    assert np.array_equal(channels["person.A"], _half(soft > 0.5).astype(np.float32))  # binary: the final matte
    assert np.array_equal(channels["person_raw.A"], _half(raw).astype(np.float32))
    assert np.array_equal(channels["person_edge.A"], _half(4 * soft * (1 - soft)).astype(np.float32))
    trimap = channels["person_trimap.A"][2:32, 3:43]
    s = soft.reshape(30, 40).numpy()
    assert (trimap[s <= 0.01] == 0).all() and (trimap[s >= 0.99] == 1).all()
    assert (trimap[(s > 0.01) & (s < 0.99)] == 0.5).all() and set(np.unique(trimap)) == {0, 0.5, 1}
    assert writer.existing(7) == "whole"
    with pytest.raises(OutputError, match="layer"):
        MatteWriter(str(tmp_path / "x.####.exr"), DISPLAY, DISPLAY, [(1, "a"), (2, "a_raw")], layers=["raw"])


# --- renders -------------------------------------------------------------------------------


def _recipe(tmp: Path, checkpoint: Path, plate: str, out: str, **changes: Any) -> Path:
    return write_recipe(tmp / f"{out}.json", checkpoint, plate, "1001-1003", tmp / out,
                        objects=[car(1001), person(1001)], version=2, colourspace=ACES, **changes)


def test_a_render_with_controls_is_the_function_on_the_same_logits(
    tmp_path: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bit for bit, so a session's mattes (made by the same function) match a farm render.
    Without temporal smoothing, which needs the neighbouring frames (test_smoothing.py)."""
    plate = write_sequence(tmp_path / "plate", "sh", range(1001, 1004), 64, 48, overscan=4)
    controls = {"refine": 1, "smoothing": 0, "despeckle": 4, "shrink_grow": -1.5, "feather": 1}
    recipe = _recipe(tmp_path, tiny_checkpoint, plate, "refined", output={"layers": ["raw"]})
    data = json.loads(recipe.read_text())
    data["objects"][0]["matte"] = controls
    recipe.write_text(json.dumps(data))
    plain = _recipe(tmp_path, tiny_checkpoint, plate, "plain")
    seen: dict[int, torch.Tensor] = {}
    original = MatteWriter.write

    def write(self: MatteWriter, frame: int, logits: torch.Tensor | None) -> str:
        if self.layers:
            assert logits is not None
            seen[frame] = logits.clone()
        return original(self, frame, logits)

    monkeypatch.setattr(tracking.MatteWriter, "write", write)
    for path in (recipe, plain):
        assert cli.main(["render", str(path), "--device", "cpu", "--quiet"]) == 0
    assert sorted(seen) == [1001, 1002, 1003]
    with open_plate(plate) as opened:
        guide = plate_guide(opened, ColourPipeline(ACES))
        for frame, logits in seen.items():
            got, header = read_matte(str(tmp_path / "refined" / f"m.{frame}.exr"))
            before, _ = read_matte(str(tmp_path / "plain" / f"m.{frame}.exr"))
            assert sorted(got) == ["car.A", "car_raw.A", "person.A", "person_raw.A"]
            want = object_matte(logits[:1], guide(frame), MatteControls(**controls), 48, 64)
            assert np.array_equal(got["car.A"][4:52, 4:68], want[0, 0].to(torch.float16).numpy().astype(np.float32))
            assert not np.array_equal(got["car.A"], before["car.A"])
            for name in ("car_raw.A", "person.A", "person_raw.A"):  # the raw mattes are the version 1 render's
                assert np.array_equal(got[name], before[name.replace("_raw", "")]), name
            assert header["rotobridge:recipe_sha256"] != read_matte(str(tmp_path / "plain" / f"m.{frame}.exr"))[1][
                "rotobridge:recipe_sha256"
            ]


# --- rotobridge refine ---------------------------------------------------------------------


def _write_png(path: Path, matte: np.ndarray) -> None:
    out = oiio.ImageOutput.create(str(path))
    assert out is not None
    assert out.open(str(path), oiio.ImageSpec(matte.shape[1], matte.shape[0], 1, oiio.UINT8))
    assert out.write_image(np.ascontiguousarray(matte[..., None])) and out.close()


def _disc(frame: int) -> np.ndarray:
    y, x = np.mgrid[0:48, 0:64]
    return (((x - 30 - frame) ** 2 + (y - 24) ** 2) < 150).astype(np.float32)


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(["refine", *args, "--device", "cpu", "--quiet"])
    return code, capsys.readouterr().err


def test_refine_command_on_png_and_rotobridge_exr_mattes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plate = write_sequence(tmp_path / "plate", "sh", range(1, 4), 64, 48)
    (tmp_path / "png").mkdir()
    for f in range(1, 4):
        _write_png(tmp_path / "png" / f"roto.{f:04d}.png", (_disc(f) * 255).astype(np.uint8))
    common = ["--plate", plate, "--colourspace", ACES]
    code, err = _run(capsys, str(tmp_path / "png" / "roto.####.png"), *common, "--out", str(tmp_path / "a" / "r.####.exr"),
                     "--refine", "0", "--smoothing", "0", "--shrink-grow", "2", "--feather", "1")
    assert code == 0, err
    controls = MatteControls(refine=0, smoothing=0, shrink_grow=2, feather=1)
    for f in range(1, 4):
        channels, header = read_matte(str(tmp_path / "a" / f"r.{f:04d}.exr"))
        assert list(channels) == ["matte.A"]
        want = refine.apply_to_matte(torch.from_numpy(_disc(f)).view(1, 1, 48, 64), None, controls)
        assert np.array_equal(channels["matte.A"], want[0, 0].to(torch.float16).numpy().astype(np.float32))
        assert channels["matte.A"].sum() > _disc(f).sum() + 20
        assert json.loads(str(header["rotobridge:controls"]))["shrink_grow"] == 2

    # a rotobridge matte with overscan keeps its objects and windows; refinement reads the plate
    source = MatteWriter(str(tmp_path / "sam" / "m.####.exr"), Window(0, 0, 64, 48), Window(-2, -2, 68, 52), [(1, "car"), (4, "dog")])
    for f in range(1, 4):
        source.write(f, _logits(f))
    code, err = _run(capsys, str(tmp_path / "sam" / "m.####.exr"), *common, "--out", str(tmp_path / "plain" / "m.####.exr"),
                     "--frames", "2-3", "--refine", "0", "--smoothing", "0")
    assert code == 0, err
    plain, header = read_matte(str(tmp_path / "plain" / "m.0002.exr"))
    original, _ = read_matte(str(tmp_path / "sam" / "m.0002.exr"))
    assert sorted(plain) == ["car.A", "dog.A"] and header["data_window"] == Window(-2, -2, 68, 52)
    assert np.array_equal(plain["car.A"], original["car.A"])  # refine 0, nothing else: unchanged
    assert not (tmp_path / "plain" / "m.0001.exr").exists()


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    out = oiio.ImageOutput.create(str(path))
    assert out is not None
    assert out.open(str(path), oiio.ImageSpec(rgb.shape[1], rgb.shape[0], 3, oiio.HALF))
    assert out.write_image(np.ascontiguousarray(rgb, np.float32)) and out.close()


def test_refine_command_refines_a_hard_matte_against_its_plate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A step matte at x = 160 of 1024 (SAM 2's grid: a 4-pixel cell); the plate's edge is at
    157 on frame 1 and at 163 on frame 2: refinement moves the matte's edge towards it."""
    (tmp_path / "plate").mkdir()
    (tmp_path / "roto").mkdir()
    step = np.zeros((64, 1024), np.float32)
    step[:, 160:] = 1
    for frame, edge in ((1, 157), (2, 163)):
        rgb = np.full((64, 1024, 3), 0.02, np.float32)
        rgb[:, edge:] = 0.6
        _write_rgb(tmp_path / "plate" / f"p.{frame:04d}.exr", rgb)
        _write_png(tmp_path / "roto" / f"r.{frame:04d}.png", (step * 255).astype(np.uint8))
    plate = str(tmp_path / "plate" / "p.####.exr")
    code, err = _run(capsys, str(tmp_path / "roto" / "r.####.png"), "--plate", plate, "--colourspace", ACES,
                     "--out", str(tmp_path / "out" / "r.####.exr"), "--refine", "1", "--smoothing", "0")
    assert code == 0, err
    got = [read_matte(str(tmp_path / "out" / f"r.{f:04d}.exr"))[0]["matte.A"] for f in (1, 2)]
    matte = torch.from_numpy(step).view(1, 1, 64, 1024)
    with open_plate(plate) as opened:
        guide = plate_guide(opened, ColourPipeline(ACES))
        for frame, written in zip((1, 2), got):
            want = refine.apply_to_matte(matte, guide(frame), MatteControls(refine=1, smoothing=0))
            assert np.array_equal(written, want[0, 0].to(torch.float16).numpy().astype(np.float32))
    raw = refine.raw_matte(refine.matte_logits(matte), 64, 1024)[0, 0].numpy()
    band = slice(150, 170)
    assert got[0][:, band].sum() > raw[:, band].sum() + 20 and got[1][:, band].sum() < raw[:, band].sum() - 20


def test_refine_command_refuses_bad_controls_and_its_own_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plate = write_sequence(tmp_path / "plate", "sh", range(1, 3), 64, 48)
    (tmp_path / "in").mkdir()
    for f in range(1, 3):
        _write_png(tmp_path / "in" / f"roto.{f:04d}.png", (_disc(f) * 255).astype(np.uint8))
    mattes, out = str(tmp_path / "in" / "roto.####.png"), str(tmp_path / "out" / "r.####.exr")
    common = [mattes, "--plate", plate, "--colourspace", ACES]
    (tmp_path / "bad.json").write_text(json.dumps({"feather": 1, "blur": 2}))
    (tmp_path / "clip.json").write_text(json.dumps({"clip_black": 0.6, "clip_white": 0.4}))
    for extra, field in (
        (["--feather", "-1"], "controls.feather"),
        (["--controls", str(tmp_path / "bad.json")], "controls.blur"),
        (["--controls", str(tmp_path / "clip.json")], "controls.clip_black"),
        (["--controls", str(tmp_path / "clip.json"), "--clip-white", "0.5"], "controls.clip_black"),
        (["--name", "9lives"], "--name"),
    ):
        code, err = _run(capsys, *common, "--out", out, *extra)
        assert code == 2 and f"bad_recipe: {field}:" in err, (extra, err)
    assert not (tmp_path / "out").exists()
    exr = MatteWriter(str(tmp_path / "in" / "m.####.exr"), Window(0, 0, 64, 48), Window(0, 0, 64, 48), [(1, "car")])
    for f in range(1, 3):
        exr.write(f, _logits(f)[:1])
    before = [(tmp_path / "in" / f"m.{f:04d}.exr").read_bytes() for f in range(1, 3)]
    code, err = _run(capsys, str(tmp_path / "in" / "m.####.exr"), *common[1:], "--out", str(tmp_path / "in" / "m.####.exr"), "--overwrite")
    assert code == 2 and "bad_recipe: --out:" in err and "is the input matte" in err
    assert [(tmp_path / "in" / f"m.{f:04d}.exr").read_bytes() for f in range(1, 3)] == before
    assert _run(capsys, *common, "--out", out)[0] == 0
    code, err = _run(capsys, *common, "--out", out)
    assert code == 6 and "matte_exists" in err
    assert _run(capsys, *common, "--out", out, "--overwrite")[0] == 0
    code, err = _run(capsys, *common, "--out", str(tmp_path / "o2" / "r.####.exr"), "--frames", "1-5")
    assert code == 2 and "--frames" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["r.0001.exr", "r.0002.exr"]  # no temporaries


def test_docs_list_exactly_the_refine_options() -> None:
    import argparse
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "refine.md").read_text()
    section = doc[doc.index("## `rotobridge refine`") : doc.index("## Edge refinement")]
    documented = {o for row in re.findall(r"^\| (.*?) \|", section, re.M) for o in re.findall(r"`(--[\w-]+)`", row)}
    parser = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["refine"]
    options = {o for a in parser._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
    assert documented == options
    assert "| `MATTES` |" in section
