"""Hole filling equals sam2's `fill_holes_in_mask_scores`, with no CUDA extension.

sam2's function runs with connected components from the reference search (components.py);
ours with OpenCV's. Hand-made score maps pin the definition itself: background components
(scores <= 0) of area <= 8, 8-connected, border ones included, become 0.1.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from sam2.utils.misc import fill_holes_in_mask_scores

from rotobridge.bridge.holes import HOLE_SCORE, connected_components, fill_holes

from .components import reference_components, sam2_with_reference_components


def _sam2_fill(scores: torch.Tensor, area: int = 8) -> torch.Tensor:
    with sam2_with_reference_components(), warnings.catch_warnings():
        warnings.filterwarnings("error", message="(?s).*Skipping the post-processing")
        return fill_holes_in_mask_scores(scores, area)


def _hand_made() -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, what sam2's definition makes of them), the expectation written out by hand."""
    scores = torch.full((1, 1, 16, 20), 2.0)
    expected = scores.clone()

    def hole(rows: slice | int, cols: slice | int, filled: bool) -> None:
        scores[0, 0, rows, cols] = -3.0
        expected[0, 0, rows, cols] = HOLE_SCORE if filled else -3.0

    hole(slice(1, 2), slice(1, 8), True)  # area 7
    hole(slice(4, 6), slice(1, 5), True)  # area 8 (2x4)
    hole(slice(8, 11), slice(1, 4), False)  # area 9 (3x3)
    hole(slice(0, 2), slice(16, 20), True)  # area 8 in the top-right corner
    # two 2x3 blocks touching only at a corner: one component of 12 under 8-connectivity
    # (each block alone, 6, would be filled under 4-connectivity)
    hole(slice(12, 14), slice(8, 11), False)
    hole(slice(14, 16), slice(11, 14), False)
    # a zero score is background too: a single 0 pixel is a hole
    scores[0, 0, 6, 15] = 0.0
    expected[0, 0, 6, 15] = HOLE_SCORE
    return scores, expected


def test_hand_made_holes_follow_sam2s_definition() -> None:
    scores, expected = _hand_made()
    assert torch.equal(_sam2_fill(scores), expected)  # the reading of sam2's definition holds
    assert torch.equal(fill_holes(scores, 8), expected)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("density", [0.5, 0.7, 0.9])  # foreground share
def test_random_scores_equal_sam2(seed: int, density: float) -> None:
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(3, 1, 48, 40, generator=g) + torch.special.logit(torch.tensor(density))
    scores[0, 0, 5:9, 5:9] = 0.0  # exact zeros count as background
    ours = fill_holes(scores, 8)
    theirs = _sam2_fill(scores)
    assert torch.equal(ours, theirs)
    assert not torch.equal(ours, scores)  # there were holes to fill


@pytest.mark.parametrize("area", [1, 3, 30])
def test_other_areas_equal_sam2(area: int) -> None:
    scores = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(area))
    assert torch.equal(fill_holes(scores, area), _sam2_fill(scores, area))


def test_components_equal_the_reference() -> None:
    mask = torch.rand(2, 1, 40, 50, generator=torch.Generator().manual_seed(7)) < 0.45
    labels, areas = connected_components(mask)
    ref_labels, ref_areas = reference_components(mask)
    assert labels.dtype == torch.int32 and labels.shape == mask.shape
    assert torch.equal(areas, ref_areas)
    assert torch.equal(labels > 0, ref_labels > 0)
    # the same partition: each of our labels maps to exactly one reference label
    for n in range(2):
        pairs = set(zip(labels[n].flatten().tolist(), ref_labels[n].flatten().tolist()))
        assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})


def test_area_zero_fills_nothing() -> None:
    scores, _ = _hand_made()
    assert fill_holes(scores, 0) is scores


def test_sam2_as_shipped_skips_filling() -> None:
    """Why holes.py exists: without `sam2._C`, sam2 warns and returns the scores unfilled."""
    scores, expected = _hand_made()
    with pytest.warns(UserWarning, match="Skipping the post-processing"):
        out = fill_holes_in_mask_scores(scores, 8)
    assert torch.equal(out, scores) and not torch.equal(out, expected)
