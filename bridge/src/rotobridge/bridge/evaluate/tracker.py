"""What the protocols drive: rotobridge's own Engine over a dataset sequence's plate.

The protocols only need prompts in and logits out, so they take any `Tracker`; the product
uses `EngineTracker`, the Engine `rotobridge render` runs (same plate reader, colour
pipeline and propagation), so a benchmark measures what a render produces. Masks are
`upsample_logits(...) > 0`, exactly a binary render's matte.
"""

from __future__ import annotations

from typing import Callable, Iterator, Protocol, Sequence

import numpy as np
import torch

from ..colour import ColourPipeline
from ..engine import Engine, FrameResult
from ..mattes import upsample_logits
from ..model import LoadedModel
from ..plate import open_plate
from .datasets import VideoSequence

#: the logit sam2 gives an object on a frame it has no output for
ABSENT = -1024.0


class Tracker(Protocol):
    """Prompts in plate frame numbers and display pixels; low-resolution logits out."""

    def add_mask(self, frame: int, obj_id: int, mask: np.ndarray) -> FrameResult: ...

    def add_points(
        self, frame: int, obj_id: int, points: Sequence[Sequence[float]] = (), labels: Sequence[int] = (),
        box: Sequence[float] | None = None,
    ) -> FrameResult: ...

    def propagate(self, start: int, end: int) -> Iterator[FrameResult]: ...

    def close(self) -> None: ...


TrackerFactory = Callable[[VideoSequence], Tracker]


class EngineTracker(Engine):
    """The Engine over a sequence's plate, read and colour-managed as `rotobridge render` does."""

    def __init__(self, loaded: LoadedModel, sequence: VideoSequence) -> None:
        self._plate = open_plate(sequence.plate, sequence.frame_range, layer=sequence.layer)
        try:
            super().__init__(loaded, self._plate, ColourPipeline(sequence.colourspace, config=sequence.config))
        except BaseException:
            self._plate.close()
            raise

    def close(self) -> None:
        super().close()
        self._plate.close()


def engine_trackers(loaded: LoadedModel) -> TrackerFactory:
    return lambda sequence: EngineTracker(loaded, sequence)


def full_logits(logits: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """(N, 1, h, w) low-resolution logits → (N, height, width) at the sequence's size."""
    with torch.inference_mode():
        return upsample_logits(logits.float(), *shape)[:, 0]
