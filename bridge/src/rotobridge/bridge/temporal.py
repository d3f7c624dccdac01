"""Temporal smoothing ("reduce chatter"): each matte averaged with its neighbours' mattes,
motion-compensated with OpenCV's DIS optical flow, over a window of RADIUS frames each side.

SAM 2 predicts each frame's edge from a 256×256 grid, so a still or slowly moving edge
wanders by a pixel or two from frame to frame: the matte chatters. Averaging a frame with
its neighbours, each warped onto it along the plate's optical flow, cancels the wander
without lagging a moving edge (the flow carries the neighbours' edges to where this frame's
is; the window is centred, so it looks ahead as far as it looks back). A neighbour only
counts where it can be trusted:

- where its warped plate matches this frame's plate, pixel by pixel (`PHOTO_TOLERANCE`):
  occlusions and flow failures keep this frame's matte, and so do the pixels of a moving
  outline that took the other side's motion (the flow is a vector per 4×4 pixels);
- where its warped matte is near this frame's over a small window (`MATTE_TOLERANCE`): a
  disagreement wider than chatter is the object changing, not noise;
- not at all if the object is absent in it (no pixel above 0.5): an object that just
  appeared is not faded in, and one that left does not linger.

A frame where the object is absent is returned as it came. Flow needs the plate (the
guide); without one it is computed from the mattes themselves. The flow runs on the CPU
(OpenCV); mattes from another device are moved there and back.

Only the edge band is worked on (`_Band`: the pixels within about REACH of a pixel that is
neither 0 nor 1): chatter lives at edges, and an object's edges are a few percent of a
frame, so smoothing costs the edge's length rather than the frame's area.
"""

from __future__ import annotations

import functools
import math
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import cv2
import numpy as np
import torch

#: Frames each side of the one smoothed: the smoother holds back this many frames.
RADIUS = 2
#: Plate difference (grey levels, 0-255, at plate resolution) at which a warped
#: neighbour's weight halves. Tuned on benchmarks/matte_quality.py, the silhouette's
#: chatter cut and its smoothed/refined distance from the truth at 0.4, 2 and 6 px a frame
#: (smoothing_accuracy): 18 cut the chatter by 50%, ×0.93, ×0.97, ×1.11; 24: 51%, ×0.95,
#: ×1.01, ×1.19; 32: 52%, ×0.96, ×1.05, ×1.30 (the test per flow pixel, before: 52%,
#: ×0.98, ×1.18, ×1.58). With grain of 3 levels changing from frame to frame, 24: 51%,
#: ×0.94, ×1.01, ×1.19.
PHOTO_TOLERANCE = 24.0
#: Matte difference, averaged over DISAGREEMENT_WINDOW², at which a warped neighbour's
#: weight falls to zero (it is full below half of it). Chatter moves an edge by a pixel or
#: two, a thin line of difference that the window averages away; an object changing
#: shape differs over an area. The band's tiles carry a margin of the window's radius, so a
#: 3×3 window warps a fifth fewer pixels than a 5×5 (strands' smoothing 52 → 45 ms CPU a
#: 1080p frame). Tuned on benchmarks/matte_quality.py (chatter cuts; smoothing_accuracy at
#: 0.4, 2, 6 px a frame): 5×5 at 0.6, before: 51%, 66%; ×0.95, ×1.01, ×1.19. 3×3 at 0.6:
#: the same but for ×1.11 at 6 px, yet a hard edge wandering 1.6 px weighs a quarter
#: (test_chatter_is_averaged_out fails); at 0.8: 51%, 66%; ×0.95, ×1.01, ×1.18; at 1.0 a
#: difference of 0.7 over an area still weighs 0.6.
MATTE_TOLERANCE = 0.8
DISAGREEMENT_WINDOW = 3
#: Optical flow is computed at most this wide (plate pixels are averaged down to it). DIS
#: flow is sub-pixel, so a quarter of 1080p's width keeps the chatter cut of 960 (the
#: matte quality benchmark: 60% and 75% at 480, 640 and 960) at a quarter of the cost.
FLOW_WIDTH = 480
#: OpenCV's DIS flow needs a picture at least this wide or high.
DIS_MIN_SIDE = 12
#: The strength the issue's goal was measured at (benchmarks/matte_quality.py).
DEFAULT_STRENGTH = 1.0

T = TypeVar("T")

#: A frame the smoother has completed, and the job that makes its matte (`push_later`).
Job = tuple[int, Callable[[], torch.Tensor]]


@dataclass
class _Frame:
    frame: int
    matte: torch.Tensor  # as pushed
    alpha: np.ndarray  # (H, W) float32 on the CPU
    grey: np.ndarray  # (h, w) uint8 at flow resolution
    fine: np.ndarray  # (H, W) uint8: the same picture at plate resolution (plate trust)
    present: bool
    shared: bool  # grey is the plate's, which the pass's other objects share
    #: flows to the next frames (by frame), when not shared: kept here for this smoother's jobs
    steps: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class _Pair:
    """How frame `other` moves onto frame `current`, from the plates alone (flow resolution)."""

    #: (h, w) float32 planes: the flow from current to other (x, y, in plate pixels).
    #: Separate planes: OpenCV samples two of them faster than one two-channel picture it
    #: then has to split.
    motion: tuple[np.ndarray, np.ndarray]


class Motion:
    """What one pass's plates say about motion, shared by the smoothers of its objects.

    Every object of a pass is pushed with the same plate frames, so each frame's grey
    pictures, each one-frame flow (`step`) and each pair's flow (most of a smoother's cost
    on a short edge) are made once, not once per object. A frame's flow to
    a neighbour two or more frames away is composed of one-frame flows along the way, so a
    frame costs two optical flows (to the frames each side), not 2·RADIUS: the flow check in
    benchmarks/matte_quality.py puts the composed flow's error at a turning object's outline
    within ~10% of a direct one's. It keeps the few frames, steps and pairs a window still
    needs. Without a plate the flow is the matte's own, so a smoother pushed without one
    never shares it. Thread-safe: smoothing jobs (`TemporalSmoother.push_later`) may run on
    several threads; a flow wanted by two at once is computed by one of them.
    """

    def __init__(self) -> None:
        self._flows = threading.local()  # OpenCV's DIS keeps state between calls: one per thread
        self._lock = threading.Lock()
        self._greys: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._steps: dict[tuple[int, int], Future[np.ndarray]] = {}
        self._pairs: dict[tuple[int, int], Future[_Pair]] = {}

    def new_flow(self) -> Any:
        """A DIS optical flow for the calling thread: preset FAST without its variational
        refinement, which smooths the flow across an object's outline, the one place
        smoothing needs it right (the flow check in benchmarks/matte_quality.py: a turning
        object's outline warped along the flow is ~40% closer without it, and each flow
        costs ~20% less)."""
        flow = cv2.DISOpticalFlow.create(cv2.DISOpticalFlow_PRESET_FAST)
        flow.setVariationalRefinementIterations(0)
        return flow

    def grey(self, frame: int, source: torch.Tensor | np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """`frame`'s grey picture, uint8, at plate and at flow resolution (`_grey`): from the
        plate (a (3, H, W) tensor, 0-1, cached by frame) or a matte (an (H, W) array, not cached)."""
        if isinstance(source, np.ndarray):
            return _grey(source, width, height)
        with self._lock:
            grey = self._greys.get(frame)
        if grey is None:
            grey = _grey(source.detach().float().cpu().numpy(), width, height)
            with self._lock:
                self._greys[frame] = grey
                for old in sorted(self._greys, key=lambda f: abs(f - frame))[4 * RADIUS + 2 :]:
                    del self._greys[old]
                kept = self._greys
                self._steps = {k: v for k, v in self._steps.items() if k[0] in kept and k[1] in kept}
                self._pairs = {k: v for k, v in self._pairs.items() if k[0] in kept and k[1] in kept}
        return grey

    def pair(self, current: _Frame, path: tuple[_Frame, ...]) -> _Pair:
        """How `path[-1]` moves onto `current`; `path`: the frames from the one after
        `current` (in the direction of the pass or against it) to that one, consecutive."""
        frames = (current, *path)
        if not all(f.shared for f in frames):
            return self._pair(current, path)
        return _once(self._lock, self._pairs, (current.frame, path[-1].frame), lambda: self._pair(current, path))

    def step(self, a: _Frame, b: _Frame) -> np.ndarray:
        """The (h, w, 2) flow from frame a to the next frame b, at flow resolution."""
        if not (a.shared and b.shared):
            flow = a.steps.get(b.frame)
            if flow is None:
                flow = a.steps[b.frame] = self._flow(a, b)
            return flow
        return _once(self._lock, self._steps, (a.frame, b.frame), lambda: self._flow(a, b))

    def _flow(self, a: _Frame, b: _Frame) -> np.ndarray:
        h, w = a.grey.shape
        if max(h, w) < DIS_MIN_SIDE:  # a smaller plate's neighbours are taken as still
            return np.zeros((h, w, 2), np.float32)
        dis = getattr(self._flows, "dis", None)
        if dis is None:
            dis = self._flows.dis = self.new_flow()
        return np.asarray(dis.calc(a.grey, b.grey, None))

    def _pair(self, current: _Frame, path: tuple[_Frame, ...]) -> _Pair:
        h, w = current.grey.shape
        gx, gy = _pixels(h, w)
        flow, before = self.step(current, path[0]), path[0]
        for frame in path[1:]:  # on along the way: where the flow so far lands, the next step's flow
            onward = cv2.remap(self.step(before, frame), cv2.add(gx, flow[..., 0]), cv2.add(gy, flow[..., 1]),
                               cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            flow, before = cv2.add(flow, onward), frame
        fx, fy = np.ascontiguousarray(flow[..., 0]), np.ascontiguousarray(flow[..., 1])
        height, width = current.alpha.shape
        return _Pair((cv2.multiply(fx, width / w), cv2.multiply(fy, height / h)))


def _once(lock: threading.Lock, cache: dict[tuple[int, int], Future[T]], key: tuple[int, int], make: Callable[[], T]) -> T:
    """`make()`, computed once per key of `cache` by whichever thread asks first; the others wait for it."""
    with lock:
        found = cache.get(key)
        mine = found is None
        if found is None:
            found = cache[key] = Future()
    if mine:
        try:
            found.set_result(make())
        except BaseException as exc:
            found.set_exception(exc)
            with lock:
                cache.pop(key, None)
    return found.result()


#: A warped neighbour's plate trust by its grey difference from this frame's (0-255): 1/2 at PHOTO_TOLERANCE.
_TRUST = (1.0 / (1.0 + (np.arange(256, dtype=np.float32) / PHOTO_TOLERANCE) ** 2)).reshape(1, 256)


def _grey(picture: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """An (H, W) matte or a (3, H, W) plate as uint8 grey (the channels' mean) at plate
    resolution, and at flow resolution (averaged down from it: a third of the cost of
    averaging each channel down)."""
    planes = picture.reshape(-1, height, width)
    total = planes[0] if len(planes) == 1 else cv2.add(planes[0], planes[1])
    for plane in planes[2:]:
        cv2.add(total, plane, dst=total)  # in place: a fresh plate-sized array costs page faults
    fine: np.ndarray = cv2.convertScaleAbs(total, alpha=255.0 / len(planes))  # rounded, 0-255
    scale = min(1.0, FLOW_WIDTH / width)
    if scale == 1:
        return fine, fine
    size = (round(width * scale), round(height * scale))
    return fine, np.asarray(cv2.resize(fine, size, interpolation=cv2.INTER_AREA))


class TemporalSmoother:
    """Smooths one object's mattes over one tracking pass.

    `push` takes frames in the order the pass visits them (consecutive, forwards or
    backwards) and returns the frames it has finished, in the same order; it holds back at
    most RADIUS frames, which `flush` returns at the end of the pass. Strength 0 returns
    every frame at once, unchanged; 1 is the full weighted average of the window.
    """

    def __init__(self, strength: float, motion: Motion | None = None) -> None:
        """`motion`: shared with the smoothers of the pass's other objects (the same frames
        pushed with the same plate); None: this smoother's own."""
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"temporal smoothing strength must be between 0 and 1, got {strength}")
        self.strength = strength
        self._window: deque[_Frame] = deque()
        self._next = 0  # index in the window of the next frame to return
        self._motion = motion if motion is not None else Motion()

    def push(self, frame: int, matte: torch.Tensor, guide: torch.Tensor | None) -> list[tuple[int, torch.Tensor]]:
        """Add (1, 1, H, W) matte of `frame` with its (1, 3, H, W) plate (0-1) or None; returns
        the frames now complete."""
        return [(done, job()) for done, job in self.push_later(frame, matte, guide)]

    def flush(self) -> list[tuple[int, torch.Tensor]]:
        """The frames still held back, at the end of the pass; the smoother is then empty."""
        return [(done, job()) for done, job in self.flush_later()]

    def push_later(self, frame: int, matte: torch.Tensor, guide: torch.Tensor | None) -> list[Job]:
        """`push`, each frame it completes as (frame, job making its matte): the jobs may run
        in any order, on any threads (each reads only its own window of frames), so a caller
        can spread a shot's smoothing over cores. Pushes must still come in order."""
        if self.strength <= 0:
            return [(frame, lambda: matte)]
        if self._window and tuple(self._window[-1].matte.shape) != tuple(matte.shape):
            raise ValueError(f"matte of frame {frame} is {tuple(matte.shape)}, the pass's are {tuple(self._window[-1].matte.shape)}")
        self._window.append(self._frame(frame, matte, guide))
        out = []
        while self._next < len(self._window) and len(self._window) - 1 - self._next >= RADIUS:
            out.append(self._job(self._next))
            self._next += 1
            if self._next > RADIUS:
                self._window.popleft()
                self._next -= 1
        return out

    def flush_later(self) -> list[Job]:
        """`flush`, as `push_later` gives its frames."""
        out = [self._job(i) for i in range(self._next, len(self._window))]
        self._window.clear()
        self._next = 0
        return out

    def _job(self, index: int) -> Job:
        current = self._window[index]
        near = range(max(0, index - RADIUS), min(len(self._window), index + RADIUS + 1))
        paths = []  # to each present neighbour, the frames on the way (its flow is composed along them)
        for k in near:
            if k != index and self._window[k].present:
                step = 1 if k > index else -1
                paths.append(tuple(self._window[j] for j in range(index + step, k + step, step)))
        return current.frame, functools.partial(self._smooth, current, tuple(paths))

    def _frame(self, frame: int, matte: torch.Tensor, guide: torch.Tensor | None) -> _Frame:
        alpha = matte.detach()[0, 0].float().cpu().numpy()
        height, width = alpha.shape
        fine, grey = self._motion.grey(frame, alpha if guide is None else guide[0], width, height)
        return _Frame(frame, matte, alpha, grey, fine, bool((alpha > 0.5).any()), shared=guide is not None)

    def _smooth(self, current: _Frame, paths: tuple[tuple[_Frame, ...], ...]) -> torch.Tensor:
        """`paths`: to each present neighbour, from the frame next to `current` (`Motion.pair`)."""
        if not (current.present and paths):
            return current.matte
        smoothed = current.alpha
        band = _Band(current.alpha, current.grey.shape)
        if band.count:
            alpha, here = band.gather(current.alpha), band.gather(current.fine)
            total, weights = alpha.copy(), np.ones_like(alpha)
            window = (DISAGREEMENT_WINDOW, DISAGREEMENT_WINDOW)
            for path in paths:  # in place, as far as it goes: a fresh band-sized array costs page faults
                warped_alpha, w = self._warp(band, current, path, here)
                # w = trust · agreement, the agreement 1 below MATTE_TOLERANCE / 2 falling to 0 at it
                agreement = cv2.blur(cv2.absdiff(warped_alpha, alpha), window)
                cv2.addWeighted(agreement, -2.0 / MATTE_TOLERANCE, agreement, 0.0, 2.0, dst=agreement)
                np.clip(agreement, 0.0, 1.0, out=agreement)
                cv2.multiply(w, agreement, dst=w)
                cv2.add(weights, w, dst=weights)
                cv2.accumulateProduct(w, warped_alpha, total)
            mean = cv2.divide(total, weights, dst=total)
            blend = cv2.addWeighted(mean, self.strength, alpha, 1.0 - self.strength, 0.0, dst=mean)
            smoothed = band.scatter(np.clip(blend, 0.0, 1.0, out=blend), current.alpha)  # bicubic samples overshoot
        out = torch.from_numpy(np.ascontiguousarray(smoothed)).to(current.matte.device, current.matte.dtype)
        return out.view_as(current.matte)

    def _warp(self, band: _Band, current: _Frame, path: tuple[_Frame, ...], here: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The matte of `path`'s last frame moved onto `current`'s band along the flow from
        current to it (each band pixel takes its nearest flow pixel's motion: a quarter of the cost of
        interpolating it, and the same warp to 0.3% at a turning object's outline, by the
        flow check in benchmarks/matte_quality.py), and how far that move can be trusted:
        how well its plate, moved the same way, matches this frame's (`here`: current's
        grey plate over the band), pixel by pixel. At a moving outline a flow vector is
        either the object's or the background's, and the pixels it moves wrongly show the
        other side's colour. The matte is sampled bicubically: a bilinear sample between
        pixels softens a refined, pixel-sharp edge, and five softened edges averaged put
        the smoothed matte further from the truth than the frame's own (edge-band SAD ×1.18
        at 0.4 px a frame; bicubic ×0.98: the benchmark's smoothing_accuracy)."""
        pair, other = self._motion.pair(current, path), path[-1]
        fx, fy = (cv2.remap(plane, *band.low, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE) for plane in pair.motion)
        x, y = band.xy
        mx, my = cv2.add(x, fx), cv2.add(y, fy)
        alpha = cv2.remap(other.alpha, mx, my, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        seen = cv2.remap(other.fine, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return alpha, cv2.LUT(cv2.absdiff(seen, here), _TRUST)


class _Band:
    """Where a matte can chatter: along each band of ROWS rows, the runs of pixels within
    about REACH of an edge (a pixel neither 0 nor 1 within FLAT, or both kinds), gathered
    end to end into lines of one packed picture (square-ish, as OpenCV's remap takes at most
    32767 rows or columns), each piece of a run with a margin of the disagreement window's
    radius all round, so smoothing costs the edge's length rather than the frame's area.
    Elsewhere the matte is flat and stays as it is: a neighbour's edge warped there is more
    than REACH pixels from this frame's, which the disagreement test already gives no weight
    (chatter moves an edge a pixel or two). Runs, not square tiles: only a run's ends carry
    a margin sideways, and a run ends within REACH of its edge. On the strands plate of
    benchmarks/matte_quality.py (a sixth of the frame near an edge) the packed picture is
    289k pixels (211k at its core), against 366k in 8² tiles and 444k in 16² tiles reaching
    4 pixels; its smoothing, interleaved in one process on one thread, 26.7 ms a 1080p frame
    against 29.2 and 32.6 (the silhouette's 9.4 against 9.9 and 11.1), the chatter cuts
    and the distance from the truth unchanged.
    """

    def __init__(self, alpha: np.ndarray, flow_shape: tuple[int, int]) -> None:
        height, width = alpha.shape
        self.shape = (height, width)
        cells = _edge_cells(alpha)  # (row bands, REACH-wide cells)
        # a run starts where a band's cells turn True and ends where they turn False: in a
        # row-major scan the two alternate (np.diff with prepend and append: 5-20x slower)
        framed = np.zeros((cells.shape[0], cells.shape[1] + 2), bool)
        framed[:, 1:-1] = cells
        turns = np.flatnonzero(framed[:, 1:] != framed[:, :-1])
        stride = cells.shape[1] + 1
        row, first, last = turns[0::2] // stride, turns[0::2] % stride, turns[1::2] % stride
        length = (last - first) * REACH
        columns = int(length.sum())
        self.count = columns * ROWS  # the band's core pixels (some may lie past the frame's edges)
        if not columns:
            return
        tall = ROWS + 2 * _MARGIN
        # the runs' cores end to end, cut into lines of `across` columns (lines·tall ≈ across):
        # a piece is a run's part on one line, and gets its own margins
        across = max(64, math.ceil(math.sqrt(columns * tall)))
        place = np.cumsum(length) - length  # each run's first core column along the lines
        cuts = np.union1d(place, np.arange(0, columns, across))
        run = np.searchsorted(place, cuts, side="right") - 1
        size = np.diff(cuts, append=columns)  # each piece's core columns
        line = cuts // across
        nth = np.arange(len(cuts)) - np.searchsorted(line, line)  # the piece's place among its line's
        left = cuts - line * across + 2 * _MARGIN * nth  # where its margin starts on its line
        span = size + 2 * _MARGIN
        self.packed_width = int((left + span).max())  # the packed picture's width: lines of `tall` rows
        lines = int(line[-1]) + 1
        x0 = first[run] * REACH + (cuts - place[run])  # the piece's first core pixel in the plate
        y0 = row[run] * ROWS
        # per packed column (piece by piece): the plate column and the band's first row, margins
        # included; spare places take pixel (0, 0)
        offsets = _ramp(span)
        column = np.repeat(line * self.packed_width + left, span) + offsets
        xs, ys = np.zeros(lines * self.packed_width, np.float32), np.zeros(lines * self.packed_width, np.float32)
        xs[column] = np.repeat(x0 - _MARGIN, span) + offsets
        ys[column] = np.repeat(y0 - _MARGIN, span)
        h, w = flow_shape  # the same points at flow resolution, as cv2.resize's INTER_LINEAR places them
        sx, sy = np.float32(w / width), np.float32(h / height)
        grid, same = np.arange(tall, dtype=np.float32).reshape(1, tall, 1), np.zeros((1, tall, 1), np.float32)
        self.xy = _packed(xs, same, lines), _packed(ys, grid, lines)
        self.low = _packed((xs + 0.5) * sx - 0.5, same, lines), _packed((ys + 0.5) * sy - 0.5, grid * sy, lines)
        # each piece's core: its first pixel in the plate and in the packed picture, its columns
        self._pieces = x0, y0, (line * tall + _MARGIN) * self.packed_width + left + _MARGIN, size

    def gather(self, alpha: np.ndarray) -> np.ndarray:
        return cv2.remap(alpha, *self.xy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)

    def scatter(self, packed: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """`alpha` with the band's core (its margins left out) put in its place. Its pixels'
        indices are made here, not held through the warps (at UHD, a frame soft all over,
        133 MB)."""
        height, width = self.shape
        x0, y0, first, size = self._pieces
        ramp, rows = _ramp(size), np.arange(ROWS).reshape(-1, 1)  # the core row by row of the bands
        to = np.repeat(y0 * width + x0, size) + ramp + rows * width
        of = np.repeat(first, size) + ramp + rows * self.packed_width
        if int((x0 + size).max()) > width or int(y0.max()) + ROWS > height:  # runs past the frame's edges
            inside = (np.repeat(x0, size) + ramp < width) & (np.repeat(y0, size) + rows < height)
            to, of = to[inside], of[inside]
        out = alpha.copy()
        out.reshape(-1)[to.reshape(-1)] = packed.reshape(-1)[of.reshape(-1)]
        return out


def _ramp(counts: np.ndarray) -> np.ndarray:
    """0, 1, … counts[0] − 1, 0, 1, … counts[1] − 1, …: each run's offsets, end to end."""
    total = int(counts.sum())
    ramp: np.ndarray = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    return ramp


def _packed(columns: np.ndarray, rows: np.ndarray, lines: int) -> np.ndarray:
    """A coordinate over the packed picture, (lines·tall, width) float32: `columns` (per
    packed column, line by line) plus `rows` ((1, tall, 1): per row of a line)."""
    tall = rows.shape[1]
    out: np.ndarray = (columns.reshape(lines, 1, -1) + rows).reshape(lines * tall, -1)
    return out


#: Height of the row bands `_Band` smooths, in plate pixels: each carries a margin row above
#: and below, so lower costs more margin, higher takes in more of the flat frame (the strands
#: plate's core: 4 rows 184k pixels, 8 rows 211k, 16 rows 264k; packed with their margins
#: 287k, 273k, 305k before the lines' ends).
ROWS = 8
#: Pixels beyond a non-flat pixel the band reaches (and the width of its cells): chatter moves
#: an edge a pixel or two, and a non-flat pixel is already a sigmoid tail's far end (1/1024),
#: a few pixels beyond where the matte crosses 0.5. A power of two up to 8, dividing ROWS
#: (`_any_blocks`).
REACH = 2
#: A matte value within this of 0 or 1 is flat (sigmoid tails never reach exactly 0 or 1).
FLAT = 1.0 / 1024
_MARGIN = DISAGREEMENT_WINDOW // 2


def _edge_cells(alpha: np.ndarray) -> np.ndarray:
    """(row bands, cells) bool: for each band of ROWS rows, the REACH-wide cells with an edge
    pixel within REACH of them, i.e. whose surroundings are neither all flat 0 nor all flat 1."""
    kernel = np.ones((3, 3), np.uint8)  # a REACH² cell's neighbours: everything within REACH of it
    near = []
    for unlike in (alpha > FLAT, alpha < 1.0 - FLAT):  # not flat 0; not flat 1
        near.append(cv2.dilate(_any_blocks(unlike, REACH).view(np.uint8), kernel).view(bool))
    return _any_blocks(near[0] & near[1], ROWS // REACH, 1)  # the cells' rows, banded


def _any_blocks(mask: np.ndarray, n: int, wide: int | None = None) -> np.ndarray:
    """Whether each block of n rows by `wide` (default n) columns of a bool (H, W) mask has a
    True, the last partial ones included. `wide` bytes side by side are read as one integer
    (`wide`: 1, 2, 4 or 8), so a block row costs one comparison: ~3× faster on a 1080p mask
    than n-way maxima."""
    wide = n if wide is None else wide
    rows, cols = -(-mask.shape[0] // n) * n, -(-mask.shape[1] // wide) * wide
    if (rows, cols) != mask.shape:
        mask = np.pad(mask, ((0, rows - mask.shape[0]), (0, cols - mask.shape[1])))
    across: np.ndarray = np.ascontiguousarray(mask).view(f"u{wide}") != 0  # (rows, cols / wide)
    blocks: np.ndarray = np.logical_or.reduce(across.reshape(rows // n, n, cols // wide), axis=1)
    return blocks


@functools.lru_cache(maxsize=4)
def _pixels(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y of every pixel, (height, width) float32 each: a flow plus these is a remap map."""
    gx, gy = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return gx, gy
