"""Tracking checkpoints: SAM 2's memory saved beside the mattes so a killed render or the next
farm chunk continues where tracking stopped instead of re-tracking from the prompt.

A checkpoint holds what `Engine.snapshot` returns — per object, the prompted frames' outputs
and the non-conditioning outputs the engine still keeps (the frames within memory reach of
the playhead, of a prompt or of the pass's start: mask memory, object pointers, score
logits, low-resolution masks), plus the object and prompt bookkeeping — and the last frame
tracked. With temporal smoothing it also holds the logits of the pass's last 2·RADIUS
frames tracked (`tail`): the frames the smoother still held back when it was saved (their
mattes are not on disk yet) are re-made on resume from those logits, with their RADIUS
neighbours before them (temporal.py), so a resumed render writes them as an uninterrupted
one would. One file per propagation pass (its start and direction), replaced atomically, so a
reader sees the previous checkpoint or the new one, never half of one. It is only used for
the same recipe hash, model checkpoint hash and pass, written by the same format version;
anything else is ignored with a log line saying why, and tracking starts at the prompt.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .atomic import atomic_file, remove_temporaries
from .mattes import matte_sequence
from .security import allowed_path

log = logging.getLogger(__name__)

#: Bumped when what a checkpoint holds or means changes; other versions are ignored.
#: 2: the tail of logits for temporal smoothing.
FORMAT_VERSION = 2


@dataclass(frozen=True)
class PassKey:
    """What a checkpoint belongs to: a recipe, a model and one propagation pass of it."""

    recipe_sha256: str
    model_sha256: str
    start: int
    reverse: bool

    @property
    def direction(self) -> str:
        return "backward" if self.reverse else "forward"


@dataclass(frozen=True)
class Checkpoint:
    key: PassKey
    #: the last frame tracked (plate frame number); the pass continues after it
    frame: int
    state: dict[str, Any]
    #: (frame, logits in the writer's object order) of the pass's last frames tracked, up
    #: to `frame`, oldest first; empty without temporal smoothing (tracking.py)
    tail: tuple[tuple[int, torch.Tensor], ...] = ()


class Checkpoints:
    """The checkpoints of one shot's mattes, in the matte folder, saved every `every` frames."""

    def __init__(
        self, matte_pattern: str, recipe_sha256: str, model_sha256: str, *, every: int = 10, roots: Sequence[str] = ()
    ) -> None:
        """roots: folders a checkpoint must really lie in (`render --root`), checked at each use like the mattes."""
        if every < 1:
            raise ValueError("checkpoints need every >= 1 frame")
        sequence = matte_sequence(matte_pattern)
        self.folder = os.path.dirname(os.path.abspath(matte_pattern))
        self.stem = os.path.basename(sequence.basename()).rstrip("._") or "mattes"
        self.recipe_sha256, self.model_sha256 = recipe_sha256, model_sha256
        self.every = every
        self.roots = tuple(roots)

    def key(self, start: int, reverse: bool) -> PassKey:
        return PassKey(self.recipe_sha256, self.model_sha256, start, reverse)

    def path(self, key: PassKey) -> str:
        path = os.path.join(self.folder, f"{self.stem}.tracking.{key.direction}.{key.start}.pt")
        return allowed_path(path, self.roots, "tracking checkpoint") if self.roots else path

    def save(self, key: PassKey, frame: int, state: dict[str, Any], tail: Sequence[tuple[int, torch.Tensor]] = ()) -> str:
        """Write atomically: a kill mid-save leaves the previous checkpoint in place."""
        path = self.path(key)
        header = {
            "rotobridge_tracking": FORMAT_VERSION,
            "recipe_sha256": key.recipe_sha256,
            "model_sha256": key.model_sha256,
            "start": key.start,
            "reverse": key.reverse,
            "frame": frame,
        }
        os.makedirs(self.folder, exist_ok=True)
        with atomic_file(path) as tmp:
            torch.save({"header": header, "state": state, "tail": [[f, t] for f, t in tail]}, tmp)
        return path

    def load(self, key: PassKey, device: torch.device) -> Checkpoint | None:
        """The pass's checkpoint if there is a valid one for this recipe and model, else None (logged)."""
        path = self.path(key)
        if not os.path.exists(path):
            return None
        try:
            data = torch.load(path, map_location=device, weights_only=True)
            header, state = data["header"], data["state"]
            found = (header["rotobridge_tracking"], header["recipe_sha256"], header["model_sha256"], header["start"], header["reverse"])
            frame = int(header["frame"])
            tail = tuple((int(f), t) for f, t in data.get("tail", []))
            if not all(isinstance(t, torch.Tensor) for _, t in tail):
                raise ValueError("its tail holds something other than logits")
        except Exception as exc:  # a damaged or foreign file: never fatal, tracking starts over
            log.warning("ignoring tracking checkpoint %s: it cannot be read (%s)", path, exc)
            return None
        wanted = (FORMAT_VERSION, key.recipe_sha256, key.model_sha256, key.start, key.reverse)
        if found != wanted:
            what = ["format version", "recipe", "model checkpoint", "pass start", "direction"]
            differs = ", ".join(w for w, a, b in zip(what, found, wanted) if a != b)
            log.warning("ignoring tracking checkpoint %s: made for another %s", path, differs)
            return None
        return Checkpoint(key, frame, state, tail)

    def remove_stale_temporaries(self, key: PassKey) -> None:
        """Temporary files a killed save left for this pass's checkpoint."""
        for name in remove_temporaries(self.path(key)):
            log.info("removed a temporary file a stopped render left: %s", name)
