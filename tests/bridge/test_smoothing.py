"""Temporal smoothing of written mattes: tracking.write_mattes (renders, sessions) and
`rotobridge refine` apply the `smoothing` control between edge refinement and the rest.

Most tests drive `write_mattes` with `ScriptedEngine`, a test double of the model whose
logits are a fixed function of the frame (a disc whose edge wanders from frame to frame, as
SAM 2's does), so a stopped and resumed run sees exactly the logits an uninterrupted one
saw. Every expectation is computed by running `TemporalSmoother` directly over the same
edge mattes (`refine.edges`, then `refine.finish`), never from the code under test.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Sequence, cast

import numpy as np
import OpenImageIO as oiio
import pytest
import torch
import torch.nn.functional as F

from rotobridge.bridge import cli, refine, tracking
from rotobridge.bridge.checkpoint import Checkpoints
from rotobridge.bridge.engine import Engine, FrameResult
from rotobridge.bridge.mattes import MatteWriter, object_matte, read_alpha, read_matte
from rotobridge.bridge.plate import Window
from rotobridge.bridge.temporal import RADIUS, TemporalSmoother
from rotobridge.controls import MatteControls
from rotobridge.errors import CancelledError

H, W = 48, 64
DISPLAY = Window(0, 0, W, H)
FRAMES = list(range(1001, 1013))
OBJECTS = [(1, "car"), (2, "person")]
SMOOTH = MatteControls(smoothing=1.0, feather=0.7)  # edge refinement on, with the plate
#: how far each frame's edge wanders, in pixels (seeded, no pattern)
JITTER = [float(v) for v in torch.empty(40).uniform_(-1, 1, generator=torch.Generator().manual_seed(3))]


def _texture(seed: int, cells: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, cells, cells * W // H, generator=g)
    return F.interpolate(small, size=(H, W), mode="bicubic", align_corners=False).clamp(0, 1)


def _disc(cx: float, cy: float, radius: float, height: int = H, width: int = W) -> torch.Tensor:
    """Signed distance to a disc's edge in pixels of a height × width grid covering the plate."""
    y, x = torch.meshgrid(
        (torch.arange(height) + 0.5) * H / height, (torch.arange(width) + 0.5) * W / width, indexing="ij"
    )
    return radius - torch.sqrt((x - cx) ** 2 + (y - cy) ** 2)


TRUTH = _disc(30, 24, 12).clamp(0, 1)[None, None]
PLATE = TRUTH * (0.5 + 0.4 * _texture(1, 8)) + (1 - TRUTH) * (0.1 + 0.4 * _texture(0, 10))


def guide(frame: int) -> torch.Tensor:
    """A still plate: whatever moves in the mattes is chatter."""
    return PLATE.clone()


def _logits(frame: int) -> torch.Tensor:
    """(2, 1, 24, 32): the car a disc whose edge wanders by JITTER, the person a still one."""
    j = JITTER[frame % len(JITTER)]
    car = 3.0 * _disc(30 + j, 24, 12 + j / 2, 24, 32)
    person = 3.0 * _disc(50, 12, 6, 24, 32)
    return torch.stack([car, person])[:, None]


class ScriptedEngine:
    """A test double of `Engine` (only what write_mattes uses): tracks each frame to
    `_logits(frame)`; with `stop_after`, sets `cancel` once it has tracked that many frames."""

    def __init__(self, cancel: threading.Event | None = None, stop_after: int | None = None) -> None:
        self.frames = tuple(FRAMES)
        self.sizing = SimpleNamespace(writers=2)
        self.model = SimpleNamespace(device=torch.device("cpu"))
        self.tracked: list[int] = []
        self.cancel, self.stop_after = cancel, stop_after

    def index(self, frame: int, field: str = "frame") -> int:
        return self.frames.index(frame)

    def next_frame(self, frame: int, reverse: bool = False) -> int | None:
        at = self.index(frame) + (-1 if reverse else 1)
        return self.frames[at] if 0 <= at < len(self.frames) else None

    def propagate_steps(
        self, start: int, end: int, *, cancel: threading.Event | None = None, begin: int | None = None, reverse: bool | None = None
    ) -> Iterator[FrameResult | None]:
        first, last = self.index(start), self.index(end)
        at = first if begin is None else self.index(begin)
        for i in (range(at, last - 1, -1) if reverse else range(at, last + 1)):
            if cancel is not None and cancel.is_set():
                raise CancelledError(f"cancelled before frame {self.frames[i]}")
            yield None  # between the two objects
            self.tracked.append(self.frames[i])
            if self.cancel is not None and len(self.tracked) == self.stop_after:
                self.cancel.set()
            yield FrameResult(self.frames[i], (1, 2), _logits(self.frames[i]))

    def snapshot(self) -> dict[str, Any]:
        return {}

    def restore(self, snapshot: dict[str, Any]) -> None:
        pass


def _writer(folder: Path, controls: Sequence[MatteControls | None], **options: Any) -> MatteWriter:
    return MatteWriter(str(folder / "m.####.exr"), DISPLAY, DISPLAY, OBJECTS, controls=controls, guide=guide, **options)


def _run(engine: ScriptedEngine, writer: MatteWriter, passes: Sequence[tracking.Pass], **options: Any) -> list[int]:
    """write_mattes to the end (or its cancellation); the frames it reported written."""
    written: list[int] = []
    try:
        for batch in tracking.write_mattes(cast(Engine, engine), writer, [1, 2], passes, FRAMES, **options):
            written += [w.frame for w in batch]
    except CancelledError:
        pass
    return written


def _reference(passes: Sequence[tracking.Pass], controls: MatteControls) -> dict[int, torch.Tensor]:
    """The car's matte of each frame, made by hand: per pass one TemporalSmoother fed the
    pass's frames in order; a frame is written by the first pass that reaches it."""
    out: dict[int, torch.Tensor] = {}
    for start, end, reverse in passes:
        order = [f for f in FRAMES if min(start, end) <= f <= max(start, end)][:: -1 if reverse else 1]
        smoother, done = TemporalSmoother(controls.smoothing), []
        for frame in order:
            edges = refine.edges(_logits(frame)[:1], guide(frame), controls, H, W)
            done += smoother.push(frame, edges, guide(frame))
        for frame, matte in done + smoother.flush():
            out.setdefault(frame, refine.finish(matte, controls))
    return out


def _half(matte: torch.Tensor) -> np.ndarray:
    return matte.reshape(H, W).to(torch.float16).numpy().astype(np.float32)


def _read(folder: Path, frame: int) -> dict[str, np.ndarray]:
    return read_matte(str(folder / f"m.{frame}.exr"))[0]


def _chatter(folder: Path, channel: str) -> float:
    planes = [_read(folder, f)[channel] for f in FRAMES]
    return sum(float(np.abs(a - b).sum()) for a, b in zip(planes, planes[1:]))


FORWARD = [tracking.Pass(1001, 1012, False)]
BOTH = [tracking.Pass(1006, 1012, False), tracking.Pass(1006, 1001, True)]


def _assert_smoothed(folder: Path) -> None:
    """The car's mattes are those of an uninterrupted forward pass, made by hand."""
    want = _reference(FORWARD, SMOOTH)
    for frame in FRAMES:
        assert np.array_equal(_read(folder, frame)["car.A"], _half(want[frame])), frame


@pytest.mark.parametrize("passes", [FORWARD, BOTH], ids=["forward", "both"])
def test_written_mattes_are_the_smoother_over_the_edge_mattes(tmp_path: Path, passes: list[tracking.Pass]) -> None:
    """Smoothing changes only the smoothed object's matte, reduces its chatter, and is the
    smoother run over each pass in its order; an object without controls is SAM 2's matte."""
    smoothed, unsmoothed = tmp_path / "smoothed", tmp_path / "unsmoothed"
    written = _run(ScriptedEngine(), _writer(smoothed, [SMOOTH, None], layers=["edge"]), passes)
    assert sorted(written) == FRAMES and len(set(written)) == len(written)
    flat = MatteControls(smoothing=0.0, feather=0.7)
    assert _run(ScriptedEngine(), _writer(unsmoothed, [flat, None], layers=["edge"]), passes)
    want = _reference(passes, SMOOTH)
    for frame in FRAMES:
        got, plain = _read(smoothed, frame), _read(unsmoothed, frame)
        assert np.array_equal(got["car.A"], _half(want[frame])), frame
        assert np.array_equal(got["car_edge.A"], _half(4 * want[frame] * (1 - want[frame]))), frame
        raw = object_matte(_logits(frame)[1:], None, None, H, W)
        assert np.array_equal(got["person.A"], _half(raw)) and np.array_equal(plain["person.A"], got["person.A"])
        one_frame = object_matte(_logits(frame)[:1], guide(frame), flat, H, W)
        assert np.array_equal(plain["car.A"], _half(one_frame)), frame  # smoothing 0: the one-frame function
    assert _chatter(smoothed, "car.A") < 0.7 * _chatter(unsmoothed, "car.A")
    assert _chatter(smoothed, "person.A") == _chatter(unsmoothed, "person.A")


def test_without_smoothing_the_writes_are_todays(tmp_path: Path) -> None:
    """No controls, or smoothing 0: every frame exactly as `frame_pixels` makes it alone."""
    controls: list[MatteControls | None] = [MatteControls(smoothing=0.0, despeckle=3), None]
    writer = _writer(tmp_path / "flat", controls)
    assert writer.smoothed == ()
    assert sorted(_run(ScriptedEngine(), writer, BOTH)) == FRAMES
    smoothed = MatteControls(smoothing=1.0, despeckle=3)
    assert sorted(_run(ScriptedEngine(), _writer(tmp_path / "smooth", [smoothed, None]), BOTH)) == FRAMES
    changed = 0
    for frame in FRAMES:
        pixels = writer.frame_pixels(frame, _logits(frame))
        got = _read(tmp_path / "flat", frame)
        assert np.array_equal(got["car.A"], pixels[..., 0].astype(np.float32))
        assert np.array_equal(got["person.A"], pixels[..., 1].astype(np.float32))
        other = _read(tmp_path / "smooth", frame)
        assert np.array_equal(other["person.A"], got["person.A"])
        changed += not np.array_equal(other["car.A"], got["car.A"])
    assert changed >= len(FRAMES) - 2  # and smoothing 1 changes them


@pytest.mark.parametrize("stop_after", [1, 3, 5, 6, 9, 12], ids=lambda n: f"stopped-after-{n}")
def test_a_cancelled_then_resumed_run_ends_bit_identical(tmp_path: Path, stop_after: int) -> None:
    """Cancelled after `stop_after` frames: the checkpoint claims only the frames on disk,
    the frames held back are left to the resume, which re-makes them from the checkpoint's
    logits (no frame tracked twice) and ends with exactly the uninterrupted run's mattes."""
    whole = tmp_path / "whole"
    _run(ScriptedEngine(), _writer(whole, [SMOOTH, None]), FORWARD)
    _assert_smoothed(whole)
    folder, cancel = tmp_path / "stopped", threading.Event()
    checkpoints = Checkpoints(str(folder / "m.####.exr"), "recipe", "model", every=2)
    first = ScriptedEngine(cancel, stop_after)
    written = _run(first, _writer(folder, [SMOOTH, None]), FORWARD, cancel=cancel, checkpoints=checkpoints)
    saved = checkpoints.load(checkpoints.key(1001, False), torch.device("cpu"))
    assert saved is not None and saved.frame == first.tracked[-1]
    held = [f for f in FRAMES if f <= saved.frame][-RADIUS:] if saved.frame < FRAMES[-1] else []
    on_disk = sorted(int(p.name.split(".")[1]) for p in folder.glob("m.*.exr"))
    assert on_disk == sorted(written) == [f for f in FRAMES if f <= saved.frame and f not in held]
    assert [f for f, _ in saved.tail] == [f for f in FRAMES if f <= saved.frame][-2 * RADIUS :]
    again = ScriptedEngine()
    rest = _run(again, _writer(folder, [SMOOTH, None]), FORWARD, checkpoints=checkpoints, on_disk=on_disk)
    assert again.tracked == [f for f in FRAMES if f > saved.frame]  # it resumed: nothing tracked twice
    assert sorted(rest) == [f for f in FRAMES if f not in on_disk]
    for frame in FRAMES:
        assert np.array_equal(_read(folder, frame)["car.A"], _read(whole, frame)["car.A"]), frame


def test_a_run_stopped_without_its_cancel_save_resumes_from_the_last_checkpoint(tmp_path: Path) -> None:
    """As after a kill: the generator is closed mid-pass (writes under way finish), the
    last periodic checkpoint is older than some mattes on disk; the resume still ends
    bit-identical, keeping those mattes."""
    whole, folder = tmp_path / "whole", tmp_path / "killed"
    _run(ScriptedEngine(), _writer(whole, [SMOOTH, None]), FORWARD)
    _assert_smoothed(whole)
    checkpoints = Checkpoints(str(folder / "m.####.exr"), "recipe", "model", every=4)
    steps = tracking.write_mattes(cast(Engine, ScriptedEngine()), _writer(folder, [SMOOTH, None]), [1, 2], FORWARD, FRAMES, checkpoints=checkpoints)
    written = []
    for batch in steps:
        written += [w.frame for w in batch]
        if len(written) >= 7:
            break
    steps.close()
    saved = checkpoints.load(checkpoints.key(1001, False), torch.device("cpu"))
    assert saved is not None
    on_disk = sorted(int(p.name.split(".")[1]) for p in folder.glob("m.*.exr"))
    assert max(on_disk) > saved.frame - RADIUS  # mattes newer than what the checkpoint claims
    again = ScriptedEngine()
    _run(again, _writer(folder, [SMOOTH, None]), FORWARD, checkpoints=checkpoints, on_disk=on_disk)
    assert again.tracked[0] == saved.frame + 1
    for frame in FRAMES:
        assert np.array_equal(_read(folder, frame)["car.A"], _read(whole, frame)["car.A"]), frame


def test_cancel_without_checkpoints_reports_what_it_wrote(tmp_path: Path) -> None:
    """A session's cancel: the writes under way finish and are reported; frames the
    smoother held back are not written (docs/refine.md says so)."""
    cancel = threading.Event()
    engine = ScriptedEngine(cancel, stop_after=6)
    written = _run(engine, _writer(tmp_path, [SMOOTH, None]), FORWARD, cancel=cancel)
    on_disk = sorted(int(p.name.split(".")[1]) for p in tmp_path.glob("m.*.exr"))
    assert sorted(written) == on_disk
    assert set(on_disk) <= set(FRAMES[: 6 - RADIUS]) and len(on_disk) >= 6 - RADIUS - 3  # at most `most` dropped
    want = _reference(FORWARD, SMOOTH)
    for frame in on_disk:
        assert np.array_equal(_read(tmp_path, frame)["car.A"], _half(want[frame])), frame


def test_a_farm_chunk_is_smoothed_as_the_whole_shot(tmp_path: Path) -> None:
    """With the plate's frames, passes go RADIUS frames past a chunk: its first and last
    frames get the neighbours a whole-shot render gives them."""
    recipe = SimpleNamespace(
        propagate=SimpleNamespace(direction="forward", start=None), prompt_frames=lambda: [1001]
    )
    whole, chunks = tmp_path / "whole", tmp_path / "chunks"
    _run(ScriptedEngine(), _writer(whole, [SMOOTH, None]), FORWARD)
    _assert_smoothed(whole)
    for chunk in ([1001, 1002, 1003, 1004, 1005], [1006, 1007, 1008], [1009, 1010, 1011, 1012]):
        passes = tracking.passes(cast(Any, recipe), chunk, FRAMES, 0, margin=RADIUS)
        assert passes == [tracking.Pass(1001, min(max(chunk) + RADIUS, 1012), False)]
        steps = tracking.write_mattes(cast(Engine, ScriptedEngine()), _writer(chunks, [SMOOTH, None]), [1, 2], passes, chunk)
        assert sorted(w.frame for batch in steps for w in batch) == chunk
    for frame in FRAMES:
        assert np.array_equal(_read(chunks, frame)["car.A"], _read(whole, frame)["car.A"]), frame


# --- rotobridge refine ---------------------------------------------------------------------


def _write(path: Path, pixels: np.ndarray, kind: Any) -> None:
    out = oiio.ImageOutput.create(str(path))
    assert out is not None
    assert out.open(str(path), oiio.ImageSpec(pixels.shape[1], pixels.shape[0], pixels.shape[2], kind))
    assert out.write_image(np.ascontiguousarray(pixels)) and out.close()


def test_refine_command_smooths_a_matte_sequence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One smoother per object over the sequence, guided by the plate: the reference is the
    smoother over the same mattes, and the chatter of a jittering matte drops."""
    from rotobridge.bridge.colour import ColourPipeline
    from rotobridge.bridge.mattes import plate_guide
    from rotobridge.bridge.plate import open_plate

    (tmp_path / "plate").mkdir()
    (tmp_path / "roto").mkdir()
    frames = range(1, 9)
    mattes = {f: _disc(30 + JITTER[f], 24, 12 + JITTER[f] / 2).clamp(0, 1).numpy() for f in frames}
    for f in frames:
        _write(tmp_path / "plate" / f"p.{f:04d}.exr", PLATE[0].permute(1, 2, 0).numpy(), oiio.HALF)
        _write(tmp_path / "roto" / f"r.{f:04d}.png", (mattes[f][..., None] * 255).round().astype(np.uint8), oiio.UINT8)
    plate = str(tmp_path / "plate" / "p.####.exr")
    common = [str(tmp_path / "roto" / "r.####.png"), "--plate", plate, "--colourspace", "ACEScg", "--device", "cpu", "--quiet"]
    for name, strength in (("smooth", "1"), ("flat", "0")):
        assert cli.main(["refine", *common, "--out", str(tmp_path / name / "r.####.exr"), "--refine", "0", "--smoothing", strength]) == 0
    controls = MatteControls(refine=0, smoothing=1)
    with open_plate(plate) as opened:
        plate_of = plate_guide(opened, ColourPipeline("ACEScg"))
        smoother, done = TemporalSmoother(1.0), []
        for f in frames:
            png = read_alpha(str(tmp_path / "roto" / f"r.{f:04d}.png"))[0]  # the input, as the command reads it
            done += smoother.push(f, refine.matte_edges(torch.from_numpy(png).view(1, 1, H, W), None, controls), plate_of(f))
        want = {f: refine.finish(m, controls) for f, m in done + smoother.flush()}
    got = {f: read_matte(str(tmp_path / "smooth" / f"r.{f:04d}.exr"))[0]["matte.A"] for f in frames}
    flat = {f: read_matte(str(tmp_path / "flat" / f"r.{f:04d}.exr"))[0]["matte.A"] for f in frames}
    for f in frames:
        assert np.array_equal(got[f], _half(want[f])), f
    chatter: Callable[[dict[int, np.ndarray]], float] = lambda m: sum(float(np.abs(m[f + 1] - m[f]).sum()) for f in frames[:-1])
    assert chatter(got) < 0.7 * chatter(flat)


def test_refine_command_does_not_smooth_across_frames_it_skips(tmp_path: Path) -> None:
    """`--frames 1-3,6-8`: two runs of consecutive plate frames, each smoothed on its own,
    so frames 3 and 6 are not each other's neighbours."""
    from rotobridge.bridge.colour import ColourPipeline
    from rotobridge.bridge.mattes import plate_guide
    from rotobridge.bridge.plate import open_plate

    (tmp_path / "plate").mkdir()
    (tmp_path / "roto").mkdir()
    for f in range(1, 9):
        _write(tmp_path / "plate" / f"p.{f:04d}.exr", PLATE[0].permute(1, 2, 0).numpy(), oiio.HALF)
        matte = _disc(30 + JITTER[f], 24, 12 + JITTER[f] / 2).clamp(0, 1).numpy()
        _write(tmp_path / "roto" / f"r.{f:04d}.png", (matte[..., None] * 255).round().astype(np.uint8), oiio.UINT8)
    plate = str(tmp_path / "plate" / "p.####.exr")
    assert cli.main([
        "refine", str(tmp_path / "roto" / "r.####.png"), "--plate", plate, "--colourspace", "ACEScg", "--device", "cpu",
        "--quiet", "--frames", "1-3,6-8", "--out", str(tmp_path / "out" / "r.####.exr"), "--refine", "0", "--smoothing", "1",
    ]) == 0
    controls = MatteControls(refine=0, smoothing=1)
    want: dict[int, torch.Tensor] = {}
    with open_plate(plate) as opened:
        plate_of = plate_guide(opened, ColourPipeline("ACEScg"))
        for run in ((1, 2, 3), (6, 7, 8)):
            smoother, done = TemporalSmoother(1.0), []
            for f in run:
                png = read_alpha(str(tmp_path / "roto" / f"r.{f:04d}.png"))[0]
                done += smoother.push(f, refine.matte_edges(torch.from_numpy(png).view(1, 1, H, W), None, controls), plate_of(f))
            want |= {f: refine.finish(m, controls) for f, m in done + smoother.flush()}
    for f in (1, 2, 3, 6, 7, 8):
        assert np.array_equal(read_matte(str(tmp_path / "out" / f"r.{f:04d}.exr"))[0]["matte.A"], _half(want[f])), f
    assert not (tmp_path / "out" / "r.0004.exr").exists()


# --- a session's propagate -----------------------------------------------------------------


def test_a_session_propagate_writes_smoothed_mattes(start_bridge: Any, tmp_path: Path, loaded: Any) -> None:
    """The session's propagate runs the same loop: the smoothed object's mattes are the
    smoother over the pass's edge mattes (the model's own logits, tracked again here)."""
    from rotobridge.bridge.colour import ColourPipeline
    from rotobridge.bridge.mattes import plate_guide
    from rotobridge.bridge.plate import open_plate

    from .conftest import COLOURSPACE, shot
    from .wire import Peer

    peer = Peer(start_bridge(tmp_path).endpoint)
    fields = shot(tmp_path, frames=6)
    session = peer.ok("open", **fields)["session"]
    clicks = {"points": [[20, 20], [50, 30]], "labels": [1, 0]}
    peer.ok("prompt", session=session, object={"id": 1, "name": "car"}, frame=1001, **clicks)
    controls = MatteControls(refine=0, smoothing=1, feather=0.5)
    peer.ok("matte", session=session, object_id=1, controls=controls.to_json(), frame=1001)
    rid = peer.send("propagate", session=session, start=1001, end=1006, direction="forward")
    assert peer.finished(rid)["status"] == "done"
    peer.close()
    colour = ColourPipeline(COLOURSPACE)
    with open_plate(fields["plate"]["path"], "1001-1006") as plate:
        engine = Engine(loaded, plate, colour)
        engine.add_points(1001, 1, **clicks)
        logits = {out.frame: out.logits[:1] for out in engine.propagate(1001, 1006)}
        engine.close()
        guide = plate_guide(plate, colour)
        smoother, done = TemporalSmoother(1.0), []
        for frame in range(1001, 1007):
            done += smoother.push(frame, refine.edges(logits[frame], None, controls, H, W), guide(frame))
        want = {f: refine.finish(m, controls) for f, m in done + smoother.flush()}
    changed = 0
    for frame in range(1001, 1007):
        got = read_matte(str(tmp_path / "sh_mattes" / f"sh.{frame}.exr"))[0]["car.A"]
        assert np.array_equal(got, _half(want[frame])), frame
        changed += not np.array_equal(got, _half(refine.apply(logits[frame], None, controls, H, W)))
    assert changed >= 4
