"""What the benchmarks share: a generated shot, a random-weight checkpoint, a recipe.

Random weights cost the same compute as trained ones, so timings and memory are real
even though the mattes mean nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from make_shot import ball_centre, write_shot  # noqa: E402

CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


def prepare(work: Path, frames: int, *, scale: int = 1, image_size: int | None = None, config: str = CONFIG) -> Path:
    """Write shot + checkpoint + a one-object recipe under `work`; returns the recipe path."""
    from rotobridge.bridge.model import make_random_checkpoint

    work.mkdir(parents=True, exist_ok=True)
    shot = work / f"shot_{frames}_x{scale}"
    if not (shot / f"sh010_plate.{1000 + frames}.exr").exists():
        write_shot(shot, count=frames, scale=scale)
    name = Path(config).stem
    checkpoint = work / ("random-tiny.pt" if config == CONFIG else f"random-{name}.pt")
    if not checkpoint.exists():
        make_random_checkpoint(config, checkpoint, seed=0)
    x, y = ball_centre(0)
    recipe = {
        "rotobridge_recipe": 1,
        "plate": {"path": str(shot / "sh010_plate.####.exr"), "frames": f"1001-{1000 + frames}", "colourspace": "ACEScg"},
        "model": {
            "config": config,
            "checkpoint": str(checkpoint),
            "overrides": [f"++model.image_size={image_size}"] if image_size else [],
        },
        "objects": [{"id": 1, "name": "ball", "prompts": [{"frame": 1001, "points": [[x * scale, y * scale]], "labels": [1]}]}],
        "propagate": {"direction": "forward"},
        "output": {"path": str(work / f"mattes_{frames}_x{scale}" / "m.####.exr"), "overwrite": True},
    }
    path = work / f"recipe_{frames}_x{scale}_{image_size or 'full'}{'' if config == CONFIG else '_' + name}.json"
    path.write_text(json.dumps(recipe, indent=1))
    return path
