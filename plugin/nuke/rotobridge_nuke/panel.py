"""The RotoBridge panel (GUI only): state, objects, progress, previews and messages.

menu.py registers `make_panel` with nukescripts. The panel only shows what NukeHost
reports through `adapter.listen`, for whichever RotoBridge node reported last; every
action stays on the node's buttons, so the panel holds no logic.
"""

from __future__ import annotations

from typing import Any

from rotobridge.protocol import Preview

from . import adapter
from .qt import QtCore, QtGui, QtWidgets

PREVIEW_SIZE = 256


def make_panel() -> Any:
    """The panel's widget; a factory rather than a QWidget subclass, so it type-checks without Qt."""
    widget = QtWidgets.QWidget()
    layout = QtWidgets.QVBoxLayout(widget)
    node, state, objects = QtWidgets.QLabel("Press Connect on a RotoBridge node"), QtWidgets.QLabel(), QtWidgets.QLabel()
    progress, preview, messages = QtWidgets.QProgressBar(), QtWidgets.QLabel(), QtWidgets.QPlainTextEdit()
    messages.setReadOnly(True)
    for child in (node, state, objects, progress, preview, messages):
        layout.addWidget(child)

    def show(name: str, event: str, payload: Any) -> None:
        node.setText(name)
        if event == "state":
            state.setText(str(payload).replace("_", " "))
        elif event == "objects":
            objects.setText("objects: " + (", ".join(payload) or "none"))
        elif event == "progress":
            progress.setMaximum(payload[2])
            progress.setValue(payload[1])
        elif event == "preview":
            preview.setPixmap(_pixmap(payload))
        elif event == "finished":
            messages.appendPlainText(f"tracking {payload[0]}: {payload[1]} of {payload[2]} mattes written")
        elif event == "error":
            messages.appendPlainText(f"{payload[0]}: {payload[1]}")

    def guarded(name: str, event: str, payload: Any) -> None:
        try:
            show(name, event, payload)
        except RuntimeError:  # the panel was closed and Qt deleted its widgets
            adapter.unlisten(guarded)

    adapter.listen(guarded)
    return widget


def _pixmap(preview: Preview) -> Any:
    """The first object's matte, grey, at most PREVIEW_SIZE on its long side."""
    image = QtGui.QImage(preview.planes[0], preview.width, preview.height, preview.width, QtGui.QImage.Format.Format_Grayscale8)
    pixmap = QtGui.QPixmap.fromImage(image.copy())  # copy: QImage does not own the bytes
    return pixmap.scaled(PREVIEW_SIZE, PREVIEW_SIZE, QtCore.Qt.AspectRatioMode.KeepAspectRatio)
