"""An evaluation run over a dataset: predictions made (or given), scored, resumable.

Each sequence's scores are written to `<out>/sequences/<name>.json` (atomically) as soon
as it is scored, and a sequence that already has that file is skipped, so an interrupted
run resumes where it stopped. Scoring runs in a pool of processes, one sequence each,
which import nothing of the model side (no torch), so they start in a moment.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from ..atomic import atomic_file
from .datasets import VideoSequence
from .predictions import PredictionFolder
from .scores import BOUNDARY_FRACTION, Convention, SequenceScores, evaluated_frames, score_sequence

if TYPE_CHECKING:
    from .interactive import Round
    from .tracker import TrackerFactory

Progress = Callable[[str], None]
#: DAVIS's void label
VOID = 255


@dataclass(frozen=True)
class ScoreOptions:
    convention: Convention = Convention.VOS
    skip_first_last: bool = True
    tolerance: float = BOUNDARY_FRACTION


def score_one(sequence: VideoSequence, predictions: str, options: ScoreOptions) -> SequenceScores:
    """Score one sequence's predictions (in the benchmark's format under `predictions`)."""
    annotated = sequence.annotated
    first: tuple[int, ...] = ()
    allowed = sequence.objects
    truth = sequence.truth
    if options.convention is Convention.DAVIS:
        # davis2017-evaluation turns void (255) into background before it counts objects
        def truth(frame: int) -> dict[int, np.ndarray]:
            return {obj: mask for obj, mask in sequence.truth(frame).items() if obj != VOID}

        first = tuple(truth(annotated[0]))
        allowed = tuple(range(1, max(first, default=0) + 1))
    folder = PredictionFolder(predictions, sequence, allowed)
    return score_sequence(
        sequence.name,
        truth,
        folder.read,
        evaluated_frames(annotated, options.skip_first_last),
        sequence.shape,
        convention=options.convention,
        first_objects=first,
        tolerance=options.tolerance,
    )


def _score_task(task: tuple[VideoSequence, str, ScoreOptions]) -> SequenceScores:
    return score_one(*task)


def scores_path(out: str, name: str) -> str:
    return os.path.join(out, "sequences", f"{name}.json")


def save_scores(out: str, scores: SequenceScores) -> None:
    path = scores_path(out, scores.name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_file(path) as tmp, open(tmp, "w") as f:
        json.dump(scores.to_json(), f)


def load_scores(out: str, name: str) -> SequenceScores | None:
    path = scores_path(out, name)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return SequenceScores.from_json(json.load(f))


def score_dataset(
    sequences: Sequence[VideoSequence],
    predictions: str,
    out: str,
    options: ScoreOptions,
    *,
    workers: int = 2,
    progress: Progress | None = None,
) -> list[SequenceScores]:
    """Every sequence's scores, in the dataset's order; those already in `out` are reused."""
    done = {s.name: s for s in (load_scores(out, seq.name) for seq in sequences) if s is not None}
    todo = [(seq, predictions, options) for seq in sequences if seq.name not in done]
    for name in done:
        if progress:
            progress(name)
    results: Iterator[SequenceScores]
    if workers > 1 and len(todo) > 1:
        pool = multiprocessing.get_context("forkserver").Pool(min(workers, len(todo)))
        results = pool.imap_unordered(_score_task, todo)
    else:
        pool = None
        results = map(_score_task, todo)
    try:
        for scores in results:
            save_scores(out, scores)
            done[scores.name] = scores
            if progress:
                progress(scores.name)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    return [done[seq.name] for seq in sequences]


def run_semisupervised(
    sequences: Sequence[VideoSequence],
    trackers: Callable[[], TrackerFactory],
    predictions: str,
    out: str,
    options: ScoreOptions,
    *,
    progress: Progress | None = None,
) -> list[SequenceScores]:
    """Predict (semi-supervised protocol) and score each sequence not yet scored in `out`.

    `trackers` makes the tracker factory (loads the model); it is called only when some
    sequence is left to predict, so a finished run resumes in seconds."""
    from . import semisupervised

    results = []
    factory: TrackerFactory | None = None
    for sequence in sequences:
        scores = load_scores(out, sequence.name)
        if scores is None:
            if factory is None:
                factory = trackers()
            folder = PredictionFolder(predictions, sequence)
            for frame, masks in semisupervised.predict(sequence, factory):
                folder.write(frame, masks)
            scores = score_one(sequence, predictions, options)
            save_scores(out, scores)
        results.append(scores)
        if progress:
            progress(sequence.name)
    return results


def run_interactive(
    sequences: Sequence[VideoSequence],
    trackers: Callable[[], TrackerFactory],
    out: str,
    *,
    rounds: int = 8,
    mode: str = "offline",
    seed: int = 0,
    progress: Progress | None = None,
) -> list[list[Round]]:
    """The interactive protocol on each sequence not yet done in `out` (`<out>/interactive/<name>.json`)."""
    from . import interactive

    results = []
    factory: TrackerFactory | None = None
    for sequence in sequences:
        path = os.path.join(out, "interactive", f"{sequence.name}.json")
        if os.path.isfile(path):
            with open(path) as f:
                done = interactive.from_json(json.load(f))
        else:
            if factory is None:
                factory = trackers()
            done = interactive.run(sequence, factory, rounds=rounds, mode=mode, seed=seed)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with atomic_file(path) as tmp, open(tmp, "w") as f:
                json.dump(interactive.to_json(sequence.name, done), f)
        results.append(done)
        if progress:
            progress(sequence.name)
    return results
