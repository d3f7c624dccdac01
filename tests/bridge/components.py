"""A reference for sam2's `get_connected_components`, written from its docstring.

sam2 computes the components with its CUDA extension (`sam2._C`), which the pinned sam2 is
installed without. Tests give sam2 this plain breadth-first search instead, so sam2's own
`fill_holes_in_mask_scores` runs and rotobridge's OpenCV-based filling can be compared
with it. Slow (pure Python) and obviously right, which is the point.
"""

from __future__ import annotations

import contextlib
from collections import deque
from typing import Iterator

import numpy as np
import pytest
import torch

_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def reference_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels, areas) of the 8-connected components of the nonzero pixels of (N, 1, H, W)
    masks; 0 on zero pixels; labels count from 1 per image."""
    planes = mask.detach().to("cpu").numpy() != 0
    labels = np.zeros(planes.shape, np.int32)
    areas = np.zeros(planes.shape, np.int32)
    for n in range(planes.shape[0]):
        plane, lab, area = planes[n, 0], labels[n, 0], areas[n, 0]
        height, width = plane.shape
        count = 0
        for y0 in range(height):
            for x0 in range(width):
                if not plane[y0, x0] or lab[y0, x0]:
                    continue
                count += 1
                lab[y0, x0] = count
                members = [(y0, x0)]
                queue = deque(members)
                while queue:
                    y, x = queue.popleft()
                    for dy, dx in _NEIGHBOURS:
                        yy, xx = y + dy, x + dx
                        if 0 <= yy < height and 0 <= xx < width and plane[yy, xx] and not lab[yy, xx]:
                            lab[yy, xx] = count
                            members.append((yy, xx))
                            queue.append((yy, xx))
                for y, x in members:
                    area[y, x] = len(members)
    return torch.from_numpy(labels).to(mask.device), torch.from_numpy(areas).to(mask.device)


class Recorder:
    """The reference, counting the hole pixels (area <= `max_area`) it has seen."""

    def __init__(self, max_area: int = 8) -> None:
        self.max_area = max_area
        self.calls = 0
        self.hole_pixels = 0

    def __call__(self, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        labels, areas = reference_components(mask)
        self.calls += 1
        self.hole_pixels += int(((labels > 0) & (areas <= self.max_area)).sum())
        return labels, areas


@contextlib.contextmanager
def sam2_with_reference_components() -> Iterator[Recorder]:
    """sam2 as shipped, but with connected components: its hole filling runs as with `_C`."""
    import sam2.utils.misc

    recorder = Recorder()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sam2.utils.misc, "get_connected_components", recorder)
        yield recorder
