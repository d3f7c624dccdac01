"""Who may talk to the bridge and what it may touch.

A bridge reads plates and writes mattes wherever a client asks, so two rules hold:
it listens on loopback only unless CURVE encryption with a list of authorized client
keys is configured, and every path a client names must resolve (symlinks and `..`
followed) inside one of the configured root folders. An `ipc://` socket is made private:
its folder must be one only this user can open (docs/bridge.md, Threat model).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import stat
from pathlib import Path
from typing import Sequence

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from rotobridge.keys import load_keys
from rotobridge.errors import ConfigError, PathNotAllowedError

log = logging.getLogger(__name__)

_TCP = re.compile(r"^tcp://(?:\[(?P<ip6>[^\]]+)\]|(?P<host>[^:/\[\]]+)):(?P<port>\d+|\*)$")
_KEY_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def is_loopback(address: str) -> bool:
    """Whether only this machine can reach `address` (a loopback tcp address or an ipc socket)."""
    if address.startswith("ipc://"):
        return True
    match = _TCP.match(address)
    if match is None:
        return False
    host = match["ip6"] or match["host"]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # an interface or host name: it may face the network
        return False


def check_bind_address(address: str, *, curve: bool) -> None:
    """Refuse addresses the bridge cannot or must not listen on."""
    if not (address.startswith("ipc://") or _TCP.match(address)):
        raise ConfigError(
            f"address: {address!r} is not tcp://HOST:PORT (e.g. tcp://127.0.0.1:47400) or ipc://PATH"
        )
    if not curve and not is_loopback(address):
        raise ConfigError(
            f"address: {address} is reachable from other machines, which needs CURVE encryption: "
            "set curve_secret (the bridge's key, from `rotobridge keys`) and curve_authorized "
            "(a folder of the clients' public keys), or listen on tcp://127.0.0.1"
        )


def allowed_path(path: str, roots: Sequence[str], what: str) -> str:
    """`path` resolved through symlinks and `..`, if that lies inside one of `roots` (real paths).

    A frame-sequence pattern works as is: its file name part need not exist. Open the
    returned real path, not `path`: it is the one that was checked.
    """
    if not os.path.isabs(path):
        raise PathNotAllowedError(f"{what} {path[:200]!r} must be an absolute path as the bridge's machine sees it")
    try:
        real = os.path.realpath(path)
        inside = any(os.path.commonpath([real, root]) == root for root in roots)
    except (ValueError, UnicodeError):  # NUL, lone surrogates: no file has such a name
        raise PathNotAllowedError(f"{what} {path[:200]!r} is not a valid path") from None
    if inside:
        return real
    via = f" (it resolves to {real})" if real != os.path.normpath(path) else ""
    raise PathNotAllowedError(
        f"{what} {path}{via} is outside the folders this bridge may use ({', '.join(roots)}); "
        "ask whoever runs the bridge to add its folder to `roots`"
    )


def allowed_frames(paths: Sequence[str], roots: Sequence[str], what: str) -> None:
    """`allowed_path` for many files at once: each folder resolved once, then only the files that are symlinks.

    A file that is not a symlink lies where its folder really is, so a plate of 100,000
    frames costs one `lstat` per frame, not a full `realpath`.
    """
    folders: dict[str, str] = {}
    for path in paths:
        folder, name = os.path.split(path)
        if folder not in folders:
            folders[folder] = allowed_path(folder or os.sep, roots, what)
        if os.path.islink(path) or name in ("", ".", ".."):
            allowed_path(path, roots, what)


def private_ipc(address: str) -> str | None:
    """Make an `ipc://PATH` address private: its folder made (mode 0700) or checked to be this user's alone.

    A socket file in a folder others can enter lets every local user drive the bridge,
    read under its roots and write mattes there, so such a folder is refused. Returns the
    folder (None for tcp and Linux abstract `ipc://@name` sockets, which are not private).
    """
    if not address.startswith("ipc://") or address.startswith("ipc://@") or os.name == "nt":
        return None
    folder = os.path.dirname(os.path.abspath(os.path.expanduser(address[len("ipc://") :])))
    if not os.path.isdir(folder):
        try:
            os.makedirs(folder, mode=0o700)
        except OSError as exc:
            raise ConfigError(f"address: cannot make the folder of {address}: {exc.strerror or exc}") from None
    info = os.stat(folder)
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise ConfigError(
            f"address: {address} would be in {folder}, which other users can open (mode "
            f"{stat.S_IMODE(info.st_mode):o}, owner uid {info.st_uid}), so any local user could drive the bridge: "
            f"make it private (chmod 700 {folder}) or use a folder only you can open, e.g. "
            "ipc://$XDG_RUNTIME_DIR/rotobridge/bridge.sock"
        )
    return folder


def write_keys(folder: str | os.PathLike[str], name: str) -> tuple[Path, Path]:
    """A CURVE key pair: NAME.key (public, to hand out) and NAME.key_secret (private, mode 0600)."""
    if not _KEY_NAME.match(name):
        raise ConfigError(f"--name: {name!r} must be 1-64 letters, digits or _.-")
    out = Path(folder)
    public, secret = out / f"{name}.key", out / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise ConfigError(f"{path} already exists: choose another --name or remove the old pair first")
    out.mkdir(parents=True, exist_ok=True)
    zmq.auth.create_certificates(str(out), name)
    os.chmod(secret, 0o600)
    return public, secret


def secure_server(
    socket: zmq.Socket[bytes], context: zmq.Context[zmq.Socket[bytes]], secret_file: str, authorized: str
) -> ThreadAuthenticator:
    """Make `socket` a CURVE server that lets in only the public keys in `authorized` (before bind)."""
    try:
        public_key, secret_key = load_keys(secret_file, secret_file)  # a .key_secret file holds both halves
    except (OSError, ValueError) as exc:
        raise ConfigError(f"curve_secret: {exc}") from None
    if not os.path.isdir(authorized):
        raise ConfigError(f"curve_authorized: {authorized} is not a folder of client public keys (*.key)")
    if not any(name.endswith(".key") for name in os.listdir(authorized)):
        log.warning("curve_authorized %s holds no client keys (*.key): no client can connect", authorized)
    auth = ThreadAuthenticator(context, log=logging.getLogger("rotobridge.bridge.auth"))
    auth.start()
    auth.configure_curve(domain="*", location=authorized)
    socket.curve_secretkey = secret_key.encode("ascii")
    socket.curve_publickey = public_key.encode("ascii")
    socket.curve_server = True
    return auth
