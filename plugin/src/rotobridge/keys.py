"""CURVE keys for a bridge on another machine: reading ZeroMQ certificate files, checking pairs.

A bridge that listens beyond loopback encrypts with CURVE and accepts only the public keys
it lists (`rotobridge keys`, docs/bridge.md). An artist's host needs the bridge's public
key (`server.key`) and its own key pair (`<name>.key_secret`, which holds both halves).
Stdlib + pyzmq: hosts import it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import zmq

from .errors import HostError


@dataclass(frozen=True)
class Keys:
    """CURVE keys (z85 text) for a bridge outside this machine."""

    server_key: str
    client_public: str
    client_secret: str

    @classmethod
    def from_files(cls, server_public_file: str, client_secret_file: str) -> Keys:
        """From the bridge's `.key` file and this artist's `.key_secret` file."""
        public, secret = load_keys(client_secret_file, client_secret_file)
        return cls(load_public_key(server_public_file), public, secret)

    def as_bytes(self) -> tuple[bytes, bytes, bytes]:
        """(server, public, secret) for zmq's CURVE socket options, checked; ValueError names the key."""
        if not zmq.has("curve"):
            raise ValueError("this pyzmq/libzmq has no CURVE support; cannot use server_key")
        keys = []
        for label in ("server_key", "client_public", "client_secret"):
            key = getattr(self, label)
            if not (isinstance(key, str) and len(key) == 40):
                raise ValueError(f"{label}: must be a 40-character z85 CURVE key (see load_keys)")
            keys.append(key.encode("ascii"))
        if zmq.curve_public(keys[2]) != keys[1]:
            raise ValueError("client_public and client_secret are not the same key pair")
        return keys[0], keys[1], keys[2]

    @classmethod
    def throwaway(cls, server_key: str) -> Keys:
        """A fresh client pair, for a bridge that encrypts but accepts any client."""
        public, secret = zmq.curve_keypair()
        return cls(server_key, public.decode("ascii"), secret.decode("ascii"))


def from_settings(server_key_file: str, client_key_file: str) -> Keys | None:
    """The keys a host's settings name (a file path each, either may be empty).

    None when neither is set (a bridge on this machine); HostError saying which setting
    to fix when one is missing or a file cannot be read.
    """
    server, mine = server_key_file.strip(), client_key_file.strip()
    if not (server or mine):
        return None
    if not (server and mine):
        missing = "the bridge's public key file (.key)" if not server else "your key pair file (.key_secret)"
        raise HostError(f"a remote bridge needs both key files: set {missing}")
    try:
        return Keys.from_files(server, mine)
    except (OSError, ValueError) as exc:
        raise HostError(f"cannot read the keys (bridge key {server!r}, your key {mine!r}): {exc}") from None


def load_keys(public_file: str | os.PathLike[str], secret_file: str | os.PathLike[str]) -> tuple[str, str]:
    """(public, secret) z85 keys from ZeroMQ certificate files.

    `zmq.auth.create_certificates(dir, name)` writes `name.key` (public) and
    `name.key_secret` (both keys). Raises OSError or ValueError naming the file.
    """
    from zmq.auth.certs import load_certificate

    public, _ = load_certificate(public_file)
    paired, secret = load_certificate(secret_file)
    if secret is None:
        raise ValueError(f"{os.fspath(secret_file)} holds no secret-key: pass the .key_secret file")
    if paired != public:
        raise ValueError(f"{os.fspath(public_file)} and {os.fspath(secret_file)} are not the same key pair")
    return public.decode("ascii"), secret.decode("ascii")


def load_public_key(public_file: str | os.PathLike[str]) -> str:
    """The z85 public key in a ZeroMQ certificate file (e.g. the bridge's `server.key`)."""
    from zmq.auth.certs import load_certificate

    return load_certificate(public_file)[0].decode("ascii")
