"""Dataset readers, prediction folders and `rotobridge evaluate score`: layouts read as the
benchmarks define them, one clear error naming the file for a malformed tree, and the
command's numbers equal to vos-benchmark's own `benchmark()` on the same folders."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from vos_benchmark.benchmark import benchmark

from rotobridge.bridge.cli import main
from rotobridge.bridge.evaluate import datasets, runs
from rotobridge.bridge.evaluate.predictions import PredictionFolder
from rotobridge.bridge.evaluate.scores import Convention
from rotobridge.errors import DatasetError

from . import vos_data
from .vos_data import HEIGHT, LATE, SCENES, WIDTH


def test_davis_reader(tmp_path: Path) -> None:
    seqs = datasets.load("davis", vos_data.write_davis(str(tmp_path)))
    assert [s.name for s in seqs] == ["bear", "car"]
    bear = seqs[0]
    assert bear.frames == (0, 1, 2, 3, 4, 5) and bear.shape == (HEIGHT, WIDTH)
    assert bear.starts == {1: 0, 2: 0} and bear.annotated == [0, 1, 2, 3, 4, 5]
    assert bear.plate.endswith(os.path.join("480p", "bear", "#####.jpg"))
    truth = bear.truth(2)
    assert set(truth) == {1}  # object 2 is away on frames 2-3
    assert np.array_equal(truth[1], SCENES["bear"][0].mask(2))
    assert bear.palette is not None and bear.palette[3:6] == [128, 0, 0]


def test_mose_reader(tmp_path: Path) -> None:
    seqs = datasets.load("mose", vos_data.write_davis(str(tmp_path), resolution=False))
    assert [s.name for s in seqs] == ["bear", "car"] and seqs[1].starts == {1: 0}


def test_youtube_reader_late_objects(tmp_path: Path) -> None:
    (seq,) = datasets.load("youtube", vos_data.write_youtube(str(tmp_path)))
    assert seq.frames == (0, 5, 10, 15, 20, 25)
    assert seq.starts == {1: 0, 2: 10}  # object 2 first appears on the third annotated frame
    frame, mask = seq.first_masks()[2]
    assert frame == 10 and np.array_equal(mask, LATE["vid"][1].mask(2))


def test_sav_reader_per_object(tmp_path: Path) -> None:
    (seq,) = datasets.load("sav", vos_data.write_sav(str(tmp_path)))
    assert seq.frames == tuple(range(8)) and seq.annotated == [0, 4] and seq.per_object
    assert seq.starts == {0: 0, 1: 4}  # object 000 is a real object in SA-V
    assert set(seq.truth(0)) == {0, 1} and seq.truth(0)[0].any() and not seq.truth(0)[1].any()


def test_studio_reader_exr(tmp_path: Path) -> None:
    (seq,) = datasets.load("studio", vos_data.write_studio(str(tmp_path)))
    assert seq.frames == (1001, 1002, 1003, 1004, 1005) and seq.colourspace == "ACEScg"
    assert seq.starts == {1: 1001, 2: 1001}
    assert np.array_equal(seq.truth(1004)[2], SCENES["bear"][1].mask(3))


# --- malformed trees: one error naming the file --------------------------------------


def test_missing_annotations(tmp_path: Path) -> None:
    root = vos_data.write_davis(str(tmp_path))
    shutil.rmtree(tmp_path / "Annotations" / "480p" / "car")
    with pytest.raises(DatasetError, match=r"missing folder: .*Annotations/480p/car"):
        datasets.load("davis", root)


def test_rgb_annotation_refused(tmp_path: Path) -> None:
    root = vos_data.write_davis(str(tmp_path))
    path = tmp_path / "Annotations" / "480p" / "bear" / "00000.png"
    Image.open(path).convert("RGB").save(path)
    with pytest.raises(DatasetError, match=rf"{path}: a mask must be a palette or greyscale PNG"):
        datasets.load("davis", root)


def test_size_mismatch_refused(tmp_path: Path) -> None:
    root = vos_data.write_davis(str(tmp_path))
    path = tmp_path / "Annotations" / "480p" / "car" / "00000.png"
    Image.new("P", (WIDTH + 1, HEIGHT)).save(path)
    with pytest.raises(DatasetError, match=rf"{path}: mask is 65x48, the sequence is 64x48"):
        datasets.load("davis", root)


def test_youtube_annotation_missing_for_first_appearance(tmp_path: Path) -> None:
    root = vos_data.write_youtube(str(tmp_path))
    os.remove(tmp_path / "Annotations" / "vid" / "00010.png")
    with pytest.raises(DatasetError, match=r"missing annotation: .*Annotations/vid/00010.png \(object 2"):
        datasets.load("youtube", root)


def test_studio_missing_truth_matte(tmp_path: Path) -> None:
    root = vos_data.write_studio(str(tmp_path))
    os.remove(tmp_path / "sh010" / "truth" / "obj2.1003.exr")
    with pytest.raises(DatasetError, match=r"missing truth matte: .*obj2.1003.exr \(object 2, frame 1003\)"):
        datasets.load("studio", root)


def test_prediction_with_an_object_not_in_the_truth(tmp_path: Path) -> None:
    root = vos_data.write_davis(str(tmp_path / "davis"))
    (car,) = [s for s in datasets.load("davis", root) if s.name == "car"]
    folder = PredictionFolder(str(tmp_path / "pred"), car)
    for frame in car.frames:
        folder.write(frame, car.truth(frame))
    bad = np.zeros((HEIGHT, WIDTH), np.uint8)
    bad[:4, :4] = 7
    path = folder.path(3)
    Image.fromarray(bad).save(path)
    with pytest.raises(DatasetError, match=rf"{path}: object id 7 is not in the truth of car \(objects: 1\)"):
        runs.score_one(car, str(tmp_path / "pred"), runs.ScoreOptions())


def test_missing_prediction_file(tmp_path: Path) -> None:
    root = vos_data.write_davis(str(tmp_path / "davis"))
    car = datasets.load("davis", root)[1]
    folder = PredictionFolder(str(tmp_path / "pred"), car)
    for frame in car.frames:
        folder.write(frame, car.truth(frame))
    os.remove(folder.path(2))
    with pytest.raises(DatasetError, match=rf"missing mask file: {folder.path(2)}"):
        runs.score_one(car, str(tmp_path / "pred"), runs.ScoreOptions())


# --- `rotobridge evaluate score` -------------------------------------------------------


def _noisy_predictions(truth_root: Path, out: Path, seed: int) -> None:
    """Predictions = the truth with objects moved and speckled, as palette PNGs."""
    rng = np.random.default_rng(seed)
    for seq in sorted(os.listdir(truth_root)):
        os.makedirs(out / seq)
        for name in sorted(os.listdir(truth_root / seq)):
            labels = np.array(Image.open(truth_root / seq / name))
            labels = np.roll(labels, int(rng.integers(-3, 4)), axis=1)
            labels[rng.random(labels.shape) < 0.01] = 0
            image = Image.fromarray(labels.astype(np.uint8))
            image.putpalette(vos_data.PALETTE)
            image.save(out / seq / name)


def test_score_command_agrees_with_vos_benchmark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = vos_data.write_davis(str(tmp_path / "davis"), frames=7)
    annotations = tmp_path / "davis" / "Annotations" / "480p"
    _noisy_predictions(annotations, tmp_path / "pred", seed=0)
    out = tmp_path / "out"
    code = main(["evaluate", "score", "--truth", root, "--predictions", str(tmp_path / "pred"), "--format", "davis",
                 "--convention", "vos", "--out", str(out), "--workers", "2", "--quiet"])
    assert code == 0
    table = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    jf, j, f, per_object = benchmark([str(annotations)], [str(tmp_path / "pred")], True, 1, verbose=False)
    assert abs(100 * summary["jf"] - jf[0]) < 1e-6
    assert abs(100 * summary["j"] - j[0]) < 1e-6 and abs(100 * summary["f"] - f[0]) < 1e-6
    assert f"| davis:davis | {100 * summary['jf']:.1f} | {100 * summary['j']:.1f} |" in table
    rows = (out / "objects.csv").read_text().splitlines()
    assert rows[0] == "sequence,object,J,F,J&F" and len(rows) == 1 + 3  # bear 1, 2 and car 1
    iou, _ = per_object[0]["bear"]
    bear2 = next(r for r in rows if r.startswith("bear,2,"))
    assert abs(100 * float(bear2.split(",")[2]) - iou[2]) < 1e-6
    assert (out / "sequences.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # 7 frames, first and last not scored; objects once seen count on every later frame
    assert (out / "frames.csv").read_text().count("\n") == 1 + 5 * 3


def test_score_command_resumes_and_reports_delta(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = vos_data.write_davis(str(tmp_path / "davis"))
    annotations = tmp_path / "davis" / "Annotations" / "480p"
    shutil.copytree(annotations, tmp_path / "perfect")
    _noisy_predictions(annotations, tmp_path / "noisy", seed=1)
    args = ["evaluate", "score", "--truth", root, "--format", "davis", "--quiet", "--workers", "1"]
    assert main([*args, "--predictions", str(tmp_path / "perfect"), "--out", str(tmp_path / "a")]) == 0
    perfect = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert (perfect["jf"], perfect["j"], perfect["f"], perfect["convention"]) == (1.0, 1.0, 1.0, "davis")
    assert perfect["reappearance"]["tracks"] == 3 and perfect["reappearance"]["with_disappearance"] == 1
    # bear's object 2 is away on frames 2-3 and back on 4 (frames 1-4 scored): one reappearance, tracked perfectly
    assert "Tracks with a disappearance: 33.3% (1 of 3); J&F after a reappearance (>= 1 absent frames): 100.0 (1 reappearances)" in (
        tmp_path / "a" / "report.md"
    ).read_text()
    capsys.readouterr()
    assert main([*args, "--predictions", str(tmp_path / "noisy"), "--out", str(tmp_path / "b"),
                 "--baseline", str(tmp_path / "a" / "summary.json")]) == 0
    noisy = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert noisy["jf"] < 1.0
    assert f"| {100 * (noisy['jf'] - 1):+.1f} |" in capsys.readouterr().out
    # resumption: scored sequences are not read again, so removing their predictions changes nothing
    shutil.rmtree(tmp_path / "noisy")
    os.makedirs(tmp_path / "noisy")
    assert main([*args, "--predictions", str(tmp_path / "noisy"), "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["jf"] == noisy["jf"]


def test_score_command_bad_input_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = vos_data.write_davis(str(tmp_path / "davis"))
    code = main(["evaluate", "score", "--truth", root, "--predictions", str(tmp_path / "none"), "--format", "davis",
                 "--out", str(tmp_path / "out"), "--quiet"])
    assert code == DatasetError.exit_code == 10
    assert f"rotobridge: bad_dataset: missing predictions folder: {tmp_path / 'none'}" in capsys.readouterr().err


def test_davis_convention_default_for_davis(tmp_path: Path) -> None:
    scene = {"s": [vos_data.Obj(1, 12, 14, 2, 7), vos_data.Obj(2, 40, 32, -2, 8, absent=(1, 2))]}
    root = vos_data.write_davis(str(tmp_path / "davis"), scenes=scene)
    seq = datasets.load("davis", root)[0]
    folder = PredictionFolder(str(tmp_path / "pred"), seq)
    for frame in seq.frames:
        folder.write(frame, {1: seq.truth(frame)[1]})  # object 2 never predicted
    davis = runs.score_one(seq, str(tmp_path / "pred"), runs.ScoreOptions(Convention.DAVIS))
    vos = runs.score_one(seq, str(tmp_path / "pred"), runs.ScoreOptions(Convention.VOS))
    # frames 1-4 scored; object 2 is away on 1 and 2: davis counts them (both empty: J = 1),
    # vos counts it from its first appearance among the scored frames (3)
    assert davis.per_object()[2][0] == 0.5
    assert vos.per_object()[2][0] == 0.0


def test_void_is_background_under_davis_and_an_object_under_vos(tmp_path: Path) -> None:
    root = vos_data.write_davis(str(tmp_path / "davis"), scenes={"bear": SCENES["bear"]})
    folder = tmp_path / "davis" / "Annotations" / "480p" / "bear"
    for name in sorted(os.listdir(folder)):
        labels = np.array(Image.open(folder / name))
        labels[-3:, :] = 255  # a void strip along the bottom
        image = Image.fromarray(labels)
        image.putpalette(vos_data.PALETTE)
        image.save(folder / name)
    (seq,) = datasets.load("davis", root)
    pred = PredictionFolder(str(tmp_path / "pred"), seq)
    for frame in seq.frames:
        pred.write(frame, {o: m for o, m in seq.truth(frame).items() if o != 255})
    davis = runs.score_one(seq, str(tmp_path / "pred"), runs.ScoreOptions(Convention.DAVIS))
    vos = runs.score_one(seq, str(tmp_path / "pred"), runs.ScoreOptions(Convention.VOS))
    assert davis.objects == (1, 2) and davis.per_object() == {1: (1.0, 1.0), 2: (1.0, 1.0)}
    assert vos.objects == (1, 2, 255) and vos.per_object()[255] == (0.0, 0.0)
