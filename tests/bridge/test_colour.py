"""ColourPipeline: config resolution, validation, and model input identical to sam2's loader."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import PyOpenColorIO as ocio
import pytest
import torch
from PIL import Image
from sam2.utils.misc import load_video_frames

from rotobridge.bridge import lut as luts
from rotobridge.bridge.colour import DEFAULT_CONFIG, ColourPipeline
from rotobridge.errors import ColourError

SRGB = "sRGB Encoded Rec.709 (sRGB)"
MEAN = torch.tensor((0.485, 0.456, 0.406))[:, None, None]
STD = torch.tensor((0.229, 0.224, 0.225))[:, None, None]


def unnormalise(image: torch.Tensor) -> np.ndarray:
    return (image * STD + MEAN).permute(1, 2, 0).numpy()


def ocio_pixel(colourspace: str, value: float) -> np.ndarray:
    """OCIO's own default display/view applied to one pixel, clipped as the model sees it."""
    config = ocio.Config.CreateFromFile(DEFAULT_CONFIG)
    display = config.getDefaultDisplay()
    transform = ocio.DisplayViewTransform(
        src=colourspace, display=display, view=config.getDefaultView(display)
    )
    pixel = np.full((1, 1, 3), value, np.float32)
    config.getProcessor(transform).getDefaultCPUProcessor().apply(
        ocio.PackedImageDesc(pixel, 1, 1, 3)
    )
    return np.clip(pixel[0, 0], 0.0, 1.0)


@pytest.fixture(autouse=True)
def no_ocio_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCIO", raising=False)


# --- config resolution -------------------------------------------------------------------


def test_default_config_and_defaults() -> None:
    pipe = ColourPipeline("ACEScg")
    assert pipe.config_name == DEFAULT_CONFIG
    assert (pipe.display, pipe.view) == ("sRGB - Display", "ACES 2.0 - SDR 100 nits (Rec.709)")
    assert pipe.data_colourspace == "Raw"


def test_ocio_env_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCIO", "ocio://cg-config-latest")
    assert ColourPipeline("ACEScg").config_name == "ocio://cg-config-latest"
    # the CG config has no camera log spaces: proves $OCIO's config was really loaded
    with pytest.raises(ColourError, match="ARRI LogC4.*cg-config-latest"):
        ColourPipeline("ARRI LogC4")


def test_argument_beats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OCIO", "/nowhere/broken.ocio")
    assert ColourPipeline("ACEScg", config=DEFAULT_CONFIG).config_name == DEFAULT_CONFIG
    with pytest.raises(ColourError, match=r"/nowhere/broken\.ocio.*\$OCIO"):
        ColourPipeline("ACEScg")


def test_config_file_path(tmp_path: Path) -> None:
    path = tmp_path / "show.ocio"
    path.write_text(ocio.Config.CreateFromFile(DEFAULT_CONFIG).serialize())
    pipe = ColourPipeline("ACEScct", config=str(path))
    assert pipe.config_name == str(path)
    assert not pipe.passthrough


@pytest.mark.parametrize("config", ["ocio://no-such-config", "/no/such/config.ocio"])
def test_unknown_config(config: str) -> None:
    with pytest.raises(ColourError, match=config):
        ColourPipeline("ACEScg", config=config)


# --- validation ----------------------------------------------------------------------------


def test_unknown_colourspace_names_it_and_suggests() -> None:
    with pytest.raises(ColourError, match="'ACEScgg'.*did you mean 'ACEScg'.*more") as err:
        ColourPipeline("ACEScgg")
    assert len(str(err.value)) < 1000


def test_unknown_display_and_view() -> None:
    with pytest.raises(ColourError, match="'Cinema'.*'sRGB - Display'"):
        ColourPipeline("ACEScg", display="Cinema")
    with pytest.raises(ColourError, match="'Filmic'.*'Un-tone-mapped'"):
        ColourPipeline("ACEScg", view="Filmic")


def test_explicit_display_gets_its_default_view() -> None:
    pipe = ColourPipeline("ACEScg", display="Display P3 - Display")
    assert pipe.view == "ACES 2.0 - SDR 100 nits (P3 D65)"


@pytest.mark.parametrize("name", ["Raw", "data", "Utility - Raw"])
def test_data_plate_refused(name: str) -> None:
    with pytest.raises(ColourError, match="data colourspace"):
        ColourPipeline(name)


@pytest.mark.parametrize(
    ("name", "canonical", "passthrough"),
    [
        (SRGB, SRGB, True),
        ("srgb_tx", SRGB, True),  # alias
        ("color_picking", SRGB, True),  # role
        ("scene_linear", "ACEScg", False),
        ("ACEScct", "ACEScct", False),
        ("ARRI LogC4", "ARRI LogC4", False),
    ],
)
def test_encoding_decides_passthrough(name: str, canonical: str, passthrough: bool) -> None:
    pipe = ColourPipeline(name)
    assert (pipe.colourspace, pipe.passthrough) == (canonical, passthrough)


# --- model input ---------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height", "size"), [(100, 60, 32), (37, 23, 64)])
def test_uint8_srgb_bit_identical_to_sam2_loader(
    tmp_path: Path, width: int, height: int, size: int
) -> None:
    rng = np.random.default_rng(7)
    for n in range(2):
        noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(noise).save(tmp_path / f"{n:05d}.jpg", quality=90)
    expected, _, _ = load_video_frames(str(tmp_path), image_size=size, offload_video_to_cpu=True)

    pipe = ColourPipeline(SRGB)
    for n in range(2):
        pixels = np.array(Image.open(tmp_path / f"{n:05d}.jpg").convert("RGB"))
        got = pipe.model_input(pixels, size)
        assert got.dtype == torch.float32 and got.shape == (3, size, size)
        assert torch.equal(got, expected[n])


def test_float_passthrough_resizes_and_clips() -> None:
    pixels = np.full((40, 50, 3), 0.5, np.float32)
    pixels[:, 25:] = 1.5
    before = pixels.copy()
    got = unnormalise(ColourPipeline(SRGB).model_input(pixels, 10))
    np.testing.assert_allclose(got[:, :4], 0.5, atol=1e-6)
    np.testing.assert_allclose(got[:, 6:], 1.0, atol=1e-6)
    np.testing.assert_array_equal(pixels, before)  # caller's plate untouched


@pytest.mark.parametrize(("colourspace", "exact"), [(SRGB, False), ("ACEScg", False), ("ACEScg", True)])
def test_nan_and_inf_never_reach_the_model(colourspace: str, exact: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(luts, "CUBE_SIZE", 17)  # the LUT's mechanics, not its accuracy
    pixels = np.full((16, 16, 3), 0.3, np.float32)
    pixels[0, 0], pixels[8, 8], pixels[15, 15] = np.nan, np.inf, -np.inf
    got = unnormalise(ColourPipeline(colourspace, exact=exact).model_input(pixels, 8))
    assert np.isfinite(got).all() and got.min() >= -1e-6 and got.max() <= 1 + 1e-6


def test_acescg_resizes_before_transform() -> None:
    # Columns alternate 0.02/0.34: area-averaging 2:1 gives 0.18 before the (non-linear) view.
    pixels = np.empty((64, 64, 3), np.float32)
    pixels[:, 0::2], pixels[:, 1::2] = 0.02, 0.34
    got = unnormalise(ColourPipeline("ACEScg", exact=True).model_input(pixels, 32))
    grey = ocio_pixel("ACEScg", 0.18)
    np.testing.assert_allclose(got, np.broadcast_to(grey, got.shape), atol=1e-6)
    transform_then_resize = (ocio_pixel("ACEScg", 0.02) + ocio_pixel("ACEScg", 0.34)) / 2
    assert np.abs(grey - transform_then_resize).max() > 0.01


@pytest.mark.parametrize("name", ["ACEScct", "ARRI LogC4"])
def test_log_plates_go_through_the_view(name: str) -> None:
    pixels = np.full((20, 30, 3), 0.4, np.float32)
    got = unnormalise(ColourPipeline(name, exact=True).model_input(pixels, 16))
    np.testing.assert_allclose(got, np.broadcast_to(ocio_pixel(name, 0.4), got.shape), atol=1e-6)


def test_display_rgb() -> None:
    grey = ColourPipeline("ACEScg", exact=True).display_rgb(np.full((30, 40, 3), 0.18, np.float32), 20, 15)
    assert grey.dtype == np.uint8 and grey.shape == (15, 20, 3)
    assert (grey == np.rint(ocio_pixel("ACEScg", 0.18) * 255).astype(np.uint8)).all()
    plate = np.random.default_rng(1).integers(0, 256, (15, 20, 3), dtype=np.uint8)
    np.testing.assert_array_equal(ColourPipeline(SRGB).display_rgb(plate, 20, 15), plate)


@pytest.mark.parametrize("exact", [True, False])
def test_threaded_matches_serial(exact: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(luts, "CUBE_SIZE", 17)
    pipe = ColourPipeline("ACEScg", exact=exact)
    rng = np.random.default_rng(3)
    frames = [rng.random((96, 128, 3), dtype=np.float32) * 4 for _ in range(6)]
    serial = [pipe.model_input(f, 64) for f in frames]
    with ThreadPoolExecutor(3) as pool:
        threaded = list(pool.map(lambda f: pipe.model_input(f, 64), frames * 3))
    for n, got in enumerate(threaded):
        assert torch.equal(got, serial[n % len(frames)])
