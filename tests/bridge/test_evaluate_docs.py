"""docs/evaluation.md lists exactly the options `rotobridge evaluate score` and `run` take."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from rotobridge.bridge.cli import build_parser
from rotobridge.bridge.evaluate import datasets

DOC = (Path(__file__).resolve().parents[2] / "docs" / "evaluation.md").read_text()


def _subparser(*names: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in names:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings if o.startswith("--") and o != "--help"}


def _documented(section: str) -> set[str]:
    match = re.search(rf"^### `rotobridge evaluate {section}`\n(.*?)(?=^#)", DOC, re.S | re.M)
    assert match, section
    return set(re.findall(r"^\| `(--[\w-]+)", match.group(1), re.M))


def test_score_options_documented() -> None:
    assert _documented("score") == _options(_subparser("evaluate", "score"))


def test_run_options_documented() -> None:
    """run's table lists what it adds; the rest are score's (all but --truth and --predictions)."""
    shared = _documented("score") - {"--truth", "--predictions"}
    assert _documented("run") | shared == _options(_subparser("evaluate", "run"))


@pytest.mark.parametrize("name", datasets.FORMATS)
def test_every_format_documented(name: str) -> None:
    assert re.search(rf"^\| `{name}` \|", DOC, re.M)
