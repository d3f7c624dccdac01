"""Temporal smoothing designs cheaper than the one kept, measured as docs/refine.md reports
them ("Cheaper smoothing designs measured and not kept"): why temporal.py warps four
neighbours bicubically over the edge band.

Each design is scored on benchmarks/matte_quality.py's plates and metrics: the chatter cut
on the slowly moving silhouette and strands (8 frames, 0.4 px a frame), and the edge-band
SAD against the truth, smoothed over refined, of the silhouette moving 0.4, 2 and 6 px a
frame (as `smoothing_accuracy` scores it, but over 8 frames). Goals (issue 10): a cut of
at least 50%; the distance from the truth is the kept design's standard (its row).

- kept: temporal.TemporalSmoother as shipped (2 frames each side, bicubic warps);
- logits: SAM 2's 256² logits averaged over the same window before refinement, each
  warped by the object's known motion (a flow this good is the design's best case);
- logits + radius 1: those logits refined, then the mattes smoothed 1 frame each side
  (half the kept design's warps);
- recursive: each frame smoothed with the previous frame's *smoothed* matte only (one
  warp a frame; the previous frame weighs 2, as if pushed twice), scored from frame 2;
- far bilinear: the kept design with the neighbours 2 frames away warped bilinearly.

    .venv/bin/python benchmarks/smoothing_designs.py
"""

from __future__ import annotations

import contextlib
import math
import types
from dataclasses import dataclass, replace
from typing import Callable, Iterator

import cv2
import numpy as np
import torch

import matte_quality as mq
from rotobridge.bridge import refine, temporal
from rotobridge.controls import MatteControls

FRAMES = 8
SPEEDS = (mq.SLOW, 2.0, 6.0)
HEIGHT, WIDTH = 1080, 1920


def _refined(sequence: list[mq.Plate], logits: list[torch.Tensor]) -> list[torch.Tensor]:
    with torch.inference_mode():
        return [refine.apply(one, p.image[None], MatteControls(), HEIGHT, WIDTH) for one, p in zip(logits, sequence)]


@dataclass
class Shot:
    """A moving plate's frames, SAM 2's logits of them (wandering as in matte_quality.py),
    and their refined mattes: made once, scored by every design."""

    sequence: list[mq.Plate]
    shift: float  # the object's motion, px a frame
    logits: list[torch.Tensor]
    refined: list[torch.Tensor]

    @classmethod
    def make(cls, name: str, shift: float) -> Shot:
        sequence = mq.moving(name, shift, FRAMES)
        logits = [mq.logits_from_truth(p.truth, mq.WANDER, seed=t) for t, p in enumerate(sequence)]
        return cls(sequence, shift, logits, _refined(sequence, logits))


#: A design: a shot → its smoothed mattes, and the first frame they are scored from.
Design = Callable[[Shot], tuple[list[torch.Tensor], int]]


def _smoothed(sequence: list[mq.Plate], mattes: list[torch.Tensor], smoother: temporal.TemporalSmoother) -> list[torch.Tensor]:
    out = [m for t, (p, a) in enumerate(zip(sequence, mattes)) for _, m in smoother.push(t, a, p.image[None])]
    return out + [m for _, m in smoother.flush()]


@contextlib.contextmanager
def _radius(radius: int) -> Iterator[None]:
    shipped, temporal.RADIUS = temporal.RADIUS, radius
    try:
        yield
    finally:
        temporal.RADIUS = shipped


def kept(shot: Shot) -> tuple[list[torch.Tensor], int]:
    return _smoothed(shot.sequence, shot.refined, temporal.TemporalSmoother(1.0)), 0


def _logits_averaged(logits: list[torch.Tensor], shift: float) -> list[torch.Tensor]:
    """Each frame's logits averaged with those 2 frames each side, moved by the known motion
    (a 256² logit cell is WIDTH / 256 plate pixels wide)."""
    out = []
    for t in range(len(logits)):
        moved = []
        for k in range(max(0, t - 2), min(len(logits), t + 3)):
            onto = np.array([[1, 0, (t - k) * shift * mq.LOW / WIDTH], [0, 1, 0]], np.float32)
            moved.append(cv2.warpAffine(logits[k][0, 0].numpy(), onto, (mq.LOW, mq.LOW), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REPLICATE))
        out.append(torch.from_numpy(np.mean(moved, 0))[None, None])
    return out


def logits(shot: Shot) -> tuple[list[torch.Tensor], int]:
    return _refined(shot.sequence, _logits_averaged(shot.logits, shot.shift)), 0


def logits_radius_1(shot: Shot) -> tuple[list[torch.Tensor], int]:
    with _radius(1):
        return _smoothed(shot.sequence, logits(shot)[0], temporal.TemporalSmoother(1.0)), 0


def recursive(shot: Shot) -> tuple[list[torch.Tensor], int]:
    smoother = temporal.TemporalSmoother(1.0)
    out: list[torch.Tensor] = []
    before: temporal._Frame | None = None
    for t, (plate, matte) in enumerate(zip(shot.sequence, shot.refined)):
        frame = smoother._frame(t, matte, plate.image[None])
        smoothed = matte
        if before is not None and frame.present and before.present:
            smoothed = smoother._smooth(frame, ((before,), (before,)))  # the previous frame weighs 2
        out.append(smoothed)
        before = replace(frame, alpha=smoothed[0, 0].numpy())
    return out, 2


#: OpenCV as temporal.py sees it, but for its bicubic sampling, which is bilinear.
_BILINEAR = types.SimpleNamespace(**{**{k: getattr(cv2, k) for k in dir(cv2)}, "INTER_CUBIC": cv2.INTER_LINEAR})


class _FarBilinear(temporal.TemporalSmoother):
    """The kept smoother, its neighbours 2 frames away warped bilinearly instead of
    bicubically (one thread: the module's OpenCV is swapped for the warp)."""

    def _warp(self, band: temporal._Band, current: temporal._Frame, path: tuple[temporal._Frame, ...],
              here: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(path) == 1:
            return super()._warp(band, current, path, here)
        kept_cv2, temporal.cv2 = temporal.cv2, _BILINEAR  # type: ignore[attr-defined,assignment]
        try:
            return super()._warp(band, current, path, here)
        finally:
            temporal.cv2 = kept_cv2  # type: ignore[attr-defined]


def far_bilinear(shot: Shot) -> tuple[list[torch.Tensor], int]:
    return _smoothed(shot.sequence, shot.refined, _FarBilinear(1.0)), 0


DESIGNS: dict[str, Design] = {
    "kept": kept,
    "logits": logits,
    "logits + radius 1": logits_radius_1,
    "recursive": recursive,
    "far bilinear": far_bilinear,
}


def main() -> None:
    torch.set_grad_enabled(False)
    print(f"{'design':<18} {'chatter cut: silhouette':>23} {'strands':>8}   smoothed/refined SAD, silhouette at "
          + ", ".join(f"{s:g}" for s in SPEEDS) + " px a frame")
    moving = {shift: Shot.make("silhouette", shift) for shift in SPEEDS}
    slow = (moving[mq.SLOW], Shot.make("strands", mq.SLOW))
    for label, design in DESIGNS.items():
        cuts = []
        for shot in slow:
            band = mq.edge_band(shot.sequence[FRAMES // 2].truth, math.ceil(2 * WIDTH / mq.LOW))
            smoothed, first = design(shot)
            before = mq.chatter([m[0, 0] for m in shot.refined[first:]], mq.SLOW, band)
            cuts.append(1 - mq.chatter([m[0, 0] for m in smoothed[first:]], mq.SLOW, band) / before)
        ratios = []
        for shot in moving.values():
            smoothed, first = design(shot)
            scored = range(max(first, 2), FRAMES - (0 if first else 2))  # kept's last frames lack neighbours
            truth = [p.truth for p in shot.sequence]
            bands = {t: mq.edge_band(truth[t], math.ceil(2 * WIDTH / mq.LOW)) for t in scored}
            before = sum(mq.score(shot.refined[t][0, 0], truth[t], bands[t]).sad for t in scored)
            ratios.append(sum(mq.score(smoothed[t][0, 0], truth[t], bands[t]).sad for t in scored) / before)
        print(f"{label:<18} {cuts[0]:>23.0%} {cuts[1]:>8.0%}   " + ", ".join(f"x{r:.2f}" for r in ratios), flush=True)


if __name__ == "__main__":
    main()
