"""Who may talk to the bridge (loopback or CURVE with listed keys) and what it may touch (roots)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest
import zmq.auth

from rotobridge.bridge import cli
from rotobridge.bridge.security import allowed_path, check_bind_address, is_loopback, write_keys
from rotobridge.errors import ConfigError, PathNotAllowedError

from .conftest import shot
from .wire import Peer


@pytest.mark.parametrize(
    "address,loopback",
    [
        ("tcp://127.0.0.1:47400", True),
        ("tcp://127.0.0.2:1", True),
        ("tcp://localhost:47400", True),
        ("tcp://[::1]:47400", True),
        ("tcp://127.0.0.1:*", True),
        ("ipc:///tmp/rotobridge.sock", True),
        ("tcp://0.0.0.0:47400", False),
        ("tcp://*:47400", False),
        ("tcp://[::]:47400", False),
        ("tcp://10.0.0.5:47400", False),
        ("tcp://gpu-box.studio:47400", False),
        ("tcp://eth0:47400", False),
        ("tcp://127.0.0.1", False),
        ("udp://127.0.0.1:47400", False),
    ],
)
def test_only_loopback_and_ipc_count_as_local(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_listening_beyond_loopback_needs_curve() -> None:
    with pytest.raises(ConfigError, match="reachable from other machines, which needs CURVE"):
        check_bind_address("tcp://0.0.0.0:47400", curve=False)
    check_bind_address("tcp://0.0.0.0:47400", curve=True)
    with pytest.raises(ConfigError, match="is not tcp://HOST:PORT"):
        check_bind_address("udp://127.0.0.1:1", curve=True)


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """root/ (allowed) with a plate folder and links in and out; outside/ next to it; root2/ a name-prefix twin."""
    root, outside, twin = tmp_path / "root", tmp_path / "outside", tmp_path / "root2"
    for folder in (root / "plates", outside, twin):
        folder.mkdir(parents=True)
    (root / "link_out").symlink_to(outside)
    (root / "link_in").symlink_to(root / "plates")
    return {"root": root, "outside": outside, "twin": twin}


@pytest.mark.parametrize(
    "path,allowed",
    [
        ("{root}/plates/sh.####.exr", True),
        ("{root}/link_in/sh.####.exr", True),
        ("{root}/new/folder/m.####.exr", True),
        ("{root}/plates/../plates/sh.####.exr", True),
        ("{root}/../outside/sh.####.exr", False),
        ("{root}/plates/../../outside/sh.####.exr", False),
        ("{root}/link_out/sh.####.exr", False),
        ("{root}/link_out/../outside/sh.####.exr", False),  # `..` after a link climbs from its target
        ("{outside}/sh.####.exr", False),
        ("{twin}/sh.####.exr", False),
        ("plates/sh.####.exr", False),
    ],
)
def test_paths_must_resolve_inside_a_root(tree: dict[str, Path], path: str, allowed: bool) -> None:
    roots = (os.path.realpath(tree["root"]),)
    text = path.format(**tree)
    if allowed:
        assert allowed_path(text, roots, "plate").startswith(roots[0])
    else:
        with pytest.raises(PathNotAllowedError) as err:
            allowed_path(text, roots, "plate")
        assert text in str(err.value) and (roots[0] in str(err.value) or "absolute" in str(err.value))


def test_escaping_paths_are_refused_over_the_wire(start_bridge: Any, tree: dict[str, Path]) -> None:
    root, outside = tree["root"], tree["outside"]
    server = start_bridge(root)
    peer = Peer(server.endpoint)
    inside = shot(root, "sh", frames=2)
    elsewhere = shot(outside, "sh", frames=2)
    os.symlink(outside / "sh" / "sh.1002.exr", root / "sh" / "sh.1003.exr")  # one frame links out
    plate_path = inside["plate"]["path"]
    cases = [
        {"plate": {**inside["plate"], "path": str(root / ".." / "outside" / "sh" / "sh.####.exr")}},
        {"plate": {**inside["plate"], "path": str(root / "link_out" / "sh" / "sh.####.exr")}},
        {"plate": elsewhere["plate"]},
        {"plate": {**inside["plate"], "path": "sh/sh.####.exr"}},
        {"output": elsewhere["output"]},
        {"output": {"path": str(root / "link_out" / "m.####.exr")}},
        {"colour": {"config": str(outside / "config.ocio")}},
        {"plate": {**inside["plate"], "frames": "1001-1003"}},
    ]
    for change in cases:
        name, message = peer.error("open", **{**inside, **change})
        assert name == "path_not_allowed", (change, message)
        assert str(os.path.realpath(root)) in message or "absolute" in message
    assert "plate file" in message and "sh.1003.exr" in message
    assert peer.ok("open", **inside)["frames"] == [1001, 1002]
    assert not (outside / "sh_mattes").exists() and plate_path.startswith(str(root))
    peer.close()


def test_default_root_is_the_home_folder(start_bridge: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    server = start_bridge(tmp_path, roots=())
    peer = Peer(server.endpoint)
    name, message = peer.error("open", **shot(tmp_path / "elsewhere"))
    assert name == "path_not_allowed" and f"({home})" in message
    assert peer.ok("open", **shot(home))["width"] == 64
    peer.close()


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    folder = tmp_path / "keys"
    for name in ("bridge", "artist", "stranger"):
        write_keys(folder, name)
    (tmp_path / "authorized").mkdir()
    shutil.copy(folder / "artist.key", tmp_path / "authorized")
    return folder


def _curve(keys: Path, client: str) -> tuple[bytes, bytes, bytes]:
    server_public, _ = zmq.auth.load_certificate(str(keys / "bridge.key"))
    public, secret = zmq.auth.load_certificate(str(keys / f"{client}.key_secret"))
    assert secret is not None
    return server_public, public, secret


def test_curve_bridge_answers_only_listed_clients(
    start_bridge: Any, tmp_path: Path, keys: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_bridge(tmp_path, curve_secret=str(keys / "bridge.key_secret"), curve_authorized=str(tmp_path / "authorized"))
    artist = Peer(server.endpoint, curve=_curve(keys, "artist"))
    assert artist.ok("hello", client="artist")["model"] == "sam2.1_hiera_t"
    for stranger in (Peer(server.endpoint, curve=_curve(keys, "stranger")), Peer(server.endpoint)):
        with pytest.raises(TimeoutError):
            stranger.call("hello", client="stranger", timeout=1.5)
        stranger.close()
    assert artist.ok("ping") == {}
    artist.close()

    common = ["status", "--address", server.endpoint, "--server-key", str(keys / "bridge.key"), "--timeout", "2"]
    assert cli.main([*common, "--client-key", str(keys / "artist.key_secret")]) == 0
    assert "0 session(s)" in capsys.readouterr().out
    assert cli.main([*common, "--client-key", str(keys / "stranger.key_secret")]) == 1
    assert "refused this client's key" in capsys.readouterr().err
    assert cli.main([*common, "--client-key", str(keys / "artist.key")]) == 2  # the public half
    assert "holds no secret-key" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="curve_secret: .*bridge.key holds no secret-key"):
        start_bridge(tmp_path, curve_secret=str(keys / "bridge.key"), curve_authorized=str(tmp_path / "authorized"))


def test_keys_command_writes_a_private_pair_and_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["keys", str(tmp_path / "k"), "--name", "nuke-ws12"]) == 0
    out = capsys.readouterr().out
    public, secret = tmp_path / "k" / "nuke-ws12.key", tmp_path / "k" / "nuke-ws12.key_secret"
    assert str(public) in out and str(secret) in out
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert zmq.auth.load_certificate(str(secret))[1] is not None and zmq.auth.load_certificate(str(public))[1] is None
    before = secret.read_bytes()
    assert cli.main(["keys", str(tmp_path / "k"), "--name", "nuke-ws12"]) == 2
    assert "already exists" in capsys.readouterr().err and secret.read_bytes() == before
    assert cli.main(["keys", str(tmp_path / "k"), "--name", "../x"]) == 2
