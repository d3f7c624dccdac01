"""End-to-end speed of `rotobridge render` against raw sam2 on the same frames.

rotobridge: EXR plate in (1920x1080 ACEScg half, overscan), OCIO view transform, SAM 2,
EXR mattes out — timed from the render call to the last matte on disk, model load included.
sam2: the same frames, already decoded into memory by its own init_state (not timed), then
add_new_points_or_box + propagate_in_video. Same checkpoint, model size, machine.
Goal: ratio rotobridge/sam2 >= 0.9 with the tiny model at its real size (1024) on CPU.
    .venv/bin/python benchmarks/throughput.py [--frames 16] [--image-size 1024]
On a GPU (benchmarks/gpu_check.sh): --device cuda, --config another sam2 config (a random
checkpoint is made for it), --compile image-encoder|vos on both sides (sam2's own options).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import CONFIG, prepare


def sam2_fps(recipe_path: Path, work: Path, device: str = "cpu", compile: str = "off") -> float:
    from sam2.build_sam import build_sam2_video_predictor

    from rotobridge import recipe as recipes
    from rotobridge.bridge.colour import ColourPipeline
    from rotobridge.bridge.plate import open_plate

    recipe = recipes.load(recipe_path)
    jpgs = work / f"jpg_{recipe_path.stem}"
    with open_plate(recipe.plate.path, recipe.plate.frames) as plate:
        if not jpgs.exists():
            jpgs.mkdir()
            colour = ColourPipeline(recipe.plate.colourspace)
            d = plate.info.display
            for i, frame in enumerate(plate.info.frames):
                Image.fromarray(colour.display_rgb(plate.read(frame), d.width, d.height)).save(jpgs / f"{i:05d}.jpg", quality=95)
        count = len(plate.info.frames)
    overrides = list(recipe.model.overrides) + (["++model.compile_image_encoder=true"] if compile == "image-encoder" else [])
    predictor = build_sam2_video_predictor(
        str(recipe.model.config), str(recipe.model.checkpoint), device=device, hydra_overrides_extra=overrides,
        vos_optimized=compile == "vos",
    )
    prompt = recipe.objects[0].prompts[0]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        state = predictor.init_state(str(jpgs))  # decodes every frame up front: not timed
        started = time.monotonic()
        predictor.add_new_points_or_box(state, 0, 1, points=np.array(prompt.points, np.float32), labels=np.array(prompt.labels))
        for _ in predictor.propagate_in_video(state, start_frame_idx=0):
            pass
        if device == "cuda":
            torch.cuda.synchronize()
        return count / (time.monotonic() - started)


def rotobridge_fps(recipe_path: Path, device: str = "cpu", compile: str = "off") -> float:
    from rotobridge import recipe as recipes
    from rotobridge.bridge import render

    recipe = recipes.load(recipe_path)
    started = time.monotonic()
    os.environ["ROTOBRIDGE_COMPILE"] = compile  # how `rotobridge render` is told (or --compile)
    result = render.render(recipe, device=device, overwrite=True)
    assert result.complete
    return len(result.written) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=None, help="model input size (default: the config's, 1024)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "rotobridge-bench")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--config", default=CONFIG, help=f"sam2 config (default {CONFIG})")
    parser.add_argument("--compile", default="off", choices=["off", "image-encoder", "vos"])
    args = parser.parse_args()
    recipe = prepare(args.work, args.frames, scale=3, image_size=args.image_size, config=args.config)
    ours = rotobridge_fps(recipe, args.device, args.compile)
    print(f"rotobridge render : {ours:.3f} frames/s (EXR in, EXR out, model load included)", flush=True)
    theirs = sam2_fps(recipe, args.work, args.device, args.compile)
    print(f"raw sam2 propagate: {theirs:.3f} frames/s (frames preloaded)")
    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"ratio rotobridge/sam2 = {ours / theirs:.3f} (goal >= 0.9) on {where}, {args.config}, compile {args.compile}")


if __name__ == "__main__":
    main()
