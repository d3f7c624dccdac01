"""The semi-supervised protocol end to end on generated DAVIS, YouTube-VOS, SA-V and studio
(EXR) datasets: with the real Engine on random weights (the plumbing, and equality with
what `rotobridge render` writes) and with ColourKeyTrackerDouble, a TEST DOUBLE of the
model that follows its prompts, so the expected J&F is known (1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from vos_benchmark.benchmark import benchmark

from rotobridge import recipe as recipes
from rotobridge.bridge import model as models
from rotobridge.bridge import render as rendering
from rotobridge.bridge.cli import main
from rotobridge.bridge.evaluate import datasets, runs
from rotobridge.bridge.evaluate.datasets import VideoSequence
from rotobridge.bridge.evaluate.scores import Convention
from rotobridge.bridge.evaluate.tracker import engine_trackers
from rotobridge.bridge.mattes import read_display_mattes
from rotobridge.bridge.plate import Window

from ..conftest import SMALL_SIZE, TINY_CONFIG
from . import vos_data
from .vos_data import HEIGHT, WIDTH, ColourKeyTrackerDouble

VOS = runs.ScoreOptions(Convention.VOS)


class Doubles:
    """A tracker factory of ColourKeyTrackerDouble that keeps what it made (to see the prompts)."""

    def __init__(self) -> None:
        self.made: list[ColourKeyTrackerDouble] = []

    def __call__(self, sequence: VideoSequence) -> ColourKeyTrackerDouble:
        self.made.append(ColourKeyTrackerDouble(sequence))
        return self.made[-1]


def test_double_davis_perfect_and_official_scorer_agrees(tmp_path: Path) -> None:
    root = vos_data.write_davis(str(tmp_path / "davis"))
    seqs = datasets.load("davis", root)
    pred = tmp_path / "out" / "predictions"
    results = runs.run_semisupervised(seqs, Doubles, str(pred), str(tmp_path / "out"), runs.ScoreOptions(Convention.DAVIS))
    assert all(j == f == 1.0 for s in results for j, f in s.per_object().values())
    assert sorted(os.listdir(pred / "bear")) == [f"{i:05d}.png" for i in range(6)]
    with Image.open(pred / "bear" / "00004.png") as image:
        assert image.mode == "P" and image.getpalette()[:6] == [0, 0, 0, 128, 0, 0]  # the input's palette
    # the official scorer reads the same files and finds them perfect too
    jf, _, _, _ = benchmark([str(tmp_path / "davis" / "Annotations" / "480p")], [str(pred)], True, 1, verbose=False)
    assert jf[0] == 100.0


def test_double_youtube_late_object_prompted_where_it_appears(tmp_path: Path) -> None:
    (seq,) = datasets.load("youtube", vos_data.write_youtube(str(tmp_path / "yt")))
    doubles = Doubles()
    pred = tmp_path / "pred"
    (scores,) = runs.run_semisupervised([seq], lambda: doubles, str(pred), str(tmp_path / "out"), VOS)
    # one tracker per start frame: object 1 from frame 0, object 2 from frame 10
    assert [d.start for d in doubles.made] == [{1: 0}, {2: 10}]
    assert [list(np.unique(np.array(Image.open(pred / "vid" / f"{f:05d}.png")))) for f in (0, 5, 10)] == [
        [0, 1], [0, 1], [0, 1, 2]
    ]
    assert scores.objects == (1, 2) and all(j == f == 1.0 for j, f in scores.per_object().values())


def test_double_sav_per_object_files(tmp_path: Path) -> None:
    (seq,) = datasets.load("sav", vos_data.write_sav(str(tmp_path / "sav")))
    pred = tmp_path / "pred"
    (scores,) = runs.run_semisupervised([seq], Doubles, str(pred), str(tmp_path / "out"), runs.ScoreOptions(skip_first_last=False))
    assert sorted(os.listdir(pred / "vid")) == ["000", "001"]
    assert sorted(os.listdir(pred / "vid" / "001")) == [f"{i:05d}.png" for i in range(8)]
    assert not np.array(Image.open(pred / "vid" / "001" / "00003.png")).any()  # before object 001 starts
    assert np.array(Image.open(pred / "vid" / "000" / "00003.png")).any()
    assert scores.per_object() == {0: (1.0, 1.0), 1: (1.0, 1.0)}


def test_double_studio_exr_shot(tmp_path: Path) -> None:
    (seq,) = datasets.load("studio", vos_data.write_studio(str(tmp_path / "studio")))
    (scores,) = runs.run_semisupervised([seq], Doubles, str(tmp_path / "pred"), str(tmp_path / "out"), VOS)
    assert scores.objects == (1, 2) and scores.evaluated == [1002, 1003, 1004]
    assert all(j == f == 1.0 for j, f in scores.per_object().values())
    assert sorted(os.listdir(tmp_path / "pred" / "sh010" / "002")) == [f"{f}.png" for f in range(1001, 1006)]


def test_random_weights_davis_and_youtube(tmp_path: Path, loaded: models.LoadedModel) -> None:
    """The real Engine runs both layouts through; its (meaningless) masks are written for
    every frame in the benchmark's format and scored in range."""
    davis = datasets.load("davis", vos_data.write_davis(str(tmp_path / "davis"), frames=3, scenes={"bear": vos_data.SCENES["bear"]}))
    youtube = datasets.load("youtube", vos_data.write_youtube(str(tmp_path / "yt"), frames=3))
    for name, seqs in (("davis", davis), ("yt", youtube)):
        out = tmp_path / f"out_{name}"
        every = runs.ScoreOptions(Convention.VOS, skip_first_last=False)  # object 2 appears on the last frame
        results = runs.run_semisupervised(seqs, lambda: engine_trackers(loaded), str(out / "predictions"), str(out), every)
        for seq, scores in zip(seqs, results):
            files = sorted(os.listdir(out / "predictions" / seq.name))
            assert files == [f"{seq.stems[f]}.png" for f in seq.frames]
            assert all(0.0 <= j <= 1.0 and 0.0 <= f <= 1.0 for j, f in scores.per_object().values())
            assert scores.objects == seq.objects


def test_random_weights_studio_equals_render(tmp_path: Path, loaded: models.LoadedModel, tiny_checkpoint: Path) -> None:
    """Evaluation measures what a render makes: the studio shot's predictions equal the binary
    mattes `rotobridge render` writes for the same mask prompts, forward, with the same model."""
    (seq,) = datasets.load("studio", vos_data.write_studio(str(tmp_path / "studio"), frames=3))
    runs.run_semisupervised([seq], lambda: engine_trackers(loaded), str(tmp_path / "pred"), str(tmp_path / "out"), VOS)
    shot = tmp_path / "studio" / "sh010"
    recipe = recipes.parse(
        {
            "rotobridge_recipe": 1,
            "plate": {"path": str(shot / "plate" / "sh010.####.exr"), "frames": "1001-1003", "colourspace": "ACEScg"},
            "model": {"config": TINY_CONFIG, "checkpoint": str(tiny_checkpoint), "overrides": SMALL_SIZE},
            "objects": [
                {"id": i, "name": f"obj{i}", "prompts": [{"frame": 1001, "mask": str(shot / "truth" / f"obj{i}.1001.exr")}]}
                for i in (1, 2)
            ],
            "propagate": {"direction": "forward"},
            "output": {"path": str(tmp_path / "mattes" / "m.####.exr"), "binary": True},
        }
    )
    result = rendering.render(recipe, device="cpu")
    assert result.complete
    differs = covered = 0
    for frame in range(1001, 1004):
        mattes = read_display_mattes(result.written[frame], Window(0, 0, WIDTH, HEIGHT))
        for obj in (1, 2):
            predicted = np.array(Image.open(tmp_path / "pred" / "sh010" / f"{obj:03d}" / f"{frame}.png")) > 0
            rendered = mattes[f"obj{obj}.A"] > 0.5
            differs += int(np.count_nonzero(predicted != rendered))
            covered += int(np.count_nonzero(rendered))
    assert differs == 0 and covered > 0  # random weights still make (meaningless) mattes


def test_run_command_random_checkpoint(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = vos_data.write_davis(str(tmp_path / "davis"), frames=3, scenes={"car": vos_data.SCENES["car"]})
    out = tmp_path / "out"
    args = ["evaluate", "run", "--dataset", root, "--format", "davis", "--config", TINY_CONFIG,
            "--checkpoint", str(tiny_checkpoint), "--override", SMALL_SIZE[0], "--device", "cpu",
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["convention"] == "davis" and summary["objects"] == 1 and 0 <= summary["jf"] <= 1
    assert sorted(os.listdir(out / "predictions" / "car")) == ["00000.png", "00001.png", "00002.png"]
    assert "| davis:davis |" in capsys.readouterr().out
    # a second run finds the sequence scored and skips it: no model loaded, no predictions rewritten
    os.remove(out / "predictions" / "car" / "00001.png")
    monkeypatch.setattr(models, "build", lambda *a, **k: pytest.fail("the model was loaded"))
    assert main(args) == 0
    assert not (out / "predictions" / "car" / "00001.png").exists()


def test_overlap_rules_by_hand() -> None:
    """One pixel both objects claim (logits 1 and 5), one only object 2 claims (3)."""
    import torch

    from rotobridge.bridge.evaluate.semisupervised import combine

    logits = torch.tensor([[[1.0, -2.0]], [[5.0, 3.0]]])  # (objects 1, 2) x 1 x 2 pixels
    joint = combine(logits, [1, 2], late=False, per_object=False)  # vos_inference: lowest id wins
    assert joint[1].tolist() == [[True, False]] and joint[2].tolist() == [[False, True]]
    late = combine(logits, [1, 2], late=True, per_object=False)  # non-overlap: highest logit wins
    assert late[1].tolist() == [[False, False]] and late[2].tolist() == [[True, True]]
    own = combine(logits, [1, 2], late=True, per_object=True)  # per-object files: each its own
    assert own[1].tolist() == [[True, False]] and own[2].tolist() == [[True, True]]


def test_youtube_uses_sams_late_object_rule(tmp_path: Path) -> None:
    (seq,) = datasets.load("youtube", vos_data.write_youtube(str(tmp_path / "yt")))
    (davis,) = datasets.load("davis", vos_data.write_davis(str(tmp_path / "davis"), scenes={"car": vos_data.SCENES["car"]}))
    assert seq.late_objects and not davis.late_objects
