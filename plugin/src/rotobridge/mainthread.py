"""Handing work to a host's main thread, where host data may be touched.

Results of the bridge arrive on the client's I/O thread; Nuke and Blender allow changes
to their scenes only on the main thread. A `Dispatch` is how the client hands a callback
over: Nuke's is `nuke.executeInMainThread`; Blender has none, so its add-on uses a
`MainThreadQueue` drained from a `bpy.app.timers` timer. Stdlib only.
"""

from __future__ import annotations

import collections
import logging
from typing import Callable

log = logging.getLogger(__name__)

#: Runs a callable soon on the host's main thread; callable from any thread.
Dispatch = Callable[[Callable[[], None]], None]


class MainThreadQueue:
    """A `Dispatch` for hosts: queues callables; the host runs them with `drain()`.

    Blender: `bpy.app.timers.register(lambda: (q.drain(), 0.05)[1], persistent=True)`.
    Thread-safe; `drain` runs at most `max_items` callables (by default those queued when
    it started), logs and skips any that raise, and returns how many it ran.
    """

    def __init__(self) -> None:
        self._items: collections.deque[Callable[[], None]] = collections.deque()

    def __call__(self, fn: Callable[[], None]) -> None:
        self._items.append(fn)

    def __len__(self) -> int:
        return len(self._items)

    def drain(self, max_items: int | None = None) -> int:
        limit = len(self._items) if max_items is None else max_items
        ran = 0
        while ran < limit:
            try:
                fn = self._items.popleft()
            except IndexError:
                break
            ran += 1
            try:
                fn()
            except Exception:
                log.exception("a rotobridge callback failed")
        return ran


def post(dispatch: Dispatch | None, fn: Callable[[], None]) -> None:
    """Hand `fn` to `dispatch` (or run it here without one); its errors are logged, never raised."""

    def guarded() -> None:
        try:
            fn()
        except Exception:
            log.exception("a rotobridge callback failed")

    if dispatch is None:
        guarded()
        return
    try:
        dispatch(guarded)
    except Exception:
        log.exception("the host's dispatch refused a rotobridge callback")
