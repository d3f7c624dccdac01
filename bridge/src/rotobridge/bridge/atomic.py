"""Files that appear whole or not at all: write beside, then rename.

Stdlib only, so scoring processes and tools that write a report need not import torch or
OpenImageIO (the modules that write mattes do).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator


@contextlib.contextmanager
def atomic_file(path: str) -> Iterator[str]:
    """Yield a hidden temporary path beside `path`; rename it to `path` on success, else remove it.

    The temporary name starts with a dot and ends ``.tmp<ext>`` so globs and sequence scans
    for the real files do not pick it up, and keeps the extension so writers pick the format.
    """
    folder, name = os.path.split(path)
    ext = os.path.splitext(name)[1]
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{ext}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def remove_temporaries(path: str) -> list[str]:
    """Remove the temporary files `atomic_file` left beside `path` when a process was killed
    mid-write; returns their names. Only for files this caller alone writes."""
    folder, name = os.path.split(path)
    ext = os.path.splitext(name)[1]
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.listdir(folder or "."):
            if entry.startswith(f".{name}.") and entry.endswith(f".tmp{ext}"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(folder, entry))
                    removed.append(entry)
    return removed
