#!/usr/bin/env python3
"""Build the RotoBridge Blender extension: dist/rotobridge-<version>.zip.

Stages plugin/blender (the extension source) in build/blender_extension/, builds the host
core distribution (plugin/, dist `rotobridge`) into a wheel with `pip wheel` (pip fetches
its build backend, setuptools, as for any build), downloads the pyzmq wheels the manifest
lists (cached in build/wheels/), puts them all in `wheels/`, then builds and validates the
zip with Blender's own extension tool, `blender_ext.py` from the bpy package
(addons_core/bl_pkg/cli). Blender installs the wheels into its extensions' site-packages,
so the extension imports the core as `rotobridge`, like the Nuke layer. The manifest names
the core's wheel too: a version bump fails the build until it does.

    .venv-blender/bin/python install/build_blender_extension.py [--blender-ext PATH] [--wheels DIR]

Install the zip in Blender: Edit > Preferences > Get Extensions > Install from Disk.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "plugin" / "blender"
#: The host core's distribution (its pyproject.toml names it `rotobridge`).
PLUGIN = ROOT / "plugin"
STAGE = ROOT / "build" / "blender_extension"
WHEEL_CACHE = ROOT / "build" / "wheels"
DIST = ROOT / "dist"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "wheels")
_BUILD_LEFTOVERS = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
#: plugin/ folders that are not part of the core's distribution.
_HOST_FOLDERS = {"blender", "nuke"}


def find_blender_ext() -> Path:
    """blender_ext.py inside the bpy package of this interpreter, else of .venv-blender."""
    patterns = [
        *(os.path.join(p, "bpy", "*", "scripts") for p in sys.path if p.endswith("site-packages")),
        str(ROOT / ".venv-blender" / "lib" / "python3*" / "site-packages" / "bpy" / "*" / "scripts"),
    ]
    for pattern in patterns:
        for scripts in sorted(glob.glob(pattern)):
            tool = Path(scripts) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
            if tool.is_file():
                return tool
    raise SystemExit("blender_ext.py not found: run install/setup.sh (it makes .venv-blender with bpy) or pass --blender-ext")


def wheel_target(filename: str) -> tuple[str, str]:
    """pip's --python-version and --platform for a wheel file name (cp313 → 3.13; its last platform tag)."""
    match = re.fullmatch(r"[^-]+-[^-]+-cp(\d)(\d+)-[^-]+-(.+)\.whl", filename)
    if not match:
        raise SystemExit(f"not a CPython wheel file name: {filename}")
    return f"{match.group(1)}.{match.group(2)}", match.group(3).split(".")[-1]


def fetch_wheels(entries: list[str], folder: Path, source: Path | None) -> None:
    """Put each wheel of `entries` (manifest paths) into `folder`: from `source`, the cache, or pip download."""
    folder.mkdir(parents=True, exist_ok=True)
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        name = Path(entry).name
        dist, version = name.split("-")[:2]
        cached = (source or WHEEL_CACHE) / name
        if not cached.is_file():
            python, platform = wheel_target(name)
            if source is not None:
                raise SystemExit(f"{name} is not in {source}")
            command = [
                sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                "--only-binary=:all:", "--python-version", python, "--platform", platform,
                "--dest", str(WHEEL_CACHE), f"{dist}=={version}",
            ]
            subprocess.run(command, check=True)
            if not cached.is_file():
                got = sorted(p.name for p in WHEEL_CACHE.glob(f"{dist}-{version}-*.whl"))
                raise SystemExit(f"pip did not fetch {name} (the cache has {got}): update the manifest's wheels")
        shutil.copy2(cached, folder / name)


def core_dist() -> str:
    """The core's distribution name as wheel file names spell it (PEP 427: runs of -_. become _)."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    return re.sub(r"[-_.]+", "_", str(project["name"])).lower()


def core_entry(wheels: list[str], dist: str) -> str:
    """The one manifest entry that is the core's wheel (`./wheels/<dist>-<version>-...whl`)."""
    entries = [w for w in wheels if Path(w).name.startswith(f"{dist}-")]
    if len(entries) != 1:
        raise SystemExit(
            f"plugin/blender/blender_manifest.toml must list the host core's wheel ({dist}-<version>-py3-none-any.whl) "
            f"once in `wheels`; it lists {entries or 'none'}"
        )
    return entries[0]


def check_core_wheel(built: str, entry: str) -> None:
    """The wheel plugin/ built must be the one the manifest names (it changes with the core's version)."""
    if Path(entry).name != built:
        raise SystemExit(
            f"plugin/ builds {built}, but plugin/blender/blender_manifest.toml lists {entry}: "
            f"change that entry of `wheels` to ./wheels/{built}"
        )


def _core_files(folder: str, names: list[str]) -> set[str]:
    ignored = set(_BUILD_LEFTOVERS(folder, names))
    return ignored | (_HOST_FOLDERS & set(names)) if Path(folder) == PLUGIN else ignored


def build_core_wheel(folder: Path) -> Path:
    """The host core (plugin/) as a wheel in `folder`, made with `pip wheel --no-deps`.

    Built from a clean copy of plugin/ without the host folders: setuptools builds in the
    source tree, where it would leave plugin/build/ and pack any stale file found there.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rotobridge-core-") as tmp:
        copy, out = Path(tmp) / "plugin", Path(tmp) / "wheel"
        shutil.copytree(PLUGIN, copy, ignore=_core_files)
        command = [
            sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps", str(copy), "-w", str(out),
        ]
        subprocess.run(command, check=True)
        built = sorted(out.glob("*.whl"))
        if len(built) != 1:
            raise SystemExit(f"pip wheel made {[p.name for p in built]} from plugin/, not one wheel")
        return Path(shutil.copy2(built[0], folder / built[0].name))


def build(blender_ext: Path, wheels: Path | None = None) -> Path:
    manifest = tomllib.loads((SOURCE / "blender_manifest.toml").read_text())
    staged = STAGE / str(manifest["id"])
    shutil.rmtree(STAGE, ignore_errors=True)
    shutil.copytree(SOURCE, staged, ignore=_IGNORE)
    listed = [str(w) for w in manifest.get("wheels", [])]
    entry = core_entry(listed, core_dist())
    check_core_wheel(build_core_wheel(staged / "wheels").name, entry)
    fetch_wheels([w for w in listed if w != entry], staged / "wheels", wheels)
    DIST.mkdir(exist_ok=True)
    out = DIST / f"{manifest['id']}-{manifest['version']}.zip"
    out.unlink(missing_ok=True)
    tool = [sys.executable, str(blender_ext)]
    subprocess.run([*tool, "build", "--source-dir", str(staged), "--output-filepath", str(out)], check=True)
    subprocess.run([*tool, "validate", str(out)], check=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blender-ext", type=Path, help="Blender's blender_ext.py (default: from .venv-blender's bpy)")
    parser.add_argument("--wheels", type=Path, help="folder holding the manifest's pyzmq wheels (offline builds)")
    args = parser.parse_args()
    print(build(args.blender_ext or find_blender_ext(), args.wheels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
