"""`rotobridge render --resume`: killed renders continue from their tracking checkpoint and end
bit-identical to an uninterrupted render; SIGTERM stops cleanly with its own exit code.

Real processes, real signals, the random tiny checkpoint at 256 px on a tiny plate.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rotobridge.bridge import cli
from rotobridge.bridge.mattes import read_matte
from rotobridge.errors import MatteExistsError, StoppedError

from ..conftest import SMALL_SIZE, TINY_CONFIG
from .recipes import write_recipe
from .plates import write_sequence

ROOT = Path(__file__).resolve().parents[2]
FRAMES = range(1001, 1013)


def _recipe(tmp: Path, checkpoint: Path, plate: str, out: str, **extra: Any) -> Path:
    return write_recipe(tmp / f"{out}.json", checkpoint, plate, f"{FRAMES[0]}-{FRAMES[-1]}", tmp / out, **extra)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _pixels(folder: Path) -> dict[str, np.ndarray]:
    return {name: read_matte(str(folder / name))[0]["car.A"] for name in _files(folder) if name.endswith(".exr")}


def _checkpoint_frame(folder: Path) -> int | None:
    path = folder / "m.tracking.forward.1001.pt"
    return int(torch.load(path, weights_only=True)["header"]["frame"]) if path.exists() else None


def _start(recipe: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rotobridge.bridge.cli", "render", str(recipe), "--device", "cpu", "--resume", *args],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(folder: Path, count: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while len([n for n in _files(folder) if n.endswith(".exr") and not n.startswith(".")]) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_killed_renders_resume_from_their_checkpoint_and_end_bit_identical(tmp_path: Path, tiny_checkpoint: Path) -> None:
    plate = write_sequence(tmp_path / "plate", "sh", FRAMES, 64, 48)
    reference = _recipe(tmp_path, tiny_checkpoint, plate, "whole")
    assert cli.main(["render", str(reference), "--device", "cpu", "--quiet"]) == 0
    recipe = _recipe(tmp_path, tiny_checkpoint, plate, "killed")
    folder = tmp_path / "killed"
    rng = random.Random(12)
    written, resumed_from = 0, []
    for moment in range(5):  # SIGKILL at 5 seeded moments: after a random number of new mattes, plus a random delay
        expected = _checkpoint_frame(folder)
        proc = _start(recipe, "--checkpoint-every", "2", "--quiet")
        written = min(written + rng.randint(1, 2), len(FRAMES) - 4)
        _wait_for(folder, written, proc)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()
        _, err = proc.communicate()
        if expected is None:
            assert "resuming" not in err
        else:  # the log says the frame it resumed from: the one after the last checkpoint
            assert f"resuming the forward pass from frame {expected + 1} (checkpoint at frame {expected})" in err, err
            resumed_from.append(expected + 1)
    assert len(resumed_from) >= 3, resumed_from  # most reruns really resumed
    # A stop by SIGTERM: the mattes under way finish, a checkpoint is saved there, exit 75,
    # and the count (with --quiet, no progress bar) is what is on disk.
    before = len([n for n in _files(folder) if n.endswith(".exr")])
    proc = _start(recipe, "--checkpoint-every", "2", "--quiet")
    assert before < len(FRAMES) - 1
    _wait_for(folder, before + 1, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == StoppedError.exit_code == 75, err
    on_disk = [n for n in _files(folder) if n.endswith(".exr")]
    match = re.search(r"stopped by SIGTERM after writing (\d+) of 12 frames", err)
    assert match and int(match.group(1)) == len(on_disk) - before, err
    last = _checkpoint_frame(folder)
    assert last == 1000 + len(on_disk)  # the checkpoint is at the last matte written
    # What a kill in the middle of a checkpoint save leaves (seeded kills rarely land there)
    (folder / ".m.tracking.forward.1001.pt.k1ll3d.tmp.pt").write_bytes(b"half a checkpoint")
    # The last run: no --quiet and stderr not a terminal, so one JSON progress line per frame.
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotobridge.bridge.cli", "--log-format", "json", "render", str(recipe), "--device", "cpu", "--resume"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"resuming the forward pass from frame {last + 1} (checkpoint at frame {last})" in err
    lines = [json.loads(line)["message"] for line in err.splitlines() if line.startswith("{") and " written: " in line]
    assert len(lines) == 12 - len(on_disk) and lines[-1].endswith("12/12 (100.0%)"), lines
    assert f"rendered 12/12 frames ({len(on_disk)} kept from an earlier run)" in out
    assert [n for n in _files(folder) if n.startswith(".")] == []  # no temporary file left by any kill
    want, got = _pixels(tmp_path / "whole"), _pixels(folder)
    assert list(got) == list(want) and len(got) == 12
    for name in want:
        assert np.array_equal(want[name], got[name]), name


def test_resume_rerenders_damaged_mattes_and_refuses_another_recipes(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plate = write_sequence(tmp_path / "plate", "sh", range(1001, 1005), 64, 48)
    data: dict[str, Any] = {
        "rotobridge_recipe": 1,
        "plate": {"path": plate, "frames": "1001-1004", "colourspace": "ACEScg"},
        "model": {"config": TINY_CONFIG, "checkpoint": str(tiny_checkpoint), "overrides": SMALL_SIZE},
        "objects": [{"id": 1, "name": "car", "prompts": [{"frame": 1001, "points": [[20, 20]], "labels": [1]}]}],
        "output": {"path": str(tmp_path / "out" / "m.####.exr")},
    }
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(data))
    args = ["render", str(recipe), "--device", "cpu", "--quiet", "--resume"]
    assert cli.main(args) == 0
    good = read_matte(str(tmp_path / "out" / "m.1003.exr"))[0]["car.A"]
    (tmp_path / "out" / "m.1003.exr").write_bytes(b"not an exr")  # a damaged matte
    (tmp_path / "out" / ".m.1002.exr.4242.abcd1234.tmp.exr").write_bytes(b"half")  # a killed write's leftover
    capsys.readouterr()
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert "rendered 4/4 frames (3 kept from an earlier run)" in captured.out
    assert np.array_equal(read_matte(str(tmp_path / "out" / "m.1003.exr"))[0]["car.A"], good)
    assert _files(tmp_path / "out") == ["m.1001.exr", "m.1002.exr", "m.1003.exr", "m.1004.exr", "m.tracking.forward.1001.pt"]
    data["objects"][0]["prompts"][0]["points"] = [[30, 20]]  # another recipe: its mattes are not ours to keep
    recipe.write_text(json.dumps(data))
    assert cli.main(args) == MatteExistsError.exit_code
    assert "4 matte file(s) already exist" in capsys.readouterr().err


def test_a_checkpoint_is_only_used_for_its_own_recipe_model_and_pass(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from rotobridge.bridge.checkpoint import Checkpoints

    pattern = str(tmp_path / "m" / "sh010_sam.####.exr")
    mine = Checkpoints(pattern, "recipe-a", "model-a")
    key = mine.key(1001, reverse=False)
    state = {"output_dict_per_obj": {0: {"non_cond_frame_outputs": {3: {"obj_ptr": torch.arange(4.0)}}}}}
    path = mine.save(key, 1010, state)
    assert os.path.basename(path) == "sh010_sam.tracking.forward.1001.pt"
    loaded = mine.load(key, torch.device("cpu"))
    assert loaded is not None and loaded.frame == 1010
    assert torch.equal(loaded.state["output_dict_per_obj"][0]["non_cond_frame_outputs"][3]["obj_ptr"], torch.arange(4.0))
    for other, why in [(Checkpoints(pattern, "recipe-b", "model-a"), "recipe"), (Checkpoints(pattern, "recipe-a", "model-b"), "model checkpoint")]:
        caplog.clear()
        assert other.load(other.key(1001, reverse=False), torch.device("cpu")) is None
        assert f"made for another {why}" in caplog.text
    assert mine.load(mine.key(1001, reverse=True), torch.device("cpu")) is None  # the backward pass has none
    Path(path).write_bytes(b"damaged")
    caplog.clear()
    assert mine.load(key, torch.device("cpu")) is None and "cannot be read" in caplog.text


def test_with_roots_a_checkpoint_must_really_lie_inside_them(tmp_path: Path) -> None:
    from rotobridge.bridge.checkpoint import Checkpoints
    from rotobridge.errors import PathNotAllowedError

    root, outside = tmp_path / "root", tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "m").symlink_to(outside)  # the matte folder swapped for a link out of the root
    checkpoints = Checkpoints(str(root / "m" / "m.####.exr"), "r", "m", roots=[os.path.realpath(root)])
    with pytest.raises(PathNotAllowedError, match="tracking checkpoint"):
        checkpoints.save(checkpoints.key(1001, reverse=False), 1001, {})
    assert list(outside.iterdir()) == []


def test_sigint_stops_like_sigterm(tmp_path: Path, tiny_checkpoint: Path) -> None:
    plate = write_sequence(tmp_path / "plate", "sh", FRAMES, 64, 48)
    recipe = _recipe(tmp_path, tiny_checkpoint, plate, "out")
    proc = _start(recipe, "--quiet")
    _wait_for(tmp_path / "out", 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    written = [n for n in _files(tmp_path / "out") if n.endswith(".exr")]
    assert proc.returncode == StoppedError.exit_code, err
    assert f"stopped by SIGINT after writing {len(written)} of 12 frames" in err
    assert _checkpoint_frame(tmp_path / "out") == 1000 + len(written) < 1012


def test_killed_smoothed_renders_resume_bit_identical(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """With temporal smoothing the last frames tracked wait for their neighbours: a
    checkpoint claims only what is on disk and keeps their logits, so a render killed at
    seeded moments still ends with the uninterrupted render's (smoothed) mattes."""
    plate = write_sequence(tmp_path / "plate", "sh", FRAMES, 64, 48)
    paths = {}
    for name, smoothing in (("whole", 1.0), ("killed", 1.0), ("flat", 0.0)):
        paths[name] = _recipe(tmp_path, tiny_checkpoint, plate, name)
        data = json.loads(paths[name].read_text())
        data["rotobridge_recipe"] = 2  # matte controls need version 2
        data["objects"][0]["matte"] = {"smoothing": smoothing}
        paths[name].write_text(json.dumps(data))
    for name in ("whole", "flat"):
        assert cli.main(["render", str(paths[name]), "--device", "cpu", "--quiet"]) == 0
    want, flat = _pixels(tmp_path / "whole"), _pixels(tmp_path / "flat")
    assert sum(not np.array_equal(want[n], flat[n]) for n in want) >= 8  # smoothing changed the mattes
    folder = tmp_path / "killed"
    rng = random.Random(7)
    written, resumed = 0, 0
    for _ in range(3):
        proc = _start(paths["killed"], "--checkpoint-every", "2", "--quiet")
        written = min(written + rng.randint(2, 3), len(FRAMES) - 3)
        _wait_for(folder, written, proc)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()
        resumed += "resuming the forward pass" in proc.communicate()[1]
    proc = _start(paths["killed"], "--checkpoint-every", "2", "--quiet")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert resumed + ("resuming the forward pass" in err) >= 2, err  # the reruns really resumed
    got = _pixels(folder)
    assert list(got) == list(want) and len(got) == 12
    for name in want:
        assert np.array_equal(want[name], got[name]), name
