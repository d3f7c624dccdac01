"""`rotobridge render` end to end: real plates in, EXR mattes out, exit codes, nothing half-done.

A random-weight checkpoint at a reduced size keeps each render to seconds; what is checked
is the plumbing (windows, channel names, metadata, frame numbers, errors), not matte quality.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio
import pytest

from rotobridge.bridge import cli
from rotobridge.bridge.mattes import read_matte
from rotobridge.bridge.model import build
from rotobridge.errors import ModelError

from ..conftest import SMALL_SIZE, TINY_CONFIG
from .recipes import car, person, write_recipe
from .plates import write_movie, write_sequence

ROOT = Path(__file__).resolve().parents[2]


def _recipe(tmp: Path, checkpoint: Path, plate_path: str, frames: str, colourspace: str, **extra: Any) -> Path:
    first = int(frames.split("-")[0])
    objects = extra.pop("objects", [car(first), person(first)])
    return write_recipe(tmp / "recipe.json", checkpoint, plate_path, frames, tmp / "mattes",
                        objects=objects, colourspace=colourspace, **extra)


def _mattes(tmp: Path, hidden: bool = False) -> list[str]:
    """Matte files under their final names (and, with hidden, temporary files too)."""
    folder = tmp / "mattes"
    names = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    return [n for n in names if hidden or not n.startswith(".")]


@pytest.mark.parametrize(
    "kind,colourspace",
    [
        ("exr-overscan", "ACEScg"),
        ("exr-underscan", "ARRI LogC4"),
        ("dpx10", "ACEScct"),
        ("png16", "sRGB Encoded Rec.709 (sRGB)"),
        ("tif8", "sRGB Encoded Rec.709 (sRGB)"),
    ],
)
def test_plate_kinds_render_with_windows_channels_and_metadata(
    tmp_path: Path, tiny_checkpoint: Path, kind: str, colourspace: str
) -> None:
    frames = range(1001, 1005)
    fmt, dtype, overscan = {
        "exr-overscan": ("exr", "half", 6),
        "exr-underscan": ("exr", "float", (4, 2, 50, 40)),
        "dpx10": ("dpx", "uint10", 0),
        "png16": ("png", "uint16", 0),
        "tif8": ("tif", "uint8", 0),
    }[kind]
    plate = write_sequence(tmp_path / "plate", "sh010", frames, 64, 48, fmt=fmt, dtype=dtype, overscan=overscan)
    recipe = _recipe(tmp_path, tiny_checkpoint, plate, "1001-1004", colourspace)
    qc = tmp_path / "qc.png"
    assert cli.main(["render", str(recipe), "--device", "cpu", "--quiet", "--qc", str(qc)]) == 0
    assert _mattes(tmp_path) == [f"m.{f}.exr" for f in frames]
    sheet = oiio.ImageInput.open(str(qc))
    assert sheet is not None and sheet.spec().nchannels == 3 and sheet.spec().width > 64
    sheet.close()
    source = oiio.ImageInput.open(plate.replace("####", "1001"))
    want = source.spec()
    source.close()
    channels, header = read_matte(str(tmp_path / "mattes" / "m.1003.exr"))
    assert list(channels) == ["car.A", "person.A"]
    spec = oiio.ImageInput.open(str(tmp_path / "mattes" / "m.1003.exr")).spec()
    assert (spec.x, spec.y, spec.width, spec.height) == (want.x, want.y, want.width, want.height)
    assert (spec.full_x, spec.full_y, spec.full_width, spec.full_height) == (0, 0, 64, 48)
    assert spec.format == oiio.HALF and spec.get_string_attribute("compression") == "zip"
    assert spec.get_string_attribute("rotobridge:colourspace") == "Raw"
    assert spec.get_string_attribute("rotobridge:plate_colourspace") == colourspace
    assert spec.get_string_attribute("rotobridge:untrained") == "true"
    assert len(spec.get_string_attribute("rotobridge:checkpoint_sha256")) == 64
    assert [o["id"] for o in json.loads(spec.get_string_attribute("rotobridge:objects"))] == [1, 7]
    for matte in channels.values():
        assert matte.min() >= 0 and matte.max() <= 1 and matte.std() > 0


def test_movie_plate_renders_with_first_frame_offset(tmp_path: Path, tiny_checkpoint: Path) -> None:
    movie = write_movie(tmp_path / "plate.mp4", 6, 64, 48)
    recipe = _recipe(tmp_path, tiny_checkpoint, movie, "1001-1006", "sRGB Encoded Rec.709 (sRGB)", plate={"first_frame": 1001})
    assert cli.main(["render", str(recipe), "--device", "cpu", "--quiet"]) == 0
    assert _mattes(tmp_path) == [f"m.{f}.exr" for f in range(1001, 1007)]


def test_frames_subset_renders_only_those(tmp_path: Path, tiny_checkpoint: Path) -> None:
    plate = write_sequence(tmp_path / "plate", "sh", range(1001, 1009), 64, 48)
    recipe = _recipe(tmp_path, tiny_checkpoint, plate, "1001-1008", "ACEScg")
    assert cli.main(["render", str(recipe), "--frames", "1004-1006", "--device", "cpu", "--quiet"]) == 0
    assert _mattes(tmp_path) == ["m.1004.exr", "m.1005.exr", "m.1006.exr"]


def test_forward_only_leaves_frames_before_the_prompt_empty(tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plate = write_sequence(tmp_path / "plate", "sh", range(1001, 1006), 64, 48)
    recipe = _recipe(tmp_path, tiny_checkpoint, plate, "1001-1005", "ACEScg", propagate={"direction": "forward", "start": 1003})
    data = json.loads(recipe.read_text())
    for obj in data["objects"]:
        obj["prompts"][0]["frame"] = 1003
    recipe.write_text(json.dumps(data))
    assert cli.main(["render", str(recipe), "--device", "cpu", "--quiet"]) == 0
    assert "2 frame(s) not reached" in capsys.readouterr().out
    early, _ = read_matte(str(tmp_path / "mattes" / "m.1001.exr"))
    late, _ = read_matte(str(tmp_path / "mattes" / "m.1004.exr"))
    assert all(m.max() == 0 for m in early.values()) and all(m.max() > 0 for m in late.values())


# --- bad input: a clear error, a distinct exit code, nothing written -----------------

def _bad(tmp: Path, checkpoint: Path, **changes: Any) -> Path:
    plate = write_sequence(tmp / "plate", "sh", [1001, 1002, 1004], 64, 48)
    return _recipe(tmp, checkpoint, plate, changes.pop("frames", "1001-1002"), changes.pop("colourspace", "ACEScg"), **changes)


@pytest.mark.parametrize(
    "changes,args,code,words",
    [
        ({"frames": "1001-1004"}, [], 3, "plate frame 1003 is missing: "),
        ({"colourspace": "ACEScgg"}, [], 4, "ACEScgg"),
        ({"plate": {"colour": 1}}, [], 2, "plate.colour: unknown field"),
        ({"objects": [{"id": 1, "name": "car", "prompts": [{"frame": 1001, "points": [[65, 2]], "labels": [1]}]}]}, [], 2,
         "objects[0].prompts[0].points[0]: (65, 2) is outside the 64x48 image"),
        ({"objects": [{"id": 1, "name": "car", "prompts": [{"frame": 1003, "points": [[5, 2]], "labels": [1]}]}]}, [], 2,
         "objects[0].prompts[0].frame: frame 1003 is not in the plate"),
        ({}, ["--frames", "1001-1009"], 2, "--frames: frame 1003 is outside"),
        ({"model": {"checkpoint": "nope.pt"}}, [], 5, "does not exist"),
    ],
)
def test_bad_input_exits_with_a_clear_error_and_writes_nothing(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, Any], args: list[str], code: int, words: str
) -> None:
    recipe = _bad(tmp_path, tiny_checkpoint, **changes)
    assert cli.main(["render", str(recipe), "--device", "cpu", "--quiet", *args]) == code
    assert words in capsys.readouterr().err
    assert _mattes(tmp_path, hidden=True) == []


def test_existing_mattes_are_not_overwritten_unless_asked(tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = _bad(tmp_path, tiny_checkpoint)
    (tmp_path / "mattes").mkdir()
    (tmp_path / "mattes" / "m.1002.exr").write_bytes(b"precious")
    assert cli.main(["render", str(recipe), "--device", "cpu", "--quiet"]) == 6
    assert "m.1002.exr" in capsys.readouterr().err
    assert _mattes(tmp_path) == ["m.1002.exr"] and (tmp_path / "mattes" / "m.1002.exr").read_bytes() == b"precious"
    assert cli.main(["render", str(recipe), "--device", "cpu", "--quiet", "--overwrite"]) == 0
    assert _mattes(tmp_path) == ["m.1001.exr", "m.1002.exr"]
    assert read_matte(str(tmp_path / "mattes" / "m.1002.exr"))[0]["car.A"].shape == (48, 64)


def test_an_absent_object_gives_an_exactly_empty_matte(tmp_path: Path) -> None:
    """When SAM 2's object-score head says "absent", the matte is 0 everywhere, not a faint ghost."""
    import torch

    from rotobridge.bridge.model import UNTRAINED_KEY, make_random_checkpoint

    path = make_random_checkpoint(TINY_CONFIG, tmp_path / "absent.pt", seed=3)
    data = torch.load(path, weights_only=True)
    data["model"]["sam_mask_decoder.pred_obj_score_head.layers.2.bias"].fill_(-8.0)
    torch.save({"model": data["model"], UNTRAINED_KEY: True}, path)
    plate = write_sequence(tmp_path / "plate", "sh", range(1001, 1005), 64, 48)
    recipe = _recipe(tmp_path, path, plate, "1001-1004", "ACEScg")
    assert cli.main(["render", str(recipe), "--device", "cpu", "--quiet"]) == 0
    for name in _mattes(tmp_path):
        channels, _ = read_matte(str(tmp_path / "mattes" / name))
        assert all(m.max() == 0.0 for m in channels.values())


def test_mismatched_checkpoint_is_a_model_error(tiny_checkpoint: Path) -> None:
    with pytest.raises(ModelError, match="does not fit config configs/sam2/sam2_hiera_t.yaml"):
        build("configs/sam2/sam2_hiera_t.yaml", tiny_checkpoint, device="cpu")


def test_random_checkpoint_command_says_it_is_untrained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["checkpoint", "random", str(tmp_path / "r.pt")]) == 0
    assert "UNTRAINED" in capsys.readouterr().err
    assert build(TINY_CONFIG, tmp_path / "r.pt", device="cpu", overrides=SMALL_SIZE).untrained


def test_killing_the_render_leaves_no_partial_matte(tmp_path: Path, tiny_checkpoint: Path) -> None:
    plate = write_sequence(tmp_path / "plate", "sh", range(1001, 1061), 320, 240)
    recipe = _recipe(tmp_path, tiny_checkpoint, plate, "1001-1060", "ACEScg", output={"compression": "none"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotobridge.bridge.cli", "render", str(recipe), "--device", "cpu", "--quiet"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while len(_mattes(tmp_path)) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finals = _mattes(tmp_path)
    assert 3 <= len(finals) < 60, _mattes(tmp_path, hidden=True)
    for name in finals:  # every file under a final name is a whole, readable matte
        channels, _ = read_matte(str(tmp_path / "mattes" / name))
        assert channels["car.A"].shape == (240, 320) and np.isfinite(channels["car.A"]).all()


def test_mask_prompt_files_read_by_alpha_and_refused_by_name(tmp_path: Path) -> None:
    """A mask prompt is its alpha (the only channel when it has none) > 0.5, the display size."""
    from rotobridge.bridge.render import _read_mask
    from rotobridge.errors import RecipeError

    rgba = np.zeros((4, 6, 4), np.float32)
    rgba[1:3, 2:5, 3] = 0.75  # alpha only: RGB stays 0
    out = oiio.ImageOutput.create(str(tmp_path / "m.exr"))
    spec = oiio.ImageSpec(6, 4, 4, oiio.FLOAT)
    assert out is not None and out.open(str(tmp_path / "m.exr"), spec) and out.write_image(rgba)
    out.close()
    assert _read_mask(str(tmp_path / "m.exr"), 6, 4, "objects[0].prompts[0].mask").tolist() == (rgba[:, :, 3] > 0.5).tolist()
    with pytest.raises(RecipeError, match=r"objects\[0\]\.prompts\[0\]\.mask: mask .*m\.exr must be 8x4"):
        _read_mask(str(tmp_path / "m.exr"), 8, 4, "objects[0].prompts[0].mask")
    (tmp_path / "junk.exr").write_bytes(b"not an image")
    with pytest.raises(RecipeError, match=r"mask: cannot read mask .*junk\.exr"):
        _read_mask(str(tmp_path / "junk.exr"), 6, 4, "mask")
