"""Host paths ↔ bridge paths, for a bridge that sees the shared storage under another name.

An artist's workstation may mount the show at `/Volumes/shows` (or `S:\\shows`) while the
GPU box mounts it at `/mnt/shows`. Recipes and protocol messages carry paths as the
*bridge* sees them, because the bridge reads the plates and writes the mattes; the host
converts on the way out (plate, mattes, OCIO config) and back (mattes it loads). One
folder pair per host setting, saved with the scene (a Blender preference, Nuke knobs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SEPARATORS = "/\\"
#: `C:`, `C:\\…` or a UNC share `\\\\server\\…`: a folder written the Windows way.
_WINDOWS = re.compile(r"^(?:[A-Za-z]:|\\\\)")


@dataclass(frozen=True)
class PathMap:
    """One folder as the host sees it (`host`) and as the bridge sees it (`bridge`).

    Unset (either side empty) maps nothing. Only whole folder names match: with host
    `/shows`, `/shows/sh010` maps but `/showsX` does not. A trailing separator on either
    side is ignored. A Windows folder (`S:\\shows`, `S:/shows`, `\\\\server\\shows`)
    matches either separator and any letter case, as Windows does (Nuke writes `S:/…`);
    when only one side is Windows, the rest of the path takes the other side's separator
    (a Linux bridge needs `/`); otherwise the rest keeps its own.
    """

    host: str = ""
    bridge: str = ""

    def to_bridge(self, path: str) -> str:
        return _swap(path, self.host, self.bridge)

    def to_host(self, path: str) -> str:
        return _swap(path, self.bridge, self.host)

    def config_to_bridge(self, config: str) -> str:
        """An OCIO config for the bridge: a file mapped like any path, a built-in (`ocio://…`) as it is."""
        return config if config.startswith("ocio://") else self.to_bridge(config)


def _swap(path: str, old: str, new: str) -> str:
    """`path` with the folder `old` replaced by `new` (unchanged if outside `old` or unset)."""
    old, new = old.strip().rstrip(_SEPARATORS), new.strip().rstrip(_SEPARATORS)
    if not (old and new) or not _starts_with(path, old):
        return path
    rest = path[len(old) :]
    if rest[:1] not in ("", *_SEPARATORS):
        return path  # `old` is only the start of a longer name
    if _is_windows(old) and not _is_windows(new):
        rest = rest.replace("\\", "/")
    elif _is_windows(new) and not _is_windows(old) and "\\" in new:
        rest = rest.replace("/", "\\")
    return new + rest


def _starts_with(path: str, folder: str) -> bool:
    head = path[: len(folder)]
    if _is_windows(folder):
        return head.replace("\\", "/").lower() == folder.replace("\\", "/").lower()
    return head == folder


def _is_windows(folder: str) -> bool:
    return bool(_WINDOWS.match(folder)) or "\\" in folder
