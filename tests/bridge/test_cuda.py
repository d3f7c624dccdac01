"""CUDA path: bf16 autocast as the official code runs. Needs a GPU; skipped (and reported
as skipped) without one. Both sides fill holes (test_equivalence.py). On a GPU machine: `.venv/bin/pytest tests/bridge/test_cuda.py`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rotobridge.bridge import model as models
from rotobridge.bridge.colour import ColourPipeline
from rotobridge.bridge.engine import Engine
from rotobridge.bridge.mattes import upsample_logits
from rotobridge.bridge.plate import open_plate

from ..conftest import SMALL_SIZE, TINY_CONFIG
from .components import sam2_with_reference_components
from .test_equivalence import COUNT, FIRST, HEIGHT, PROMPT_FRAME, PROMPTS, WIDTH, _shot

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_engine_matches_official_sam2_under_bf16_autocast(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from sam2.build_sam import build_sam2_video_predictor

    shot = _shot(tmp_path / "jpg")
    reference = {}
    predictor = build_sam2_video_predictor(TINY_CONFIG, str(tiny_checkpoint), device="cuda", hydra_overrides_extra=SMALL_SIZE)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16), sam2_with_reference_components():
        state = predictor.init_state(str(shot))
        for obj_id, prompt in PROMPTS.items():
            predictor.add_new_points_or_box(state, PROMPT_FRAME - FIRST, obj_id, **prompt)
        for idx, _, masks in predictor.propagate_in_video(state, start_frame_idx=PROMPT_FRAME - FIRST):
            reference[FIRST + idx] = torch.sigmoid(masks[:, 0].float()).cpu()
    loaded = models.build(TINY_CONFIG, tiny_checkpoint, device="cuda", overrides=SMALL_SIZE)
    with open_plate(str(shot / "#####.jpg"), f"{FIRST}-{FIRST + COUNT - 1}") as plate:
        engine = Engine(loaded, plate, ColourPipeline("sRGB Encoded Rec.709 (sRGB)"))
        for obj_id, prompt in PROMPTS.items():
            engine.add_points(PROMPT_FRAME, obj_id, **prompt)
        for out in engine.propagate(PROMPT_FRAME, FIRST + COUNT - 1):
            mine = torch.sigmoid(upsample_logits(out.logits.float(), HEIGHT, WIDTH)[:, 0]).cpu()
            torch.testing.assert_close(mine, reference[out.frame], rtol=0, atol=1e-3)
        engine.close()


#: A chunked or resumed CUDA render against one uninterrupted CUDA render: the checkpoint
#: holds the tensors exactly, so only run-to-run kernel differences remain (docs/farm.md).
CUDA_RESUME_ATOL = 1 / 255


def test_chunks_chained_through_checkpoints_on_cuda_match_one_render(tmp_path: Path, tiny_checkpoint: Path) -> None:
    import json

    import numpy as np

    from rotobridge.bridge import cli
    from rotobridge.bridge.mattes import read_matte

    from .plates import write_sequence

    plate = write_sequence(tmp_path / "plate", "sh", range(1001, 1031), 64, 48)
    for name in ("whole", "chunks"):
        (tmp_path / f"{name}.json").write_text(json.dumps({
            "rotobridge_recipe": 1,
            "plate": {"path": plate, "frames": "1001-1030", "colourspace": "ACEScg"},
            "model": {"config": TINY_CONFIG, "checkpoint": str(tiny_checkpoint), "overrides": SMALL_SIZE},
            "objects": [{"id": 1, "name": "car", "prompts": [{"frame": 1010, "points": [[20, 20]], "labels": [1]}]}],
            "output": {"path": str(tmp_path / name / "m.####.exr")},
        }))
    assert cli.main(["render", str(tmp_path / "whole.json"), "--device", "cuda", "--quiet"]) == 0
    for frames in ("1010-1019", "1020-1030", "1001-1009"):  # the forward chain, then the backward one
        assert cli.main(["render", str(tmp_path / "chunks.json"), "--device", "cuda", "--quiet", "--resume", "--frames", frames]) == 0
    worst = max(
        float(np.abs(read_matte(str(tmp_path / "whole" / f"m.{f}.exr"))[0]["car.A"]
                     - read_matte(str(tmp_path / "chunks" / f"m.{f}.exr"))[0]["car.A"]).max())
        for f in range(1001, 1031)
    )
    print(f"largest matte difference, chunks vs one render on CUDA: {worst}")
    assert worst <= CUDA_RESUME_ATOL
