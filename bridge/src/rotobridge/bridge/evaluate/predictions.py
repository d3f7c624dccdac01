"""A folder of predictions in a benchmark's own format, written or read for one sequence.

Palette PNGs `<root>/<seq>/<stem>.png` for DAVIS, MOSE and YouTube-VOS; per-object PNGs
`<root>/<seq>/<id:03d>/<stem>.png` for SA-V and studio shots: what the official evaluators
(davis2017-evaluation, vos-benchmark, SA-V's) read, so they can score a rotobridge run,
and what sam2's `vos_inference.py` writes, so rotobridge can score an official run.
"""

from __future__ import annotations

import os

import numpy as np

from rotobridge.errors import DatasetError

from . import masks as maskfiles
from .datasets import VideoSequence


class PredictionFolder:
    """One sequence's predictions under `root`; `objects`: the ids a prediction may hold."""

    def __init__(self, root: str, sequence: VideoSequence, objects: tuple[int, ...] | None = None) -> None:
        self.folder = os.path.join(root, sequence.name)
        self.sequence = sequence
        self.objects = sequence.objects if objects is None else objects
        self._object_folders: dict[int, str] | None = None

    def path(self, frame: int, obj: int | None = None) -> str:
        stem = self.sequence.stems[frame]
        if obj is None:
            return os.path.join(self.folder, f"{stem}.png")
        return os.path.join(self.folder, f"{obj:03d}", f"{stem}.png")

    def write(self, frame: int, masks: dict[int, np.ndarray]) -> None:
        palette = self.sequence.palette or maskfiles.DAVIS_PALETTE
        if self.sequence.per_object:
            for obj, mask in masks.items():
                maskfiles.write_labels(self.path(frame, obj), mask.astype(np.uint8), palette)
            return
        labels = np.zeros(self.sequence.shape, np.uint8)
        for obj in sorted(masks, reverse=True):  # lowest id painted last, as vos_inference does
            labels[masks[obj]] = obj
        maskfiles.write_labels(self.path(frame), labels, palette)

    def _unknown(self, obj: int, where: str) -> DatasetError:
        known = ", ".join(map(str, self.objects)) or "none"
        return DatasetError(f"{where}: object id {obj} is not in the truth of {self.sequence.name} (objects: {known})")

    def read(self, frame: int) -> dict[int, np.ndarray]:
        """Object id → boolean mask; a missing file or an id the truth lacks is a DatasetError."""
        if not os.path.isdir(self.folder):
            raise DatasetError(f"missing predictions for sequence {self.sequence.name}: {self.folder}")
        if not self.sequence.per_object:
            path = self.path(frame)
            masks = maskfiles.split(maskfiles.read_labels(path, self.sequence.shape))
            for obj in masks:
                if obj not in self.objects:
                    raise self._unknown(obj, path)
            return masks
        if self._object_folders is None:
            self._object_folders = {}
            for name in sorted(os.listdir(self.folder)):
                full = os.path.join(self.folder, name)
                if not os.path.isdir(full):
                    continue
                if not name.isdigit():
                    raise DatasetError(f"{full}: object folders are named by number, e.g. 001")
                if int(name) not in self.objects:
                    raise self._unknown(int(name), full)
                self._object_folders[int(name)] = full
        stem = self.sequence.stems[frame]
        return {
            obj: maskfiles.read_labels(os.path.join(folder, f"{stem}.png"), self.sequence.shape) > 0
            for obj, folder in self._object_folders.items()
        }
