"""QC contact sheet: layout, overlay only where the mattes are, atomic write."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from rotobridge.bridge.qc import GAP, write_qc
from rotobridge.errors import OutputError

W, H = 160, 90


def frames(count: int) -> list[tuple[int, np.ndarray, dict[str, np.ndarray]]]:
    rng = np.random.default_rng(5)
    car = np.zeros((H, W), np.float32)
    car[40:80, 100:150] = 1.0
    person = np.zeros((H, W), np.float32)
    person[50:85, 10:40] = 1.0
    return [(1001 + n, rng.integers(0, 256, (H, W, 3), dtype=np.uint8), {"car": car, "person": person})
            for n in range(count)]


def read_rgb(path: str) -> np.ndarray:
    bgr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert bgr is not None and bgr.dtype == np.uint8
    return bgr[..., ::-1]


def test_sheet_layout_and_overlay(tmp_path: Path) -> None:
    shots = frames(5)
    path = write_qc(str(tmp_path / "qc" / "sheet.png"), shots)
    assert os.listdir(tmp_path / "qc") == ["sheet.png"]
    sheet = read_rgb(path)
    assert sheet.shape == (2 * (H + GAP) + GAP, 4 * (W + GAP) + GAP, 3)  # 4 columns, 2 rows, no scaling

    for n, (_, picture, mattes) in enumerate(shots):
        top, left = GAP + (n // 4) * (H + GAP), GAP + (n % 4) * (W + GAP)
        tile = sheet[top : top + H, left : left + W].astype(int)
        inside = (mattes["car"] > 0) | (mattes["person"] > 0)
        outside = ~inside
        outside[:40, :80] = False  # the frame number is written there
        assert (tile[outside] == picture[outside]).all()
        assert (np.abs(tile[inside] - picture[inside]).sum(axis=1) > 0).all()
        car_tint = tile[45:75, 105:145].mean(axis=(0, 1)) - picture[45:75, 105:145].mean(axis=(0, 1))
        person_tint = tile[55:80, 15:35].mean(axis=(0, 1)) - picture[55:80, 15:35].mean(axis=(0, 1))
        assert np.abs(car_tint - person_tint).max() > 20  # distinct colours per object
        assert (tile[:40, :80] != picture[:40, :80]).any()  # the frame number


def test_sheet_shrinks_to_max_width(tmp_path: Path) -> None:
    sheet = read_rgb(write_qc(str(tmp_path / "s.png"), frames(2), max_width=200))
    width = (200 - 3 * GAP) // 2
    assert sheet.shape == (round(H * width / W) + 2 * GAP, 2 * width + 3 * GAP, 3)


def test_unwritable_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match="cannot write QC picture"):
        write_qc(str(blocker / "s.png"), frames(1))
