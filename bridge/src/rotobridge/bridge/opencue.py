"""OpenCue jobs for recipes, built with pyoutline and submitted with pycue.

One Shell layer per farm task (farm.py): its range is the chunk's frames and its chunk size
their count, so the layer is one OpenCue frame running one `rotobridge render --frames
--resume`; a chunk's layer depends on the previous chunk of its chain (layer on layer).
The outline serialises to OpenCue's job XML offline; submission needs a Cuebot, found
through `CUEBOT_HOSTS` as pycue reads it, and is refused with a clear error without one.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from rotobridge.errors import FarmError

from .farm import Task


def outline(
    tasks: Sequence[Task],
    *,
    name: str,
    show: str,
    shot: str,
    user: str,
    device: str = "cuda",
    rotobridge: str = "rotobridge",
    cores: float = 2.0,
    memory: str = "8g",
    tags: Sequence[str] = ("gpu",),
    env: Mapping[str, str] | None = None,
    checkpoint_every: int = 10,
) -> object:
    """The job as a pyoutline Outline (layers in task order, dependencies set)."""
    from outline import Outline
    from outline.modules.shell import Shell

    job = Outline(name, shot=shot, show=show, user=user)
    layers: dict[str, Any] = {}
    for task in tasks:
        layer = Shell(
            task.name,
            command=task.command(rotobridge, device, checkpoint_every),
            range=task.frame_range,
            chunk=len(task.frames),
            cores=cores,
            memory=memory,
            tags=list(tags),
        )
        for key, value in (env or {}).items():
            layer.set_env(key, value)
        if task.after:
            layer.depend_all(layers[task.after])
        layers[task.name] = layer
        job.add_layer(layer)
    return job


def serialise(job: object) -> str:
    """OpenCue's job spec XML, made without a Cuebot."""
    from outline.cuerun import OutlineLauncher

    return str(OutlineLauncher(job).serialize(use_pycuerun=False))


def submit(job: object) -> list[str]:
    """Launch on the Cuebot `CUEBOT_HOSTS` names; the names of the jobs it made."""
    hosts = os.environ.get("CUEBOT_HOSTS", "").strip()
    if not hosts:
        raise FarmError(
            "cannot submit to OpenCue: CUEBOT_HOSTS is not set. Set it to your Cuebot's host "
            "(e.g. CUEBOT_HOSTS=cuebot.studio:8443), or write the job with --out and submit it yourself"
        )
    from outline.cuerun import launch

    try:
        jobs = launch(job, use_pycuerun=False)
    except Exception as exc:  # pycue's connection errors are its own (grpc) types
        raise FarmError(f"cannot submit to OpenCue at {hosts}: {exc}") from None
    return [str(getattr(j, "name", lambda: j)()) for j in jobs or []]
