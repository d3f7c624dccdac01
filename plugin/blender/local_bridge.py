"""`rotobridge serve` as a child process of Blender: the "Start local bridge" button.

The command is the preferences' bridge (a venv folder or its `rotobridge` program), its
address, and extra `serve` arguments. Output goes to a log file (in Blender's session
temporary folder, removed when Blender quits); `poll` (run by the
add-on's timer) says once when the bridge listens (its log says "serving") or died.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from typing import IO

from rotobridge.errors import HostError


@dataclass(frozen=True)
class Event:
    serving: bool
    text: str


_process: subprocess.Popen[bytes] | None = None
_log: IO[bytes] | None = None
_announced = False
_serving = False


def program(bridge: str) -> str:
    """The `rotobridge` program of a venv folder, or `bridge` itself."""
    if os.path.isdir(bridge):
        for candidate in (os.path.join(bridge, "bin", "rotobridge"), os.path.join(bridge, "Scripts", "rotobridge.exe")):
            if os.path.isfile(candidate):
                return candidate
        raise HostError(f"{bridge} has no bin/rotobridge: set the bridge's venv folder (made by install/setup.sh)")
    if not os.path.isfile(bridge):
        raise HostError(f"the bridge program {bridge!r} does not exist: set it in the add-on's preferences")
    return bridge


def command(bridge: str, address: str, arguments: str) -> list[str]:
    return [program(bridge), "serve", "--address", address, *shlex.split(arguments)]


def start(bridge: str, address: str, arguments: str, folder: str | None = None) -> str:
    """Start the bridge unless this Blender already runs one; returns its log file (in `folder`)."""
    global _process, _log, _announced, _serving
    if running():
        assert _log is not None
        return _log.name
    argv = command(bridge, address, arguments)
    _log = tempfile.NamedTemporaryFile(prefix="rotobridge-serve-", suffix=".log", dir=folder or None, delete=False)
    try:
        _process = subprocess.Popen(argv, stdout=_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise HostError(f"cannot start the bridge ({shlex.join(argv)}): {exc}") from None
    _announced = _serving = False
    return _log.name


def running() -> bool:
    return _process is not None and _process.poll() is None


def serving() -> bool:
    """The bridge this Blender started is up and has said it listens."""
    return _serving and running()


def poll() -> Event | None:
    """Once: serving (the log says so) or exited (with the log's end); else None."""
    global _announced, _serving
    if _process is None or _log is None or _announced:
        return None
    with open(_log.name, "rb") as log:
        text = log.read().decode("utf-8", "replace")
    if _process.poll() is not None:
        _announced = True
        return Event(False, f"the bridge exited with status {_process.returncode}; its log ({_log.name}) ends:\n{text[-1500:]}")
    if "serving " in text:
        _announced = _serving = True
        return Event(True, text)
    return None


def stop(timeout: float = 5.0) -> None:
    """Stop the bridge this Blender started (SIGTERM, then kill)."""
    global _process
    if _process is not None and _process.poll() is None:
        _process.terminate()
        try:
            _process.wait(timeout)
        except subprocess.TimeoutExpired:
            _process.kill()
            _process.wait()
    _process = None
