"""J and F: hand-computed cases, and agreement with vos-benchmark 0.1.0 (which carries
davis2017-evaluation's boundary code) to 1e-6 on generated sequences with several objects,
empty frames, late appearances and disappearances, under both conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from vos_benchmark.evaluator import Evaluator
from vos_benchmark.utils import _seg2bmap

from rotobridge.bridge.evaluate import scores
from rotobridge.bridge.evaluate.masks import split
from rotobridge.bridge.evaluate.scores import Convention, SequenceScores

# --- hand-computed ------------------------------------------------------------------


def test_jaccard_by_hand() -> None:
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    assert scores.jaccard(a, b) == 1.0  # both empty
    a[0, 0:2] = True  # 2 pixels
    assert scores.jaccard(a, b) == 0.0
    b[0, 1:4] = True  # 3 pixels, 1 shared: 1 / 4
    assert scores.jaccard(a, b) == 0.25


def test_boundary_map_by_hand() -> None:
    mask = np.zeros((5, 5), bool)
    mask[1:3, 1:3] = True  # a 2x2 square
    # a pixel is boundary when it differs from its right, lower or lower-right neighbour:
    # the square's own pixels at its right/bottom edges and the pixels left of/above it
    expected = np.array(
        [
            [1, 1, 1, 0, 0],
            [1, 1, 1, 0, 0],
            [1, 1, 1, 0, 0],
            [0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0],
        ],
        bool,
    )
    expected[1, 1] = False  # equals its right, lower and diagonal neighbours (all inside)
    assert np.array_equal(scores.boundary_map(mask), expected)


def test_boundary_map_last_row_and_column_by_hand() -> None:
    mask = np.zeros((3, 3), bool)
    mask[2, 2] = True  # the corner: the last row/column compare along the edge only
    assert scores.boundary_map(mask).tolist() == [
        [False, False, False],
        [False, True, True],
        [False, True, False],
    ]


def test_disk_and_radius_by_hand() -> None:
    assert scores.disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert scores.disk_radius(480, 854) == 8  # ceil(0.008 * 979.6)
    assert scores.disk_radius(48, 64) == 1  # ceil(0.008 * 80) = ceil(0.64)
    assert scores.disk_radius(48, 64, 3) == 3


def test_boundary_f_by_hand() -> None:
    kernel = scores.disk(1)
    a = np.zeros((20, 20), bool)
    a[5:10, 5:10] = True
    assert scores.boundary_f(a, a, kernel) == 1.0
    assert scores.boundary_f(a, np.zeros_like(a), kernel) == 0.0
    assert scores.boundary_f(np.zeros_like(a), np.zeros_like(a), kernel) == 1.0
    far = np.zeros_like(a)
    far[14:19, 14:19] = True
    assert scores.boundary_f(a, far, kernel) == 0.0
    # shifted by one pixel right: every boundary pixel is within the radius-1 disk of the other
    shifted = np.roll(a, 1, axis=1)
    assert scores.boundary_f(a, shifted, kernel) == 1.0
    # shifted by three: the 5x5 square's boundaries (6x6 rings less a corner) only touch where
    # the rings overlap; count it with an explicit neighbourhood search
    moved = np.roll(a, 3, axis=1)
    ga, gb = scores.boundary_map(a), scores.boundary_map(moved)
    near = lambda p, q: {  # noqa: E731 - boundary pixels of p within distance 1 of q's
        (y, x) for y, x in zip(*np.nonzero(p)) if any(abs(y - v) + abs(x - u) <= 1 for v, u in zip(*np.nonzero(q)))
    }
    precision = len(near(gb, ga)) / gb.sum()
    recall = len(near(ga, gb)) / ga.sum()
    assert scores.boundary_f(a, moved, kernel) == pytest.approx(2 * precision * recall / (precision + recall), abs=1e-12)


def test_sequence_conventions_by_hand() -> None:
    """Object 2 appears on the second of three scored frames: the vos convention scores it
    from there (one frame, perfect); davis scores it on all three, the first with an empty
    prediction against an empty truth (J = F = 1)."""
    empty = np.zeros((6, 6), bool)
    square = empty.copy()
    square[1:4, 1:4] = True
    truth = {0: {1: square}, 1: {1: square}, 2: {1: square, 2: square}, 3: {1: square, 2: square}, 4: {1: square}}
    wrong = {1: square}
    pred = {0: {1: square}, 1: {1: empty}, 2: {1: square, 2: square}, 3: wrong, 4: {1: square}}
    frames = scores.evaluated_frames(list(truth), skip_first_last=True)
    assert frames == [1, 2, 3]
    vos = scores.score_sequence("s", truth.__getitem__, pred.__getitem__, frames, (6, 6))
    assert [(s.frame, s.obj, s.j) for s in vos.frames] == [(1, 1, 0.0), (2, 1, 1.0), (2, 2, 1.0), (3, 1, 1.0), (3, 2, 0.0)]
    assert vos.per_object()[1] == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert vos.per_object()[2] == (0.5, 0.5)
    davis = scores.score_sequence(
        "s", truth.__getitem__, pred.__getitem__, frames, (6, 6), convention=Convention.DAVIS, first_objects=[1, 2]
    )
    assert davis.per_object()[2] == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    total = scores.summarise([vos])
    assert (total.j, total.objects) == (pytest.approx((2 / 3 + 0.5) / 2), 2)
    assert total.jf == pytest.approx((total.j + total.f) / 2)


def test_reappearance_by_hand() -> None:
    seq = SequenceScores(
        "s",
        [scores.FrameScore(f, 1, j, j) for f, j in [(0, 1.0), (1, 1.0), (2, 0.0), (3, 0.0), (4, 0.5)]],
        (1, 2),
        evaluated=[0, 1, 2, 3, 4],
        present={1: [0, 3, 4], 2: [1, 2, 3, 4]},
    )
    # object 1 leaves on frames 1-2 and comes back on 3 (J&F 0 and 0.5 there); object 2 never leaves
    once = scores.reappearance([seq], min_absent=1)
    assert (once.tracks, once.with_disappearance, once.reappearances, once.share) == (2, 1, 1, 0.5)
    assert once.jf == pytest.approx(0.25)
    assert scores.reappearance([seq], min_absent=3).reappearances == 0
    assert math.isnan(scores.reappearance([seq], min_absent=3).jf)


# --- vos-benchmark agreement -----------------------------------------------------------


def _random_sequence(rng: np.random.Generator, frames: int, shape: tuple[int, int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Label maps with 3 objects: object 3 appears late, objects leave and return, some frames empty."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w]

    def blob() -> np.ndarray:
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(2, max(3, h // 3))
        return (ys - cy) ** 2 + (xs - cx) ** 2 < r * r

    truth, pred = [], []
    for f in range(frames):
        gt, pr = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
        if f not in (3,):  # frame 3 is empty in the truth
            for obj in (1, 2, 3):
                if obj == 3 and f < 4:
                    continue
                if rng.random() < 0.75:
                    gt[blob()] = obj
        for obj in (1, 2, 3):
            if rng.random() < 0.7:
                region = blob() if rng.random() < 0.5 else (gt == obj) ^ (rng.random(shape) < 0.02)
                pr[region] = obj
        truth.append(gt)
        pred.append(pr)
    return truth, pred


@pytest.mark.parametrize("shape", [(48, 64), (120, 214), (37, 91)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vos_convention_agrees_with_vos_benchmark(shape: tuple[int, int], seed: int) -> None:
    truth, pred = _random_sequence(np.random.default_rng(seed), 10, shape)
    frames = list(range(1, len(truth) - 1))  # vos-benchmark's default skips first and last
    reference = Evaluator(name="seq")
    for f in frames:
        reference.feed_frame(pred[f], truth[f])
    iou, boundary = reference.conclude()
    ours = scores.score_sequence("seq", lambda f: split(truth[f]), lambda f: split(pred[f]), frames, shape)
    assert sorted(iou) == list(ours.objects)
    for obj, (j, f) in ours.per_object().items():
        assert abs(100 * j - iou[obj]) < 1e-6
        assert abs(100 * f - boundary[obj]) < 1e-6


@pytest.mark.parametrize("seed", [3, 4])
def test_davis_convention_agrees_with_per_frame_reference(seed: int) -> None:
    """davis2017-evaluation scores objects 1..max of the first frame on every frame: built
    here from vos-benchmark's per-frame J/F (same boundary code), both-empty frames = 1."""
    shape = (60, 90)
    truth, pred = _random_sequence(np.random.default_rng(seed), 8, shape)
    truth[0][:5, :5] = 2  # first frame holds objects 1..2 at least
    truth[0][-5:, -5:] = 1
    frames = list(range(1, 7))
    first = sorted(set(np.unique(truth[0]).tolist()) - {0})
    pred = [np.where(p > max(first), 0, p).astype(np.uint8) for p in pred]  # davis refuses higher ids
    ours = scores.score_sequence(
        "seq", lambda f: split(truth[f]), lambda f: split(pred[f]), frames, shape,
        convention=Convention.DAVIS, first_objects=first,
    )
    for obj in range(1, max(first) + 1):
        js, fs = [], []
        for f in frames:
            one = Evaluator()
            one.feed_frame((pred[f] == obj).astype(np.uint8), (truth[f] == obj).astype(np.uint8))
            if one.object_iou:
                js.append(one.object_iou[1][0])
                fs.append(one.boundary_f[1][0])
            else:
                js.append(1.0)
                fs.append(1.0)
        j, f_ = ours.per_object()[obj]
        assert abs(j - np.mean(js)) < 1e-6 and abs(f_ - np.mean(fs)) < 1e-6


def test_boundary_map_equals_seg2bmap() -> None:
    rng = np.random.default_rng(5)
    for shape in [(1, 1), (2, 3), (17, 5), (48, 64)]:
        mask = rng.random(shape) < 0.4
        assert np.array_equal(scores.boundary_map(mask), _seg2bmap(mask))


def test_cropped_scores_equal_full_frame_scores() -> None:
    """pair_scores crops to the masks' box: the same numbers as the whole frame, at edges too."""
    rng = np.random.default_rng(6)
    truth, pred = _random_sequence(rng, 6, (50, 70))
    kernel = scores.disk(scores.disk_radius(50, 70, 0.05))
    for gt, pr in zip(truth, pred):
        for obj in (1, 2, 3):
            t, p = gt == obj, pr == obj
            full = (scores.jaccard(t, p), scores.boundary_f(t, p, kernel))
            assert scores.pair_scores(t, p, kernel) == pytest.approx(full, abs=1e-12)


@pytest.mark.parametrize("ids", [(), (1,), (3, 7), (1, 2, 255), tuple(range(1, 20)), (5, 200), (255,)])
def test_split_finds_exactly_the_ids_in_a_label_map(ids: tuple[int, ...]) -> None:
    """split compares per candidate id below 9 and counts a histogram above: both exact."""
    rng = np.random.default_rng(len(ids))
    labels = np.zeros((23, 31), np.uint8)
    for i in ids:
        labels[rng.integers(0, 23), rng.integers(0, 31)] = i  # one pixel each, anywhere
    assert set(split(labels)) == set(np.unique(labels)) - {0}
    for i, mask in split(labels).items():
        assert np.array_equal(mask, labels == i)
