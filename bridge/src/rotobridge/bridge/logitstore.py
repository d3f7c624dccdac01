"""The low-resolution logits a session's propagation tracked, kept so a matte control
change re-previews any tracked frame without tracking again.

SAM 2's logits are (image_size/4)² per object per frame: kept on the CPU in half
precision that is 128 KiB at sam2's 1024 input (1,000 frames of 4 objects: 512 MiB),
plenty for a 512-pixel preview. The store is bounded in bytes; past the bound the frames
stored first are dropped first, and a preview of a dropped frame is refused until it is
tracked again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch


class LogitStore:
    """(frame, object id) → (1, 1, h, w) float16 CPU logits, at most `limit` bytes in all.

    `put` runs on the device worker (during a propagation step) and so does every read;
    the lock only keeps the store whole should another thread ever read it.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.bytes = 0
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[int, int], torch.Tensor] = OrderedDict()

    def put(self, frame: int, obj_ids: tuple[int, ...], logits: torch.Tensor) -> None:
        """Keep a tracked frame's (objects, 1, h, w) logits, one row per id in `obj_ids`."""
        half = logits.detach().to("cpu", torch.float16)
        with self._lock:
            for row, oid in enumerate(obj_ids):
                self._drop((frame, oid))
                kept = half[row : row + 1].clone()
                self._kept[(frame, oid)] = kept
                self.bytes += kept.nbytes
            while self.bytes > self.limit and self._kept:
                self._drop(next(iter(self._kept)))

    def get(self, frame: int, obj_id: int) -> torch.Tensor | None:
        """The object's (1, 1, h, w) logits on `frame` as float32, or None when not kept."""
        with self._lock:
            kept = self._kept.get((frame, obj_id))
        return None if kept is None else kept.float()

    def forget(self, obj_id: int) -> None:
        """Drop every frame of an object (its prompts changed: they no longer follow from them)."""
        with self._lock:
            for key in [k for k in self._kept if k[1] == obj_id]:
                self._drop(key)

    def _drop(self, key: tuple[int, int]) -> None:
        old = self._kept.pop(key, None)
        if old is not None:
            self.bytes -= old.nbytes
