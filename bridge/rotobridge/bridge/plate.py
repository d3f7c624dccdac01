"""Plates in: frame sequences through OpenImageIO, movie files through OpenCV.

(Skeleton: the data types below are the contract other modules use.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """A pixel rectangle: origin top-left, x right, y down (OpenImageIO/EXR convention)."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class PlateInfo:
    """What is known about a plate once opened; frames are plate frame numbers."""

    path: str
    frames: tuple[int, ...]
    display: Window
    data: Window
    channels: tuple[str, ...]
    is_float: bool
    bits: int
    file_colourspace: str | None
