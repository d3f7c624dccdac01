"""Logging for the CLI and the bridge: a human format, or one JSON object per line.

JSON lines are for log collectors on a shared bridge; records may carry `session` and
`request` (pass them with `extra=`), which both formats show. Bugs are logged here with
their traceback, and the error a client receives says where to find it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from typing import Callable, Iterator

from rotobridge.errors import InternalError

FORMATS = ("human", "json")
#: record attributes shown when a log call passes them in `extra`
_CONTEXT = ("session", "request")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **{key: getattr(record, key) for key in _CONTEXT if hasattr(record, key)},
        }
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class HumanFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{key}={getattr(record, key)}" for key in _CONTEXT if hasattr(record, key))
        return super().formatMessage(record) + (f" [{context}]" if context else "")


def configure(level: str = "INFO", fmt: str = "human") -> None:
    """Log to stderr at `level` in `fmt` (human or json), unless logging is set up already (as under pytest)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    logging.basicConfig(level=level, handlers=[handler])


def internal_error(log: logging.Logger, doing: str, **context: str) -> InternalError:
    """Log the exception being handled (a bug) with its traceback; the error to send instead.

    Call from an `except` block. It goes out as `internal`; the message says where the
    traceback is.
    """
    log.exception("bug while %s", doing, extra=context)
    return InternalError(
        f"the bridge failed while {doing} (a bug): the traceback is in the log of the bridge process "
        f"{os.getpid()} on {socket.gethostname()}"
    )


@contextlib.contextmanager
def frame_progress(total: int, *, quiet: bool = False, stream: object = None) -> Iterator[Callable[[int, int], None]]:
    """Yields `report(frame, done)`, called once per matte written with the frames now whole
    on disk: a progress bar on a terminal; elsewhere (a farm's log) one log line per frame
    with the count and percentage, which farm managers parse; nothing when `quiet`."""
    out = stream if stream is not None else sys.stderr
    if quiet:
        yield lambda frame, done: None
        return
    if getattr(out, "isatty", lambda: False)():
        from tqdm import tqdm

        bar = tqdm(total=total, unit="frame", desc="mattes", file=out)
        try:
            yield lambda frame, done: bar.update(done - bar.n)
        finally:
            bar.close()
        return
    log = logging.getLogger("rotobridge.progress")

    def report(frame: int, done: int) -> None:
        log.info("frame %d written: %d/%d (%.1f%%)", frame, done, total, 100.0 * done / total if total else 100.0)

    yield report
