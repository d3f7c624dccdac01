"""The host side is typed: mypy --strict passes (in the host's venv).

plugin/src/rotobridge on its own; the Nuke layer (plugin/nuke/rotobridge_nuke) against the
public `nuke` stubs (types-nuke, install/requirements-host.txt: without them `import nuke`
fails the check), which catch a misspelt Nuke call. PySide is not installed here, so the
panel's Qt calls go unchecked (pyproject.toml).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("package", "folder"),
    [("rotobridge", ROOT / "plugin" / "src"), ("rotobridge_nuke", ROOT / "plugin" / "nuke")],
)
def test_host_side_passes_mypy_strict(package: str, folder: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "-p", package],
        cwd=folder,
        env={**os.environ, "MYPYPATH": str(ROOT / "plugin" / "src")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout

