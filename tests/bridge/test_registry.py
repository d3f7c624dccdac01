"""Model registry and checkpoint download, against a local HTTP server (no network)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import importlib.resources
import importlib.util
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rotobridge.bridge import registry
from rotobridge.errors import CheckpointDownloadError, ModelError

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "checkpoints" / "download.py"
PAYLOAD = os.urandom(3 * (1 << 20) + 123)  # several read chunks
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib honours proxy variables; the local server must be reached directly."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)


class _Server:
    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    root = tmp_path / "served"
    root.mkdir()
    (root / "fake.pt").write_bytes(PAYLOAD)
    srv = _Server(root)
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def _spec(url: str, sha256: str = PAYLOAD_SHA) -> registry.ModelSpec:
    return registry.ModelSpec("fake", "configs/sam2.1/sam2.1_hiera_t.yaml", "fake.pt", url, sha256)


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/fake.pt"


def test_registry_has_the_eight_official_models() -> None:
    assert set(registry.MODELS) == {
        f"{gen}-hiera-{size}" for gen in ("sam2", "sam2.1") for size in ("tiny", "small", "base-plus", "large")
    }
    for name, spec in registry.MODELS.items():
        assert spec.name == name
        assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256), name
        base = registry.SAM2_1_BASE_URL if name.startswith("sam2.1-") else registry.SAM2_BASE_URL
        assert spec.url == f"{base}/{spec.filename}"
    assert len({spec.sha256 for spec in registry.MODELS.values()}) == 8


def test_every_config_exists_in_the_installed_sam2() -> None:
    package = importlib.resources.files("sam2")
    missing = [spec.config for spec in registry.MODELS.values() if not (package / spec.config).is_file()]
    assert missing == []


def test_get_unknown_name_lists_known_names() -> None:
    assert registry.get("sam2.1-hiera-tiny").filename == "sam2.1_hiera_tiny.pt"
    with pytest.raises(ModelError) as err:
        registry.get("nope")
    assert "'nope'" in str(err.value)
    for name in registry.MODELS:
        assert name in str(err.value)


def test_checkpoints_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ROTOBRIDGE_CHECKPOINTS", raising=False)
    assert registry.checkpoints_dir() == REPO / "checkpoints"
    monkeypatch.setenv("ROTOBRIDGE_CHECKPOINTS", str(tmp_path))
    assert registry.checkpoints_dir() == tmp_path


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(PAYLOAD)
    assert registry.sha256_file(path) == PAYLOAD_SHA


def test_download_is_atomic_verified_and_idempotent(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "ckpt"
    spec = _spec(f"{server.base_url}/fake.pt")
    seen: list[tuple[bool, bool]] = []

    def progress(done: int, total: int | None) -> None:
        assert total == len(PAYLOAD)
        seen.append(((dest / "fake.pt").exists(), (dest / "fake.pt.part").exists()))

    path = registry.download(spec, dest, progress=progress)
    assert path == dest / "fake.pt"
    assert path.read_bytes() == PAYLOAD
    assert len(seen) > 1 and set(seen) == {(False, True)}  # only the .part exists while streaming
    assert sorted(p.name for p in dest.iterdir()) == ["fake.pt"]
    assert registry.verify(spec, dest) == path

    assert registry.download(spec, dest) == path
    assert server.requests == ["/fake.pt"]  # the second call did not touch the network


def test_download_replaces_a_corrupt_existing_file(server: _Server, tmp_path: Path) -> None:
    (tmp_path / "fake.pt").write_bytes(b"truncated")
    spec = _spec(f"{server.base_url}/fake.pt")
    with pytest.raises(CheckpointDownloadError, match="expected"):
        registry.verify(spec, tmp_path)
    path = registry.download(spec, tmp_path)
    assert path.read_bytes() == PAYLOAD


def test_download_wrong_sha_leaves_nothing(server: _Server, tmp_path: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(CheckpointDownloadError) as err:
        registry.download(_spec(f"{server.base_url}/fake.pt", sha256=wrong), tmp_path / "ckpt")
    assert wrong in str(err.value) and PAYLOAD_SHA in str(err.value)
    assert list((tmp_path / "ckpt").iterdir()) == []


def test_download_wrong_sha_keeps_the_existing_file(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "ckpt"
    dest.mkdir()
    (dest / "fake.pt").write_bytes(b"user's copy")
    with pytest.raises(CheckpointDownloadError):
        registry.download(_spec(f"{server.base_url}/fake.pt", sha256="0" * 64), dest)
    assert sorted(p.name for p in dest.iterdir()) == ["fake.pt"]
    assert (dest / "fake.pt").read_bytes() == b"user's copy"


def test_download_http_error(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "ckpt"
    with pytest.raises(CheckpointDownloadError, match="HTTP 404") as err:
        registry.download(_spec(f"{server.base_url}/missing.pt"), dest)
    assert f"into {dest} by hand" in str(err.value)
    assert list(dest.iterdir()) == []


def test_download_offline(tmp_path: Path) -> None:
    with pytest.raises(CheckpointDownloadError) as err:
        registry.download(_spec(_closed_port_url()), tmp_path, timeout=5)
    message = str(err.value)
    assert "offline" in message
    assert f"into {tmp_path} by hand" in message
    assert f"download.py --verify --dir {tmp_path}" in message
    assert list(tmp_path.iterdir()) == []


def _script(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in PROXY_VARS and k != "ROTOBRIDGE_CHECKPOINTS"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, env=env
    )


def test_script_list() -> None:
    result = _script("--list")
    assert result.returncode == 0, result.stderr
    for spec in registry.MODELS.values():
        assert re.search(rf"^{re.escape(spec.name)}\s+{re.escape(spec.filename)}\s", result.stdout, re.M)
        assert spec.config in result.stdout


def test_script_downloads_from_a_mirror_and_still_checks_sha(server: _Server, tmp_path: Path) -> None:
    # The mirror serves a file under the official name whose bytes are not the official ones.
    spec = registry.get("sam2.1-hiera-tiny")
    served = tmp_path / "served" / spec.filename
    served.write_bytes(PAYLOAD)
    dest = tmp_path / "ckpt"
    result = _script(spec.name, "--dir", str(dest), "--base-url", server.base_url + "/")
    assert result.returncode == CheckpointDownloadError.exit_code
    assert server.requests == [f"/{spec.filename}"]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and PAYLOAD_SHA in lines[0] and spec.sha256 in lines[0]
    assert list(dest.iterdir()) == []


def test_script_offline_is_one_actionable_line(tmp_path: Path) -> None:
    base = _closed_port_url().rsplit("/", 1)[0]
    result = _script("sam2.1-hiera-small", "--dir", str(tmp_path), "--base-url", base, "--timeout", "5")
    assert result.returncode == CheckpointDownloadError.exit_code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "offline" in lines[0] and "--verify" in lines[0]


def test_script_verify(tmp_path: Path) -> None:
    result = _script("--verify", "--dir", str(tmp_path))
    assert result.returncode != 0 and "no checkpoints" in result.stderr

    (tmp_path / "sam2.1_hiera_tiny.pt").write_bytes(b"not the official file")
    result = _script("--verify", "--dir", str(tmp_path))
    assert result.returncode == CheckpointDownloadError.exit_code
    assert "sam2.1_hiera_tiny.pt" in result.stderr and "expected" in result.stderr


def test_script_unknown_name() -> None:
    result = _script("sam3")
    assert result.returncode == ModelError.exit_code
    assert "sam2.1-hiera-large" in result.stderr


def test_script_success_paths_exit_zero(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In-process, with the registry narrowed to the served fake model (real files cannot be fetched here).
    loader = importlib.util.spec_from_file_location("download_script", SCRIPT)
    assert loader is not None and loader.loader is not None
    script = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(script)
    monkeypatch.setattr(registry, "MODELS", {"fake": _spec("unused")})
    dest = tmp_path / "ckpt"

    assert script.main(["fake", "--dir", str(dest), "--base-url", server.base_url]) == 0
    assert (dest / "fake.pt").read_bytes() == PAYLOAD
    assert script.main(["--verify", "--dir", str(dest)]) == 0
    assert script.main(["--all", "--dir", str(dest), "--base-url", server.base_url]) == 0
    assert server.requests == ["/fake.pt"]
    assert capsys.readouterr().out.count(f"{dest / 'fake.pt'}: ok") == 3
