"""The semi-supervised protocol, as sam2's `tools/vos_inference.py` runs it.

Each object gets its truth mask as the prompt on its first annotated frame and is tracked
forward to the end. When every object starts on the same frame (DAVIS, MOSE), all are
tracked together and a pixel claimed by several objects goes to the lowest id, as
`vos_inference` writes palette PNGs. When some start later, or the dataset is one where
they may (YouTube-VOS, SA-V: sam2 runs them with
`--track_object_appearing_later_in_video`), objects are tracked from their own first
frame (one tracker per start frame: sam2 tracks objects independently, so this equals its
one-object-at-a-time runs), absent before it, and a palette output gives each pixel to
the object with the highest positive logit (sam2's non-overlap constraint); per-object
outputs (SA-V) keep every object's own mask.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterator

import numpy as np
import torch

from .datasets import VideoSequence
from .tracker import ABSENT, TrackerFactory, full_logits

Masks = dict[int, np.ndarray]  # object id → boolean mask


def combine(logits: torch.Tensor, ids: list[int], *, late: bool, per_object: bool) -> dict[int, np.ndarray]:
    """One frame's (N, H, W) full-size logits of objects `ids` (ascending) → boolean masks."""
    if per_object or not ids:
        return {obj: (logits[i] > 0).numpy() for i, obj in enumerate(ids)}
    if late:  # sam2's _apply_non_overlapping_constraints: only the argmax object keeps its logit
        winner = torch.argmax(logits, dim=0)
        return {obj: ((winner == i) & (logits[i] > 0)).numpy() for i, obj in enumerate(ids)}
    taken = torch.zeros(logits.shape[1:], dtype=torch.bool)
    out = {}
    for i, obj in enumerate(ids):  # lowest id first: it wins overlaps
        mask = (logits[i] > 0) & ~taken
        taken |= mask
        out[obj] = mask.numpy()
    return out


def predict(sequence: VideoSequence, trackers: TrackerFactory) -> Iterator[tuple[int, Masks]]:
    """Every frame's masks for every object of the sequence, in frame order (tracking
    runs before the first is yielded; full-size masks are made one frame at a time)."""
    prompts = sequence.first_masks()
    groups: dict[int, list[int]] = defaultdict(list)
    for obj, (frame, _) in sorted(prompts.items()):
        groups[frame].append(obj)
    last = sequence.frames[-1]
    low: dict[int, dict[int, torch.Tensor]] = defaultdict(dict)  # frame → object → (1, h, w) logits
    for start in sorted(groups):
        tracker = trackers(sequence)
        try:
            for obj in groups[start]:
                tracker.add_mask(start, obj, prompts[obj][1])
            for out in tracker.propagate(start, last):
                for row, obj in enumerate(out.obj_ids):
                    low[out.frame][obj] = out.logits[row].detach().to("cpu", torch.float32)
        finally:
            tracker.close()
    ids = sorted(prompts)
    late = sequence.late_objects or len(groups) > 1
    for frame in sequence.frames:
        have = low.get(frame, {})
        if have:
            size = next(iter(have.values())).shape[-2:]
            stack = torch.stack([have.get(obj, torch.full((1, *size), ABSENT)) for obj in ids])
            full = full_logits(stack, sequence.shape)
        else:
            full = torch.full((len(ids), *sequence.shape), ABSENT)
        low.pop(frame, None)
        yield frame, combine(full, ids, late=late, per_object=sequence.per_object)
