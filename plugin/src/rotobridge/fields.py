"""Reading decoded JSON strictly, with the path of every field in its errors.

Recipes, recipe parts in protocol requests and stored prompts are all validated with
these readers, so every consumer gets the same `RecipeError`s, each naming the offending
field the way a TD would write it (`objects[1].prompts[0].points[2]`). Every reader also
bounds what a value may cost (string length, frame-range size), because recipe parts
arrive from any client of a shared bridge: a refusal here is cheap, work later is not.
Stdlib only.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Sequence, TypeVar

from .errors import RecipeError

T = TypeVar("T")
_FRAMESET = re.compile(r"^\s*-?\d+(\s*-\s*-?\d+(\s*[xy:]\s*\d+)?)?(\s*,\s*-?\d+(\s*-\s*-?\d+(\s*[xy:]\s*\d+)?)?)*\s*$")
_CHUNK = re.compile(r"(-?\d+)(?:\s*-\s*(-?\d+)(?:\s*([xy:])\s*(\d+))?)?")
Check = Callable[[Any, str], T]

#: Longest string a field may hold: Linux's PATH_MAX, enough for any real path or name.
MAX_TEXT = 4096
#: Most frames a frame range may name (each comma-separated chunk counted in full); more
#: than an hour at 24 fps, and what keeps opening a plate a sub-second job.
MAX_FRAMES = 100_000
#: How much of a refused value an error message shows.
_SHOWN = 60


class Fields:
    """Reads one JSON object, remembering the field path for error messages; `done()` refuses unknown fields."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise RecipeError(where or "recipe", f"must be an object, got {kind(data)}")
        self.data = data
        self.where = where
        self.seen: set[str] = set()

    def path(self, key: str) -> str:
        return join(self.where, key)

    def get(self, key: str, check: Check[T], default: Any = ...) -> T:
        """The field checked by `check`; without a `default` it is required (null counts as missing)."""
        self.seen.add(key)
        if key not in self.data or (self.data[key] is None and default is not ...):
            if default is ...:
                raise RecipeError(self.path(key), "is required")
            return default  # type: ignore[no-any-return]
        return check(self.data[key], self.path(key))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise RecipeError(self.path(unknown[0]), f"unknown field (known: {', '.join(sorted(self.seen))})")


def join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def kind(value: Any) -> str:
    """How a JSON value is called in an error message."""
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def shown(value: Any) -> str:
    """A value for an error message, cut short: a refused value may be a megabyte long."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def string(value: Any, where: str) -> str:
    """Non-empty text that any file system, C library and UTF-8 encoder accepts."""
    if not isinstance(value, str) or not value.strip():
        raise RecipeError(where, f"must be a non-empty string, got {kind(value)}")
    if len(value) > MAX_TEXT:
        raise RecipeError(where, f"is {len(value)} characters long; at most {MAX_TEXT} are allowed")
    if "\0" in value:
        raise RecipeError(where, "contains a NUL character, which no path or name may hold: remove it")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RecipeError(where, "contains an unpaired UTF-16 surrogate (\\ud800-\\udfff): send valid Unicode text") from None
    return value


def whole(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecipeError(where, f"must be a whole number, got {kind(value)}")
    return value


def number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RecipeError(where, f"must be a finite number, got {kind(value)}")
    try:
        out = float(value)  # JSON digits decode to an int of any size
    except OverflowError:
        raise RecipeError(where, "is too large: must be a finite number (a float)") from None
    if not math.isfinite(out):
        raise RecipeError(where, f"must be a finite number, got {value}")
    return out


def boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise RecipeError(where, f"must be true or false, got {kind(value)}")
    return value


def listing(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise RecipeError(where, f"must be a list, got {kind(value)}")
    return value


def bounded(most: int, what: str) -> Check[list[Any]]:
    """A list of at most `most` items, checked before any item is read."""

    def check(value: Any, where: str) -> list[Any]:
        items = listing(value, where)
        if len(items) > most:
            raise RecipeError(where, f"has {len(items)} {what}; at most {most} are allowed")
        return items

    return check


def choice(options: Sequence[str]) -> Check[str]:
    def check(value: Any, where: str) -> str:
        if value not in options:
            raise RecipeError(where, f"must be one of {', '.join(options)}, got {shown(value)}")
        return str(value)

    return check


def frameset(value: Any, where: str) -> str:
    """A fileseq frame range naming at most MAX_FRAMES frames (counted here, before any list is built)."""
    text = string(value, where)
    if not _FRAMESET.match(text):
        raise RecipeError(where, f"{shown(text)} is not a frame range such as '1001-1100' or '1001-1100x2'")
    count = frame_count(text)
    if count > MAX_FRAMES:
        raise RecipeError(where, f"{shown(text)} names {count} frames; a plate may have at most {MAX_FRAMES}")
    return text


def frame_count(text: str) -> int:
    """How many frames a frame range names, chunk by chunk (overlaps counted twice): arithmetic only.

    `a-bxN` steps by N, `a-byN` is its complement, `a-b:N` (staggered) is at most a-b.
    """
    total = 0
    for first, last, mode, step in _CHUNK.findall(text):
        if not last:
            total += 1
            continue
        span = abs(int(last) - int(first))
        n = int(step) if step else 1
        stepped = span // n + 1 if n > 0 else span + 1
        total += {"x": stepped, "y": span + 1 - stepped}.get(mode, span + 1)
    return total


def point(value: Any, where: str) -> tuple[float, float]:
    items = listing(value, where)
    if len(items) != 2:
        raise RecipeError(where, f"must be [x, y], got {len(items)} numbers")
    return (number(items[0], f"{where}[0]"), number(items[1], f"{where}[1]"))


def label(value: Any, where: str) -> int:
    label = whole(value, where)
    if label not in (0, 1):
        raise RecipeError(where, f"must be 1 (positive) or 0 (negative), got {label}")
    return label


def box(value: Any, where: str) -> tuple[float, float, float, float]:
    items = listing(value, where)
    if len(items) != 4:
        raise RecipeError(where, f"must be [x0, y0, x1, y1], got {len(items)} numbers")
    x0, y0, x1, y1 = (number(v, f"{where}[{i}]") for i, v in enumerate(items))
    if not (x1 > x0 and y1 > y0):
        raise RecipeError(where, "must have x1 > x0 and y1 > y0 (top-left then bottom-right corner)")
    return (x0, y0, x1, y1)


def rgb(value: Any, where: str) -> tuple[float, float, float]:
    items = listing(value, where)
    if len(items) != 3:
        raise RecipeError(where, "must be [r, g, b]")
    r, g, b = (number(v, f"{where}[{i}]") for i, v in enumerate(items))
    return (r, g, b)
