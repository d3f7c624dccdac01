"""Temporal smoothing ("reduce chatter"): motion-compensated averaging over a few frames.

Shots are composited from known mattes (a textured disc over a textured background), so
every expectation is the truth the plate was made from, never the smoother's own output.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

import pytest
import torch
import torch.nn.functional as F

from rotobridge.bridge import temporal

H, W = 96, 128


def _texture(seed: int, cells: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, cells, cells * W // H, generator=g)
    return F.interpolate(small, size=(H, W), mode="bicubic", align_corners=False).clamp(0, 1)


BACKGROUND = 0.2 + 0.5 * _texture(0, 14)
OBJECT = 0.4 + 0.5 * _texture(1, 10)


def _disc(cx: float, cy: float = 48.0, radius: float = 22.0) -> torch.Tensor:
    """(1, 1, H, W) anti-aliased disc: the true matte."""
    y, x = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    return (radius + 0.5 - torch.sqrt((x - cx) ** 2 + (y - cy) ** 2)).clamp(0, 1)[None, None]


def _plate(matte: torch.Tensor, shift: float) -> torch.Tensor:
    """The disc's own texture moves with it (shifted by `shift` pixels), the background stays."""
    fg = torch.roll(OBJECT, round(shift), dims=-1)
    return matte * fg + (1 - matte) * BACKGROUND


def _run(smoother: temporal.TemporalSmoother, mattes: list[torch.Tensor], guides: list[torch.Tensor | None]) -> list[tuple[int, torch.Tensor]]:
    out = []
    for t, (m, g) in enumerate(zip(mattes, guides)):
        out += smoother.push(t, m, g)
    return out + smoother.flush()


def test_strength_zero_returns_each_matte_at_once() -> None:
    smoother = temporal.TemporalSmoother(0.0)
    matte = _disc(60)
    for t in range(3):
        out = smoother.push(t, matte, _plate(matte, 0))
        assert len(out) == 1 and out[0][0] == t and out[0][1] is matte
    assert smoother.flush() == []


def test_frames_come_back_in_order_held_back_at_most_radius() -> None:
    smoother = temporal.TemporalSmoother(1.0)
    frames = [10, 9, 8, 7, 6, 5]  # a backward pass
    seen: list[int] = []
    for n, frame in enumerate(frames):
        seen += [f for f, _ in smoother.push(frame, _disc(60), _plate(_disc(60), 0))]
        assert len(seen) >= n + 1 - temporal.RADIUS
    seen += [f for f, _ in smoother.flush()]
    assert seen == frames


def test_a_static_matte_is_unchanged() -> None:
    matte = _disc(60.3)
    out = _run(temporal.TemporalSmoother(1.0), [matte] * 5, [_plate(matte, 0)] * 5)
    for _, m in out:
        assert m.shape == matte.shape
        torch.testing.assert_close(m, matte, rtol=0, atol=1e-4)


def test_an_absent_object_stays_empty() -> None:
    empty = torch.zeros(1, 1, H, W)
    present = _disc(60)
    mattes = [present, present, empty, present, present]
    out = _run(temporal.TemporalSmoother(1.0), mattes, [_plate(m, 0) for m in mattes])
    assert torch.equal(out[2][1], empty)
    out = _run(temporal.TemporalSmoother(1.0), [empty] * 4, [_plate(empty, 0)] * 4)
    assert all(torch.equal(m, empty) for _, m in out)


def test_an_object_filling_the_frame_has_no_edge_and_comes_back_as_it_is() -> None:
    """No edge band to smooth (every pixel solid), next to frames that have one."""
    full = torch.ones(1, 1, H, W)
    mattes = [_disc(60), full, full, full, _disc(60)]
    out = _run(temporal.TemporalSmoother(1.0), mattes, [_plate(m, 0) for m in mattes])
    assert [f for f, _ in out] == [0, 1, 2, 3, 4]
    assert all(torch.equal(out[t][1], full) for t in (1, 2, 3))


def test_a_plate_too_small_for_optical_flow_is_smoothed_as_still() -> None:
    """OpenCV's DIS refuses pictures under 12 px each way: a tiny plate's neighbours stay
    where they are, with or without a guide."""
    h, w = 7, temporal.DIS_MIN_SIDE - 1
    g = torch.Generator().manual_seed(0)
    mattes = [torch.rand(1, 1, h, w, generator=g) for _ in range(5)]
    for guides in ([torch.rand(1, 3, h, w, generator=g) for _ in range(5)], [None] * 5):
        out = _run(temporal.TemporalSmoother(1.0), mattes, guides)
        assert [f for f, _ in out] == [0, 1, 2, 3, 4]
        assert all(m.shape == (1, 1, h, w) and bool(((m >= 0) & (m <= 1)).all()) for _, m in out)
    # as still: a frame's neighbours are not moved, so matching mattes come back unchanged
    still = [mattes[0]] * 5
    for _, m in _run(temporal.TemporalSmoother(1.0), still, [None] * 5):
        torch.testing.assert_close(m, mattes[0], rtol=0, atol=1e-6)


def test_an_object_that_just_appeared_is_not_faded_in() -> None:
    empty = torch.zeros(1, 1, H, W)
    mattes = [empty, empty, _disc(60), _disc(60), _disc(60)]
    out = _run(temporal.TemporalSmoother(1.0), mattes, [_plate(m, 0) for m in mattes])
    torch.testing.assert_close(out[2][1], mattes[2], rtol=0, atol=1e-4)
    assert torch.equal(out[1][1], empty)


def test_a_moving_edge_is_not_lagged() -> None:
    """A disc moving 2 px a frame: the smoothed matte stays on the truth, where a plain
    average of the window would trail it."""
    speed = 2.0
    truths = [_disc(40 + speed * t) for t in range(7)]
    guides: list[torch.Tensor | None] = [_plate(m, speed * t) for t, m in enumerate(truths)]
    out = _run(temporal.TemporalSmoother(1.0), truths, guides)
    for t in (2, 3, 4):
        plain = torch.stack(truths[t - temporal.RADIUS : t + temporal.RADIUS + 1]).mean(0)
        error = float((out[t][1] - truths[t]).abs().sum())
        assert error < 0.25 * float((plain - truths[t]).abs().sum())
        centre = float((out[t][1][0, 0].sum(0) * (torch.arange(W) + 0.5)).sum() / out[t][1].sum())
        assert abs(centre - (40 + speed * t)) < 0.1


def test_a_fast_outline_keeps_to_the_truth_where_the_flow_is_coarser_than_the_plate() -> None:
    """A bright disc moving 8 px a frame over a dark plate 1920 wide, whose flow is a
    vector per 4x4 pixels: at the outline a vector is the disc's or the background's, and
    the pixels it moves wrongly show the other side's plate, so the plate trust (per
    pixel) drops them. Perfect mattes in, mattes within 0.13 of the truth per outline
    pixel out (a trust per flow pixel let them through: 0.16)."""
    height, width, speed, radius = 320, 1920, 8.0, 96.0
    g = torch.Generator().manual_seed(7)

    def texture(cells: int) -> torch.Tensor:
        small = torch.rand(1, 3, cells, cells * width // height, generator=g)
        return F.interpolate(small, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1)

    background, body = 0.1 + 0.2 * texture(14), 0.6 + 0.3 * texture(10)
    y, x = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    truths = [(radius + 0.5 - torch.sqrt((x - 300 - speed * t) ** 2 + (y - height / 2) ** 2)).clamp(0, 1)[None, None] for t in range(5)]
    guides: list[torch.Tensor | None] = [m * torch.roll(body, round(speed * t), dims=-1) + (1 - m) * background for t, m in enumerate(truths)]
    assert temporal.FLOW_WIDTH < width  # the flow is coarser than the plate
    out = dict(_run(temporal.TemporalSmoother(1.0), truths, guides))
    error = float((out[2] - truths[2]).abs().sum())
    assert error < 0.13 * 2 * math.pi * radius


def test_chatter_is_averaged_out() -> None:
    """A still disc whose matte wanders by up to a pixel per frame (as SAM 2's does) comes
    out nearer the truth, and nearer its neighbours."""
    truth = _disc(60)
    jitter = [0.8, -0.6, 0.7, -0.8, 0.6, -0.7, 0.8]
    mattes = [_disc(60 + j, radius=22 + j / 2) for j in jitter]
    out = _run(temporal.TemporalSmoother(1.0), mattes, [_plate(truth, 0)] * 7)
    raw_error = sum(float((m - truth).abs().sum()) for m in mattes[2:5])
    smooth_error = sum(float((m - truth).abs().sum()) for _, m in out[2:5])
    assert smooth_error < 0.8 * raw_error
    raw_chatter = sum(float((a - b).abs().sum()) for a, b in zip(mattes[2:5], mattes[3:6]))
    smooth_chatter = sum(float((a[1] - b[1]).abs().sum()) for a, b in zip(out[2:5], out[3:6]))
    assert smooth_chatter < 0.5 * raw_chatter


def test_a_matte_that_changes_over_an_area_is_not_averaged_away() -> None:
    """One frame's matte holds a part the others lack (a 10x10 px patch off the disc) over
    a plate that does not move, so the plate trusts every neighbour: the disagreement over
    an area, not a line, keeps the patch in its frame and out of the others."""
    plate = _plate(_disc(60), 0)
    mattes = [_disc(60) for _ in range(7)]
    mattes[3] = mattes[3].clone()
    mattes[3][..., 10:20, 90:100] = 1.0
    out = dict(_run(temporal.TemporalSmoother(1.0), mattes, [plate] * 7))
    assert float(out[3][..., 11:19, 91:99].min()) > 0.95
    for t in (1, 2, 4, 5):
        assert float(out[t][..., 11:19, 91:99].max()) < 0.05


def test_without_a_guide_flow_comes_from_the_mattes() -> None:
    speed = 2.0
    truths = [_disc(40 + speed * t) for t in range(5)]
    out = _run(temporal.TemporalSmoother(1.0), truths, [None] * 5)
    error = float((out[2][1] - truths[2]).abs().sum())
    plain = torch.stack(truths).mean(0)
    assert error < 0.25 * float((plain - truths[2]).abs().sum())


def test_bad_strength_and_changing_size_are_refused() -> None:
    with pytest.raises(ValueError, match="strength"):
        temporal.TemporalSmoother(1.5)
    with pytest.raises(ValueError, match="strength"):
        temporal.TemporalSmoother(math.nan)
    smoother = temporal.TemporalSmoother(0.5)
    smoother.push(0, _disc(60), None)
    with pytest.raises(ValueError, match="frame 1"):
        smoother.push(1, torch.zeros(1, 1, H, W + 1), None)


class _CountingFlow:
    """The module's DIS flow, counting its calls."""

    def __init__(self) -> None:
        self.dis = temporal.Motion().new_flow()
        self.calls = 0

    def calc(self, *args: Any) -> Any:
        self.calls += 1
        return self.dis.calc(*args)


def test_objects_sharing_a_plate_share_its_flows_and_get_what_they_get_alone() -> None:
    """The smoothers of two objects pushed with the same plate, sharing one Motion: each
    object's mattes are bit for bit those of a smoother of its own, and each flow between
    neighbouring frames is computed once, not once per object (a frame two away is reached
    by composing two of them). Without a plate nothing is shared."""
    car = [_disc(40 + 2 * t + (t % 2)) for t in range(8)]
    tree = [_disc(90 - (t % 2), cy=40.0, radius=14.0) for t in range(8)]
    plates = [_plate(torch.maximum(c, r), 2 * t) for t, (c, r) in enumerate(zip(car, tree))]
    alone = [_run(temporal.TemporalSmoother(1.0), mattes, list(plates)) for mattes in (car, tree)]

    motion = temporal.Motion()
    counter = _CountingFlow()
    motion.new_flow = lambda: counter  # type: ignore[method-assign]
    shared = [temporal.TemporalSmoother(1.0, motion) for _ in range(2)]
    together: list[list[tuple[int, torch.Tensor]]] = [[], []]
    for t in range(8):
        for k, (smoother, mattes) in enumerate(zip(shared, (car, tree))):
            together[k] += smoother.push(t, mattes[t], plates[t])
    for k, smoother in enumerate(shared):
        together[k] += smoother.flush()
    for mine, theirs in zip(together, alone):
        assert [f for f, _ in mine] == [f for f, _ in theirs] == list(range(8))
        for (_, a), (_, b) in zip(mine, theirs):
            assert torch.equal(a, b)
    steps = 2 * 7  # frame to next frame, both ways
    assert counter.calls == steps

    counter.calls = 0
    for smoother, mattes in zip(shared, (car, tree)):
        _run(smoother, mattes, [None] * 8)  # the mattes' own flow: per object
    assert counter.calls == 2 * steps


def _smoothed_everywhere(mattes: list[torch.Tensor], guides: list[torch.Tensor], t: int) -> torch.Tensor:
    """Frame t smoothed as the module's docstring defines it, over every pixel of the frame
    (the reference the edge band is held to): DIS flow at plate size, each neighbour warped
    along it, weighted by plate trust and matte agreement."""
    dis = temporal.Motion().new_flow()
    grey = [(g[0].mean(0).numpy() * 255 + 0.5).clip(0, 255).astype("uint8") for g in guides]
    alpha = [m[0, 0].numpy() for m in mattes]
    gy, gx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    total, weights = alpha[t].copy(), torch.ones(H, W).numpy()
    for k in range(max(0, t - temporal.RADIUS), min(len(mattes), t + temporal.RADIUS + 1)):
        if k == t:
            continue
        flow = dis.calc(grey[t], grey[k], None)
        mx, my = gx.numpy() + flow[..., 0], gy.numpy() + flow[..., 1]
        warped = cv2.remap(alpha[k], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        plate = cv2.remap(grey[k], mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        trust = 1.0 / (1.0 + ((abs(plate.astype("float32") - grey[t]) / temporal.PHOTO_TOLERANCE) ** 2))
        window = (temporal.DISAGREEMENT_WINDOW,) * 2
        agree = (2.0 - 2.0 * cv2.blur(abs(warped - alpha[t]), window) / temporal.MATTE_TOLERANCE).clip(0.0, 1.0)
        total += trust * agree * warped
        weights += trust * agree
    return torch.from_numpy((total / weights).clip(0.0, 1.0))


def test_only_the_edge_band_is_smoothed_and_there_as_over_the_whole_frame() -> None:
    """Smoothing works on the tiles near an edge: there it equals the same smoothing
    computed over every pixel; far from any edge the matte comes back bit for bit, and
    the whole-frame computation would have changed it by less than a thousandth there."""
    jitter = [0.8, -0.6, 0.7, -0.8, 0.6]
    # sigmoid tails: never exactly 0 or 1, a little different on each frame
    mattes = [_disc(60 + j, radius=22 + j / 2) * 0.999 + 0.0002 * (2 + j) for j in jitter]
    guides = [_plate(_disc(60), 0)] * 5
    out = dict(_run(temporal.TemporalSmoother(1.0), mattes, guides))
    reference = _smoothed_everywhere(mattes, guides, 2)
    got, given = out[2][0, 0], mattes[2][0, 0]
    y, x = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    distance = torch.sqrt((x - 60) ** 2 + (y - 48) ** 2)
    near = (distance - 22).abs() < temporal.REACH  # where the discs' edges chatter, and the band reaches
    assert float((got - reference)[near].abs().max()) < 1e-5
    assert float((got - given)[near].abs().max()) > 0.05
    far = distance > 22 + 2 + 2 * temporal.REACH + temporal.ROWS
    assert bool(far.any()) and torch.equal(got[far], given[far])
    assert float((got - reference).abs().max()) < 1e-3


@pytest.mark.parametrize("height, width, tiny", [(101, 167, False), (96, 128, False), (7, 9, True)])
def test_the_band_holds_every_edge_pixel_and_puts_back_only_its_own(height: int, width: int, tiny: bool) -> None:
    """`_Band` packs the pixels near an edge (frames of any size, edges on the frame's
    borders): gathered and put back unchanged they leave the matte bit for bit; every
    non-flat pixel, and every pixel within REACH of one, is in the band; what the band
    puts back lands on its own pixels only, each once."""
    g = torch.Generator().manual_seed(height)
    small = (torch.rand(1, 1, max(2, height // 12), max(2, width // 12), generator=g) > 0.5).float()
    matte = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    matte[:, -1], matte[-1, :3] = 0.5, 0.25  # edges on the right and bottom borders
    alpha = matte.numpy()
    band = temporal._Band(alpha, (max(1, height // 4), max(1, width // 4)))
    packed = band.gather(alpha)
    assert np.array_equal(band.scatter(packed, alpha), alpha)
    marked = band.scatter(np.full_like(packed, -1.0), np.zeros_like(alpha)) < 0  # the band's own pixels
    assert band.count >= int(marked.sum())
    soft = (alpha > temporal.FLAT) & (alpha < 1 - temporal.FLAT)
    near = cv2.dilate(soft.astype(np.uint8), np.ones((2 * temporal.REACH + 1,) * 2, np.uint8)) > 0
    assert bool(soft.any()) and bool(marked[near].all())
    assert bool(marked.all()) == tiny  # flat far from an edge: outside the band (a tiny frame is all near one)
    ones = band.scatter(np.ones_like(packed), np.zeros_like(alpha))
    assert np.array_equal(ones, marked.astype(np.float32))


def test_a_frame_of_edges_is_smoothed_whole() -> None:
    """A matte soft everywhere (every pixel in the band, more than one line of OpenCV's
    remap takes: it is packed square-ish) is smoothed over the whole frame, wherever a
    neighbour differs."""
    height, width = 720, 1280
    g = torch.Generator().manual_seed(3)
    soft = 0.25 + 0.5 * torch.rand(1, 1, height, width, generator=g)
    plate = torch.rand(1, 3, height, width, generator=g)
    band = temporal._Band(soft[0, 0].numpy(), (height // 4, width // 4))
    assert band.count == height * width and max(band.xy[0].shape) < 32767 < height * width // temporal.ROWS
    mattes = [soft, soft, (soft + 0.01).clamp(0, 1), soft, soft]
    out = dict(_run(temporal.TemporalSmoother(1.0), mattes, [plate] * 5))
    change = (out[2] - mattes[2])[0, 0]
    assert bool((change < -1e-3).float().mean() > 0.9)  # pulled towards its neighbours nearly everywhere
    assert float(change.abs().max()) <= 0.01 + 1e-6
