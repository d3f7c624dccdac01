"""The bridge is typed: mypy --strict passes on rotobridge.bridge (in .venv).

Checked against the host core it imports (plugin/src: protocol, recipe, errors, client), so a
change to a shared type fails here as well as in tests/host/test_types.py. Third-party
packages without types (sam2, PyOpenColorIO, tqdm) are listed in pyproject.toml's mypy
overrides; torch, numpy, OpenImageIO, cv2, fileseq and pyzmq are checked with their own types.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bridge_passes_mypy_strict() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "-p", "rotobridge.bridge"],
        cwd=ROOT / "bridge" / "src",
        env={**os.environ, "MYPYPATH": str(ROOT / "plugin" / "src")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
