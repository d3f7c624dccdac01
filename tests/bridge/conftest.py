"""Bridge fixtures: the random-weight model loaded once, and in-process servers on real sockets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from rotobridge.bridge import model as models
from rotobridge.bridge.config import BridgeConfig
from rotobridge.bridge.server import Server

from ..conftest import SMALL_SIZE, TINY_CONFIG
from .plates import write_sequence

COLOURSPACE = "ACEScg"


@pytest.fixture(scope="session")
def loaded(tiny_checkpoint: Path) -> models.LoadedModel:
    return models.build(TINY_CONFIG, tiny_checkpoint, device="cpu", overrides=SMALL_SIZE)


def bridge_config(root: Path, checkpoint: Path, **changes: Any) -> BridgeConfig:
    """A loopback bridge on a free port serving the tiny test model, allowed under `root`."""
    values: dict[str, Any] = {
        "address": "tcp://127.0.0.1:*",
        "roots": (os.path.realpath(root),),
        "model_config": TINY_CONFIG,
        "checkpoint": str(checkpoint),
        "overrides": tuple(SMALL_SIZE),
        "device": "cpu",
        **changes,
    }
    return BridgeConfig(**values)


@pytest.fixture
def start_bridge(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, loaded: models.LoadedModel
) -> Iterator[Callable[..., Server]]:
    """Start in-process servers (their I/O thread in the background); all stopped at the end."""
    servers: list[Server] = []

    def start(root: Path | None = None, **changes: Any) -> Server:
        server = Server(bridge_config(root or tmp_path_factory.mktemp("root"), tiny_checkpoint, **changes), loaded)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
        assert not server.alive


def shot(root: Path, name: str = "sh", frames: int = 6, width: int = 64, height: int = 48) -> dict[str, Any]:
    """Write a plate under `root`; the `open` fields for it, mattes going to root/<name>_mattes."""
    pattern = write_sequence(root / name, name, range(1001, 1001 + frames), width, height)
    return {
        "plate": {"path": pattern, "frames": f"1001-{1000 + frames}", "colourspace": COLOURSPACE},
        "output": {"path": str(root / f"{name}_mattes" / f"{name}.####.exr")},
    }


def mattes(root: Path, name: str = "sh") -> list[str]:
    """Matte files under their final names (hidden temporary files excluded), sorted."""
    folder = root / f"{name}_mattes"
    return sorted(str(p) for p in folder.glob(f"{name}.*.exr")) if folder.exists() else []
