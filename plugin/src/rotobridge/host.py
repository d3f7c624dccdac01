"""What a host adapter implements for the controller, and the states it is told about.

The host API, apart from its implementation (controller.py), in the manner of
OpenAssetIO: a Nuke node or a Blender clip implements `Host`; the controller decides
everything else. States: disconnected -> connecting -> ready -> session_open ->
propagating (-> cancelling) -> session_open. Stdlib only.
"""

from __future__ import annotations

from typing import Callable, Protocol

from . import recipe
from .protocol import Preview
from .recipe import Shot

DISCONNECTED = "disconnected"
CONNECTING = "connecting"
READY = "ready"
SESSION_OPEN = "session_open"
PROPAGATING = "propagating"
CANCELLING = "cancelling"


class Host(Protocol):
    """What only the host knows or can do; an adapter implements it, the controller calls it."""

    def shot(self) -> Shot:
        """The plate, colour and output of this shot; HostError when the scene cannot say."""

    def load_prompts(self) -> str:
        """The stored prompt model ("" when there is none yet)."""

    def store_prompts(self, text: str) -> None:
        """Keep the prompt model with the shot (it changed: reflect it in the host too)."""

    def dispatch(self, fn: Callable[[], None]) -> None:
        """Run `fn` soon on the host's main thread; callable from any thread."""

    def state_changed(self, state: str) -> None:
        """The controller entered `state` (one of the module's state names)."""

    def show_preview(self, preview: Preview) -> None:
        """Show one frame's preview mattes (one plane per object id in `preview.objects`)."""

    def progress(self, frame: int, done: int, total: int) -> None:
        """A matte of a propagation was written."""

    def mattes_written(self, output: recipe.Output, status: str, written: int, total: int) -> None:
        """A propagation ended (done, cancelled or failed): end its progress, reload the mattes."""

    def on_error(self, title: str, message: str) -> None:
        """Tell the artist; the only place errors become UI."""
