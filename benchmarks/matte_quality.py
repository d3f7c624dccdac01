"""What refinement adds to a perfect SAM 2 prediction, on generated plates with known soft truth.

Each plate is composited from a known alpha (I = a·F + (1 − a)·B, plus grain) over a
textured background: hard textured silhouettes, strands 1-3 px wide, cables, motion-blurred
and defocused edges, at 1920x1080 and 3840x2160. The "raw" matte is the truth through SAM
2's own bottleneck: area-downsampled to 256x256, turned into logits and upsampled as sam2
does (bilinear logits, then sigmoid). So the benchmark measures what refinement recovers of
what 256x256 loses, not what the model gets wrong.

Metrics (alphamatting.com style, in a band around the true edge): SAD (sum of absolute
differences / 1000), MSE, gradient error (squared difference of Gaussian gradient
magnitudes, sigma 1.4, / 1000); over the frame: IoU of the mattes at 0.5 and the DAVIS
boundary F (tolerance 0.8% of the diagonal). On slowly moving plates (silhouette,
strands; 0.4 px a frame, the raw logits wandering as SAM 2's do from frame to frame):
chatter, the mean |a_t − shift(a_{t−1})| in the edge band (the motion is known, so the
warp is exact), and IoU, before and after temporal smoothing (temporal.py).
Cost: refinement + controls per frame per object (per plate: wall and CPU time, each the
least of --repeat runs, as the machine is shared), with the torch and OpenCV threads
asked for (default: theirs, as the render path runs); smoothing separately, and the two
summed per plate (the goal: 40 ms a 1080p frame per object), and both run as a render
spreads them, frames side by side on every core (side_by_side); each one-frame control
alone. Checks: what smoothing does to the distance from the truth as the silhouette moves faster
(smoothing_accuracy), the smoother's flow at a turning object's outline (flow_check), refinement where SAM 2 is
wrong, faint strands over a plate without them (ghost_check), and strands of another colour than the
body (colour_check). Goals (issue 10): refined/raw SAD and gradient <= 0.6
on hard edges and thin structures, <= 1.0 on soft edges; IoU not lower by more than
0.005; smoothing cuts chatter by >= 50% with IoU not lower by more than 0.01.
    .venv/bin/python benchmarks/matte_quality.py [--uhd] [--repeat 5] [--threads 1] [--strength 1]
]
"""

from __future__ import annotations

import argparse
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from rotobridge.bridge import refine, temporal
from rotobridge.controls import MatteControls

LOW = 256  # SAM 2's logits at the shipped 1024 input
#: Logit noise per frame on the moving plates (see logits_from_truth): SAM 2's edge wanders
#: by about a pixel at 1080p from frame to frame.
WANDER = 1.5
#: Pixels a frame the slowly moving plates move (chatter, smoothing's cost).
SLOW = 0.4


# --- plates -----------------------------------------------------------------------------


def _grid(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    y, x = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    return x + 0.5, y + 0.5


def _noise(height: int, width: int, cells: int, seed: int, channels: int = 3) -> torch.Tensor:
    """Smooth random texture in about -1..1 with `cells` features across the width."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, channels, max(2, cells * height // width), cells, generator=g) * 2 - 1
    return F.interpolate(small, size=(height, width), mode="bicubic", align_corners=False)[0]


def _blob(x: torch.Tensor, y: torch.Tensor, cx: float, cy: float, radius: float) -> torch.Tensor:
    """A wavy disc with a one-pixel anti-aliased edge (radial distance to its outline)."""
    dx, dy = x - cx, y - cy
    rho = torch.sqrt(dx * dx + dy * dy)
    theta = torch.atan2(dy, dx)
    outline = radius * (1 + 0.12 * torch.sin(5 * theta) + 0.05 * torch.sin(13 * theta + 1))
    return (0.5 - (rho - outline)).clamp(0, 1)


def _segment(x: torch.Tensor, y: torch.Tensor, a: tuple[float, float], b: tuple[float, float], width: float) -> torch.Tensor:
    """A line `width` px wide from a to b, anti-aliased: coverage of its cross-section."""
    ax, ay = a
    bx, by = b
    vx, vy = bx - ax, by - ay
    t = (((x - ax) * vx + (y - ay) * vy) / (vx * vx + vy * vy)).clamp(0, 1)
    dist = torch.sqrt((x - ax - t * vx) ** 2 + (y - ay - t * vy) ** 2)
    return (width / 2 + 0.5 - dist).clamp(0, 1).clamp(max=width)


def _strands(x: torch.Tensor, y: torch.Tensor, cx: float, cy: float, radius: float, seed: int, scale: float) -> torch.Tensor:
    """Hair-like strands 1-3 px wide leaving a body, and two cables across the frame."""
    rng = np.random.default_rng(seed)
    alpha = torch.zeros_like(x)
    for _ in range(36):
        angle = rng.uniform(0, 2 * math.pi)
        start = radius * 0.9
        length = rng.uniform(80, 260) * scale
        width = float(rng.choice([1.0, 1.5, 2.0, 3.0]))
        bend = rng.uniform(-0.25, 0.25)
        a = (cx + start * math.cos(angle), cy + start * math.sin(angle))
        b = (cx + (start + length) * math.cos(angle + bend), cy + (start + length) * math.sin(angle + bend))
        alpha = torch.maximum(alpha, _segment(x, y, a, b, width))
    height, width_px = x.shape
    for k, w in enumerate((2.0, 3.0)):
        y0 = height * (0.15 + 0.12 * k)
        alpha = torch.maximum(alpha, _segment(x, y, (0.0, y0), (float(width_px), y0 + 0.1 * height), w))
    return alpha


def _box_blur_x(alpha: torch.Tensor, length: int) -> torch.Tensor:
    kernel = torch.full((1, 1, 1, length), 1.0 / length)
    return F.conv2d(F.pad(alpha[None, None], (length // 2, length // 2, 0, 0), mode="replicate"), kernel)[0, 0]


def _gaussian(alpha: torch.Tensor, sigma: float) -> torch.Tensor:
    """OpenCV's Gaussian blur, edges replicated: the plate's truth is not made by the code
    under test (refine.feather)."""
    radius = math.ceil(3 * sigma)
    blurred = cv2.GaussianBlur(alpha.numpy(), (2 * radius + 1, 2 * radius + 1), sigma, borderType=cv2.BORDER_REPLICATE)
    return torch.from_numpy(blurred).clamp(0, 1)


@dataclass(frozen=True)
class Plate:
    name: str
    kind: str  # "hard" (hard edges, thin structures) or "soft" (motion blur, defocus)
    image: torch.Tensor  # (3, H, W) display-referred 0-1
    truth: torch.Tensor  # (H, W) alpha


def _compose(alpha: torch.Tensor, seed: int) -> torch.Tensor:
    """Plate pixels over a textured background: I = a·F + (1 − a)·B + grain."""
    height, width = alpha.shape
    x, y = _grid(height, width)
    base_b = torch.tensor([0.28, 0.36, 0.30]).view(3, 1, 1)
    texture = 0.06 * torch.sin(x / 9.0) * torch.sin(y / 13.0) + 0.05 * torch.sin((x + 2 * y) / 5.0)
    b = base_b + 0.12 * _noise(height, width, 24, seed) + 0.10 * _noise(height, width, 240, seed + 1) + texture
    base_f = torch.tensor([0.86, 0.62, 0.42]).view(3, 1, 1)
    f = base_f + 0.08 * _noise(height, width, 60, seed + 2) + 0.04 * torch.sin(y / 4.0)
    grain = 0.01 * torch.randn(3, height, width, generator=torch.Generator().manual_seed(seed + 3))
    return (alpha * f + (1 - alpha) * b + grain).clamp(0, 1)


def plates(height: int, width: int, *, shift: float = 0.0, seed: int = 0, only: tuple[str, ...] = ()) -> list[Plate]:
    """The benchmark's plates at one size; `shift` moves every object right by that many
    pixels (the textures stay: the objects slide over them); `only` names the plates wanted."""
    x, y = _grid(height, width)
    scale = width / 1920
    cx, cy, radius = width * 0.45 + shift, height * 0.5, height * 0.28
    body = _blob(x, y, cx, cy, radius)
    alphas = {
        ("silhouette", "hard"): body,
        ("strands", "hard"): torch.maximum(_blob(x, y, cx, cy, radius * 0.7), _strands(x, y, cx, cy, radius * 0.7, seed, scale)),
        ("motion_blur", "soft"): _box_blur_x(body, int(31 * scale) | 1),
        ("defocus", "soft"): _gaussian(body, 6.0 * scale),
    }
    return [
        Plate(name, kind, _compose(a, seed + 10 * i), a)
        for i, ((name, kind), a) in enumerate(alphas.items())
        if not only or name in only
    ]


def moving(name: str, shift: float, frames: int) -> list[Plate]:
    """One 1080p plate's frames, its object moving `shift` pixels right each frame."""
    return [plates(1080, 1920, shift=shift * t, only=(name,))[0] for t in range(frames)]


def logits_from_truth(truth: torch.Tensor, wander: float = 0.0, seed: int = 0) -> torch.Tensor:
    """The truth through SAM 2's bottleneck: area-averaged to 256², as (1, 1, 256, 256) logits.

    `wander` adds smooth random logit noise of that amplitude (features 16 logit cells
    apart, a new draw per `seed`): SAM 2 predicts each frame afresh, so its edge wanders by
    a fraction of a logit cell along the outline from frame to frame: the chatter."""
    low = F.interpolate(truth[None, None], size=(LOW, LOW), mode="area")
    logits = torch.logit(low, eps=1e-4)  # ±9.2: a confident SAM 2 logit
    if wander:
        logits = logits + wander * _noise(LOW, LOW, LOW // 16, 1000 + seed, channels=1)[None]
    return logits


def mattes(plate: Plate, controls: MatteControls) -> tuple[torch.Tensor, torch.Tensor]:
    """(raw, refined) (H, W) mattes of a plate: raw upsampled as sam2 does."""
    height, width = plate.truth.shape
    logits = logits_from_truth(plate.truth)
    with torch.inference_mode():
        raw = refine.raw_matte(logits, height, width)[0, 0]
        refined = refine.apply(logits, plate.image[None], controls, height, width)[0, 0]
    return raw, refined


# --- metrics ----------------------------------------------------------------------------


def edge_band(truth: torch.Tensor, radius: int) -> np.ndarray:
    """Pixels within `radius` of the true edge (its soft part or its 0.5 outline)."""
    t = truth.numpy()
    hard = (t > 0.5).astype(np.uint8)
    edge = ((t > 0.01) & (t < 0.99)) | (cv2.morphologyEx(hard, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(edge.astype(np.uint8), disc) > 0


def _gradient(a: np.ndarray) -> np.ndarray:
    smooth = cv2.GaussianBlur(a, (0, 0), 1.4)
    gx, gy = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=1), cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=1)
    return np.sqrt(gx * gx + gy * gy)


def _boundary(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8))) > 0


def boundary_f(pred: np.ndarray, true: np.ndarray) -> float:
    """DAVIS boundary F: boundary pixels matched within 0.8% of the image diagonal."""
    tol = max(1, round(0.008 * math.hypot(*pred.shape)))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tol + 1, 2 * tol + 1))
    bp, bt = _boundary(pred), _boundary(true)
    near_t = cv2.dilate(bt.astype(np.uint8), disc) > 0
    near_p = cv2.dilate(bp.astype(np.uint8), disc) > 0
    precision = (bp & near_t).sum() / max(1, bp.sum())
    recall = (bt & near_p).sum() / max(1, bt.sum())
    return float(2 * precision * recall / max(1e-9, precision + recall))


@dataclass(frozen=True)
class Scores:
    sad: float
    mse: float
    grad: float
    iou: float
    bf: float


def score(alpha: torch.Tensor, truth: torch.Tensor, band: np.ndarray) -> Scores:
    a, t = alpha.numpy().astype(np.float32), truth.numpy().astype(np.float32)
    diff = np.abs(a - t)[band]
    grad = ((_gradient(a) - _gradient(t)) ** 2)[band]
    pa, pt = a > 0.5, t > 0.5
    iou = (pa & pt).sum() / max(1, (pa | pt).sum())
    return Scores(diff.sum() / 1000, float((diff**2).mean()), grad.sum() / 1000, float(iou), boundary_f(pa, pt))


def chatter(frames: list[torch.Tensor], shift: float, band: np.ndarray) -> float:
    """Mean |a_t − a_{t−1} moved by the known shift| over the band, averaged over t."""
    out = []
    for prev, cur in zip(frames, frames[1:]):
        m = np.float32([[1, 0, shift], [0, 1, 0]])
        warped = cv2.warpAffine(prev.numpy(), m, (prev.shape[1], prev.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out.append(float(np.abs(cur.numpy() - warped)[band].mean()))
    return float(np.mean(out))


# --- the run ----------------------------------------------------------------------------


def timed(fn: Callable[[], object], repeat: int, per: int = 1) -> tuple[float, float]:
    """Milliseconds per call, `per` calls' worth a run: (wall, CPU time of this process),
    each the least of `repeat` runs after a warm-up. The least, not the mean: this machine
    is shared and its timings drift by ±20% from minute to minute, always upwards."""
    fn()
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls) / per * 1000, min(cpus) / per * 1000


#: Per plate: (ms wall, ms CPU) per frame per object.
Costs = dict[str, tuple[float, float]]


def run_size(height: int, width: int, controls: MatteControls, repeat: int) -> tuple[list[str], Costs]:
    """The quality table's rows at one size, and what each plate's frame cost (every control but smoothing)."""
    rows, costs = [], {}
    band_radius = math.ceil(2 * width / LOW)
    for plate in plates(height, width):
        raw, refined = mattes(plate, controls)
        logits, guide = logits_from_truth(plate.truth), plate.image[None]
        with torch.inference_mode():
            cost = timed(lambda: refine.apply(logits, guide, controls, height, width), repeat)
        costs[plate.name] = cost
        band = edge_band(plate.truth, band_radius)
        r, f = score(raw, plate.truth, band), score(refined, plate.truth, band)
        goal = 0.6 if plate.kind == "hard" else 1.0
        sad_ratio, grad_ratio = f.sad / r.sad, f.grad / r.grad
        ok = sad_ratio <= goal and grad_ratio <= goal and r.iou - f.iou <= 0.005
        rows.append(
            f"{width}x{height:<5} {plate.name:<12} {plate.kind:<4} "
            f"{r.sad:9.2f} {f.sad:9.2f} {sad_ratio:5.2f}  {r.mse:.5f} {f.mse:.5f}  "
            f"{r.grad:8.2f} {f.grad:8.2f} {grad_ratio:5.2f}  {r.iou:.4f} {f.iou:.4f}  {r.bf:.3f} {f.bf:.3f}  "
            f"{'<=' if ok else '> '}{goal:.1f} {'ok' if ok else 'MISSED':<6}  {cost[0]:6.1f} {cost[1]:6.1f}"
        )
    return rows, costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uhd", action="store_true", help="also 3840x2160 (slower)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per cost figure (the least is printed)")
    parser.add_argument("--threads", type=int, default=0, help="torch and OpenCV threads (0: their defaults)")
    parser.add_argument("--strength", type=float, default=temporal.DEFAULT_STRENGTH, help="temporal smoothing strength")
    parser.add_argument("--frames", type=int, default=8, help="frames of the moving plates")
    args = parser.parse_args()
    if args.threads:  # torch's and OpenCV's (smoothing's flow and warps)
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    controls = MatteControls()
    print(f"controls: {controls.to_json()}")
    print(f"torch threads: {torch.get_num_threads()}, CPUs: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    print(
        f"{'size':<10} {'plate':<12} {'kind':<4} {'SAD raw':>9} {'refined':>9} {'ratio':>5}  "
        f"{'MSE raw':>7} {'refined':>7}  {'grad raw':>8} {'refined':>8} {'ratio':>5}  "
        f"{'IoU raw':>6} {'refined':>6}  {'BF raw':>5} {'ref.':>5}  goal{'':>8}  {'ms wall':>6} {'ms CPU':>6}"
    )
    sizes = [(1080, 1920)] + ([(2160, 3840)] if args.uhd else [])
    one_frame: Costs = {}
    for height, width in sizes:
        rows, costs = run_size(height, width, controls, args.repeat)
        print("\n".join(rows))
        one_frame = one_frame or costs

    print(f"temporal smoothing, strength {args.strength} (radius {temporal.RADIUS}): plates moving {SLOW} px/frame, "
          f"{args.frames} frames at 1080p, SAM 2's edge wandering (logit noise {WANDER}) from frame to frame")
    rows, smoothing = run_temporal(controls, args.strength, args.frames, args.repeat)
    print("\n".join(rows))
    for name, (wall, cpu) in smoothing.items():
        total = one_frame[name][0] + wall, one_frame[name][1] + cpu
        print(f"cost per 1920x1080 frame per object, every control at its default ({name}): "
              f"{total[0]:.1f} ms wall, {total[1]:.1f} ms CPU (goal <= 40: {'ok' if total[0] <= 40 else 'MISSED'})")

    print(side_by_side(controls, args.strength, args.frames, args.repeat))
    print(smoothing_accuracy())
    print(flow_check())
    print(controls_cost(args.repeat))
    for height, width in sizes:
        print(ghost_check(height, width))
        print(colour_check(height, width))

    for height, width in sizes:
        plate = plates(height, width, only=("strands",))[0]  # the widest band
        logits = logits_from_truth(plate.truth)
        with torch.inference_mode():
            up = timed(lambda: refine.raw_matte(logits, height, width), args.repeat)
        print(
            f"of the cost per {width}x{height} frame, the upsample + sigmoid every matte already pays: "
            f"{up[0]:.1f} ms wall ({up[1]:.1f} ms CPU); load average now {os.getloadavg()[0]:.2f}"
        )


def run_temporal(controls: MatteControls, strength: float, frames: int, repeat: int) -> tuple[list[str], Costs]:
    """Chatter (edge band, known motion) and IoU before/after smoothing, and its cost per plate."""
    shift, height, width = SLOW, 1080, 1920
    rows, costs = [], {}
    for name in ("silhouette", "strands"):
        sequence = moving(name, shift, frames)
        band = edge_band(sequence[frames // 2].truth, math.ceil(2 * width / LOW))
        raws, refined = [], []
        with torch.inference_mode():
            for t, plate in enumerate(sequence):
                logits = logits_from_truth(plate.truth, WANDER, seed=t)
                raws.append(refine.raw_matte(logits, height, width))
                refined.append(refine.apply(logits, plate.image[None], controls, height, width))
        smoothed: list[torch.Tensor] = []

        def smooth(objects: int = 1) -> None:
            """The pass smoothed for `objects` objects sharing the plate's flows (temporal.Motion)."""
            motion = temporal.Motion()
            smoothers = [temporal.TemporalSmoother(strength, motion) for _ in range(objects)]
            smoothed.clear()
            for t, (plate, matte) in enumerate(zip(sequence, refined)):
                for one in smoothers:
                    smoothed.extend(m for _, m in one.push(t, matte, plate.image[None]))
            for one in smoothers:
                smoothed.extend(m for _, m in one.flush())

        shared = timed(lambda: smooth(2), repeat, per=2 * frames)[1]  # CPU per object, two objects
        cost = costs[name] = timed(smooth, repeat, per=frames)
        before = chatter([m[0, 0] for m in refined], shift, band)
        after = chatter([m[0, 0] for m in smoothed], shift, band)
        iou_before = float(np.mean([score(m[0, 0], p.truth, band).iou for m, p in zip(refined, sequence)]))
        iou_after = float(np.mean([score(m[0, 0], p.truth, band).iou for m, p in zip(smoothed, sequence)]))
        cut = 1 - after / before
        ok = cut >= 0.5 and iou_before - iou_after <= 0.01
        rows.append(
            f"{name:<12} chatter truth {chatter([p.truth for p in sequence], shift, band):.5f} "
            f"raw {chatter([m[0, 0] for m in raws], shift, band):.5f} refined {before:.5f} smoothed {after:.5f} "
            f"(cut {cut:.0%}, goal >= 50%)  IoU refined {iou_before:.4f} smoothed {iou_after:.4f}  "
            f"{'ok' if ok else 'MISSED'}  smoothing {cost[0]:.1f} ms wall ({cost[1]:.1f} ms CPU) per frame; "
            f"{shared:.1f} ms CPU per object with 2 objects sharing the plate's flows"
        )
    return rows, costs



def side_by_side(controls: MatteControls, strength: float, frames: int, repeat: int) -> str:
    """Refinement and smoothing of one object's moving plate as a render spreads them
    (smoothing.py): each frame's refinement on a pool with a worker per core (the render's
    writers); the smoother's bookkeeping (`push_later`, which makes the frame's grey
    pictures) on a thread of its own, in frame order, as each refinement completes, while
    the pool goes on; each completed frame's smoothing job on the pool. Wall time per
    frame: what the whole CPU, not one core, gives a shot (the sum above is one frame at a
    time)."""
    height, width, workers = 1080, 1920, os.cpu_count() or 1
    out = []
    with ThreadPoolExecutor(workers) as pool:
        for name in ("silhouette", "strands"):
            sequence = moving(name, SLOW, frames)
            logits = [logits_from_truth(p.truth, WANDER, seed=t) for t, p in enumerate(sequence)]

            def one(t: int) -> torch.Tensor:
                with torch.inference_mode():
                    return refine.apply(logits[t], sequence[t].image[None], controls, height, width)

            def run() -> None:
                refined = [pool.submit(one, t) for t in range(frames)]
                smoother = temporal.TemporalSmoother(strength, temporal.Motion())
                smoothed = []  # this thread is the bookkeeping's
                for t, matte in enumerate(refined):
                    jobs = smoother.push_later(t, matte.result(), sequence[t].image[None])
                    smoothed += [pool.submit(job) for _, job in jobs]
                smoothed += [pool.submit(job) for _, job in smoother.flush_later()]
                for job in smoothed:
                    job.result()

            wall, _ = timed(run, repeat, per=frames)
            out.append(f"{name} {wall:.1f} ({'ok' if wall <= 40 else 'MISSED'})")
    return (f"refinement + smoothing, frames side by side on {workers} workers (as a render's writers run them), "
            f"ms wall per 1080p frame per object (goal <= 40): " + ", ".join(out))


def smoothing_accuracy(frames: int = 6) -> str:
    """What smoothing does to the matte's distance from the truth (chatter measures only
    its steadiness): the silhouette plate moving 0.4, 2 and 6 px a frame at 1080p, SAM 2's
    edge wandering as in run_temporal; edge-band SAD against the truth of the middle
    frames, refined and then smoothed (below 1: smoothing brings the matte nearer the truth)."""
    height, width = 1080, 1920
    out = []
    for shift in (SLOW, 2.0, 6.0):
        sequence = moving("silhouette", shift, frames)
        with torch.inference_mode():
            refined = [refine.apply(logits_from_truth(p.truth, WANDER, seed=t), p.image[None], MatteControls(), height, width)
                       for t, p in enumerate(sequence)]
        smoother = temporal.TemporalSmoother(temporal.DEFAULT_STRENGTH)
        smoothed = [m for t, (p, a) in enumerate(zip(sequence, refined)) for _, m in smoother.push(t, a, p.image[None])]
        smoothed += [m for _, m in smoother.flush()]
        middle = range(temporal.RADIUS, frames - temporal.RADIUS)
        bands = {t: edge_band(sequence[t].truth, math.ceil(2 * width / LOW)) for t in middle}
        before = sum(score(refined[t][0, 0], sequence[t].truth, bands[t]).sad for t in middle)
        after = sum(score(smoothed[t][0, 0], sequence[t].truth, bands[t]).sad for t in middle)
        out.append(f"{shift:g} px/frame: SAD {before / len(middle):.2f} -> {after / len(middle):.2f} (x{after / before:.2f})")
    return "smoothing against the truth (silhouette at 1080p, edge band, refined -> smoothed): " + ", ".join(out)


def _body_and_strands(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The strands plate's two alphas, apart: its body and its strands (with the cables)."""
    x, y = _grid(height, width)
    cx, cy, radius = width * 0.45, height * 0.5, height * 0.28 * 0.7
    return _blob(x, y, cx, cy, radius), _strands(x, y, cx, cy, radius, 0, width / 1920)


def colour_check(height: int, width: int) -> str:
    """The strands plate with strands of another colour than the body (light blue, dark
    brown): refinement's wide-window colour model (refine.WIDE_WINDOW) knows only the
    body's colour, and must leave such strands to the local one. Refined/raw ratios."""
    body, strands = _body_and_strands(height, width)
    truth = torch.maximum(body, strands)
    plate, background = _compose(truth, 10), _compose(torch.zeros_like(truth), 10)
    logits, band = logits_from_truth(truth), edge_band(truth, math.ceil(2 * width / LOW))
    with torch.inference_mode():
        r = score(refine.raw_matte(logits, height, width)[0, 0], truth, band)  # the same for every colour
    out = []
    for name, colour in (("light blue", (0.35, 0.55, 0.9)), ("dark brown", (0.15, 0.1, 0.08))):
        image = torch.where(strands > body, strands * torch.tensor(colour).view(3, 1, 1) + (1 - strands) * background, plate)
        with torch.inference_mode():
            refined = refine.apply(logits, image[None], MatteControls(), height, width)[0, 0]
        f = score(refined, truth, band)
        out.append(f"{name} SAD {f.sad / r.sad:.2f} gradient {f.grad / r.grad:.2f}")
    return f"strands of another colour than the body at {width}x{height}, refined/raw: " + ", ".join(out)


def ghost_check(height: int, width: int) -> str:
    """Refinement where SAM 2 is wrong: the strands plate's logits over a plate that has
    only the body (faint ridges where the plate shows nothing), scored against the body.
    A refinement that trusts the plate's colour too far on ridges follows the background's
    texture there (docs/refine.md); refined/raw should stay near 1."""
    body, strands = _body_and_strands(height, width)
    ghosts = torch.maximum(body, strands)
    logits, image = logits_from_truth(ghosts), _compose(body, 10)
    with torch.inference_mode():
        raw = refine.raw_matte(logits, height, width)[0, 0]
        refined = refine.apply(logits, image[None], MatteControls(), height, width)[0, 0]
    band = edge_band(ghosts, math.ceil(2 * width / LOW))
    r, f = score(raw, body, band), score(refined, body, band)
    return (f"ghost strands at {width}x{height} (SAM 2's strands, a plate without them): SAD raw {r.sad:.2f} "
            f"refined {f.sad:.2f} (ratio {f.sad / r.sad:.2f}; near 1: refinement does not invent what the plate lacks)")


def controls_cost(repeat: int) -> str:
    """Each one-frame control alone on a 1080p matte (the silhouette's raw matte), ms per
    frame per object: what moving one of the artist's sliders costs a preview."""
    plate = plates(1080, 1920, only=("silhouette",))[0]
    matte = refine.raw_matte(logits_from_truth(plate.truth), 1080, 1920)
    cases: dict[str, Callable[[], torch.Tensor]] = {
        "shrink/grow 1.5 px": lambda: refine.shrink_grow(matte, 1.5),
        "shrink/grow -10 px": lambda: refine.shrink_grow(matte, -10.0),
        "feather 2 px": lambda: refine.feather(matte, 2.0),
        "despeckle 400 px": lambda: refine.despeckle(matte, 400),
        "clip 0.1-0.9": lambda: refine.clip(matte, 0.1, 0.9),
    }
    with torch.inference_mode():
        costs = [f"{name} {timed(fn, repeat)[1]:.1f}" for name, fn in cases.items()]
    return "each control alone on a 1080p matte, ms CPU per frame: " + ", ".join(costs)


def flow_check(frames: int = 5) -> str:
    """How well the smoother's flow carries a moving object's outline: a textured disc turning
    0.8 degrees, growing 0.6% and sliding (2.5, 1) px a frame over a still background at 1080p
    (so the flow changes sharply at the outline, as at every object's edge over a plate). The
    true alpha of each neighbour within RADIUS is warped onto the middle frame along the flow
    as temporal.py makes and samples it, and the mean |difference| in the outline's band is
    printed, beside no flow and OpenCV's preset FAST with its variational refinement."""
    height, width, mid = 1080, 1920, frames // 2
    x, y = _grid(height, width)
    cx, cy = width * 0.45, height * 0.5
    alpha0 = _blob(x, y, cx, cy, height * 0.2).numpy()
    fg0 = (torch.tensor([0.86, 0.62, 0.42]).view(3, 1, 1) + 0.15 * _noise(height, width, 60, 2)).numpy()
    bg = (torch.tensor([0.28, 0.36, 0.30]).view(3, 1, 1) + 0.12 * _noise(height, width, 24, 5)
          + 0.10 * _noise(height, width, 240, 6)).numpy()
    alphas, greys = [], []
    for t in range(frames):
        move = cv2.getRotationMatrix2D((cx, cy), 0.8 * t, 1 + 0.006 * t) + np.array([[0, 0, 2.5 * t], [0, 0, 1.0 * t]])
        a = cv2.warpAffine(alpha0, move, (width, height))
        f = np.stack([cv2.warpAffine(c, move, (width, height), borderMode=cv2.BORDER_REFLECT) for c in fg0])
        alphas.append(a)
        greys.append(temporal._grey(np.ascontiguousarray(a * f + (1 - a) * bg, np.float32), width, height))  # (fine, flow's)
    band = cv2.dilate(((alphas[mid] > 0.01) & (alphas[mid] < 0.99)).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    h, w = greys[mid][1].shape
    motion = temporal.Motion()
    fast, ours = cv2.DISOpticalFlow.create(cv2.DISOpticalFlow_PRESET_FAST), motion.new_flow()
    scale = np.array([width / w, height / h], np.float32)
    seen = [temporal._Frame(t, torch.empty(0), a, g, fine, True, shared=True) for t, (a, (fine, g)) in enumerate(zip(alphas, greys))]

    def smoother(a: int, b: int) -> np.ndarray:
        """temporal.py's flow from frame a to b, as the smoother makes it (composed beyond one frame)."""
        step = 1 if b > a else -1
        fx, fy = motion.pair(seen[a], tuple(seen[j] for j in range(a + step, b + step, step))).motion
        return np.dstack([fx, fy]) / scale

    flows: dict[str, Callable[[int, int], np.ndarray]] = {
        "no flow": lambda a, b: np.zeros((h, w, 2), np.float32),
        "FAST with variational refinement": lambda a, b: fast.calc(greys[a][1], greys[b][1], None),
        "FAST without it": lambda a, b: ours.calc(greys[a][1], greys[b][1], None),
        "temporal.py's (composed beyond 1)": smoother,
    }
    out = ["flow check: a turning, growing, sliding object over a still plate at 1080p, its neighbours' true "
           "alpha warped onto the middle frame; mean |error| at the outline (lower is better)"]
    for name, flow_of in flows.items():
        errors = []
        for k in range(max(0, mid - temporal.RADIUS), min(frames, mid + temporal.RADIUS + 1)):
            if k == mid:
                continue
            flow = cv2.resize(flow_of(mid, k), (width, height), interpolation=cv2.INTER_NEAREST)
            warped = cv2.remap(alphas[k], gx + flow[..., 0] * (width / w), gy + flow[..., 1] * (height / h),
                               cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            errors.append(f"{k - mid:+d}: {np.abs(warped - alphas[mid])[band].mean():.4f}")
        out.append(f"    {name:<34} " + "  ".join(errors))
    return "\n".join(out)


if __name__ == "__main__":
    main()
