"""Reading decoded JSON strictly, with the path of every field in its errors.

Recipes, recipe parts in protocol requests and stored prompts are all validated with
these readers, so every consumer gets the same `RecipeError`s, each naming the offending
field the way a TD would write it (`objects[1].prompts[0].points[2]`). Stdlib only.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence, TypeVar

from .errors import RecipeError

T = TypeVar("T")
_FRAMESET = re.compile(r"^\s*-?\d+(\s*-\s*-?\d+(\s*[xy:]\s*\d+)?)?(\s*,\s*-?\d+(\s*-\s*-?\d+(\s*[xy:]\s*\d+)?)?)*\s*$")
Check = Callable[[Any, str], T]


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


def string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise RecipeError(where, f"must be a non-empty string, got {kind(value)}")
    return value


def whole(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecipeError(where, f"must be a whole number, got {kind(value)}")
    return value


def number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (
        float("inf"),
        float("-inf"),
    ):
        raise RecipeError(where, f"must be a finite number, got {kind(value)}")
    return float(value)


def boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise RecipeError(where, f"must be true or false, got {kind(value)}")
    return value


def listing(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise RecipeError(where, f"must be a list, got {kind(value)}")
    return value


def choice(options: Sequence[str]) -> Check[str]:
    def check(value: Any, where: str) -> str:
        if value not in options:
            raise RecipeError(where, f"must be one of {', '.join(options)}, got {value!r}")
        return str(value)

    return check


def frameset(value: Any, where: str) -> str:
    text = string(value, where)
    if not _FRAMESET.match(text):
        raise RecipeError(where, f"{text!r} is not a frame range such as '1001-1100' or '1001-1100x2'")
    return text


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
