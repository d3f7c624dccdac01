"""Blender tests: real Blender (bpy 4.5 from .venv-blender), headless, with the extension
installed from the zip that install/build_blender_extension.py builds.

At import, before any test module: a throwaway Blender user folder (BLENDER_USER_RESOURCES),
the build, and Blender's own `extensions.package_install_files` into its user repository,
which also installs the bundled wheels: the host core `rotobridge` and pyzmq. .venv-blender
has neither of its own, so `import rotobridge` here, in the extension and in the shared
host tests (tests/host) alike, is the core Blender installed from the zip.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
USER = Path(tempfile.mkdtemp(prefix="rotobridge-blender-user-"))
os.environ["BLENDER_USER_RESOURCES"] = str(USER)
atexit.register(shutil.rmtree, USER, ignore_errors=True)

import bpy  # noqa: E402  (after BLENDER_USER_RESOURCES)

REPO = "user_default"
MODULE = f"bl_ext.{REPO}.rotobridge"


def _build() -> Path:
    result = subprocess.run(
        [sys.executable, str(ROOT / "install" / "build_blender_extension.py")], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


#: where `zmq` and `rotobridge` came from before the extension was installed (None: nowhere, as it must be)
ZMQ_BEFORE = importlib.util.find_spec("zmq")
CORE_BEFORE = importlib.util.find_spec("rotobridge")
assert CORE_BEFORE is None and "rotobridge" not in sys.modules, (
    f".venv-blender must not have its own rotobridge (found {CORE_BEFORE and list(CORE_BEFORE.submodule_search_locations or [])})"
)
ZIP = _build()
assert bpy.ops.extensions.package_install_files(filepath=str(ZIP), repo=REPO, enable_on_install=True) == {"FINISHED"}
EXTENSION = sys.modules[MODULE]
#: where Blender installs extensions' wheels
SITE = USER / "extensions" / ".local" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"

import rotobridge  # noqa: E402  (the core Blender installed from the zip's wheel)

assert [Path(p) for p in rotobridge.__path__] == [SITE / "rotobridge"], list(rotobridge.__path__)

adapter: Any = importlib.import_module(f"{MODULE}.adapter")
comp: Any = importlib.import_module(f"{MODULE}.comp")
compat: Any = importlib.import_module(f"{MODULE}.compat")
overlay: Any = importlib.import_module(f"{MODULE}.overlay")


def prefs() -> Any:
    return bpy.context.preferences.addons[MODULE].preferences


def new_file() -> None:
    """An empty file, default add-on settings, no sessions."""
    bpy.ops.wm.read_homefile(use_empty=True)
    for name in ("address", "server_key", "client_key", "bridge", "bridge_arguments", "ocio_config", "host_root", "bridge_root"):
        prefs().property_unset(name)
    adapter.release_all()
    adapter.QUEUE.drain()


def write_plate(folder: Path, name: str, frames: range, width: int, height: int, ext: str = "png") -> Path:
    """An image sequence `folder/name.<frame>.<ext>` written by Blender: frame f has blue = (f % 8) / 8
    and a bright square whose place moves with the frame. Returns the first file."""
    folder.mkdir(parents=True, exist_ok=True)
    image = bpy.data.images.new("plate", width, height, float_buffer=ext == "exr")
    image.file_format = "OPEN_EXR" if ext == "exr" else "PNG"
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    for frame in frames:
        rgba = np.ones((height, width, 4), np.float32)
        rgba[..., 0], rgba[..., 1], rgba[..., 2] = xs / width, ys / height, (frame % 8) / 8
        cx, cy = width * (0.3 + 0.04 * (frame % 5)), height * 0.5
        rgba[(abs(xs - cx) < width / 8) & (abs(ys - cy) < height / 6), :3] = 0.95
        image.pixels.foreach_set(rgba.ravel())
        image.filepath_raw = str(folder / f"{name}.{frame:04d}.{ext}")
        image.save()
    bpy.data.images.remove(image)
    return folder / f"{name}.{frames[0]:04d}.{ext}"


def load_clip(first_file: Path, colourspace: str = "sRGB", frame_start: int = 1) -> Any:
    clip = bpy.data.movieclips.load(str(first_file))
    clip.colorspace_settings.name = colourspace
    clip.frame_start = frame_start
    bpy.context.scene.active_clip = clip
    return clip


def pump(until: Any, timeout: float = 5.0, what: str = "") -> None:
    """Run the add-on's timer (headless Blender runs no timers) until `until()` holds."""
    import time

    deadline = time.monotonic() + timeout
    while not until():
        adapter.tick()
        if until():
            return
        if time.monotonic() > deadline:
            hosts = list(adapter._hosts.values())
            raise AssertionError(f"timed out {what}; errors: {[h.errors for h in hosts]}; states: {[h.state for h in hosts]}")
        time.sleep(0.005)


MAIN_THREAD = threading.get_ident()


@pytest.fixture
def blank() -> Iterator[None]:
    new_file()
    yield
    new_file()
