"""J, F and J&F as the VOS benchmarks define them, per object, sequence and dataset.

J is region similarity (IoU; both masks empty counts 1). F is davis2017-evaluation's
boundary F-measure: one-pixel boundary maps (its `seg2bmap` rule: a pixel is boundary when
it differs from its right, lower or lower-right neighbour, the last row and column compared
along the edge), each dilated by a disk of radius ceil(0.008 x image diagonal), precision
and recall of the matched boundary pixels. Two conventions choose what is counted:

- ``davis`` (davis2017-evaluation, semi-supervised): objects 1..max id of the first
  annotated frame, every object scored on every evaluated frame;
- ``vos`` (vos-benchmark and SA-V's evaluator): every object in the truth, scored from the
  first evaluated frame where it appears in the truth or in the prediction.

Both drop the first and last annotated frames by default (the semi-supervised rule).
Dilation is computed only over the boundaries' bounding box grown by the disk radius,
which leaves the counts unchanged and makes scoring fast enough to run over a benchmark.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import cv2
import numpy as np

#: davis2017-evaluation's default boundary tolerance, as a fraction of the image diagonal
BOUNDARY_FRACTION = 0.008

Masks = Mapping[int, np.ndarray]  # object id → (H, W) bool mask


class Convention(enum.Enum):
    DAVIS = "davis"
    VOS = "vos"


def jaccard(truth: np.ndarray, prediction: np.ndarray) -> float:
    """IoU of two boolean masks; 1 when both are empty."""
    union = int(np.count_nonzero(truth | prediction))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(truth & prediction)) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundary of a boolean mask, by davis2017-evaluation's `seg2bmap` rule."""
    edge = np.zeros_like(mask, dtype=bool)
    m = mask
    inner = m[:-1, :-1]
    edge[:-1, :-1] = (inner ^ m[:-1, 1:]) | (inner ^ m[1:, :-1]) | (inner ^ m[1:, 1:])
    edge[-1, :-1] = m[-1, :-1] ^ m[-1, 1:]  # the last row: right neighbours only
    edge[:-1, -1] = m[:-1, -1] ^ m[1:, -1]  # the last column: lower neighbours only
    return edge


def disk_radius(height: int, width: int, tolerance: float = BOUNDARY_FRACTION) -> int:
    """The dilation radius in pixels: a fraction (< 1) of the diagonal, rounded up, or pixels."""
    if tolerance >= 1:
        if tolerance != int(tolerance):
            raise ValueError(f"a boundary tolerance in pixels must be whole, got {tolerance}")
        return int(tolerance)
    return int(math.ceil(tolerance * float(np.linalg.norm((height, width)))))


def disk(radius: int) -> np.ndarray:
    """uint8 disk of pixels within `radius` of the centre (x² + y² ≤ r²), (2r+1)²."""
    ys, xs = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return np.asarray(xs * xs + ys * ys <= radius * radius, dtype=np.uint8)


def _box(a: np.ndarray, b: np.ndarray, pad: int) -> tuple[slice, slice]:
    rows = np.flatnonzero(a.any(axis=1) | b.any(axis=1))
    cols = np.flatnonzero(a.any(axis=0) | b.any(axis=0))
    h, w = a.shape
    return (
        slice(max(int(rows[0]) - pad, 0), min(int(rows[-1]) + pad + 1, h)),
        slice(max(int(cols[0]) - pad, 0), min(int(cols[-1]) + pad + 1, w)),
    )


def boundary_f(truth: np.ndarray, prediction: np.ndarray, kernel: np.ndarray) -> float:
    """Boundary F-measure of two boolean masks with a dilation `kernel` (see `disk`)."""
    gt_edge = boundary_map(truth)
    fg_edge = boundary_map(prediction)
    n_gt = int(np.count_nonzero(gt_edge))
    n_fg = int(np.count_nonzero(fg_edge))
    if n_gt == 0 or n_fg == 0:
        # davis2017-evaluation: both empty → P = R = 1; one empty → the F of (1, 0) = 0
        return 1.0 if n_gt == n_fg else 0.0
    box = _box(gt_edge, fg_edge, kernel.shape[0] // 2)
    gt_edge, fg_edge = gt_edge[box], fg_edge[box]
    gt_near = cv2.dilate(gt_edge.view(np.uint8), kernel).view(bool)
    fg_near = cv2.dilate(fg_edge.view(np.uint8), kernel).view(bool)
    precision = int(np.count_nonzero(fg_edge & gt_near)) / n_fg
    recall = int(np.count_nonzero(gt_edge & fg_near)) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    x, y, w, h = cv2.boundingRect(mask.view(np.uint8))
    return (y, y + h, x, x + w) if w else None


def pair_scores(truth: np.ndarray, prediction: np.ndarray, kernel: np.ndarray) -> tuple[float, float]:
    """(J, F) of one object on one frame, computed over the masks' bounding box grown by
    the disk radius + 1: every boundary pixel and its dilation lie inside it, and the
    margin of empty pixels makes `boundary_map` of the crop equal the full frame's."""
    a, b = _bounds(truth), _bounds(prediction)
    if a is None and b is None:
        return 1.0, 1.0
    boxes = [box for box in (a, b) if box is not None]
    pad = kernel.shape[0] // 2 + 1
    h, w = truth.shape
    crop = (
        slice(max(min(box[0] for box in boxes) - pad, 0), min(max(box[1] for box in boxes) + pad, h)),
        slice(max(min(box[2] for box in boxes) - pad, 0), min(max(box[3] for box in boxes) + pad, w)),
    )
    t, p = truth[crop], prediction[crop]
    return jaccard(t, p), boundary_f(t, p, kernel)


@dataclass(frozen=True)
class FrameScore:
    """One object's J and F on one frame."""

    frame: int
    obj: int
    j: float
    f: float


@dataclass
class SequenceScores:
    """Every scored (frame, object) of a sequence, and the objects it reports."""

    name: str
    frames: list[FrameScore] = field(default_factory=list)
    objects: tuple[int, ...] = ()
    #: the frames scored, and for each object those of them where the truth holds it
    evaluated: list[int] = field(default_factory=list)
    present: dict[int, list[int]] = field(default_factory=dict)

    def per_object(self) -> dict[int, tuple[float, float]]:
        """Object id → (mean J, mean F) over its scored frames (objects with none left out)."""
        out = {}
        for obj in self.objects:
            rows = [s for s in self.frames if s.obj == obj]
            if rows:
                out[obj] = (float(np.mean([s.j for s in rows])), float(np.mean([s.f for s in rows])))
        return out

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "objects": list(self.objects),
            "frames": [[s.frame, s.obj, s.j, s.f] for s in self.frames],
            "evaluated": self.evaluated,
            "present": {str(k): v for k, v in self.present.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> SequenceScores:
        rows, objects, evaluated, present = data["frames"], data["objects"], data["evaluated"], data["present"]
        assert isinstance(rows, list) and isinstance(objects, list) and isinstance(evaluated, list)
        assert isinstance(present, dict)
        frames = [FrameScore(int(f), int(o), float(j), float(ff)) for f, o, j, ff in rows]
        return cls(
            str(data["name"]), frames, tuple(int(o) for o in objects), [int(f) for f in evaluated],
            {int(k): [int(f) for f in v] for k, v in present.items()},
        )


def evaluated_frames(annotated: Sequence[int], skip_first_last: bool) -> list[int]:
    """The annotated frames that are scored: all, or all but the first and last."""
    frames = sorted(annotated)
    return frames[1:-1] if skip_first_last else frames


def score_sequence(
    name: str,
    truth: Callable[[int], Masks],
    prediction: Callable[[int], Masks],
    frames: Iterable[int],
    shape: tuple[int, int],
    *,
    convention: Convention = Convention.VOS,
    first_objects: Iterable[int] = (),
    tolerance: float = BOUNDARY_FRACTION,
) -> SequenceScores:
    """Score `frames` of one sequence. `truth`/`prediction` give a frame's masks by object id;
    `shape`: (height, width) of every mask; `first_objects` (davis convention): the object
    ids of the first annotated frame."""
    result = SequenceScores(name)
    seen: set[int] = set()
    in_truth: set[int] = set()
    kernel = disk(disk_radius(*shape, tolerance))
    empty = np.zeros(shape, bool)
    davis_objects = list(range(1, max(first_objects, default=0) + 1))
    for frame in frames:
        gt, pred = truth(frame), prediction(frame)
        present_gt = {o for o, m in gt.items() if m.any()}
        result.evaluated.append(frame)
        for obj in present_gt:
            result.present.setdefault(obj, []).append(frame)
        present_pred = {o for o, m in pred.items() if m.any()}
        in_truth |= present_gt
        seen |= present_gt | present_pred
        objects = davis_objects if convention is Convention.DAVIS else sorted(seen)
        for obj in objects:
            t, p = gt.get(obj, empty), pred.get(obj, empty)
            result.frames.append(FrameScore(frame, obj, *pair_scores(t, p, kernel)))
    result.objects = tuple(davis_objects) if convention is Convention.DAVIS else tuple(sorted(in_truth))
    return result


@dataclass(frozen=True)
class Summary:
    """A dataset's (or sequence's) J&F, J and F: means over objects of their per-frame means."""

    jf: float
    j: float
    f: float
    objects: int


def summarise(sequences: Iterable[SequenceScores]) -> Summary:
    js, fs = [], []
    for seq in sequences:
        for j, f in seq.per_object().values():
            js.append(j)
            fs.append(f)
    if not js:
        return Summary(math.nan, math.nan, math.nan, 0)
    j, f = float(np.mean(js)), float(np.mean(fs))
    return Summary((j + f) / 2, j, f, len(js))


@dataclass(frozen=True)
class Reappearance:
    """SA-V's disappearance statistics, over the scored frames, and J&F where objects come back.

    A track *disappears* when the truth lacks it on a scored frame after its first
    appearance; it *reappears* when the truth holds it again after at least `min_absent`
    scored frames without it. `jf` is the mean J&F over the frames of every presence run
    that starts with a reappearance (NaN when there is none).
    """

    tracks: int
    with_disappearance: int
    reappearances: int
    jf: float

    @property
    def share(self) -> float:
        return self.with_disappearance / self.tracks if self.tracks else math.nan


def reappearance(sequences: Iterable[SequenceScores], min_absent: int = 1) -> Reappearance:
    tracks = disappeared = returns = 0
    values: list[float] = []
    for seq in sequences:
        by_key = {(s.frame, s.obj): (s.j + s.f) / 2 for s in seq.frames}
        for obj in seq.objects:
            present = set(seq.present.get(obj, ()))
            if not present:
                continue
            tracks += 1
            frames = [f for f in seq.evaluated if f >= min(present)]
            if any(f not in present for f in frames):
                disappeared += 1
            absent, returning = 0, False
            for frame in frames:
                if frame not in present:
                    absent += 1
                    returning = False
                    continue
                if absent >= min_absent:
                    returns += 1
                    returning = True
                absent = 0
                if returning and (frame, obj) in by_key:
                    values.append(by_key[(frame, obj)])
    return Reappearance(tracks, disappeared, returns, float(np.mean(values)) if values else math.nan)
