"""The interactive protocol of the SAM 2 paper (§6.1, fig. 5): J&F against annotated frames.

For k = 1..`rounds`, each object gets 3 simulated clicks on one more frame, then the
tracker propagates and every annotated frame is scored:

- *offline*: the frame is the object's worst (lowest J&F) annotated frame not yet clicked,
  over the whole video, and propagation runs forward and backward from the first clicked
  frame (several passes through the video);
- *online*: the frame is the worst one after the object's last clicked frame, and
  propagation runs forward only (one pass through the video).

Before any click an object's prediction is empty, so its first frame is the first on
which it appears. Each click goes to the interior-most point (largest distance to the
region's edge, the image border counting as an edge) of the largest error region:
positive in a false negative, negative in a false positive; the prediction the next click
corrects is the tracker's answer to the clicks so far. Ties are broken by a generator
seeded with `seed`, so a run is repeatable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import cv2
import numpy as np

from .datasets import VideoSequence
from .scores import BOUNDARY_FRACTION, disk, disk_radius, pair_scores
from .tracker import Tracker, TrackerFactory, full_logits

CLICKS_PER_FRAME = 3
MODES = ("offline", "online")


def next_click(truth: np.ndarray, prediction: np.ndarray, rng: np.random.Generator) -> tuple[tuple[int, int], int] | None:
    """((x, y), label) of the next click, or None when the prediction is already right."""
    best: tuple[int, np.ndarray, int] | None = None  # (area, region, label)
    for label, error in ((1, truth & ~prediction), (0, prediction & ~truth)):
        count, regions, stats, _ = cv2.connectedComponentsWithStats(error.view(np.uint8), connectivity=8)
        for index in range(1, count):
            area = int(stats[index, cv2.CC_STAT_AREA])
            if best is None or area > best[0]:
                best = (area, regions == index, label)
    if best is None:
        return None
    _, region, label = best
    padded = np.pad(region, 1).astype(np.uint8)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
    candidates = np.flatnonzero(distance == distance.max())
    y, x = np.unravel_index(int(rng.choice(candidates)), region.shape)
    return (int(x), int(y)), label


@dataclass
class Round:
    """After k annotated frames: each object's clicked frames and per-frame (J, F)."""

    k: int
    clicked: dict[int, list[int]]
    scores: dict[int, dict[int, tuple[float, float]]] = field(default_factory=dict)  # object → frame → (J, F)


def _score(
    sequence: VideoSequence, predictions: dict[int, dict[int, np.ndarray]], objects: Iterable[int], kernel: np.ndarray
) -> dict[int, dict[int, tuple[float, float]]]:
    empty = np.zeros(sequence.shape, bool)
    out: dict[int, dict[int, tuple[float, float]]] = {obj: {} for obj in objects}
    for frame in sequence.annotated:
        truth = sequence.truth(frame)
        for obj in out:
            pred = predictions.get(frame, {}).get(obj, empty)
            out[obj][frame] = pair_scores(truth.get(obj, empty), pred, kernel)
    return out


def _propagate(tracker: Tracker, sequence: VideoSequence, clicked: dict[int, list[int]], mode: str) -> dict[int, dict[int, np.ndarray]]:
    frames = sequence.frames
    start = min(f for fs in clicked.values() for f in fs)
    passes = [(start, frames[-1])] + ([(start, frames[0])] if mode == "offline" and start != frames[0] else [])
    masks: dict[int, dict[int, np.ndarray]] = {}
    for begin, end in passes:
        for out in tracker.propagate(begin, end):
            full = full_logits(out.logits, sequence.shape)
            masks[out.frame] = {obj: (full[row] > 0).numpy() for row, obj in enumerate(out.obj_ids)}
    return masks


def run(sequence: VideoSequence, trackers: TrackerFactory, *, rounds: int = 8, mode: str = "offline", seed: int = 0) -> list[Round]:
    """The protocol on one sequence: one Round per k = 1..rounds."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    rng = np.random.default_rng(seed)
    kernel = disk(disk_radius(*sequence.shape, BOUNDARY_FRACTION))
    objects = sequence.objects
    empty = np.zeros(sequence.shape, bool)
    predictions: dict[int, dict[int, np.ndarray]] = {}
    clicked: dict[int, list[int]] = {obj: [] for obj in objects}
    scores = _score(sequence, predictions, objects, kernel)
    results = []
    tracker = trackers(sequence)
    try:
        for k in range(1, rounds + 1):
            for obj in objects:
                after = clicked[obj][-1] if mode == "online" and clicked[obj] else None
                choices = [
                    f for f in sequence.annotated
                    if f not in clicked[obj] and (after is None or f > after)
                ]
                if not choices:
                    continue
                frame = min(choices, key=lambda f: (sum(scores[obj][f]) / 2, f))
                truth = sequence.truth(frame).get(obj, empty)
                prediction = predictions.get(frame, {}).get(obj, empty)
                points: list[tuple[int, int]] = []
                labels: list[int] = []
                for _ in range(CLICKS_PER_FRAME):
                    click = next_click(truth, prediction, rng)
                    if click is None:
                        break
                    points.append(click[0])
                    labels.append(click[1])
                    result = tracker.add_points(frame, obj, points, labels)
                    full = full_logits(result.logits, sequence.shape)
                    prediction = (full[result.obj_ids.index(obj)] > 0).numpy()
                if points:
                    clicked[obj].append(frame)
            if any(clicked.values()):
                predictions = _propagate(tracker, sequence, clicked, mode)
            scores = _score(sequence, predictions, objects, kernel)
            results.append(Round(k, {o: list(f) for o, f in clicked.items()}, scores))
    finally:
        tracker.close()
    return results


def to_json(name: str, rounds: list[Round]) -> dict[str, object]:
    return {
        "name": name,
        "rounds": [
            {
                "k": r.k,
                "clicked": {str(o): f for o, f in r.clicked.items()},
                "scores": {str(o): {str(f): list(v) for f, v in frames.items()} for o, frames in r.scores.items()},
            }
            for r in rounds
        ],
    }


def from_json(data: dict[str, Any]) -> list[Round]:
    rounds: list[dict[str, Any]] = data["rounds"]
    return [
        Round(
            int(r["k"]),
            {int(o): [int(f) for f in fs] for o, fs in r["clicked"].items()},
            {int(o): {int(f): (float(v[0]), float(v[1])) for f, v in frames.items()} for o, frames in r["scores"].items()},
        )
        for r in rounds
    ]


def curve(sequences: Iterable[list[Round]]) -> list[dict[str, float]]:
    """Dataset J&F, J and F against k: for each k, means over every object of every sequence."""
    by_k: dict[int, list[tuple[float, float]]] = {}
    for rounds in sequences:
        for r in rounds:
            for frames in r.scores.values():
                if frames:
                    by_k.setdefault(r.k, []).append(
                        (float(np.mean([v[0] for v in frames.values()])), float(np.mean([v[1] for v in frames.values()])))
                    )
    out = []
    for k in sorted(by_k):
        j = float(np.mean([v[0] for v in by_k[k]]))
        f = float(np.mean([v[1] for v in by_k[k]]))
        out.append({"k": float(k), "jf": (j + f) / 2, "j": j, "f": f})
    return out
