"""The interactive protocol: click simulation by hand, the choice of frames, J&F against k
with ColourKeyTrackerDouble (a TEST DOUBLE of the model that follows its prompts), and the
command end to end with random weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rotobridge.bridge.cli import main
from rotobridge.bridge.evaluate import datasets, interactive

from ..conftest import SMALL_SIZE, TINY_CONFIG
from . import vos_data
from .vos_data import ColourKeyTrackerDouble


def test_click_at_the_interior_most_point_of_the_largest_error() -> None:
    rng = np.random.default_rng(0)
    truth = np.zeros((12, 14), bool)
    truth[2:9, 3:10] = True  # 7 x 7: its one interior-most pixel is the centre (x 6, y 5)
    assert interactive.next_click(truth, np.zeros_like(truth), rng) == ((6, 5), 1)
    prediction = truth.copy()
    prediction[9:12, 0:14] = True  # a false positive (3 x 14) larger than any false negative
    prediction[3, 4] = False  # a one-pixel false negative
    (x, y), label = interactive.next_click(truth, prediction, rng) or ((-1, -1), -1)
    assert label == 0 and y == 10  # negative, on the middle row of the false positive band
    assert interactive.next_click(truth, truth, rng) is None


def test_click_ties_are_seeded() -> None:
    truth = np.zeros((8, 8), bool)
    truth[3:5, 3:5] = True  # four equally interior pixels
    empty = np.zeros_like(truth)
    clicks = {interactive.next_click(truth, empty, np.random.default_rng(s)) for s in range(20)}
    assert clicks <= {((x, y), 1) for x in (3, 4) for y in (3, 4)} and len(clicks) > 1
    first = interactive.next_click(truth, empty, np.random.default_rng(7))
    assert all(interactive.next_click(truth, empty, np.random.default_rng(7)) == first for _ in range(3))


@pytest.mark.parametrize("mode", interactive.MODES)
def test_double_curve_and_frames_chosen(tmp_path: Path, mode: str) -> None:
    """The car turns yellow from frame 3: one click on frame 0 tracks it on 0-2 only (J&F 0.5
    over the 6 frames); k = 2 clicks the worst frame, 3 (the earliest of the tied 3-5), and
    the double follows it from there (J&F 1)."""
    scene = {"car": [vos_data.Obj(1, 20, 24, 3, 9, recolour=3)]}
    (seq,) = datasets.load("davis", vos_data.write_davis(str(tmp_path), scenes=scene))
    rounds = interactive.run(seq, ColourKeyTrackerDouble, rounds=3, mode=mode, seed=0)
    assert [r.clicked[1] for r in rounds] == [[0], [0, 3], [0, 3]]
    points = interactive.curve([rounds])
    assert [p["k"] for p in points] == [1, 2, 3]
    assert points[0]["j"] == 0.5 and points[0]["f"] == 0.5
    assert points[1]["jf"] == points[2]["jf"] == 1.0


def test_interactive_command_random_weights(tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = vos_data.write_davis(str(tmp_path / "davis"), frames=3, scenes={"car": vos_data.SCENES["car"]})
    out = tmp_path / "out"
    args = ["evaluate", "run", "--dataset", root, "--format", "davis", "--protocol", "interactive", "--rounds", "2",
            "--config", TINY_CONFIG, "--checkpoint", str(tiny_checkpoint), "--override", SMALL_SIZE[0],
            "--device", "cpu", "--out", str(out), "--quiet"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["protocol"] == "interactive" and [p["k"] for p in summary["curve"]] == [1, 2]
    assert all(0 <= p["jf"] <= 1 for p in summary["curve"])
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "curve.csv").read_text().splitlines()[0] == "k,J&F,J,F"
    assert "| 2 |" in capsys.readouterr().out
    saved = json.loads((out / "interactive" / "car.json").read_text())
    assert [r["clicked"]["1"] for r in saved["rounds"]][0] == [0]  # the first frame with the car
