"""The one place that imports Qt: the binding of the running Nuke, chosen by its version.

Nuke 15 ships PySide2 (Qt 5.15); Nuke 16 and 17 ship PySide6 (Qt 6.5, VFX Reference
Platform 2024/2025). Trying PySide6 first would load a PySide6 that happens to be on the
path into Nuke 15, against the wrong Qt.
"""

from __future__ import annotations

import nuke

if nuke.NUKE_VERSION_MAJOR >= 16:
    from PySide6 import QtCore, QtGui, QtWidgets
else:
    from PySide2 import QtCore, QtGui, QtWidgets

__all__ = ["QtCore", "QtGui", "QtWidgets"]
