"""What a GPU would wait for: `rotobridge render`'s whole path with the model taken out.

The real render path runs (render.prepare + render.run: plate reader, colour transform,
resize, read-ahead threads, tracking loop, upsample, matte writer pool) on generated
ACEScg half EXRs with overscan, at 1920x1080 and 3840x2160, zip or DWAA. The model is
`StandInModel`: sam2's own video predictor (its bookkeeping runs unchanged) whose two
model-running methods are replaced by ones that fetch the frame onto the device, as
sam2 does, and return fixed logits at zero cost. It exists only in this benchmark, to
measure the cost of everything around SAM 2. `--model tiny` runs the real tiny model
(random weights, the sam2 config's 1024 input) instead, to show where time goes end to end.

Printed per case: frames/s (render.run wall time, prompt frame included), CPU core-ms per
frame (process CPU time / frames, every thread), and per stage the milliseconds per frame
spent in it (wall time summed over the threads that ran it) and that stage's own CPU time
(thread CPU time, without helper threads a library spawns). "colour" is the colour
transform with the resize to model size (ColourPipeline.model_input); "core-ms w/o colour"
is the process CPU time less that stage's, so a faster colour stage can be added later.

    .venv/bin/python benchmarks/pipeline.py                     # the default cases
    .venv/bin/python benchmarks/pipeline.py --size hd --compression zip --objects 2
    .venv/bin/python benchmarks/pipeline.py --baseline /tmp/old  # also the tree at /tmp/old
    .venv/bin/python benchmarks/pipeline.py --model tiny --frames 4 --objects 1
    .venv/bin/python benchmarks/pipeline.py --size hd --objects 2 --smoothing 1   # with temporal smoothing

`--baseline DIR` runs the same cases with DIR's rotobridge (a git worktree of an earlier
commit: `git worktree add /tmp/old f9ad7f6`) in a child process and prints both figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from make_shot import FIRST, HEIGHT, OVERSCAN, WIDTH, frame_pixels  # noqa: E402

CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
SIZES = {"hd": 3, "uhd": 6}  # make_shot's 640x360 enlarged: 1920x1080, 3840x2160
STAGES = ("read", "colour", "transfer", "model", "upsample", "write", "wait")


@dataclass
class Case:
    size: str
    compression: str
    objects: int


@dataclass
class Figures:
    case: Case
    rotobridge: str
    frames: int
    fps: float
    core_ms: float
    #: stage -> [wall ms per frame, own CPU ms per frame]
    stages: dict[str, list[float]] = field(default_factory=dict)
    load: str = ""
    #: seconds of one-off set-up outside the timed run (the view LUT's bake, once per process)
    setup_s: float = 0.0
    #: OpenImageIO alone, CPU ms per frame: [read this case's plate frames, write its mattes]
    library: list[float] = field(default_factory=lambda: [0.0, 0.0])

    @property
    def core_ms_without_colour(self) -> float:
        return self.core_ms - self.stages.get("colour", [0.0, 0.0])[1]


# --- the plates -------------------------------------------------------------------------


def write_plate(folder: Path, count: int, scale: int, compression: str, grain: float) -> str:
    """make_shot's picture at `scale` (the plate the issue's per-stage figures were measured
    on); with `grain` > 0, multiplied by film-like noise of that deviation, which makes
    the codecs work as on a real plate."""
    import OpenImageIO as oiio

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    noise = None
    for i in range(count):
        path = folder / f"plate.{FIRST + i:04d}.exr"
        if path.exists():
            continue
        rgb = frame_pixels(i, scale)
        if grain > 0:
            if noise is None:
                noise = rng.normal(1.0, grain, rgb.shape).astype(np.float32)
            rgb = rgb * np.roll(noise, i * 7, axis=1)
        pixels = rgb.astype(np.float16)
        spec = oiio.ImageSpec(pixels.shape[1], pixels.shape[0], 3, oiio.HALF)
        spec.x = spec.y = -OVERSCAN * scale
        spec.full_x = spec.full_y = 0
        spec.full_width, spec.full_height = WIDTH * scale, HEIGHT * scale
        spec.attribute("compression", compression)
        spec.attribute("oiio:ColorSpace", "ACEScg")
        out = oiio.ImageOutput.create(str(path))
        tmp = str(path) + ".tmp.exr"
        if out is None or not out.open(tmp, spec) or not out.write_image(pixels) or not out.close():
            raise SystemExit(f"cannot write {path}: {oiio.geterror()}")
        os.replace(tmp, path)
    return str(folder / "plate.####.exr")


def write_recipe(work: Path, case: Case, frames: int, checkpoint: str, grain: float, smoothing: float = 0.0) -> Path:
    scale = SIZES[case.size]
    suffix = f"_grain{grain}" if grain else ""
    plate = write_plate(work / f"plate_{case.size}_{case.compression}_{frames}{suffix}", frames, scale, case.compression, grain)
    w, h = WIDTH * scale, HEIGHT * scale
    objects = [
        {
            "id": k + 1,
            "name": f"obj{k + 1}",
            "prompts": [{"frame": FIRST, "points": [[w * (k + 1) / (case.objects + 1), h / 2]], "labels": [1]}],
        }
        for k in range(case.objects)
    ]
    if smoothing > 0:  # each object's matte smoothed over time (no edge refinement: the flow's cost alone)
        for obj in objects:
            obj["matte"] = {"refine": 0, "smoothing": smoothing}
    recipe = {
        "rotobridge_recipe": 2 if smoothing > 0 else 1,
        "plate": {"path": plate, "frames": f"{FIRST}-{FIRST + frames - 1}", "colourspace": "ACEScg"},
        "model": {"config": CONFIG, "checkpoint": checkpoint},
        "objects": objects,
        "propagate": {"direction": "forward"},
        "output": {"path": str(work / "mattes" / f"{case.size}_{case.objects}" / "m.####.exr"), "overwrite": True},
    }
    suffix += f"_smooth{smoothing}" if smoothing > 0 else ""
    path = work / f"recipe_{case.size}_{case.compression}_{case.objects}_{frames}{suffix}.json"
    path.write_text(json.dumps(recipe, indent=1))
    return path


# --- timing -----------------------------------------------------------------------------


class Stages:
    """Wall and thread-CPU seconds per stage, summed over threads."""

    def __init__(self) -> None:
        self.wall = dict.fromkeys(STAGES, 0.0)
        self.cpu = dict.fromkeys(STAGES, 0.0)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            dw, dc = time.perf_counter() - wall, time.thread_time() - cpu
            with self._lock:
                self.wall[stage] += dw
                self.cpu[stage] += dc

    def wrap(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self.timing(stage):
                return function(*args, **kwargs)

        return timed


def instrument(stages: Stages, job: Any) -> list[tuple[Any, str, Any]]:
    """Time the stages where the code under test has them; returns what to put back."""
    from rotobridge.bridge import engine, mattes

    undo: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, stage: str) -> None:
        if hasattr(owner, name):
            original = getattr(owner, name)
            undo.append((owner, name, original))
            setattr(owner, name, stages.wrap(stage, original))

    patch(job.plate, "read", "read")
    patch(job.colour, "model_input", "colour")
    patch(mattes, "_write_exr", "write")
    patch(mattes.MatteWriter, "_pixels", "upsample")  # before this work: upsample on the writer's thread
    patch(mattes, "matte_planes", "upsample")  # after: on the model's device, in the tracking thread
    original_get = engine.FrameSource.__getitem__
    undo.append((engine.FrameSource, "__getitem__", original_get))
    engine.FrameSource.__getitem__ = stages.wrap("wait", original_get)  # type: ignore[method-assign]
    return undo


def restore(undo: list[tuple[Any, str, Any]]) -> None:
    for owner, name, original in reversed(undo):
        setattr(owner, name, original)


# --- the models -------------------------------------------------------------------------


class StandInModel:
    """sam2's video predictor with the model taken out: fixed logits at zero cost.

    Benchmark only. `_run_single_frame_inference` and `_run_memory_encoder` (the two
    predictor methods that run the network) are replaced on one instance; they fetch the
    frame and move it to the device as sam2's `_get_image_feature` does, then return
    constant tensors shaped like sam2's. Each object gets a soft disc of logits, so the
    mattes have edges to compress.
    """

    def __init__(self, device: str, objects: int, stages: Stages) -> None:
        import torch
        from sam2.build_sam import build_sam2_video_predictor

        self.torch = torch
        self.stages = stages
        self.device = torch.device(device)
        self.predictor = build_sam2_video_predictor(
            CONFIG, ckpt_path=None, device=device, hydra_overrides_extra=["++model.fill_hole_area=0"]
        )
        low = self.predictor.image_size // 4
        yy, xx = torch.meshgrid(torch.arange(low), torch.arange(low), indexing="ij")
        self.logits = []
        for k in range(max(objects, 1)):
            cx = low * (k + 1) / (objects + 1)
            r = torch.sqrt((xx - cx) ** 2 + (yy - low / 2) ** 2)
            # about +10 at the centre, -12 a disc's width out, -35 in the far corners: a
            # trained SAM 2's range, so mattes have soft edges and a background of tiny
            # non-zero halfs, which cost the EXR codec what real mattes cost it
            self.logits.append(((low / 6 - r) * 0.25).float()[None, None].to(self.device))
        self.predictor._run_single_frame_inference = self._run_single_frame_inference
        self.predictor._run_memory_encoder = self._run_memory_encoder

    def _fetch(self, state: dict[str, Any], frame_idx: int) -> None:
        image = state["images"][frame_idx]  # read-ahead wait is timed as "wait"
        with self.stages.timing("transfer"):
            image.to(state["device"]).float().unsqueeze(0)

    def _memory(self, batch: int) -> tuple[Any, list[Any]]:
        torch = self.torch
        features = torch.zeros(batch, 64, 64, 64, dtype=torch.bfloat16, device=self.device)
        return features, [torch.zeros(batch, 64, 64, 64, device=self.device)]

    def _run_single_frame_inference(self, inference_state: dict[str, Any], output_dict: Any, frame_idx: int,
                                    batch_size: int, *args: Any, **kwargs: Any) -> tuple[dict[str, Any], Any]:
        self._fetch(inference_state, frame_idx)
        with self.stages.timing("model"):
            index = min(self._object_index(inference_state, output_dict), len(self.logits) - 1)
            masks = self.logits[index].expand(batch_size, -1, -1, -1).clone()
            features, position = self._memory(batch_size)
            out = {
                "maskmem_features": features,
                "maskmem_pos_enc": position,
                "pred_masks": masks,
                "obj_ptr": self.torch.zeros(batch_size, 256, device=self.device),
                "object_score_logits": self.torch.full((batch_size, 1), 10.0, device=self.device),
            }
        return out, masks

    @staticmethod
    def _object_index(state: dict[str, Any], output_dict: Any) -> int:
        """Which object's output dict this is (sam2 passes the dict, not the index)."""
        for idx, out in state["output_dict_per_obj"].items():
            if out is output_dict:
                return int(idx)
        for idx, out in state["temp_output_dict_per_obj"].items():
            if out is output_dict:
                return int(idx)
        return 0

    def _run_memory_encoder(self, inference_state: dict[str, Any], frame_idx: int, batch_size: int,
                            *args: Any, **kwargs: Any) -> tuple[Any, list[Any]]:
        self._fetch(inference_state, frame_idx)
        return self._memory(batch_size)


def load_model(kind: str, checkpoint: Path, device: str, objects: int, stages: Stages) -> Any:
    import torch

    from rotobridge.bridge import model as models

    if kind == "tiny":
        loaded = models.build(CONFIG, checkpoint, device=device)
        predictor = loaded.predictor
        for name in ("_run_single_frame_inference", "_run_memory_encoder"):
            setattr(predictor, name, stages.wrap("model", getattr(predictor, name)))
        return loaded
    stand_in = StandInModel(device, objects, stages)
    fields = {f for f in models.LoadedModel.__dataclass_fields__}
    values: dict[str, Any] = {
        "predictor": stand_in.predictor,
        "name": "stand-in",
        "config": CONFIG,
        "checkpoint": checkpoint,
        "sha256": "0" * 64,
        "untrained": True,
        "device": torch.device(device),
        "fill_hole_area": 0,
    }
    return models.LoadedModel(**{k: v for k, v in values.items() if k in fields})


# --- one case ---------------------------------------------------------------------------


def run_case(case: Case, args: argparse.Namespace) -> Figures:
    import rotobridge.bridge
    from rotobridge import recipe as recipes
    from rotobridge.bridge import model as models
    from rotobridge.bridge import render

    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    checkpoint = work / "random-tiny.pt"
    if args.model == "tiny" and not checkpoint.exists():
        models.make_random_checkpoint(CONFIG, checkpoint, seed=0)
    recipe = recipes.load(write_recipe(work, case, args.frames, str(checkpoint), args.grain, args.smoothing))
    stages = Stages()
    loaded = load_model(args.model, checkpoint, args.device, case.objects, stages)
    job = render.prepare(recipe)
    setup = time.process_time()
    getattr(job.colour, "lut", None)  # baked once per process: a shot's frames share it (none before the LUT)
    setup = time.process_time() - setup
    undo = instrument(stages, job)
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        result = render.run(job, loaded, overwrite=True)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        plates = [job.plate.path(f) for f in result.written]
    finally:
        restore(undo)
        job.close()
    assert result.complete and not result.untracked, "every frame must be tracked and written"
    n = len(result.written)
    figures = Figures(
        case=case,
        rotobridge=str(Path(rotobridge.bridge.__file__).resolve().parents[4]),
        frames=n,
        fps=n / wall,
        core_ms=1000 * cpu / n,
        stages={s: [1000 * stages.wall[s] / n, 1000 * stages.cpu[s] / n] for s in STAGES},
        load=os.getloadavg().__repr__(),
        setup_s=setup,
        library=library_floor(plates, list(result.written.values()), work),
    )
    return figures


def library_floor(plates: list[str], mattes: list[str], work: Path) -> list[float]:
    """What OpenImageIO alone costs per frame, one thread: reading the plate frames as
    plate.py does (RGB as stored, half) and writing the mattes the render wrote (read back
    first, untimed; same spec, same compression). No render can cost less than their sum,
    however fast rotobridge's own work: it is the floor the CPU goal stands on."""
    import OpenImageIO as oiio

    threads = oiio.get_int_attribute("threads"), oiio.get_int_attribute("exr_threads")
    oiio.attribute("threads", 1)
    oiio.attribute("exr_threads", 1)
    try:
        cpu = time.process_time()
        for path in plates:
            image = oiio.ImageInput.open(path)
            assert image is not None and image.read_image(0, 0, 0, 3, oiio.HALF) is not None, oiio.geterror()
            image.close()
        read = time.process_time() - cpu
        write, out = 0.0, str(work / "floor.exr")
        for path in mattes:
            image = oiio.ImageInput.open(path)
            assert image is not None, oiio.geterror()
            spec, pixels = image.spec(), image.read_image(oiio.HALF)
            image.close()
            cpu = time.process_time()
            output = oiio.ImageOutput.create(out)
            assert output.open(out, spec) and output.write_image(pixels) and output.close(), oiio.geterror()
            write += time.process_time() - cpu
    finally:
        oiio.attribute("threads", threads[0])
        oiio.attribute("exr_threads", threads[1])
    return [1000 * read / max(1, len(plates)), 1000 * write / max(1, len(mattes))]


def baseline(tree: Path, cases: list[Case], args: argparse.Namespace) -> list[Figures]:
    """The same cases with another tree's rotobridge, in a child process."""
    env = dict(os.environ, PYTHONPATH=f"{tree}/plugin/src{os.pathsep}{tree}/bridge/src")
    out = []
    for case in cases:
        command = [
            sys.executable, __file__, "--json", "--size", case.size, "--compression", case.compression,
            "--objects", str(case.objects), "--frames", str(args.frames), "--model", args.model,
            "--device", args.device, "--work", str(args.work), "--grain", str(args.grain), "--smoothing", str(args.smoothing),
        ]
        done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        data = json.loads(done.stdout.strip().splitlines()[-1])
        data["case"] = Case(**data["case"])
        out.append(Figures(**data))
    return out


def report(figures: Figures, before: Figures | None) -> None:
    c = figures.case
    head = f"{c.size} {c.compression} {c.objects} object(s), {figures.frames} frames"
    if before is not None:
        print(
            f"{head}: {before.fps:6.2f} -> {figures.fps:6.2f} frames/s, CPU {before.core_ms:7.1f} -> "
            f"{figures.core_ms:6.1f} core-ms/frame, w/o colour {before.core_ms_without_colour:6.1f} -> "
            f"{figures.core_ms_without_colour:6.1f}"
        )
    else:
        print(
            f"{head}: {figures.fps:6.2f} frames/s, CPU {figures.core_ms:6.1f} core-ms/frame "
            f"(w/o colour {figures.core_ms_without_colour:6.1f})"
        )
    if figures.setup_s >= 0.01 or (before is not None and before.setup_s >= 0.01):
        was = f"{before.setup_s:.2f} -> " if before is not None else ""
        print(f"    one-off, not in the figures above: view LUT bake {was}{figures.setup_s:.2f} CPU s (once per process)")
    read, write = figures.library
    print(
        f"    OpenImageIO alone, one thread: read plate {read:.1f} + write mattes {write:.1f} = {read + write:.1f} "
        f"core-ms/frame (the floor); rotobridge's own {figures.core_ms - read - write:.1f}"
    )
    for stage in STAGES:
        wall, cpu = figures.stages[stage]
        line = f"    {stage:9s} {wall:7.1f} ms/frame (own CPU {cpu:6.1f})"
        if before is not None:
            bw, bc = before.stages[stage]
            line = f"    {stage:9s} {bw:7.1f} -> {wall:6.1f} ms/frame (own CPU {bc:6.1f} -> {cpu:6.1f})"
        print(line)
    print(f"    load average {figures.load}; rotobridge from {figures.rotobridge}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), action="append")
    parser.add_argument("--compression", choices=("zip", "dwaa"), action="append")
    parser.add_argument("--objects", type=int, action="append")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--grain", type=float, default=0.0, help="plate noise deviation, e.g. 0.02 (default none)")
    parser.add_argument("--smoothing", type=float, default=0.0, help="every object's temporal smoothing strength (default 0: none)")
    parser.add_argument("--model", choices=("stand-in", "tiny"), default="stand-in")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "rotobridge-pipeline")
    parser.add_argument("--baseline", type=Path, help="another rotobridge tree to run the same cases with")
    parser.add_argument("--json", action="store_true", help="print one JSON line per case (for --baseline)")
    args = parser.parse_args()
    if args.size or args.compression or args.objects:
        cases = [
            Case(s, c, o)
            for s in args.size or ["hd"]
            for c in args.compression or ["zip"]
            for o in args.objects or [2]
        ]
    else:  # the goal case first, then the grid
        cases = [Case("hd", "zip", 2), Case("hd", "zip", 1), Case("hd", "zip", 4), Case("hd", "dwaa", 2),
                 Case("uhd", "zip", 2), Case("uhd", "dwaa", 2)]
    if args.model == "tiny" and args.frames == 24:
        args.frames = 4
    before = baseline(args.baseline, cases, args) if args.baseline else [None] * len(cases)
    for case, old in zip(cases, before):
        figures = run_case(case, args)
        if args.json:
            print(json.dumps(asdict(figures)), flush=True)
        else:
            report(figures, old)


if __name__ == "__main__":
    main()
