"""Shared fixtures: the random-weight SAM 2 checkpoint every engine test uses.

Model weights cannot be downloaded here, so tests build a randomly initialised checkpoint
from the real sam2 config (NOTES.md): its masks mean nothing but its logits are exact,
which is what the equivalence tests compare. The model runs at a reduced image size.
"""

from __future__ import annotations

import importlib.util
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
