"""Farm jobs: recipes become chained chunk tasks, as OpenJD templates (run for real with
`openjd run`) and OpenCue outlines (serialised offline and read back as XML)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rotobridge.bridge import cli, farm, openjd
from rotobridge.bridge.mattes import read_matte
from rotobridge import errors
from rotobridge.errors import FarmError

from .recipes import car, write_recipe
from .plates import write_sequence

BIN = Path(sys.executable).parent


def _recipe(path: Path, checkpoint: Path, plate: str, frames: str, out: Path, prompt: int, **extra: Any) -> Path:
    return write_recipe(path, checkpoint, plate, frames, out, objects=[car(prompt)], **extra)


def test_openjd_job_of_a_60_frame_shot_runs_in_chained_chunks_bit_identical_to_one_render(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    plate = write_sequence(tmp_path / "plate", "sh", range(1001, 1061), 32, 24)
    whole = _recipe(tmp_path / "whole.json", tiny_checkpoint, plate, "1001-1060", tmp_path / "whole", 1001)
    assert cli.main(["render", str(whole), "--device", "cpu", "--quiet"]) == 0
    recipe = _recipe(tmp_path / "sh010.json", tiny_checkpoint, plate, "1001-1060", tmp_path / "farm", 1001)
    job = tmp_path / "job.json"
    assert cli.main(["farm", "openjd", str(recipe), "--chunk-size", "10", "--out", str(job)]) == 0
    template = json.loads(job.read_text())
    steps = template["steps"]
    assert [s["name"] for s in steps] == [f"sh010-forward-{a}-{a + 9}" for a in range(1001, 1061, 10)]
    assert [s.get("dependencies") for s in steps] == [None] + [[{"dependsOn": s["name"]}] for s in steps[:-1]]
    check = subprocess.run([BIN / "openjd", "check", str(job)], capture_output=True, text=True)
    assert check.returncode == 0 and "passes validation" in check.stdout, check.stdout + check.stderr
    run = subprocess.run(
        [BIN / "openjd", "run", str(job), "-p", "Device=cpu", "-p", f"Rotobridge={BIN / 'rotobridge'}"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    tracked = [int(n) for n in re.findall(r"tracked (\d+) frame\(s\)", log)]
    resumed = re.findall(r"resuming the forward pass from frame (\d+) \(checkpoint at frame (\d+)\)", log)
    assert len(tracked) == 6 and sum(tracked) <= 1.1 * 60, tracked  # not 6 re-tracks from the prompt
    assert resumed == [(str(a), str(a - 1)) for a in range(1011, 1061, 10)]
    for frame in range(1001, 1061):
        want = read_matte(str(tmp_path / "whole" / f"m.{frame}.exr"))[0]["car.A"]
        got = read_matte(str(tmp_path / "farm" / f"m.{frame}.exr"))[0]["car.A"]
        assert np.array_equal(want, got), frame
    assert not [n for n in os.listdir(tmp_path / "farm") if n.startswith(".")]


def _both(tmp_path: Path, checkpoint: Path) -> Path:
    """A 30-frame shot prompted on 1012, tracked both ways, with no plate on disk (planning reads none)."""
    return _recipe(tmp_path / "sh020.json", checkpoint, str(tmp_path / "p.####.exr"), "1001-1030", tmp_path / "m", 1012)


def test_both_directions_give_two_chains_that_start_together(tmp_path: Path, tiny_checkpoint: Path) -> None:
    tasks = farm.plan(str(_both(tmp_path, tiny_checkpoint)), chunk_size=8)
    assert [(t.chain, t.frame_range, t.after) for t in tasks] == [
        ("forward", "1012-1019", None),
        ("forward", "1020-1027", "sh020-forward-1012-1019"),
        ("forward", "1028-1030", "sh020-forward-1020-1027"),
        ("backward", "1004-1011", None),
        ("backward", "1001-1003", "sh020-backward-1004-1011"),
    ]
    forward_only = _recipe(tmp_path / "sh030.json", tiny_checkpoint, "p.####.exr", "1001-1020", tmp_path / "m", 1012,
                           propagate={"direction": "forward"})
    assert [(t.chain, t.frame_range, t.after) for t in farm.plan(str(forward_only), chunk_size=20)] == [
        ("forward", "1012-1020", None), ("untracked", "1001-1011", None)]


def test_openjd_templates_are_validated(tmp_path: Path, tiny_checkpoint: Path) -> None:
    tasks = farm.plan(str(_both(tmp_path, tiny_checkpoint)), chunk_size=8)
    template = openjd.job_template(tasks, name="sh020", gpu=True)
    assert template["steps"][3]["hostRequirements"] == {"amounts": [{"name": "amount.worker.gpu", "min": 1}]}
    template["steps"][1]["dependencies"] = [{"dependsOn": "no-such-step"}]
    with pytest.raises(FarmError, match="not valid"):
        openjd.validate(template)


def test_opencue_outline_has_the_layers_ranges_dependencies_and_commands(tmp_path: Path, tiny_checkpoint: Path) -> None:
    recipe = _both(tmp_path, tiny_checkpoint)
    out = tmp_path / "job.xml"
    assert cli.main([
        "farm", "opencue", str(recipe), "--chunk-size", "8", "--show", "show1", "--user", "td",
        "--memory", "12g", "--env", "OCIO=/studio/config.ocio", "--out", str(out),
    ]) == 0
    spec = ET.fromstring(out.read_text())
    assert (spec.findtext("show"), spec.findtext("shot"), spec.findtext("user")) == ("show1", "sh020", "td")
    layers = spec.findall("job/layers/layer")
    assert [(x.get("name"), x.findtext("range"), x.findtext("chunk")) for x in layers] == [
        ("sh020-forward-1012-1019", "1012-1019", "8"),
        ("sh020-forward-1020-1027", "1020-1027", "8"),
        ("sh020-forward-1028-1030", "1028-1030", "3"),
        ("sh020-backward-1004-1011", "1004-1011", "8"),
        ("sh020-backward-1001-1003", "1001-1003", "3"),
    ]
    first = layers[0]
    assert first.findtext("cmd") == (
        f"rotobridge render {recipe} --frames 1012-1019 --device cuda --resume --checkpoint-every 10"
    )
    assert (first.findtext("tags"), first.findtext("memory")) == ("gpu", "12g")
    assert first.find("env/key[@name='OCIO']").text == "/studio/config.ocio"  # type: ignore[union-attr]
    depends = [(d.get("type"), d.findtext("deplayer"), d.findtext("onlayer")) for d in spec.findall("depends/depend")]
    assert sorted(depends) == sorted([
        ("LAYER_ON_LAYER", "sh020-forward-1020-1027", "sh020-forward-1012-1019"),
        ("LAYER_ON_LAYER", "sh020-forward-1028-1030", "sh020-forward-1020-1027"),
        ("LAYER_ON_LAYER", "sh020-backward-1001-1003", "sh020-backward-1004-1011"),
    ])


def test_opencue_submission_without_a_cuebot_is_refused_clearly(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CUEBOT_HOSTS", raising=False)
    assert cli.main(["farm", "opencue", str(_both(tmp_path, tiny_checkpoint)), "--submit"]) == FarmError.exit_code
    err = capsys.readouterr().err
    assert "cannot submit to OpenCue: CUEBOT_HOSTS is not set" in err


# --- docs/farm.md is true to the code -------------------------------------------------

DOC = (Path(__file__).resolve().parents[2] / "docs" / "farm.md").read_text()


def _all_errors() -> list[type[errors.RotobridgeError]]:
    out, todo = [], [errors.RotobridgeError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo += cls.__subclasses__()
    return out


def test_the_exit_code_table_is_the_error_table() -> None:
    section = DOC[DOC.index("## Exit codes"):]
    rows = re.findall(r"^\| `(\d+)` \| [^|]+ \|([^|]*)\|$", section, re.M)
    documented = {(int(code), name) for code, names in rows for name in re.findall(r"`(\w+)`", names)}
    codes = {int(code) for code, _ in rows}
    actual = {(cls.exit_code, cls.name) for cls in _all_errors() if cls.exit_code != 1}
    assert documented - {(1, "bridge_unreachable"), (1, "internal")} == actual
    assert codes == {0, 1} | {code for code, _ in actual}


def test_every_farm_option_is_documented() -> None:
    parser = cli.build_parser()
    commands = {"farm openjd": ["farm", "openjd"], "farm opencue": ["farm", "opencue"], "shots": ["shots"],
                "template": ["template"], "render": ["render"]}
    for words in commands.values():
        sub = parser
        for word in words:
            sub = next(a for a in sub._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
        assert " ".join(["rotobridge", *words]) in DOC or words == ["render"]
        for action in sub._actions:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help" and (words != ["render"] or option in ("--resume", "--checkpoint-every", "--quiet")):
                    assert f"`{option}" in DOC or f" {option} " in DOC or f"{option}=" in DOC, f"{' '.join(words)} {option}"


def test_a_backward_chain_run_before_the_forward_one_still_matches_one_render(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tracking both ways from a prompt mid-shot: the backward chunk tracks forward first
    (its pass reads those frames' memory), so chunk order does not change any matte."""
    plate = write_sequence(tmp_path / "plate", "sh", range(1001, 1013), 32, 24)
    whole = _recipe(tmp_path / "whole.json", tiny_checkpoint, plate, "1001-1012", tmp_path / "whole", 1004)
    chunks = _recipe(tmp_path / "sh.json", tiny_checkpoint, plate, "1001-1012", tmp_path / "chunks", 1004)
    assert cli.main(["render", str(whole), "--device", "cpu", "--quiet"]) == 0
    tasks = farm.plan(str(chunks), chunk_size=5)
    assert [t.frame_range for t in tasks] == ["1004-1008", "1009-1012", "1001-1003"]
    capsys.readouterr()
    for task in [tasks[2], tasks[0], tasks[1]]:  # the chains run in parallel: the backward one may go first
        assert cli.main(task.command(device="cpu")[1:] + ["--quiet"]) == 0
    tracked = [int(n) for n in re.findall(r"tracked (\d+) frame\(s\)", capsys.readouterr().out)]
    assert tracked == [9 + 4, 5, 4]  # the backward task tracked forward to the plate's end (within reach) first
    for frame in range(1001, 1013):
        want = read_matte(str(tmp_path / "whole" / f"m.{frame}.exr"))[0]["car.A"]
        got = read_matte(str(tmp_path / "chunks" / f"m.{frame}.exr"))[0]["car.A"]
        assert np.array_equal(want, got), frame


def test_passes_of_chunks_cover_their_frames(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from rotobridge import recipe as recipes
    from rotobridge.bridge.tracking import passes

    plate = list(range(1001, 1031))
    both = recipes.load(_both(tmp_path, tiny_checkpoint))  # prompted on 1012
    assert passes(both, [1012], plate, 16) == [(1012, 1012, False)]
    assert passes(both, range(1004, 1012), plate, 16) == [(1012, 1028, False), (1012, 1004, True)]  # forward within reach first
    assert passes(both, range(1004, 1012)) == [(1012, 1004, True)]  # a session's: no plate, no reach
    backward = recipes.load(_recipe(tmp_path / "b.json", tiny_checkpoint, "p.####.exr", "1001-1030", tmp_path / "m", 1012,
                                    propagate={"direction": "backward"}))
    assert passes(backward, [1012], plate, 16) == [(1012, 1012, True)]
    assert [t.frame_range for t in farm.plan(str(tmp_path / "b.json"), chunk_size=1)][:2] == ["1012", "1011"]
