"""Mattes at plate resolution: edge refinement against the plate, then the artist's controls.

Expectations come from known truths (a composited step edge), hand-computed values, or
another library (OpenCV's Gaussian blur), never from the code under test.
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rotobridge.bridge import refine
from rotobridge.bridge.mattes import upsample_logits
from rotobridge.controls import UNCHANGED, MatteControls

H, W, LOW = 96, 160, 16  # logit cells of 6 x 10 plate pixels, like 1080p / 256² (4.2 x 7.5)


def _edge_shot(soft: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits, guide, truth) for a slanted edge: orange over green, the plate composited
    from the truth; `soft` blurs the truth (pixels, Gaussian) like motion blur or defocus."""
    y, x = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    truth = (0.5 - (x - 70 - 0.3 * y)).clamp(0, 1)[None, None]
    if soft:
        truth = refine.feather(truth, soft)
    fg = torch.tensor([0.9, 0.55, 0.2]).view(1, 3, 1, 1)
    bg = torch.tensor([0.2, 0.45, 0.25]).view(1, 3, 1, 1)
    guide = truth * fg + (1 - truth) * bg
    low = F.interpolate(truth, size=(LOW, LOW), mode="area")
    return torch.logit(low, eps=1e-4), guide, truth


def _sad(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().sum())


def test_unchanged_controls_give_exactly_the_raw_matte() -> None:
    logits, guide, _ = _edge_shot()
    raw = torch.sigmoid(upsample_logits(logits, H, W))  # what the matte writer writes today
    assert torch.equal(refine.apply(logits, None, UNCHANGED, H, W), raw)
    assert torch.equal(refine.apply(logits, guide, UNCHANGED, H, W), raw)


def test_refinement_recovers_a_hard_edge() -> None:
    logits, guide, truth = _edge_shot()
    raw = refine.raw_matte(logits, H, W)
    refined = refine.apply(logits, guide, MatteControls(), H, W)
    assert _sad(refined, truth) < 0.4 * _sad(raw, truth)
    assert refined.shape == (1, 1, H, W) and 0 <= float(refined.min()) and float(refined.max()) <= 1


def test_refinement_leaves_a_soft_edge_as_it_was() -> None:
    logits, guide, truth = _edge_shot(soft=12.0)
    raw = refine.raw_matte(logits, H, W)
    refined = refine.apply(logits, guide, MatteControls(), H, W)
    assert _sad(refined, truth) <= 1.02 * _sad(raw, truth)


def test_a_frame_whose_edges_are_all_soft_is_sam2s_matte_bit_for_bit() -> None:
    """The gate is shut everywhere (a defocused edge): nothing to refine, so not even the
    upsample differs from sam2's."""
    logits, guide, _ = _edge_shot(soft=12.0)
    assert float(refine._hardness(logits).max()) == 0
    assert torch.equal(refine.apply(logits, guide, MatteControls(), H, W), torch.sigmoid(upsample_logits(logits, H, W)))


def test_no_colour_difference_no_change() -> None:
    logits, _, _ = _edge_shot()
    flat = torch.full((1, 3, H, W), 0.4)
    assert torch.allclose(refine.apply(logits, flat, MatteControls(), H, W), refine.unsure_matte(logits, H, W), atol=1e-6)


@pytest.mark.parametrize(("height", "width"), [(H, W), (1080, 1920), (101, 167)])
def test_refinement_starts_from_sam2s_matte(height: int, width: int) -> None:
    """On the CPU refinement upsamples with OpenCV, not torch: the same bilinear matte as
    sam2's (`upsample_logits`, then sigmoid) to 1e-4, on logits as steep as SAM 2's."""
    logits = 9.2 * torch.randn(1, 1, 256, 256, generator=torch.Generator().manual_seed(3)).clamp(-1, 1)
    sam2 = torch.sigmoid(upsample_logits(logits, height, width))
    torch.testing.assert_close(refine.unsure_matte(logits, height, width), sam2, rtol=0, atol=1e-4)


def test_refinement_needs_a_guide_of_the_plates_size() -> None:
    logits, guide, _ = _edge_shot()
    with pytest.raises(ValueError, match="guide"):
        refine.apply(logits, None, MatteControls(), H, W)
    with pytest.raises(ValueError, match="guide"):
        refine.apply(logits, guide[:, :, :-1], MatteControls(), H, W)


@pytest.mark.parametrize("box", [refine._box, lambda x, r: refine._box_along(refine._box_along(x, r, -1), r, -2)])
def test_box_filter_equals_a_padded_average(box: Callable[[torch.Tensor, int], torch.Tensor]) -> None:
    """On the CPU (OpenCV's box sums) and as other devices run it (running sums)."""
    x = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(0))
    for r in (1, 4, 20):
        expected = F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)
        torch.testing.assert_close(box(x, r), expected, rtol=0, atol=1e-5)


def test_despeckle_removes_islands_and_fills_holes_under_the_area() -> None:
    matte = torch.zeros(1, 1, 40, 40)
    matte[0, 0, 10:30, 10:30] = 1.0
    matte[0, 0, 18:20, 18:21] = 0.0  # a hole of 6 pixels
    matte[0, 0, 2:4, 2:5] = 0.9  # an island of 6 pixels
    matte[0, 0, 35:38, 30:38] = 1.0  # an island of 24 pixels
    out = refine.despeckle(matte, 10)
    expected = matte.clone()
    expected[0, 0, 18:20, 18:21] = 1.0
    expected[0, 0, 2:4, 2:5] = 0.0
    assert torch.equal(out, expected)
    assert torch.equal(refine.despeckle(matte, 6), matte)  # "under 6": 6 pixels stay


def test_clip_maps_black_and_white() -> None:
    matte = torch.tensor([0.0, 0.2, 0.5, 0.8, 1.0]).view(1, 1, 1, 5)
    assert torch.allclose(refine.clip(matte, 0.2, 0.8), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]).view(1, 1, 1, 5))


@pytest.mark.parametrize(("pixels", "side"), [(2.0, 14), (-2.0, 6), (0.0, 10)])
def test_shrink_grow_moves_the_edge(pixels: float, side: int) -> None:
    matte = torch.zeros(1, 1, 30, 30)
    matte[0, 0, 10:20, 10:20] = 1.0
    out = refine.shrink_grow(matte, pixels)
    assert float(out.sum()) == side * side
    start = 15 - side // 2
    assert float(out[0, 0, start : start + side, start : start + side].min()) == 1.0


def test_fractional_grow_is_half_way() -> None:
    matte = torch.zeros(1, 1, 20, 20)
    matte[0, 0, 5:15, 5:15] = 1.0
    out = refine.shrink_grow(matte, 0.5)
    assert float(out[0, 0, 4, 10]) == 0.5 and float(out[0, 0, 3, 10]) == 0.0 and float(out[0, 0, 5, 10]) == 1.0


def test_feather_is_a_gaussian_blur() -> None:
    matte = (torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    sigma = 2.5
    out = refine.feather(matte, sigma)[0, 0].numpy()
    radius = int(np.ceil(3 * sigma))
    expected = cv2.GaussianBlur(matte[0, 0].numpy(), (2 * radius + 1, 2 * radius + 1), sigma, borderType=cv2.BORDER_REPLICATE)
    np.testing.assert_allclose(out, expected, atol=2e-3)


@pytest.mark.parametrize("sigma", [0.5, 1.3, 3.3, 7.7])
def test_feather_keeps_a_solid_matte_at_most_1(sigma: float) -> None:
    """A float32 kernel's weights can sum above 1 (they do at sigma 3.3): a solid matte
    stays at most 1 (and within float32 rounding of it), every value of a blurred one within 0-1."""
    solid = refine.finish(torch.ones(1, 1, 48, 48), MatteControls(refine=0.0, smoothing=0.0, feather=sigma))
    assert float(solid.max()) <= 1.0 and float(solid.min()) >= 1.0 - 1e-6
    noisy = refine.feather(torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(2)), sigma)
    assert float(noisy.min()) >= 0.0 and float(noisy.max()) <= 1.0


def test_controls_apply_in_the_documented_order() -> None:
    """Clip before grow before feather: clipping a grown, feathered edge would re-harden it."""
    logits = torch.full((1, 1, 8, 8), -9.0)
    logits[..., 2:6, 2:6] = 9.0
    controls = MatteControls(refine=0.0, clip_black=0.3, clip_white=0.7, shrink_grow=1.0, feather=1.0)
    step = refine.raw_matte(logits, 32, 32)
    expected = refine.feather(refine.shrink_grow(refine.clip(step, 0.3, 0.7), 1.0), 1.0)
    assert torch.equal(refine.apply(logits, None, controls, 32, 32), expected)
    assert not torch.equal(expected, refine.clip(refine.feather(refine.shrink_grow(step, 1.0), 1.0), 0.3, 0.7))


def test_only_the_band_changes_and_partial_blocks_are_refined() -> None:
    """A frame whose size is no multiple of the coefficients' reduction, with its edge in the
    last, partial column of blocks: refined there, and raw wherever SAM 2 is sure."""
    h, w = 101, 167
    y, x = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    truth = (0.5 - (x - 160 - 0.05 * y)).clamp(0, 1)[None, None]
    guide = truth * torch.tensor([0.9, 0.55, 0.2]).view(1, 3, 1, 1) + (1 - truth) * torch.tensor([0.2, 0.45, 0.25]).view(1, 3, 1, 1)
    logits = torch.logit(F.interpolate(truth, size=(LOW, LOW), mode="area"), eps=1e-4)
    raw = refine.unsure_matte(logits, h, w)
    refined = refine.apply(logits, guide, MatteControls(), h, w)
    sure = refine.BAND_GAIN * raw * (1 - raw) <= refine.BAND_FLOOR
    assert torch.equal(refined[sure], raw[sure])
    assert _sad(refined, truth) < 0.5 * _sad(raw, truth)


def test_a_strand_thinner_than_a_logit_cell_is_refined() -> None:
    """A 1-pixel strand in 15-pixel logit cells (UHD against SAM 2's 256²) raises its
    cell's logit by less than a hard edge's slope, but above both neighbours: a ridge,
    which a soft edge never makes. Refinement takes it towards the plate (the faint
    foreground estimate limits how far: docs/refine.md)."""
    height, width = 96, 240
    y, x = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    truth = (1.0 - (x - 112.5).abs()).clamp(0, 1)[None, None]  # 1 px wide, in the middle of a cell
    fg = torch.tensor([0.9, 0.55, 0.2]).view(1, 3, 1, 1)
    bg = torch.tensor([0.2, 0.45, 0.25]).view(1, 3, 1, 1)
    guide = truth * fg + (1 - truth) * bg
    logits = torch.logit(F.interpolate(truth, size=(LOW, LOW), mode="area"), eps=1e-4)
    rise = float(logits.max() - logits.min())
    assert rise < refine.SOFT_SLOPE  # the slope gate alone would keep the raw smear
    raw = refine.raw_matte(logits, height, width)
    refined = refine.apply(logits, guide, MatteControls(), height, width)
    assert _sad(refined, truth) < 0.95 * _sad(raw, truth)
    assert float(refined[0, 0, :, 112].mean()) > 2 * float(raw[0, 0, :, 112].mean())  # the strand itself


def _strand_by_a_body(strand_colour: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits, guide, truth): a 1-pixel strand 52 px from the edge of a body, in 15-pixel
    logit cells, the strand `strand_colour`, the body orange, over green."""
    height, width = 128, 240
    y, x = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    strand = (1.0 - (x - 112.5).abs()).clamp(0, 1)[None, None]
    body = (60.5 - x).clamp(0, 1)[None, None]
    truth = torch.maximum(strand, body)
    fg = torch.tensor([0.9, 0.55, 0.2]).view(1, 3, 1, 1)
    bg = torch.tensor([0.2, 0.45, 0.25]).view(1, 3, 1, 1)
    guide = body * fg + strand * strand_colour.view(1, 3, 1, 1) + (1 - truth) * bg
    return torch.logit(F.interpolate(truth, size=(LOW, LOW), mode="area"), eps=1e-4), guide, truth


def test_a_strand_of_the_bodys_colour_is_refined_most_of_the_way() -> None:
    """SAM 2's smear around the strand holds too little of it for the colour window to see
    its colour; the wider window's, the body's, is the strand's: refinement takes it most of
    the way to the plate (a window of its own alone moved its core from 0.07 to 0.16)."""
    logits, guide, truth = _strand_by_a_body(torch.tensor([0.9, 0.55, 0.2]))
    height, width = truth.shape[-2:]
    raw = refine.raw_matte(logits, height, width)
    refined = refine.apply(logits, guide, MatteControls(), height, width)
    around = (..., slice(80, 150))  # the strand and the smear around it, away from the body's edge
    assert _sad(refined[around], truth[around]) < 0.7 * _sad(raw[around], truth[around])
    assert float(raw[0, 0, :, 112].mean()) < 0.1
    assert float(refined[0, 0, :, 112].mean()) > 0.4


def test_a_strand_of_another_colour_than_the_body_is_not_made_worse() -> None:
    """The wider window's foreground colour (the body's) is not the strand's: its line passes
    far from the strand's colour, so the strand keeps the local window's estimate."""
    logits, guide, truth = _strand_by_a_body(torch.tensor([0.25, 0.2, 0.6]))
    height, width = truth.shape[-2:]
    raw = refine.raw_matte(logits, height, width)
    refined = refine.apply(logits, guide, MatteControls(), height, width)
    around = (..., slice(80, 150))
    assert _sad(refined[around], truth[around]) < _sad(raw[around], truth[around])


# --- the CPU's OpenCV paths equal the torch operations other devices run ----------------


@pytest.mark.parametrize(("ry", "rx"), [(1, 1), (2, 5), (0, 3)])
def test_dilation_on_the_cpu_is_max_pooling_bit_for_bit(ry: int, rx: int) -> None:
    """Border pixels included: outside the image counts as nothing (max pooling's -inf, so
    negative values show a border of 0 or of +inf)."""
    x = torch.rand(1, 1, 37, 53, generator=torch.Generator().manual_seed(ry * 10 + rx)) - 0.5
    x[0, 0, 0, 0] = 2.0  # a corner maximum spreads inwards only
    expected = F.max_pool2d(x, (2 * ry + 1, 2 * rx + 1), stride=1, padding=(ry, rx))
    assert torch.equal(refine._dilate(x, ry, rx), expected)


def test_blur_on_the_cpu_is_the_separable_convolution() -> None:
    x = torch.rand(1, 1, 41, 67, generator=torch.Generator().manual_seed(2))
    kernel = torch.tensor([0.05, 0.25, 0.4, 0.25, 0.05])
    r = 2
    expected = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    expected = F.conv2d(F.pad(expected, (0, 0, r, r), mode="replicate"), kernel.view(1, 1, -1, 1))
    torch.testing.assert_close(refine._blur(x, kernel), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize(("height", "width"), [(48, 72), (50, 75)])  # whole blocks; partial ones at the far edges
def test_downsample_on_the_cpu_is_average_pooling(height: int, width: int) -> None:
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(3))
    padded = F.pad(x, (0, -width % 6, 0, -height % 6), mode="replicate")
    torch.testing.assert_close(refine._downsample(x, 6), F.avg_pool2d(padded, 6), atol=1e-6, rtol=0)


def test_despeckles_small_components_are_those_connected_components_measures() -> None:
    from rotobridge.bridge.holes import connected_components, small_components

    mask = torch.rand(1, 1, 60, 90, generator=torch.Generator().manual_seed(4)) > 0.6
    _, areas = connected_components(mask)
    small = small_components(mask, 5)
    assert small is not None and torch.equal(small, (areas > 0) & (areas < 5))
    assert small_components(torch.zeros(1, 1, 8, 8, dtype=torch.bool), 5) is None


def test_the_cpu_paths_take_views_of_larger_tensors() -> None:
    """A matte cut out of a bigger tensor (not contiguous) is dilated and blurred as a copy of it is."""
    big = torch.rand(1, 1, 40, 90, generator=torch.Generator().manual_seed(5))
    view, copy = big[..., 5:35, 10:70], big[..., 5:35, 10:70].contiguous()
    assert not view.is_contiguous()
    assert torch.equal(refine._dilate(view, 2, 2), refine._dilate(copy, 2, 2))
    assert torch.equal(refine.feather(view, 1.5), refine.feather(copy, 1.5))


@pytest.mark.parametrize(("height", "width"), [(96, 160), (101, 167), (7, 5)])
def test_sampling_the_gate_at_band_pixels_is_the_bilinear_upsample_there(height: int, width: int) -> None:
    """The gate is sampled at the band's pixels only: the values torch's bilinear upsample
    (align_corners=False, as sam2's) gives there, the border pixels included."""
    low = torch.rand(1, 1, 16, 12, generator=torch.Generator().manual_seed(height))
    full = F.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    at = refine._bilinear_at(low[0, 0], ys.reshape(-1), xs.reshape(-1), height, width)
    torch.testing.assert_close(at.view(height, width), full, rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [(1080, 1920), (37, 53), (1, 3)])
def test_the_band_pixels_are_the_masks_non_zero_ones(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(size[1])
    for density in (0.0, 0.01, 0.5, 1.0):
        mask = np.where(rng.random(size) < density, 255, 0).astype(np.uint8)
        assert np.array_equal(refine._nonzero(mask), np.flatnonzero(mask))
