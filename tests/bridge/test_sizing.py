"""Pipeline sizing: pools from the cores, read-ahead within a memory budget, settings from
the environment and the bridge config, OpenImageIO's threads, and sam2's compile options."""

from __future__ import annotations

from pathlib import Path

import OpenImageIO as oiio
import pytest

from rotobridge.bridge import config as configs
from rotobridge.bridge import model as models
from rotobridge.bridge import sizing
from rotobridge.bridge.colour import ColourPipeline
from rotobridge.bridge.engine import FrameSource
from rotobridge.bridge.plate import open_plate
from rotobridge.errors import ConfigError, ModelError

from ..conftest import SMALL_SIZE, TINY_CONFIG
from .plates import write_sequence

MIB = 2**20


def test_pools_follow_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sizing, "cores", lambda: 6)
    assert (sizing.Sizing().decoders, sizing.Sizing().writers) == (6, 3)
    monkeypatch.setattr(sizing, "cores", lambda: 1)
    assert (sizing.Sizing().decoders, sizing.Sizing().writers) == (1, 1)
    assert (sizing.Sizing(decode_threads=3, write_threads=5).decoders, sizing.Sizing(write_threads=5).writers) == (3, 5)


def test_read_ahead_is_what_the_budget_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sizing, "cores", lambda: 2)
    hd, uhd, frame = 1920 * 1080 * 12, 3840 * 2160 * 12, 3 * 1024 * 1024 * 4
    budget = sizing.Sizing(read_ahead_mib=512)
    assert budget.read_ahead(hd, frame) == (512 * MIB - 2 * hd) // frame == 38
    assert budget.read_ahead(uhd, frame) == (512 * MIB - 2 * uhd) // frame == 26
    assert sizing.Sizing(read_ahead_mib=1).read_ahead(uhd, frame) == 1  # never none


@pytest.mark.parametrize(
    "env,words",
    [
        ({"ROTOBRIDGE_DECODE_THREADS": "many"}, "$ROTOBRIDGE_DECODE_THREADS: 'many' is not a whole number"),
        ({"ROTOBRIDGE_WRITE_THREADS": "-1"}, "$ROTOBRIDGE_WRITE_THREADS: write_threads: must be a whole number of threads >= 0"),
        ({"ROTOBRIDGE_READ_AHEAD_MIB": "0"}, "$ROTOBRIDGE_READ_AHEAD_MIB: read_ahead_mib: must be a whole number of MiB >= 1"),
    ],
)
def test_bad_environment_names_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError) as err:
        sizing.from_environment(env)
    assert words in str(err.value)


def test_bridge_config_carries_sizing_and_compile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "bridge.toml").write_text('decode_threads = 3\nread_ahead_mib = 64\ncompile = "vos"\n')
    config = configs.load(file=str(tmp_path / "bridge.toml"), env={"ROTOBRIDGE_WRITE_THREADS": "2"})
    assert config.sizing == sizing.Sizing(decode_threads=3, write_threads=2, read_ahead_mib=64)
    assert config.compile == "vos"
    for toml, words in (("decode_threads = -2\n", "decode_threads: must be a whole number of threads"),
                        ("read_ahead_mib = 1.5\n", "read_ahead_mib: must be a whole number"),
                        ('compile = "max"\n', "compile: 'max' is not one of off, image-encoder, vos")):
        (tmp_path / "bad.toml").write_text(toml)
        with pytest.raises(ConfigError, match=words):
            configs.load(file=str(tmp_path / "bad.toml"), env={})


def test_frame_source_reads_ahead_within_its_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pattern = write_sequence(tmp_path / "p", "p", range(1, 4), 64, 48)
    monkeypatch.setattr(sizing, "cores", lambda: 2)
    colour = ColourPipeline("ACEScg")
    with open_plate(pattern) as plate:
        source = FrameSource(plate, colour, plate.info.frames, 256, sizing=sizing.Sizing(read_ahead_mib=4))
        frame = 3 * 256 * 256 * 4
        assert source.prefetch == (4 * MIB - 2 * 64 * 48 * 12) // frame == 5
        assert source._pool._max_workers == 2
        source.close()
        monkeypatch.setenv("ROTOBRIDGE_DECODE_THREADS", "1")
        source = FrameSource(plate, colour, plate.info.frames, 256)
        assert source._pool._max_workers == 1
        source.close()


def test_openimageio_threads_are_set_to_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sizing, "_oiio_threads", None)
    try:
        assert sizing.configure_openimageio(3) == 3
        assert oiio.get_int_attribute("threads") == 3 and oiio.get_int_attribute("exr_threads") == 3
    finally:
        monkeypatch.setattr(sizing, "_oiio_threads", None)
        sizing.configure_openimageio()
    assert oiio.get_int_attribute("exr_threads") == sizing.cores()


@pytest.mark.parametrize("mode", ["image-encoder", "vos"])
def test_compile_options_reach_sam2s_builder(tiny_checkpoint: Path, mode: str) -> None:
    """Built, not run: compilation is lazy and needs a GPU to be worth it (test_cuda.py)."""
    loaded = models.build(TINY_CONFIG, tiny_checkpoint, device="cpu", overrides=SMALL_SIZE, compile=mode)
    assert loaded.compile == mode
    predictor = loaded.predictor
    assert type(predictor).__name__ == ("SAM2VideoPredictorVOS" if mode == "vos" else "SAM2VideoPredictor")
    compiled = [name for name in ("image_encoder", "memory_encoder", "memory_attention", "sam_mask_decoder")
                if "forward" in vars(getattr(predictor, name))]  # torch.compile replaced the bound forward
    assert compiled == (["image_encoder"] if mode == "image-encoder" else
                        ["image_encoder", "memory_encoder", "memory_attention", "sam_mask_decoder"])


def test_compile_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(configs.COMPILE_ENV, raising=False)
    assert models.compile_mode() == "off"
    monkeypatch.setenv(configs.COMPILE_ENV, "vos")
    assert models.compile_mode() == "vos" and models.compile_mode("image-encoder") == "image-encoder"
    monkeypatch.setenv(configs.COMPILE_ENV, "fast")
    with pytest.raises(ModelError, match=r"\$ROTOBRIDGE_COMPILE: 'fast' is not one of off, image-encoder, vos"):
        models.compile_mode()
