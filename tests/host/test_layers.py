"""The code keeps the layering docs/architecture.md draws: every module is in a layer, and a
module imports only its own layer or those below it, on its own side; the host side never
imports the bridge, and the bridge uses the host core only up to its client layer."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text()
SIDES = {"host": ("rotobridge", ROOT / "plugin" / "src" / "rotobridge"), "bridge": ("rotobridge.bridge", ROOT / "bridge" / "src" / "rotobridge" / "bridge")}


def _layers(side: str) -> dict[str, int]:
    """Module → rank (0 = the bottom layer) from the doc's table of that side."""
    title = {"host": "Host side", "bridge": "Bridge side"}[side]
    match = re.search(rf"^### {title}.*?\n(.*?)(?=^#|\Z)", DOC, re.S | re.M)
    assert match, title
    rows = [line for line in match.group(1).splitlines() if line.startswith("| ") and not line.startswith("| layer")]
    ranks = {}
    for rank, row in enumerate(reversed(rows)):
        for name in re.findall(r"`(\w+)`", row.split("|")[2]):
            ranks[name] = rank
    return ranks


def _modules(side: str) -> dict[str, set[str]]:
    """Each module of a side (short name) → the rotobridge modules it imports (full names)."""
    top, folder = SIDES[side]
    out = {}
    # a module is a .py file or a subpackage (all of its files: rotobridge.bridge.evaluate)
    units = [(p.stem, [p]) for p in sorted(folder.glob("*.py")) if p.stem != "__init__"]
    units += [(p.parent.name, sorted(p.parent.glob("*.py"))) for p in sorted(folder.glob("*/__init__.py"))]
    for stem, paths in units:
        imported: set[str] = set()
        for path in paths:
            package = top if path.parent == folder else f"{top}.{stem}"
            imported |= _imports(path, package)
        out[stem] = imported
    return out


def _imports(path: Path, package: str) -> set[str]:
    """The rotobridge modules one file imports (full names)."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package if node.level == 1 else package.rsplit(".", node.level - 1)[0]
            names = [f"{base}.{node.module}"] if node.module else [f"{base}.{a.name}" for a in node.names]
            imported.update(names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("rotobridge", "rotobridge_nuke"):
            bare = node.module in ("rotobridge", "rotobridge.bridge")
            imported.update(f"{node.module}.{a.name}" for a in node.names) if bare else imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names if a.name.split(".")[0] in ("rotobridge", "rotobridge_nuke"))
    return imported


@pytest.mark.parametrize("side", SIDES)
def test_every_module_is_in_a_documented_layer(side: str) -> None:
    assert set(_modules(side)) <= set(_layers(side)), "add the new module to a layer in docs/architecture.md"
    assert set(_layers(side)) - set(_modules(side)) <= {"rotobridge_nuke"}, "the doc names a module that is gone"


@pytest.mark.parametrize("side", SIDES)
def test_no_module_imports_a_higher_layer(side: str) -> None:
    ranks, host_ranks = _layers(side), _layers("host")
    ceiling = host_ranks["client"]  # how far up the host core the bridge may reach
    wrong = []
    for module, imported in _modules(side).items():
        for name in imported:
            if name.startswith("rotobridge.bridge."):
                target, limit = name.split(".")[2], ranks[module] if side == "bridge" else -1
                target_rank = _layers("bridge")[target]
            elif name.startswith("rotobridge."):
                target = name.split(".")[1]
                target_rank = host_ranks[target]
                limit = ranks[module] if side == "host" else ceiling
            else:  # an adapter
                target, target_rank, limit = name, 1, 0
            if target_rank > limit:
                wrong.append(f"{side} {module} imports {name}")
    assert wrong == []


def test_no_module_of_the_host_core_outgrows_one_concept() -> None:
    """About 400 lines at most: a module past that holds a second concept that wants its own name."""
    folder = SIDES["host"][1]
    long = {p.name: n for p in folder.glob("*.py") if (n := len(p.read_text().splitlines())) > 430}
    assert not long, f"split these by concept: {long}"
