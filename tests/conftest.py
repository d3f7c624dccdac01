"""Shared fixtures: the random-weight SAM 2 checkpoint every engine test uses.

Model weights cannot be downloaded here, so tests build a randomly initialised checkpoint
from the real sam2 config (NOTES.md): its masks mean nothing but its logits are exact,
which is what the equivalence tests compare. The model runs at a reduced image size.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

#: tests/blender runs in .venv-blender, whose bpy is real Blender (install/test.sh); an
#: interpreter without bpy (the bridge's, the host's) leaves that folder out.
collect_ignore = [] if importlib.util.find_spec("bpy") else ["blender"]

TINY_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
#: Reduced input size for speed (≈0.07 s per frame per object on 2 CPU cores).
SMALL_SIZE = ["++model.image_size=256"]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rotobridge.bridge.model import make_random_checkpoint

    return make_random_checkpoint(TINY_CONFIG, tmp_path_factory.mktemp("ckpt") / "sam2.1_tiny_random.pt", seed=1)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the process as soon as pytest is done, with pytest's own exit status.

    OpenImageIO's Python bindings (nanobind) sometimes report "leaked instances" while the
    interpreter shuts down after a pytest run (never in a plain script, and not from a
    reference our code keeps). That report would land after pytest's summary line, which
    must be the run's last line. Skipping interpreter finalization keeps it off; every
    other plugin has finished by now (this hook runs last).
    """
    if _EXIT in config.stash:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(config.stash[_EXIT])


_EXIT = pytest.StashKey[int]()
