#!/usr/bin/env python3
"""Build the RotoBridge Blender extension: dist/rotobridge-<version>.zip.

Stages plugin/blender (the extension source) in build/blender_extension/, copies the
host-agnostic `rotobridge` package (plugin/rotobridge) into it as `_vendor/rotobridge`
(no second copy lives in git), downloads the pyzmq wheels its manifest lists into
`wheels/` (cached in build/wheels/), then builds and validates the zip with Blender's own
extension tool, `blender_ext.py` from the bpy package (addons_core/bl_pkg/cli).

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
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "plugin" / "blender"
CORE = ROOT / "plugin" / "rotobridge"
STAGE = ROOT / "build" / "blender_extension"
WHEEL_CACHE = ROOT / "build" / "wheels"
DIST = ROOT / "dist"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "_vendor", "wheels")
_VENDOR_NOTE = '"""A build-time copy of plugin/rotobridge (install/build_blender_extension.py): do not edit."""\n'


def find_blender_ext() -> Path:
    """blender_ext.py inside the bpy package of .venv-blender (or of this interpreter)."""
    patterns = [
        str(ROOT / ".venv-blender" / "lib" / "python3*" / "site-packages" / "bpy" / "*" / "scripts"),
        *(os.path.join(p, "bpy", "*", "scripts") for p in sys.path if p.endswith("site-packages")),
    ]
    for pattern in patterns:
        for scripts in sorted(glob.glob(pattern)):
            tool = Path(scripts) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
            if tool.is_file():
                return tool
    raise SystemExit("blender_ext.py not found: run install/setup.sh (it makes .venv-blender with bpy) or pass --blender-ext")


def wheel_platform(filename: str) -> str:
    """The pip --platform of a wheel file name: its last platform tag (e.g. manylinux_2_28_x86_64)."""
    match = re.fullmatch(r"[^-]+-[^-]+-[^-]+-[^-]+-(.+)\.whl", filename)
    if not match:
        raise SystemExit(f"not a wheel file name: {filename}")
    return match.group(1).split(".")[-1]


def fetch_wheels(manifest: dict[str, object], folder: Path, source: Path | None) -> None:
    """Put each wheel the manifest lists into `folder`: from `source`, the cache, or pip download."""
    folder.mkdir(parents=True, exist_ok=True)
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    for entry in manifest.get("wheels", []):  # type: ignore[union-attr]
        name = Path(str(entry)).name
        dist, version = name.split("-")[:2]
        cached = (source or WHEEL_CACHE) / name
        if not cached.is_file():
            if source is not None:
                raise SystemExit(f"{name} is not in {source}")
            command = [
                sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                "--only-binary=:all:", "--python-version", "3.11", "--platform", wheel_platform(name),
                "--dest", str(WHEEL_CACHE), f"{dist}=={version}",
            ]
            subprocess.run(command, check=True)
            if not cached.is_file():
                got = sorted(p.name for p in WHEEL_CACHE.glob(f"{dist}-{version}-*.whl"))
                raise SystemExit(f"pip did not fetch {name} (the cache has {got}): update the manifest's wheels")
        shutil.copy2(cached, folder / name)


def build(blender_ext: Path, wheels: Path | None = None) -> Path:
    manifest = tomllib.loads((SOURCE / "blender_manifest.toml").read_text())
    staged = STAGE / str(manifest["id"])
    shutil.rmtree(STAGE, ignore_errors=True)
    shutil.copytree(SOURCE, staged, ignore=_IGNORE)
    vendor = staged / "_vendor" / "rotobridge"
    shutil.copytree(CORE, vendor, ignore=_IGNORE)
    (staged / "_vendor" / "__init__.py").write_text('"""Packages the extension carries (copied at build time)."""\n')
    if not (vendor / "__init__.py").exists():
        (vendor / "__init__.py").write_text(_VENDOR_NOTE)
    fetch_wheels(manifest, staged / "wheels", wheels)
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
    parser.add_argument("--wheels", type=Path, help="folder holding the manifest's wheels (offline builds)")
    args = parser.parse_args()
    print(build(args.blender_ext or find_blender_ext(), args.wheels))
    return 0


if __name__ == "__main__":
    sys.exit(main())
