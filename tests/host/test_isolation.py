"""The host side runs inside Nuke's or Blender's Python: stdlib + pyzmq (+ numpy) only.

This suite runs in .venv-host, which has none of the bridge's packages, so importing every
host module here proves none of them needs one.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path

import pytest

import rotobridge

PLUGIN = Path(__file__).resolve().parents[2] / "plugin"
BRIDGE_ONLY = ("torch", "sam2", "OpenImageIO", "PyOpenColorIO", "cv2", "fileseq", "PIL")


def _host_modules() -> list[str]:
    path = [p for p in rotobridge.__path__ if Path(p).resolve().parent == PLUGIN / "src"]
    assert path, f"rotobridge is not imported from {PLUGIN}: {list(rotobridge.__path__)}"
    return sorted(m.name for m in pkgutil.walk_packages(path, "rotobridge."))


@pytest.mark.parametrize("name", BRIDGE_ONLY)
def test_this_interpreter_lacks_bridge_packages(name: str) -> None:
    # If this fails the suite runs in the wrong venv and proves nothing.
    assert importlib.util.find_spec(name) is None


def test_every_host_module_imports_without_bridge_packages() -> None:
    modules = _host_modules()
    assert "rotobridge.recipe" in modules and "rotobridge.errors" in modules
    for name in modules:
        importlib.import_module(name)
    assert not [m for m in sys.modules if m.split(".")[0] in BRIDGE_ONLY]
    assert "rotobridge.bridge" not in sys.modules


def test_host_code_never_imports_from_the_bridge() -> None:
    # All of plugin/ (the Nuke folder too), except pyzmq vendored into plugin/nuke/lib.
    offenders = []
    for path in PLUGIN.rglob("*.py"):
        if "lib" in path.relative_to(PLUGIN).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module if node.level == 0 else f".{node.module}"]
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if n.startswith(("rotobridge.bridge", ".bridge")) or n.split(".")[0] in BRIDGE_ONLY
            ]
    assert offenders == []
