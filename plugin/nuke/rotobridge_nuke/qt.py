"""The one place that imports Qt: PySide6 in Nuke 16, PySide2 in Nuke 15."""

from __future__ import annotations

try:
    from PySide6 import QtCore, QtGui, QtWidgets
except ImportError:
    from PySide2 import QtCore, QtGui, QtWidgets  # Nuke 15

__all__ = ["QtCore", "QtGui", "QtWidgets"]
