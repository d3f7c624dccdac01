"""SAM 2's hole filling, without sam2's CUDA extension.

sam2's builder asks for `fill_hole_area=8`: after each frame's mask decoder, background
regions (scores <= 0) that are 8-connected components of area <= 8 in the low-resolution
logits get the score 0.1 (`sam2.utils.misc.fill_holes_in_mask_scores`). The connected
components come from `sam2._C`, a CUDA extension the pinned sam2 is installed without; sam2
then warns and skips the step, so mattes differ from official sam2 wherever the extension is
present. Here the components come from OpenCV on the CPU, on every device: the logits are
small (256x256 for a 1024 model), so copying them to the CPU costs far less than the model
pass that made them, and OpenCV's labelling is exact where a torch re-implementation would
be ours to prove.

The predictor calls the fill where sam2 does: `install` wraps the predictor's
`_run_single_frame_inference` (the one place sam2 fills) so its outputs, stored and
returned, are filled exactly as sam2 with the extension would fill them.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

#: The score sam2 gives a filled hole: just above 0, so it becomes foreground.
HOLE_SCORE = 0.1


def connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`sam2.utils.misc.get_connected_components` on the CPU: 8-connected components of the
    nonzero pixels of (N, 1, H, W) masks; returns (labels, areas), int32, same shape and
    device, 0 on background pixels."""
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"expected masks of shape (N, 1, H, W), got {tuple(mask.shape)}")
    planes = mask.detach().to("cpu", torch.uint8).numpy()
    labels = np.zeros(planes.shape, np.int32)
    areas = np.zeros(planes.shape, np.int32)
    for i in range(planes.shape[0]):
        lab, area = _label(planes[i, 0])
        labels[i, 0] = lab
        areas[i, 0] = area[lab]
    return torch.from_numpy(labels).to(mask.device), torch.from_numpy(areas).to(mask.device)


def _label(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's 8-connected labels of a uint8 (H, W) plane's nonzero pixels, and each
    label's area (int32); label 0, the zero pixels, has area 0: sam2's "no component"."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(np.ascontiguousarray(plane), connectivity=8, ltype=cv2.CV_32S)
    area = stats[:, cv2.CC_STAT_AREA].astype(np.int32)
    area[0] = 0
    return labels, area


def small_components(mask: torch.Tensor, below: int) -> torch.Tensor | None:
    """The pixels of `mask`'s 8-connected components of fewer than `below` pixels, for a
    (…, H, W) bool mask (despeckle's islands and holes, at plate size: one lookup per pixel,
    not `connected_components`' per-pixel areas); same shape and device. None if there
    are none."""
    planes = mask.detach().to("cpu", torch.uint8).reshape(-1, *mask.shape[-2:]).numpy()
    out = np.zeros(planes.shape, bool)
    found = False
    for i, plane in enumerate(planes):
        labels, area = _label(plane)
        small = (area > 0) & (area < below)
        if small.any():
            out[i], found = small[labels], True
    return torch.from_numpy(out).view(mask.shape).to(mask.device) if found else None


def fill_holes(scores: torch.Tensor, max_area: int) -> torch.Tensor:
    """Mask scores with holes of area <= `max_area` set to HOLE_SCORE, as sam2 defines it."""
    if max_area <= 0:
        return scores
    labels, areas = connected_components(scores <= 0)
    is_hole = (labels > 0) & (areas <= max_area)
    return torch.where(is_hole, HOLE_SCORE, scores)


def install(predictor: Any, max_area: int) -> None:
    """Make `predictor` (a SAM2VideoPredictor) fill holes of up to `max_area` pixels where
    sam2 fills them, with our components; sam2's own attempt (which needs `sam2._C`) is off.

    sam2 fills `pred_masks` after the memory encoder has run and stores the filled scores
    (later read for consolidation, prompt memory and corrections): the wrapper does the same.
    """
    predictor.fill_hole_area = 0
    if max_area <= 0:
        return
    run = predictor._run_single_frame_inference

    def run_and_fill(*args: Any, **kwargs: Any) -> tuple[dict[str, Any], torch.Tensor]:
        compact, pred_masks = run(*args, **kwargs)
        filled = fill_holes(pred_masks, max_area)
        compact["pred_masks"] = filled.to(compact["pred_masks"].device, non_blocking=True)
        return compact, filled

    predictor._run_single_frame_inference = run_and_fill
