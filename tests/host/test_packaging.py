"""The two distributions say what the architecture says (docs/architecture.md): the host core
needs only pyzmq and numpy, the bridge needs the core of the same version, the workspace
root names both and refuses to be installed itself."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

from rotobridge.version import __version__

ROOT = Path(__file__).resolve().parents[2]


def _project(folder: str) -> dict[str, object]:
    data = tomllib.loads((ROOT / folder / "pyproject.toml").read_text())
    project = data["project"]
    assert isinstance(project, dict)
    return project


def _names(requirements: object) -> dict[str, str]:
    """Distribution name (lower case) → the rest of its requirement string."""
    assert isinstance(requirements, list)
    out = {}
    for line in requirements:
        match = re.match(r"^([A-Za-z0-9_.-]+)(.*)$", line.strip())
        assert match, line
        out[match.group(1).lower()] = match.group(2)
    return out


def test_the_host_core_needs_only_pyzmq_and_numpy() -> None:
    core = _project("plugin")
    assert (core["name"], core["version"]) == ("rotobridge", __version__)
    assert set(_names(core["dependencies"])) == {"pyzmq", "numpy"}


def test_the_bridge_needs_the_core_of_its_own_version_and_owns_the_command() -> None:
    bridge = _project("bridge")
    assert (bridge["name"], bridge["version"]) == ("rotobridge-bridge", __version__)
    assert _names(bridge["dependencies"])["rotobridge"] == f"=={__version__}"
    assert bridge["scripts"] == {"rotobridge": "rotobridge.bridge.cli:main"}


def test_the_bridge_pins_are_the_bridge_dependencies() -> None:
    """install/requirements-bridge.txt pins what bridge/pyproject.toml needs (torchvision for sam2)."""
    pins = [line for line in (ROOT / "install" / "requirements-bridge.txt").read_text().splitlines() if line and not line.startswith("#")]
    needed = set(_names(_project("bridge")["dependencies"])) - {"rotobridge", "sam2"}  # sam2 installs after torch
    assert set(_names(pins)) - {"torchvision"} == needed


def test_the_workspace_root_names_both_and_builds_neither() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "project" not in root
    assert root["tool"]["uv"]["workspace"]["members"] == ["plugin", "bridge"]
    backend = root["build-system"]
    spec = importlib.util.spec_from_file_location(backend["build-backend"], ROOT / backend["backend-path"][0] / "workspace_backend.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(SystemExit, match=r"pip install \./plugin"):
        module.build_wheel("dist")
