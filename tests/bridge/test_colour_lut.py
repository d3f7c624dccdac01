"""The baked view LUT: OCIO's own LUT semantics in torch, close to the exact processor, selectable.

Accuracy goals (issue 9, display values on the 0-255 scale): plates p99.9 <= 1, mean <= 0.1.
benchmarks/colour_lut.py measures them at full size over plates and dense grids; here a
small plate-like sample per colourspace keeps them from regressing, with the product's
cube (each bake ~1.5 s, once per process); tests of the LUT's mechanics bake at 17³.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import PyOpenColorIO as ocio
import pytest
import torch

from rotobridge import recipe as recipes
from rotobridge.bridge import lut as luts
from rotobridge.bridge.colour import DEFAULT_CONFIG, ColourPipeline
from rotobridge.bridge.render import prepare

from ..conftest import SMALL_SIZE, TINY_CONFIG
from .plates import write_sequence

SMALL_CUBE = 17
#: one of each kind (benchmarks/colour_lut.py adds Linear Rec.709 and S-Log3): ~1.5 s per bake
SPACES = ["ACEScg", "ACEScct", "ARRI LogC4"]
#: plate-like scene-linear ACEScg colours (skin, sky, foliage, grey, shadow, saturated red)
MATERIALS = np.array(
    [(0.40, 0.25, 0.18), (0.20, 0.32, 0.55), (0.06, 0.15, 0.04), (0.18, 0.18, 0.18), (0.02, 0.018, 0.016), (0.45, 0.04, 0.03)],
    np.float32,
)


@pytest.fixture(autouse=True)
def no_ocio_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCIO", raising=False)


@pytest.fixture
def small_cube(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(luts, "CUBE_SIZE", SMALL_CUBE)
    yield


def exact_display(colourspace: str, pixels: np.ndarray) -> np.ndarray:
    """OCIO's default display/view straight from OCIO (not through the code under test), clipped."""
    config = ocio.Config.CreateFromFile(DEFAULT_CONFIG)
    display = config.getDefaultDisplay()
    transform = ocio.DisplayViewTransform(src=colourspace, display=display, view=config.getDefaultView(display))
    out = np.ascontiguousarray(pixels, dtype=np.float32).copy()
    config.getProcessor(transform).getDefaultCPUProcessor().applyRGB(out.reshape(-1))
    return np.clip(out, 0.0, 1.0)


def plate_sample(colourspace: str) -> np.ndarray:
    """(48, 64, 3): the materials over −6..+3 stops with noise, a few speculars, made in ACEScg by OCIO."""
    rng = np.random.default_rng(5)
    stops = np.linspace(-6.0, 3.0, 64, dtype=np.float32)
    acescg = MATERIALS[np.arange(48) // 8][:, None, :] * (2.0**stops)[None, :, None]
    acescg = acescg * (1.0 + 0.02 * rng.standard_normal(acescg.shape)) + 0.002 * rng.standard_normal(acescg.shape)
    acescg[rng.random((48, 64)) < 0.01] = 12.0
    config = ocio.Config.CreateFromFile(DEFAULT_CONFIG)
    out = np.ascontiguousarray(acescg, dtype=np.float32)
    config.getProcessor("ACEScg", colourspace).getDefaultCPUProcessor().applyRGB(out.reshape(-1))
    return out


def lut_display(pipe: ColourPipeline, pixels: np.ndarray) -> np.ndarray:
    h, w = pixels.shape[:2]
    return pipe.to_display(pixels, w, h).permute(1, 2, 0).numpy()


@pytest.mark.parametrize("colourspace", SPACES)
def test_lut_meets_the_plate_goals(colourspace: str) -> None:
    pipe = ColourPipeline(colourspace)
    assert pipe.lut is not None and pipe.lut.size == luts.CUBE_SIZE
    pixels = plate_sample(colourspace)
    diff = np.abs(lut_display(pipe, pixels) - exact_display(colourspace, pixels)).max(axis=-1) * 255
    assert np.percentile(diff, 99.9) <= 1.0 and diff.mean() <= 0.1, (np.percentile(diff, 99.9), diff.mean())


@pytest.mark.parametrize("colourspace", ["ACEScg", "ARRI LogC4"])
@pytest.mark.usefixtures("small_cube")
def test_torch_interpolation_is_ocio_evaluating_the_same_lut(colourspace: str) -> None:
    baked = ColourPipeline(colourspace).lut
    assert baked is not None
    positions = torch.rand(3, 4000, generator=torch.Generator().manual_seed(1))
    got = baked.lookup(positions).t().numpy()
    want = positions.t().contiguous().numpy().copy()
    ocio.Config.CreateRaw().getProcessor(baked.transform()).getDefaultCPUProcessor().applyRGB(want.reshape(-1))
    np.testing.assert_allclose(got, want, atol=2e-6)
    assert np.abs(got - positions.t().numpy()).max() > 0.1  # the transform really ran


@pytest.mark.parametrize("colourspace", ["ACEScg", "ARRI LogC4", "Linear Rec.709 (sRGB)"])
@pytest.mark.usefixtures("small_cube")
def test_on_the_cpu_ocio_applies_what_torch_applies_on_a_device(colourspace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`apply` on the CPU runs shaper and cube in OCIO; other devices run them in torch.

    Within 2e-6 (float32 rounding, 0.0005/255): both take scene-linear values at half
    precision, else they would differ by up to 0.11/255; OCIO resampling the shaper into
    the cube would differ by far more. Linear Rec.709 has a leading matrix.
    """
    baked = ColourPipeline(colourspace).lut
    assert baked is not None and (baked.matrix is not None) == (colourspace == "Linear Rec.709 (sRGB)")
    rgb = torch.randn(3, 40, 50, generator=torch.Generator().manual_seed(2)) * 4.0
    rgb[:, 1] = torch.logspace(-9, 2.2, 50)  # denormal halves to beyond the grid's 128
    rgb[:, 0, :6] = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e6, -1e6, 70000.0])
    rgb[:, 2, :3] = torch.tensor([[float("nan"), 0.5, 0.5], [float("inf"), -float("inf"), 0.1], [6e-8, -6e-8, 0.0]]).t()
    packed = rgb.permute(1, 2, 0).contiguous().permute(2, 0, 1)  # a planar view of packed pixels, as colour passes
    got = baked.apply(packed)
    assert baked._cpu is not None  # OCIO's processor ran
    torch.testing.assert_close(baked.apply(rgb.clone()), got, rtol=0.0, atol=0.0)  # either layout
    monkeypatch.setattr(baked, "_cpu_apply", baked._torch_apply)  # the path every other device takes
    device_path = baked.apply(rgb.clone())
    assert got.shape == rgb.shape and got.dtype == torch.float32 and got.is_contiguous()
    np.testing.assert_allclose(got.numpy(), device_path.numpy(), rtol=0.0, atol=2e-6)
    assert got.std() > 0.1 and torch.isfinite(got).all()


def test_the_shaper_takes_scene_linear_values_at_half_precision() -> None:
    """What lets OCIO look the shaper up per half on the CPU: every device rounds to half first."""
    shaper = luts.Shaper.for_encoding("scene-linear", 129, floor=0.0)
    values = torch.tensor([0.18, 0.18 + 2e-5, 3.0, 3.0 + 4e-4])
    positions = shaper.forward(values)
    assert positions[0] == positions[1] and positions[2] == positions[3]
    table = torch.from_numpy(shaper.half_table())
    assert torch.equal(positions, table[values.to(torch.float16).view(torch.int16).long() & 0xFFFF])
    log = luts.Shaper.for_encoding("log", 129).forward(values * 0.2)
    assert log[0] != log[1]  # code values are not rounded: the CPU applies no table to them


def test_highlights_and_negatives_survive() -> None:
    # ACEScg: highlights keep their rolloff far above 1.0
    grey = np.array([[[1.0] * 3, [4.0] * 3, [16.0] * 3, [8.0, 0.5, 0.1]]], np.float32)
    pipe = ColourPipeline("ACEScg")
    got, want = lut_display(pipe, grey), exact_display("ACEScg", grey)
    assert np.all(np.diff(want[0, :3, 0]) > 5 / 255)  # the view still tells these apart ...
    np.testing.assert_allclose(got, want, atol=1 / 255)  # ... and so does the LUT
    # Linear Rec.709: a negative channel is a real (out-of-gamut) colour, not black
    rec709 = "Linear Rec.709 (sRGB)"
    colours = np.array([[[-0.05, 0.2, 0.3], [0.0, 0.2, 0.3], [0.6, -0.02, 0.4], [0.6, 0.0, 0.4]]], np.float32)
    want = exact_display(rec709, colours)
    assert np.abs(want[0, 0] - want[0, 1]).max() > 2 / 255 and np.abs(want[0, 2] - want[0, 3]).max() > 2 / 255
    np.testing.assert_allclose(lut_display(ColourPipeline(rec709), colours), want, atol=1 / 255)


@pytest.mark.usefixtures("small_cube")
def test_exact_selects_the_ocio_processor() -> None:
    pixels = plate_sample("ACEScg")
    exact = ColourPipeline("ACEScg", exact=True)
    assert exact.lut is None and exact.exact
    np.testing.assert_allclose(lut_display(exact, pixels), exact_display("ACEScg", pixels), atol=1e-6)
    lut = lut_display(ColourPipeline("ACEScg"), pixels)
    assert np.abs(lut - exact_display("ACEScg", pixels)).max() > 1e-4  # the default is the LUT, not OCIO per pixel


@pytest.mark.usefixtures("small_cube")
def test_model_input_on_a_named_device() -> None:
    pixels = plate_sample("ACEScct")
    pipe = ColourPipeline("ACEScct")
    on_cpu = pipe.model_input(pixels, 32, device="cpu")
    assert on_cpu.device.type == "cpu" and on_cpu.shape == (3, 32, 32) and on_cpu.dtype == torch.float32
    assert torch.equal(on_cpu, pipe.model_input(pixels, 32))  # the old two-argument call
    if torch.cuda.is_available():
        np.testing.assert_allclose(pipe.model_input(pixels, 32, device="cuda").cpu(), on_cpu, atol=1e-5)


@pytest.mark.usefixtures("small_cube")
def test_one_bake_per_view_per_process() -> None:
    assert ColourPipeline("ACEScct").lut is ColourPipeline("ACEScct").lut
    assert ColourPipeline("ACEScct").lut is not ColourPipeline("ACEScct", view="Un-tone-mapped").lut


@pytest.mark.usefixtures("small_cube")
@pytest.mark.parametrize("exact", [True, False])
def test_recipe_colour_exact_reaches_the_render(tmp_path: Path, tiny_checkpoint: Path, exact: bool) -> None:
    plate = write_sequence(tmp_path / "plate", "sh", range(1001, 1003), 64, 48)
    data = {
        "rotobridge_recipe": 2,
        "plate": {"path": plate, "frames": "1001-1002", "colourspace": "ACEScg"},
        "colour": {"exact": exact},
        "model": {"config": TINY_CONFIG, "checkpoint": str(tiny_checkpoint), "overrides": SMALL_SIZE},
        "objects": [{"id": 1, "name": "car", "prompts": [{"frame": 1001, "points": [[20, 20]], "labels": [1]}]}],
        "output": {"path": str(tmp_path / "mattes" / "m.####.exr")},
    }
    (tmp_path / "r.json").write_text(json.dumps(data))
    job = prepare(recipes.load(tmp_path / "r.json"))
    try:
        assert job.colour.exact is exact and (job.colour.lut is None) is exact
    finally:
        job.close()
