"""Mattes at plate resolution: SAM 2's probabilities refined against the plate, then the
artist's controls (rotobridge.controls, which documents the order).

SAM 2 predicts 256×256 logits; upsampled to a 1920×1080 plate an edge is a ramp 8-15
pixels wide and a 2-pixel strand a faint smear. The plate still holds the edge: near it,
each pixel is a blend of a foreground and a background colour. Edge refinement estimates
both colours locally from the plate, weighted by SAM 2's own probabilities (foreground
colour where it is confident of the object, background where it is confident of the rest),
and reads alpha off where the pixel lies between them, as in a fast guided filter: the
per-pixel linear coefficients (alpha = u·I − c) are computed at reduced resolution with box
filters and upsampled, so the work at plate resolution is a few per-pixel operations.
It is used only in the band where SAM 2 is unsure and only as far as the two colours differ
(no halos on flat colour; the raw matte stays where the plate cannot tell). Everything is
torch, on the device the logits come from, but for the plate-sized passes (`_dilate`,
`_blur`, `_downsample`, `_box`, the upsample in `unsure_matte` and the band's search in
`_band`), which on the CPU run in OpenCV: torch's stride-1 max pooling there is ~20x
slower than `cv2.dilate` (a 1.5 px shrink/grow cost 81 ms a 1080p frame), its
convolution, pooling, bilinear upsample and comparisons 2-6x slower than OpenCV's.
"""

from __future__ import annotations

import math
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from rotobridge.controls import MatteControls

from .holes import small_components
from .mattes import upsample_logits

#: Colour difference (RGB distance, display-referred 0-1) below which foreground and
#: background are taken as indistinguishable: the confidence is 1/2 at this distance.
CONTRAST = 0.08
#: How much the plate's local texture (colour variance around the two estimates) lowers
#: the confidence: texture the box mean cannot follow reads as alpha noise.
TEXTURE = 0.3
#: How sharply the band of uncertainty falls off: band = min(1, BAND_GAIN · p · (1 − p)).
BAND_GAIN = 8.0
#: Pixels whose band is below this keep the raw matte and cost nothing (p < 0.0025 or
#: > 0.9975: refinement could move them by at most 2%).
BAND_FLOOR = 0.02
#: The probabilities in the band: BAND_GAIN · p · (1 − p) > BAND_FLOOR for BAND_LOW < p < 1 − BAND_LOW.
BAND_LOW = (1 - math.sqrt(1 - 4 * BAND_FLOOR / BAND_GAIN)) / 2
#: Edges whose logits rise by less than SOFT_SLOPE per logit cell are soft in the plate
#: (motion blur, defocus): SAM 2's smooth upsample is already right there and refinement
#: stays off; above HARD_SLOPE it is fully on. Measured on the 256² logits themselves
#: (independent of the plate's size): a hard edge inside one cell rises by about 14 per
#: cell; a motion blur over 4 cells by 1-3 (fastest in its tails, where the probability
#: nears 0 or 1). Tuned on benchmarks/matte_quality.py at 1080p: 6.25/8.25 let the
#: blurred plate's texture in (SAD 1.11x raw), 8/10 miss faint strands (0.71x).
SOFT_SLOPE, HARD_SLOPE = 7.0, 9.0
#: A strand thinner than a logit cell (1-3 px in UHD's 15 px cells) raises its cell's logit
#: by less than SOFT_SLOPE, but above both neighbours: a ridge, which motion blur and
#: defocus (monotonic ramps) never make. A cell standing SOFT_PEAK above both neighbours
#: on a row, column or diagonal opens the gate, HARD_PEAK fully. Tuned on
#: benchmarks/matte_quality.py: 1.0/2.5 let the defocused plate's SAD rise above raw;
#: 2.0/4.0 and 3.0/5.0 give the same strands figures (UHD 0.74 / 0.49, from 0.79 / 0.64).
SOFT_PEAK, HARD_PEAK = 2.0, 4.0
#: How far (in logit cells) a hard edge opens the gate around it.
GATE_REACH = 1.0
#: SAM 2's logits are clamped to this for the gate: the benchmark's confident logits are ±9.2.
LOGIT_LIMIT = 9.2
#: The automatic refine radius, in logit cells (their width): the colour windows must reach
#: past SAM 2's smear of the edge, about one cell each side.
AUTO_RADIUS = 1.6
#: Resolution of the coefficients: the reduction keeps the box radius at about this many
#: pixels (2: 1/6 of 1080p, 1/12 of UHD; 4 cost twice as much for strands SAD 0.52 instead
#: of 0.57 at 1080p, benchmarks/matte_quality.py).
COEFFICIENT_RADIUS = 2
#: A strand thinner than a logit cell leaves SAM 2's probability a faint smear around it,
#: so the colour window's foreground colour, weighted by it, is mostly background. A second
#: colour model takes the colours of a window WIDE_WINDOW times wider as a prior worth
#: PRIOR (of the window's mean weight: it decides only where the window holds little of
#: the object or of the rest), and each band pixel reads alpha off whichever of the two
#: lines (background to foreground colour) passes nearer its colour: the wide one on a
#: strand the body's colour, the local one where the object's colours differ from place to
#: place. Tuned on benchmarks/matte_quality.py: UHD strands SAD 0.74 → 0.57 (32: 0.55, but
#: strands of another colour than the body lose more); PRIOR 0.02: the same at UHD, 1080p 0.40.
WIDE_WINDOW, PRIOR = 16, 0.1
#: The wide window's means change slowly: they are taken over blocks of WIDE_STEP reduced
#: pixels and upsampled back (a sixteenth of the work; the benchmark's figures the same to
#: 0.01).
WIDE_STEP = 4


def raw_matte(logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(1, 1, h, w) logits → (1, 1, height, width) probabilities, exactly as sam2 upsamples.
    The sigmoid runs in place on the upsample's own output: a fresh plate-sized tensor costs
    more in page faults than the sigmoid itself (1080p, one core: the sigmoid 13-18 → 2-2.5 ms)."""
    up = upsample_logits(logits.float(), height, width)
    return torch.sigmoid(up) if up is logits else torch.sigmoid_(up)


def unsure_matte(logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The matte edge refinement starts from: on the CPU, SAM 2's probabilities upsampled by
    OpenCV's bilinear resize (pixel centres aligned, as sam2's), a sixth of torch's cost
    (1080p, one core: 1 ms against 6) and within 1e-4 of sam2's matte (its logits within
    3e-6 of float64 bilinear, torch's float32 within 5e-4); elsewhere `raw_matte`.
    Refinement re-estimates the edges; elsewhere this matte is kept, so a frame `edges`
    refines differs from sam2's by that much where SAM 2 is sure."""
    if logits.device.type != "cpu" or tuple(logits.shape[-2:]) == (height, width):
        return raw_matte(logits, height, width)
    up = _planes(logits.float(), lambda plane: cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR))
    return torch.sigmoid_(up)


def _box_along(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Mean over 2r+1 neighbours along `dim` by running sums (cost independent of r),
    averaging only the samples inside the image at its ends."""
    n = x.shape[dim]
    pad = [0, 0] * (x.ndim - 1 - dim % x.ndim) + [radius + 1, radius]
    sums = F.pad(x, pad).cumsum(dim)
    total = sums.narrow(dim, 2 * radius + 1, n) - sums.narrow(dim, 0, n)
    shape = [1] * x.ndim
    shape[dim] = n
    return total / _counts(n, radius, x.device).to(x.dtype).view(shape)


def _box(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)² window, edges averaging only the pixels inside the image."""
    if x.device.type == "cpu":  # OpenCV's box sums: a quarter of the running sums' cost
        size = 2 * radius + 1
        sums = _planes(x, lambda plane: cv2.boxFilter(plane, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT))
        counts = [_counts(n, radius, x.device) for n in x.shape[-2:]]
        return sums.mul_(1 / (counts[0][:, None] * counts[1])).to(x.dtype)
    return _box_along(_box_along(x, radius, -1), radius, -2)


def _counts(n: int, radius: int, device: torch.device) -> torch.Tensor:
    """How many of the 2r+1 neighbours along an axis of n pixels lie inside it, per pixel."""
    i = torch.arange(n, device=device)
    return (torch.clamp(i + radius, max=n - 1) - torch.clamp(i - radius, min=0) + 1).float()


def _planes(x: torch.Tensor, op: Callable[[np.ndarray], np.ndarray]) -> torch.Tensor:
    """`op` (OpenCV, on one (H, W) float32 plane) over every plane of a CPU tensor (…, H, W)."""
    planes = x.detach().float().reshape(-1, *x.shape[-2:]).numpy()
    out = op(planes[0])[None] if len(planes) == 1 else np.stack([op(plane) for plane in planes])  # one plane: no copy
    return torch.from_numpy(out).reshape(*x.shape[:-2], *out.shape[-2:])


def _dilate(x: torch.Tensor, ry: int, rx: int) -> torch.Tensor:
    """Grey-level dilation of (…, H, W) by a (2ry+1) × (2rx+1) rectangle, pixels outside
    the image ignored (max pooling's -inf padding, OpenCV's default dilation border)."""
    if ry == 0 and rx == 0:
        return x
    if x.device.type == "cpu":
        kernel = np.ones((2 * ry + 1, 2 * rx + 1), np.uint8)
        return _planes(x, lambda plane: cv2.dilate(plane, kernel)).to(x.dtype)
    return F.max_pool2d(x, (2 * ry + 1, 2 * rx + 1), stride=1, padding=(ry, rx))


def _blur(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """(…, H, W) convolved with the odd 1-D `kernel` along both axes, edges replicated."""
    if x.device.type == "cpu":
        k = kernel.float().numpy()
        return _planes(x, lambda plane: cv2.sepFilter2D(plane, cv2.CV_32F, k, k, borderType=cv2.BORDER_REPLICATE))
    r = kernel.numel() // 2
    out = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    return F.conv2d(F.pad(out, (0, 0, r, r), mode="replicate"), kernel.view(1, 1, -1, 1))


def _downsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Area average over scale × scale blocks; a partial block at the far edges is padded by
    repeating its last row/column."""
    if scale == 1:
        return x
    height, width = x.shape[-2:]
    h, w = -(-height // scale), -(-width // scale)
    if (h * scale, w * scale) != (height, width):
        x = F.pad(x, (0, w * scale - width, 0, h * scale - height), mode="replicate")
    if x.device.type == "cpu":  # whole blocks: OpenCV's area resize is their mean
        return _planes(x, lambda plane: cv2.resize(plane, (w, h), interpolation=cv2.INTER_AREA))
    return F.avg_pool2d(x, scale)


def _hardness(logits: torch.Tensor) -> torch.Tensor:
    """(1, 1, h, w) at the logits' resolution: 0 where SAM 2's edge is soft, 1 where hard.

    The most within GATE_REACH cells of: the steepest logit rise per cell, mapped through
    SOFT_SLOPE..HARD_SLOPE, and the ridge height (a thin strand), mapped through
    SOFT_PEAK..HARD_PEAK. Cheap: it is computed on the 256² logits, not the plate.
    """
    logit = logits.float().clamp(-LOGIT_LIMIT, LOGIT_LIMIT)
    dy = F.pad((logit[:, :, 1:] - logit[:, :, :-1]).abs(), (0, 0, 0, 1))
    dx = F.pad((logit[:, :, :, 1:] - logit[:, :, :, :-1]).abs(), (0, 1, 0, 0))
    reach = max(1, round(GATE_REACH))
    slope = ((torch.maximum(dx, dy) - SOFT_SLOPE) / (HARD_SLOPE - SOFT_SLOPE)).clamp(0, 1)
    # a ridge: a cell standing above both its neighbours along a row, a column or a diagonal
    padded = F.pad(logit, (1, 1, 1, 1), mode="replicate")
    h, w = logit.shape[-2:]

    def shifted(dy: int, dx: int) -> torch.Tensor:
        return padded[:, :, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    axes = ((0, 1), (1, 0), (1, 1), (1, -1))
    peak = torch.stack([torch.minimum(logit - shifted(-a, -b), logit - shifted(a, b)) for a, b in axes]).amax(0)
    ridge = ((peak - SOFT_PEAK) / (HARD_PEAK - SOFT_PEAK)).clamp(0, 1)
    return _dilate(torch.maximum(slope, ridge), reach, reach)


#: `_coefficients`' first channels: each model's u (3), c and confidence, sampled
#: bilinearly at plate pixels; the rest (each model's line, `_model`) are read at the
#: pixel's own block (they only choose between the models).
ALPHA_CHANNELS = 10


def _coefficients(p: torch.Tensor, image: torch.Tensor, radius: int, needed: torch.Tensor) -> torch.Tensor:
    """(1, 22, h, w) at reduced resolution: two colour models (`_model`), the local window's
    and the one with the wide window's colours as its prior (WIDE_WINDOW, PRIOR): their
    alpha coefficients (ALPHA_CHANNELS), then their lines. The models are made only where
    `needed` (an (h, w) bool: the reduced pixels the band samples, a few percent of them on
    most shots); elsewhere the coefficients are 0.

    Foreground/background colours are means weighted by p² / (1 − p)²; all ten box means of
    a window are taken in one call.
    """
    wf, wb = p * p, (1 - p) * (1 - p)
    squares = (image * image).sum(1, keepdim=True)
    weighted = torch.cat([wf, wb, wf * image, wb * image, wf * squares, wb * squares], 1)
    h, w = weighted.shape[-2:]
    at = torch.nonzero(needed.view(-1))[:, 0]
    local = _box(weighted, radius).view(1, 10, -1).index_select(2, at)
    coarse = _downsample(weighted, WIDE_STEP)
    wide = _box(coarse, max(1, round(WIDE_WINDOW * radius / WIDE_STEP)))
    wide = _sample(wide, at // w, at % w, h, w)[None]  # upsampled bilinearly, as F.interpolate would
    # the wide window's means, scaled so that their foreground and background weights are PRIOR each
    f, b = PRIOR / (wide[:, 0:1] + 1e-6), PRIOR / (wide[:, 1:2] + 1e-6)
    prior = torch.cat([f, b, f.expand(-1, 3, -1), b.expand(-1, 3, -1), f, b], 1)
    (alpha, line), (wide_alpha, wide_line) = _model(local), _model(local + prior * wide)
    out = torch.zeros(1, 22, h * w, dtype=weighted.dtype, device=weighted.device)
    out.index_copy_(2, at, torch.cat([alpha, wide_alpha, line, wide_line], 1))
    return out.view(1, 22, h, w)


def _model(sums: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Of one window's weighted means (`_coefficients`, (1, 10, …)): (1, 5, …) u (3), c,
    confidence, so that alpha = u·I − c near edges, and (1, 6, …) its line: the background colour
    (3) and foreground − background (3)."""
    nf, nb = sums[:, 0:1] + 1e-6, sums[:, 1:2] + 1e-6
    fg, bg = sums[:, 2:5] / nf, sums[:, 5:8] / nb
    texture = (sums[:, 8:9] / nf - (fg * fg).sum(1, keepdim=True)).clamp(min=0) + (
        sums[:, 9:10] / nb - (bg * bg).sum(1, keepdim=True)
    ).clamp(min=0)
    d = fg - bg
    d2 = (d * d).sum(1, keepdim=True)
    u = d / (d2 + 1e-6)
    c = (bg * u).sum(1, keepdim=True)
    confidence = d2 / (d2 + CONTRAST * CONTRAST + TEXTURE * texture)
    return torch.cat([u, c, confidence], 1), torch.cat([bg, d], 1)


def _colour_alpha(pixels: torch.Tensor, coefficients: torch.Tensor, lines: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Alpha and confidence of (3, n) plate pixels from the two models' (10, n) sampled
    coefficients and (12, n) lines (`_coefficients`): each pixel takes the model whose line
    segment from background to foreground colour passes nearer its colour."""
    fits = []
    for m, line in ((coefficients[:5], lines[:6]), (coefficients[5:], lines[6:])):
        alpha = ((pixels * m[:3]).sum(0) - m[3]).clamp_(0, 1)
        off = pixels - line[:3] - alpha * line[3:]
        fits.append((alpha, m[4], (off * off).sum(0)))
    (alpha, confidence, local), (wide_alpha, wide_confidence, wide) = fits
    nearer = wide < local
    return torch.where(nearer, wide_alpha, alpha), torch.where(nearer, wide_confidence, confidence).clamp_(0, 1)


def _sample(x: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(C, n): x (1, C, h, w) bilinearly sampled at plate pixels (ys, xs) of a height × width
    plate, as F.interpolate(align_corners=False) would place them."""
    grid = torch.stack([(2 * xs + 1) / width - 1, (2 * ys + 1) / height - 1], -1).to(x.dtype)
    at = F.grid_sample(x, grid.view(1, 1, -1, 2), mode="bilinear", padding_mode="border", align_corners=False)
    return at.view(x.shape[1], -1)


def refine_edges(
    matte: torch.Tensor, guide: torch.Tensor, strength: float, radius: float, hardness: torch.Tensor
) -> torch.Tensor:
    """(1, 1, H, W) probabilities re-estimated from the (1, 3, H, W) display-referred guide,
    in place: `matte` is the caller's own (`edges` makes it), so the frame is not copied.

    `hardness`: the gate (`_hardness`) of SAM 2's logits the matte was upsampled from.
    Only the band's pixels are computed (`_band`): the coefficients are sampled there, not
    upsampled whole.
    """
    if strength <= 0:
        return matte
    height, width = matte.shape[-2:]
    idx, ys, xs, gate = _band(matte, hardness)
    if idx.numel() == 0:
        return matte
    scale = max(1, round(radius / COEFFICIENT_RADIUS))
    r = max(1, round(radius / scale))
    reduced = _downsample(matte, scale)
    flat = matte.view(-1)  # a view: the band is written into matte
    p = flat.index_select(0, idx)
    band = (BAND_GAIN * p * (1 - p)).clamp_(max=1)
    blocks = (ys // scale) * reduced.shape[-1] + xs // scale  # each pixel's own block
    needed = torch.zeros(reduced.shape[-2:], device=reduced.device)
    needed.view(-1)[blocks] = 1  # and, for bilinear sampling, the blocks around it
    coefficients = _coefficients(reduced, _downsample(guide, scale), r, _dilate(needed[None, None], 1, 1)[0, 0] > 0)
    at = _sample(coefficients[:, :ALPHA_CHANNELS], ys, xs, height, width)
    lines = coefficients[0, ALPHA_CHANNELS:].flatten(1).index_select(1, blocks)
    colour_alpha, confidence = _colour_alpha(guide.reshape(3, -1).index_select(1, idx), at, lines)
    weight = strength * band * confidence * gate
    flat[idx] = p + weight * (colour_alpha - p)
    return matte


def _band(matte: torch.Tensor, hardness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The (1, 1, H, W) matte's pixels refinement can move, as flat indices, rows and
    columns, and the gate there: where SAM 2 is unsure (BAND_LOW < p < 1 − BAND_LOW) and the
    gate (`hardness`, (1, 1, h, w) at the logits' resolution, upsampled bilinearly as the
    matte is) is open. Elsewhere refinement's weight is 0 (or under BAND_FLOOR), so the
    rest of the frame costs one range test: on the CPU OpenCV's, a third of torch's cost there."""
    height, width = matte.shape[-2:]
    if matte.device.type == "cpu":  # bounds included: p = BAND_LOW weighs BAND_FLOOR
        unsure = torch.from_numpy(_nonzero(cv2.inRange(matte.detach()[0, 0].numpy(), BAND_LOW, 1 - BAND_LOW)))
    else:
        p = matte.view(-1)
        unsure = torch.nonzero((p > BAND_LOW) & (p < 1 - BAND_LOW))[:, 0]
    ys, xs = unsure // width, unsure % width
    gate = _bilinear_at(hardness[0, 0], ys, xs, height, width)
    open_ = torch.nonzero(gate > 0)[:, 0]
    if len(open_) == len(unsure):  # a hard edge or strands: every unsure pixel
        return unsure, ys, xs, gate
    return unsure[open_], ys[open_], xs[open_], gate[open_]


def _bilinear_at(x: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(n,): the (h, w) x upsampled bilinearly to height × width (`unsure_matte`: pixel centres
    aligned, the border repeated), at plate pixels (ys, xs) only: the band is a few percent
    of the frame. Each row's and column's source cells and weights are made once, then
    looked up per pixel."""
    h, w = x.shape

    def along(pos: torch.Tensor, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        at = ((torch.arange(size, device=x.device, dtype=x.dtype) + 0.5) * (n / size) - 0.5).clamp_(min=0)
        first = at.long().clamp_(max=n - 1)
        second, weight = (first + 1).clamp_(max=n - 1), (at - first).clamp_(max=1)
        return first.index_select(0, pos), second.index_select(0, pos), weight.index_select(0, pos)

    y0, y1, fy = along(ys, h, height)
    x0, x1, fx = along(xs, w, width)
    y0, y1 = y0 * w, y1 * w
    flat = x.reshape(-1)
    top = torch.lerp(flat.index_select(0, y0 + x0), flat.index_select(0, y0 + x1), fx)
    bottom = torch.lerp(flat.index_select(0, y1 + x0), flat.index_select(0, y1 + x1), fx)
    return torch.lerp(top, bottom, fy)


def _nonzero(mask: np.ndarray) -> np.ndarray:
    """np.flatnonzero of a uint8 mask, in a fifth of its time where the mask is sparse (a
    band is a few percent of a frame): eight bytes are tested at once as one word, and
    only the words that hold a non-zero byte are looked into."""
    flat = mask.reshape(-1)
    if flat.size % 8:
        flat = np.pad(flat, (0, 8 - flat.size % 8))
    words = np.flatnonzero(flat.view(np.uint64))
    word, byte = np.nonzero(flat.reshape(-1, 8)[words])
    out: np.ndarray = words[word] * 8 + byte
    return out


def despeckle(matte: torch.Tensor, area: int) -> torch.Tensor:
    """Islands (matte > 0.5) and holes (matte <= 0.5) of fewer than `area` pixels removed /
    filled, with their soft one-pixel rim."""
    if area <= 0:
        return matte
    out, island = matte, matte > 0.5
    for inside, value in ((island, 0.0), (~island, 1.0)):
        small = small_components(inside, area)
        if small is not None:
            rim = _dilate(small.float(), 1, 1) > 0
            large = inside & ~small
            out = torch.where(rim & ~large, value, out)
    return out


def clip(matte: torch.Tensor, black: float, white: float) -> torch.Tensor:
    """Values at or below `black` → 0, at or above `white` → 1, linear between."""
    if black <= 0 and white >= 1:
        return matte
    return ((matte - black) / (white - black)).clamp_(0, 1)


def shrink_grow(matte: torch.Tensor, pixels: float) -> torch.Tensor:
    """The edge moved out (positive) or in (negative) by `pixels`: grey-level dilation /
    erosion with a square of that radius; a fractional part blends the two nearest radii."""
    if pixels == 0:
        return matte
    grow = pixels > 0
    source = matte if grow else 1 - matte
    lo = math.floor(abs(pixels))
    frac = abs(pixels) - lo

    moved = _dilate(source, lo, lo)
    if frac > 0:  # a blend rounds: kept in 0-1
        moved = (moved + frac * (_dilate(source, lo + 1, lo + 1) - moved)).clamp_(0, 1)
    return moved if grow else 1 - moved


def feather(matte: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur with standard deviation `sigma` pixels (separable, edges clamped)."""
    if sigma <= 0:
        return matte
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=matte.dtype, device=matte.device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return _blur(matte, kernel / kernel.sum()).clamp_(0, 1)  # the sum of weights rounds


def edges(logits: torch.Tensor, guide: torch.Tensor | None, controls: MatteControls, height: int, width: int) -> torch.Tensor:
    """The first step of `apply`: the raw matte, its edges refined against the guide. Temporal
    smoothing (temporal.py) works on these, between this step and `finish`.

    `guide` is the display-referred plate, (1, 3, height, width) in 0-1 on the logits'
    device; it may be None only when edge refinement is off.
    """
    if controls.refine <= 0:
        return raw_matte(logits, height, width)
    if guide is None:
        raise ValueError("edge refinement needs the plate as a guide")
    if tuple(guide.shape) != (1, 3, height, width):
        raise ValueError(f"guide is {tuple(guide.shape)}: need (1, 3, {height}, {width})")
    hardness = _hardness(logits)
    if not bool((hardness > 0).any()):  # every edge soft: nothing to refine, SAM 2's matte bit for bit
        return raw_matte(logits, height, width)
    cell = max(height / logits.shape[-2], width / logits.shape[-1])
    radius = controls.refine_radius or AUTO_RADIUS * cell
    return refine_edges(unsure_matte(logits, height, width), guide, controls.refine, radius, hardness)


def finish(matte: torch.Tensor, controls: MatteControls) -> torch.Tensor:
    """The controls after edges and smoothing, in order: despeckle, clip, shrink/grow, feather."""
    out = despeckle(matte, controls.despeckle)
    out = clip(out, controls.clip_black, controls.clip_white)
    out = shrink_grow(out, controls.shrink_grow)
    return feather(out, controls.feather)  # each step keeps 0-1


def apply(logits: torch.Tensor, guide: torch.Tensor | None, controls: MatteControls, height: int, width: int) -> torch.Tensor:
    """One object's (1, 1, h, w) SAM 2 logits → its (1, 1, height, width) matte of one frame:
    every control but temporal smoothing (which needs the neighbouring frames), in the
    documented order. With `rotobridge.controls.UNCHANGED` this is exactly the raw matte
    (`raw_matte`). `guide` as in `edges`."""
    return finish(edges(logits, guide, controls, height, width), controls)


#: SAM 2's logit grid for its 1024² input: where `matte_logits` puts an existing matte.
LOGIT_GRID = 256


def matte_logits(matte: torch.Tensor) -> torch.Tensor:
    """An existing (1, 1, H, W) matte in 0-1, from any tool, as SAM 2 would have predicted
    it: area-averaged to SAM 2's 256² grid and turned into logits (±9.2 where it is solid),
    as benchmarks/matte_quality.py makes its raw mattes. `apply` then upsamples it to a
    band of uncertainty a logit cell wide, which edge refinement re-estimates from the
    plate: a hard matte has no such band of its own."""
    low = F.interpolate(matte.float().clamp(0, 1), size=(LOGIT_GRID, LOGIT_GRID), mode="area")
    return torch.logit(low, eps=1e-4)


def matte_edges(matte: torch.Tensor, guide: torch.Tensor | None, controls: MatteControls) -> torch.Tensor:
    """`edges` for an existing (1, 1, H, W) matte (`rotobridge refine`): with edge refinement
    it stands in for SAM 2's prediction (`matte_logits`); without, it is the matte itself."""
    height, width = matte.shape[-2:]
    if controls.refine > 0:
        return edges(matte_logits(matte), guide, controls, height, width)
    return matte.float().clamp(0, 1)


def apply_to_matte(matte: torch.Tensor, guide: torch.Tensor | None, controls: MatteControls) -> torch.Tensor:
    """An existing (1, 1, H, W) matte through the controls of one frame (`apply`'s, smoothing
    left out), which leave it as it is where they change nothing."""
    return finish(matte_edges(matte, guide, controls), controls)
