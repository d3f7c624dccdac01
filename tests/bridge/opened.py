"""Which files under a folder a process opens (or creates) while a block runs.

Two witnesses, because the bridge opens files from Python (mask prompts, temporary
files) and from C++ (OpenImageIO plates, OpenColorIO configs and LUTs):
- a Python audit hook on "open" (`sys.addaudithook`) sees every open through Python,
  with the path as given (a symlink inside the roots that points out is resolved here);
- on Linux, inotify on every folder under the watched one sees every open, create and
  rename-into by any code in any process, C++ included, whichever path it was reached by.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import struct
import sys
from pathlib import Path
from typing import Any, Iterator

_IN_OPEN, _IN_CREATE, _IN_MOVED_TO = 0x20, 0x100, 0x80
_EVENT = struct.Struct("iIII")

#: the folder the audit hook watches now (a hook cannot be removed, so it is installed once)
_watched: list[tuple[str, list[str]]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "open" or not _watched or not isinstance(args[0], (str, bytes, os.PathLike)):
        return
    path = os.fsdecode(args[0])
    real = os.path.realpath(path)
    for folder, seen in _watched:
        if real == folder or real.startswith(folder + os.sep):
            seen.append(f"python open {path} -> {real}")


_hooked = False


class _Inotify:
    def __init__(self, folder: str) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self.folders: dict[int, str] = {}
        for here in [here for here, _, _ in os.walk(folder)]:  # listed first: listing opens them
            wd = libc.inotify_add_watch(self.fd, os.fsencode(here), _IN_OPEN | _IN_CREATE | _IN_MOVED_TO)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch {here}")
            self.folders[wd] = here

    def read(self) -> list[str]:
        events = []
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return events
            offset = 0
            while offset < len(data):
                wd, mask, _, length = _EVENT.unpack_from(data, offset)
                name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0").decode()
                offset += _EVENT.size + length
                what = "open" if mask & _IN_OPEN else "create" if mask & _IN_CREATE else "moved in"
                events.append(f"{what} {os.path.join(self.folders.get(wd, '?'), name)}")

    def close(self) -> None:
        os.close(self.fd)


@contextlib.contextmanager
def watch(folder: Path) -> Iterator[list[str]]:
    """Yields a list that fills with every open or creation of a file or folder under `folder`."""
    global _hooked
    if not _hooked:
        sys.addaudithook(_audit)
        _hooked = True
    seen: list[str] = []
    entry = (os.path.realpath(folder), seen)
    inotify = _Inotify(entry[0]) if sys.platform.startswith("linux") else None
    _watched.append(entry)
    try:
        yield seen
    finally:
        _watched.remove(entry)
        if inotify is not None:
            seen.extend(inotify.read())
            inotify.close()


def inotify_works() -> bool:
    return sys.platform.startswith("linux")
