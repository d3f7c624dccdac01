"""EXR mattes: windows, channel names, values, metadata, overwrite rules, atomic writes."""

from __future__ import annotations

import json
import os
import threading
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio
import pytest
import torch
from sam2.sam2_video_predictor import SAM2VideoPredictor

from rotobridge.bridge import mattes
from rotobridge.bridge.mattes import MatteWriter, channel_name, read_matte, upsample_logits
from rotobridge.bridge.plate import Window
from rotobridge.errors import MatteExistsError, OutputError

OBJECTS = [(2, "person"), (1, "car")]  # not alphabetical: EXR sorts channels, ids must not
HD = Window(0, 0, 64, 36)


def logits(n: int = 2, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 4


def writer(tmp_path: Path, display: Window = HD, data: Window = HD, **kw: Any) -> MatteWriter:
    return MatteWriter(str(tmp_path / "out" / "sh010.####.exr"), display, data, OBJECTS, **kw)


def expected(lg: torch.Tensor, display: Window) -> np.ndarray:
    return torch.sigmoid(upsample_logits(lg, display.height, display.width))[:, 0].numpy()


def test_upsample_matches_sam2() -> None:
    lg = logits(3, 32)
    stub = types.SimpleNamespace(non_overlap_masks=False)
    state = {"device": torch.device("cpu"), "video_height": 45, "video_width": 80}
    _, theirs = SAM2VideoPredictor._get_orig_video_res_output(stub, state, lg)
    assert torch.equal(upsample_logits(lg, 45, 80), theirs)
    assert upsample_logits(lg, 32, 32) is lg


def test_channel_name() -> None:
    assert channel_name("car") == "car.A"


@pytest.mark.parametrize(
    ("pattern", "name"),
    [("sh.####.exr", "sh.1001.exr"), ("sh.#.exr", "sh.1001.exr"), ("sh.%05d.exr", "sh.01001.exr"),
     ("sh.@@@@@.exr", "sh.01001.exr"), ("sh.$F6.exr", "sh.001001.exr"), ("sh_##.exr", "sh_1001.exr")],
)
def test_path_styles(tmp_path: Path, pattern: str, name: str) -> None:
    w = MatteWriter(str(tmp_path / pattern), HD, HD, OBJECTS)
    assert w.path(1001) == str(tmp_path / name)


@pytest.mark.parametrize("pattern", ["sh.####.png", "sh.exr"])
def test_bad_patterns(tmp_path: Path, pattern: str) -> None:
    with pytest.raises(OutputError, match=r"\.exr|placeholder"):
        MatteWriter(str(tmp_path / pattern), HD, HD, OBJECTS)


def test_duplicate_object_names_refused(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="distinct"):
        MatteWriter(str(tmp_path / "a.####.exr"), HD, HD, [(1, "car"), (2, "car")])


def test_round_trip_values_channels_metadata(tmp_path: Path) -> None:
    w = writer(tmp_path, data_colourspace="Raw", metadata={"rotobridge:model": "sam2.1_hiera_tiny"})
    w.check([1001])
    lg = logits()
    path = w.write(1001, lg)
    assert path == str(tmp_path / "out" / "sh010.1001.exr")
    channels, header = read_matte(path)
    assert set(channels) == {"person.A", "car.A"}
    want = expected(lg, HD)
    for i, (_, name) in enumerate(OBJECTS):
        np.testing.assert_allclose(channels[f"{name}.A"], want[i], atol=1e-3)
        assert channels[f"{name}.A"].min() >= 0 and channels[f"{name}.A"].max() <= 1
    assert header["data_window"] == HD and header["display_window"] == HD
    assert header["compression"] == "zip"
    assert header["rotobridge:colourspace"] == "Raw"
    assert header["oiio:ColorSpace"] == "data"  # OIIO's interop id for Raw
    assert header["rotobridge:model"] == "sam2.1_hiera_tiny"
    assert header["rotobridge:frame"] == 1001
    assert json.loads(str(header["rotobridge:objects"])) == [
        {"id": 2, "name": "person", "channel": "person.A"},
        {"id": 1, "name": "car", "channel": "car.A"},
    ]


def test_half_float_and_compression_choice(tmp_path: Path) -> None:
    path = writer(tmp_path, compression="piz").write(7, logits())
    image = oiio.ImageInput.open(path)
    assert image is not None and image.spec().format == oiio.HALF
    image.close()
    assert read_matte(path)[1]["compression"] == "piz"


@pytest.mark.parametrize("compression", ["dwaa", "b44", "jpeg"])
def test_lossy_compression_refused(tmp_path: Path, compression: str) -> None:
    with pytest.raises(OutputError, match="lossless"):
        writer(tmp_path, compression=compression)


def test_overscan_data_window_larger(tmp_path: Path) -> None:
    data = Window(-8, -4, 80, 44)
    lg = logits()
    channels, header = read_matte(writer(tmp_path, data=data).write(1, lg))
    assert header["data_window"] == data and header["display_window"] == HD
    car = channels["car.A"]
    assert car.shape == (44, 80)
    np.testing.assert_allclose(car[4:40, 8:72], expected(lg, HD)[1], atol=1e-3)
    car[4:40, 8:72] = 0
    assert not car.any()  # overscan is empty


def test_data_window_smaller_than_display(tmp_path: Path) -> None:
    data = Window(10, 6, 30, 20)
    lg = logits()
    channels, header = read_matte(writer(tmp_path, data=data).write(1, lg))
    assert header["data_window"] == data
    np.testing.assert_allclose(channels["person.A"], expected(lg, HD)[0, 6:26, 10:40], atol=1e-3)


def test_binary_and_absent(tmp_path: Path) -> None:
    lg = logits()
    lg[1] = -1024.0  # sam2's "object absent" score
    channels, _ = read_matte(writer(tmp_path, binary=True).write(1, lg))
    up = upsample_logits(lg, HD.height, HD.width)[:, 0].numpy()
    np.testing.assert_array_equal(channels["person.A"], (up[0] > 0).astype(np.float32))
    assert set(np.unique(channels["person.A"])) == {0.0, 1.0}
    assert not channels["car.A"].any()


def test_none_writes_empty_mattes(tmp_path: Path) -> None:
    channels, _ = read_matte(writer(tmp_path).write(1, None))
    assert all(c.shape == (36, 64) and not c.any() for c in channels.values())


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    w = writer(tmp_path)
    first = w.write(1001, logits())
    before = Path(first).read_bytes()
    with pytest.raises(MatteExistsError) as err:
        w.check([1000, 1001, 1002])
    assert err.value.paths == [first]
    with pytest.raises(MatteExistsError):
        w.write(1001, logits(seed=1))
    assert Path(first).read_bytes() == before
    writer(tmp_path, overwrite=True).check([1001])
    writer(tmp_path, overwrite=True).write(1001, logits(seed=1))
    assert Path(first).read_bytes() != before


def test_refuses_file_that_appears_while_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = writer(tmp_path)
    w.check([1])
    real = mattes._write_exr

    def racing(path: str, spec: oiio.ImageSpec, pixels: np.ndarray) -> None:
        real(path, spec, pixels)
        Path(w.path(1)).write_bytes(b"someone else's")

    monkeypatch.setattr(mattes, "_write_exr", racing)
    with pytest.raises(MatteExistsError):
        w.write(1, logits())
    assert Path(w.path(1)).read_bytes() == b"someone else's"
    assert os.listdir(tmp_path / "out") == ["sh010.0001.exr"]


def test_check_creates_folder_and_detects_unwritable(tmp_path: Path) -> None:
    w = writer(tmp_path)
    w.check([1])
    assert (tmp_path / "out").is_dir() and os.listdir(tmp_path / "out") == []
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="cannot write mattes to"):
        MatteWriter(str(blocker / "sh.####.exr"), HD, HD, OBJECTS).check([1])


def test_written_via_temp_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = writer(tmp_path)
    w.check([5])
    seen: list[str] = []
    real = mattes._write_exr

    def spy(path: str, spec: oiio.ImageSpec, pixels: np.ndarray) -> None:
        real(path, spec, pixels)
        seen.extend(os.listdir(tmp_path / "out"))

    monkeypatch.setattr(mattes, "_write_exr", spy)
    w.write(5, logits())
    assert len(seen) == 1 and seen[0].startswith(".sh010.0005.exr.") and seen[0].endswith(".tmp.exr")
    assert os.listdir(tmp_path / "out") == ["sh010.0005.exr"]


@pytest.mark.parametrize("where", ["writer", "rename"])
def test_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    w = writer(tmp_path)
    w.check([3])
    real = mattes._write_exr

    def half_written(path: str, spec: oiio.ImageSpec, pixels: np.ndarray) -> None:
        Path(path).write_bytes(b"v/1\x01 half a header")
        raise OutputError("disk full")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    if where == "writer":
        monkeypatch.setattr(mattes, "_write_exr", half_written)
    else:
        monkeypatch.setattr(mattes, "_write_exr", real)
        monkeypatch.setattr(mattes.os, "replace", failing_replace)
    with pytest.raises(OutputError, match=r"sh010\.0003\.exr.*(disk full|No space)"):
        w.write(3, logits())
    assert os.listdir(tmp_path / "out") == []


def test_concurrent_writes(tmp_path: Path) -> None:
    w = writer(tmp_path, data=Window(-4, -4, 72, 44))
    w.check(range(8))
    inputs = {f: logits(seed=f) for f in range(8)}
    barrier = threading.Barrier(2)

    def job(frame: int) -> str:
        if frame < 2:
            barrier.wait()
        return w.write(frame, inputs[frame])

    with ThreadPoolExecutor(2) as pool:
        paths = list(pool.map(job, inputs))
    for frame, path in zip(inputs, paths):
        channels, header = read_matte(path)
        assert header["rotobridge:frame"] == frame
        np.testing.assert_allclose(channels["car.A"][4:40, 4:68], expected(inputs[frame], HD)[1], atol=1e-3)
    assert sorted(os.listdir(tmp_path / "out")) == [f"sh010.{f:04d}.exr" for f in range(8)]


@pytest.mark.parametrize("data", [Window(-8, -4, 80, 44), Window(4, 2, 40, 30)], ids=["overscan", "underscan"])
def test_display_mattes_are_what_the_artist_sees(tmp_path: Path, data: Window) -> None:
    lg = logits()
    planes = mattes.read_display_mattes(writer(tmp_path, data=data).write(1, lg), HD)
    want = expected(lg, HD)
    covered = np.zeros((HD.height, HD.width), bool)
    covered[max(data.y, 0) : data.y + data.height, max(data.x, 0) : data.x + data.width] = True
    for i, (_, name) in enumerate(OBJECTS):
        plane = planes[channel_name(name)]
        assert plane.shape == (HD.height, HD.width)
        np.testing.assert_allclose(plane[covered], want[i][covered], atol=1e-3)
        assert (plane[~covered] == 0).all()


def test_every_matte_path_a_recipe_accepts_is_a_sequence_the_writer_reads() -> None:
    """recipe.py checks placeholders without fileseq (hosts lack it); both must agree."""
    from ..host.test_recipe import GOOD_MATTE_PATHS

    for path in GOOD_MATTE_PATHS:
        assert mattes.matte_sequence(path).padding(), path


@pytest.mark.parametrize("binary", [False, True])
def test_planes_are_sam2s_upsample_then_sigmoid_rounded_to_half(binary: bool) -> None:
    lg = logits(3, 32, seed=4)
    full = upsample_logits(lg, 45, 80)[:, 0]
    want = ((full > 0).float() if binary else torch.sigmoid(full)).to(torch.float16)
    planes = mattes.matte_planes(lg, 45, 80, binary=binary)
    assert planes.dtype == torch.float16 and planes.shape == (3, 45, 80)
    assert torch.equal(planes, want)


def test_writing_planes_equals_writing_logits(tmp_path: Path) -> None:
    """The device path (planes made where the logits are, half crossing to the writer) and
    the CPU path (the writer upsamples) write the same bytes of matte."""
    data = Window(-4, -3, 72, 42)  # overscan
    w = writer(tmp_path, HD, data, overwrite=True)
    lg = logits()
    from_logits, _ = read_matte(w.write(1, lg))
    from_planes, _ = read_matte(w.write_planes(2, w.planes(lg)))
    for name in from_logits:
        assert np.array_equal(from_logits[name], from_planes[name])
    with pytest.raises(ValueError, match=r"expected mattes of shape \(2, 36, 64\)"):
        w.write_planes(3, torch.zeros(2, 10, 10, dtype=torch.float16))
    assert not os.path.exists(w.path(3))
