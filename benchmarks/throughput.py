"""End-to-end speed of `rotobridge render` against raw sam2 on the same frames.

rotobridge: EXR plate in (1920x1080 ACEScg half, overscan), OCIO view transform, SAM 2,
EXR mattes out — timed from the render call to the last matte on disk, model load included.
sam2: the same frames, already decoded into memory by its own init_state (not timed), then
add_new_points_or_box + propagate_in_video. Same checkpoint, model size, machine.
Goal: ratio rotobridge/sam2 >= 0.9 with the tiny model at its real size (1024) on CPU.
    .venv/bin/python benchmarks/throughput.py [--frames 16] [--image-size 1024]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common import CONFIG, prepare


def sam2_fps(recipe_path: Path, work: Path) -> float:
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
    predictor = build_sam2_video_predictor(
        CONFIG, str(recipe.model.checkpoint), device="cpu", hydra_overrides_extra=list(recipe.model.overrides)
    )
    prompt = recipe.objects[0].prompts[0]
    with torch.inference_mode():
        state = predictor.init_state(str(jpgs))  # decodes every frame up front: not timed
        started = time.monotonic()
        predictor.add_new_points_or_box(state, 0, 1, points=np.array(prompt.points, np.float32), labels=np.array(prompt.labels))
        for _ in predictor.propagate_in_video(state, start_frame_idx=0):
            pass
        return count / (time.monotonic() - started)


def rotobridge_fps(recipe_path: Path) -> float:
    from rotobridge import recipe as recipes
    from rotobridge.bridge import render

    recipe = recipes.load(recipe_path)
    started = time.monotonic()
    result = render.render(recipe, device="cpu", overwrite=True)
    assert result.complete
    return len(result.written) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=None, help="model input size (default: the config's, 1024)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "rotobridge-bench")
    args = parser.parse_args()
    recipe = prepare(args.work, args.frames, scale=3, image_size=args.image_size)
    ours = rotobridge_fps(recipe)
    print(f"rotobridge render : {ours:.3f} frames/s (EXR in, EXR out, model load included)", flush=True)
    theirs = sam2_fps(recipe, args.work)
    print(f"raw sam2 propagate: {theirs:.3f} frames/s (frames preloaded)")
    print(f"ratio rotobridge/sam2 = {ours / theirs:.3f} (goal >= 0.9) on {torch.get_num_threads()} threads")


if __name__ == "__main__":
    main()
