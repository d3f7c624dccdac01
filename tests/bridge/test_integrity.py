"""The installed sam2 must be the exact code rotobridge was verified against."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rotobridge.bridge import integrity
from rotobridge.errors import IntegrityError


@pytest.fixture
def sam2_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the installed sam2 package that verify_sam2 checks instead."""
    copy = tmp_path / "sam2"
    shutil.copytree(integrity.sam2_root(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(integrity, "sam2_root", lambda: copy)
    return copy


def test_installed_sam2_verifies() -> None:
    integrity.verify_sam2()


def test_files_cover_the_engine_modules_and_configs() -> None:
    root = integrity.sam2_root()
    relied_on = {p.relative_to(root).as_posix() for p in (root / "modeling").rglob("*.py")}
    for family in ("sam2", "sam2.1"):
        relied_on |= {p.relative_to(root).as_posix() for p in (root / "configs" / family).glob("*.yaml")}
    relied_on |= {"sam2_video_predictor.py", "build_sam.py", "utils/misc.py", "utils/transforms.py"}
    assert relied_on <= set(integrity.SAM2_FILES)


def test_changed_file_is_named(sam2_copy: Path) -> None:
    integrity.verify_sam2()  # the untouched copy passes
    target = sam2_copy / "modeling" / "memory_attention.py"
    target.write_bytes(target.read_bytes() + b"\n# patched\n")
    with pytest.raises(IntegrityError) as err:
        integrity.verify_sam2()
    message = str(err.value)
    assert "modeling/memory_attention.py differs" in message
    assert integrity.SAM2_FILES["modeling/memory_attention.py"] in message
    assert f"verified: {integrity.SAM2_VERSION}" in message
    assert integrity.REINSTALL in message


def test_missing_file_is_named(sam2_copy: Path) -> None:
    (sam2_copy / "configs" / "sam2.1" / "sam2.1_hiera_b+.yaml").unlink()
    with pytest.raises(IntegrityError, match=r"configs/sam2\.1/sam2\.1_hiera_b\+\.yaml is missing"):
        integrity.verify_sam2()


def test_other_version_fails_even_with_identical_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(integrity, "installed_version", lambda: "1.0")
    with pytest.raises(IntegrityError) as err:
        integrity.verify_sam2()
    assert "installed sam2 1.0" in str(err.value) and "verified: 1.1.0" in str(err.value)


def test_cli_ok() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rotobridge.bridge.integrity"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_cli_reports_failure(sam2_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (sam2_copy / "build_sam.py").write_text("# not sam2\n")
    assert integrity.main() == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "build_sam.py differs" in captured.err
