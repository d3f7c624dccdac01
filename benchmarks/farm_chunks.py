"""What chaining farm chunks through tracking checkpoints saves.

A shot of --frames tiny frames (random-weight SAM 2.1 tiny at ++model.image_size=256, CPU)
prompted on its first frame, rendered in --chunk frame chunks two ways, each chunk its own
`rotobridge render --frames A-B` process as on a farm:

- chained: `--resume`, each chunk continuing the previous chunk's checkpoint (what
  `rotobridge farm` jobs run);
- unchained: no `--resume`, each chunk re-tracking from the prompt (what a farm job of
  plain `--frames` chunks did before).

Prints the frames tracked (from each render's summary line) and the seconds, per way; the
goal is chained ≤ 1.1 × the shot's frames. Unchained tracking grows with the square of
the chunk count (a 1,000-frame shot in 10-frame chunks: ~50 × one pass).
    .venv/bin/python benchmarks/farm_chunks.py [--frames 40] [--chunk 10]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.bridge.plates import write_sequence  # noqa: E402

from rotobridge.bridge.model import make_random_checkpoint  # noqa: E402

CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--chunk", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        checkpoint = make_random_checkpoint(CONFIG, tmp / "random.pt", seed=1)
        last = 1000 + args.frames
        plate = write_sequence(tmp / "plate", "sh", range(1001, last + 1), 64, 48)
        for way, extra in (("chained", ["--resume"]), ("unchained", [])):
            recipe = tmp / f"{way}.json"
            recipe.write_text(json.dumps({
                "rotobridge_recipe": 1,
                "plate": {"path": plate, "frames": f"1001-{last}", "colourspace": "ACEScg"},
                "model": {"config": CONFIG, "checkpoint": str(checkpoint), "overrides": ["++model.image_size=256"]},
                "objects": [{"id": 1, "name": "car", "prompts": [{"frame": 1001, "points": [[20, 20]], "labels": [1]}]}],
                "output": {"path": str(tmp / way / "m.####.exr")},
            }))
            tracked, started = 0, time.monotonic()
            for first in range(1001, last + 1, args.chunk):
                frames = f"{first}-{min(first + args.chunk - 1, last)}"
                run = subprocess.run(
                    [sys.executable, "-m", "rotobridge.bridge.cli", "render", str(recipe), "--frames", frames,
                     "--device", "cpu", "--quiet", *extra],
                    capture_output=True, text=True, check=True, cwd=ROOT,
                )
                tracked += int(re.search(r"tracked (\d+) frame", run.stdout).group(1))  # type: ignore[union-attr]
            seconds = time.monotonic() - started
            print(f"{way:>9}: {tracked} frames tracked for a {args.frames}-frame shot "
                  f"({tracked / args.frames:.2f} x), {seconds:.1f} s in {-(-args.frames // args.chunk)} chunks")


if __name__ == "__main__":
    main()
