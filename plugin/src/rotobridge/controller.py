"""The session state machine a host panel drives: one shot, its prompts, one bridge session.

Everything a Nuke node and a Blender panel have in common lives here and is tested once
(tests/host/test_controller.py, and through each adapter by tests/host/host_suite.py).
An adapter implements `host.Host` — what only the host knows (the plate, where prompts
are stored, its main thread, its UI) — and calls the controller's methods from its buttons.

States: disconnected -> connecting -> ready -> session_open -> propagating (-> cancelling)
-> session_open. A lost connection shows as connecting while the client reconnects and
re-attaches the session by itself.

Threading: public methods run on the host's main thread and return at once. Bridge
requests go out through the client's callback API (`Pending.then`); their answers, like
the client's events, come back through `Host.dispatch`, so every `Host` callback runs on
the main thread, which never waits for the bridge.

The prompt model is the truth. Each edit is stored in the host at once (a saved script
keeps it) and then sent to the session by `sync`, latest only; edits made while no session is open are sent
when one opens, which is also how a reopened script restores its session. Errors of any
kind end in exactly one place, `Host.on_error(title, message)`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, TypeVar

from . import errors, recipe
from .client import Client, Pending
from .controls import MatteControls
from .coords import Box
from .errors import BridgeUnreachableError, PromptError, RecipeError, RotobridgeError
from .host import CANCELLING, CONNECTING, DISCONNECTED, PROPAGATING, READY, SESSION_OPEN, Host
from .keys import Keys
from .protocol import Message
from .prompts import Colour, PromptModel
from .recipe import Shot
from .sync import SessionSync

log = logging.getLogger(__name__)

T = TypeVar("T")

ClientFactory = Callable[..., Client]


@dataclass
class _Job:
    session: str
    cancelling: bool = False


@dataclass
class _Connection:
    """One client; answers and events of a replaced connection are dropped."""

    client: Client
    address: str
    greeted: bool = False  # hello answered
    lost: bool = False  # the client is reconnecting


class Controller:
    """One shot's prompts and bridge session, driven from the host's main thread."""

    def __init__(self, host: Host, *, client_factory: ClientFactory = Client) -> None:
        self.host = host
        self._factory = client_factory
        self._conn: _Connection | None = None
        self._open_pending = False
        self._shot: Shot | None = None
        self._model: recipe.Model | None = None  # what the session's bridge serves
        self._job: _Job | None = None
        self._sync: SessionSync | None = None  # the open session's prompts, kept in line
        self._ran = False  # this session wrote mattes: reruns overwrite them
        self._direction = "both"
        self._state = DISCONNECTED
        #: the `hello` answer: bridge version, model, device
        self.bridge: dict[str, Any] = {}
        self.session: str | None = None
        self.frames: tuple[int, int] | None = None
        try:
            self.prompts = PromptModel.loads(host.load_prompts())
        except RotobridgeError as exc:
            self.prompts = PromptModel()
            self.report(exc)

    @property
    def state(self) -> str:
        if self._conn is None:
            return DISCONNECTED
        if not self._conn.greeted or self._conn.lost:
            return CONNECTING
        if self.session is None:
            return READY
        if self._job is not None:
            return CANCELLING if self._job.cancelling else PROPAGATING
        return SESSION_OPEN

    @property
    def sending(self) -> bool:
        """Whether prompts or matte controls are on their way to the session (a panel may show it)."""
        return self._sync is not None and self._sync.sending

    # --- connection and session ----------------------------------------------------

    def connect(self, address: str, keys: Keys | None = None) -> None:
        """Connect to a bridge (closing any earlier connection); `ready` once it answers."""
        self.disconnect()
        links: list[_Connection] = []  # the client reports before it is assigned

        def on_state(state: str, why: str) -> None:
            if links and links[0] is self._conn:
                links[0].lost = state == "lost"
                self._notify()

        try:
            client = self._factory(
                address, keys=keys, dispatch=self.host.dispatch, on_state=on_state, on_session_lost=self._on_session_lost
            )
        except (RotobridgeError, ValueError, OSError) as exc:
            self.report(exc)
            return
        conn = self._conn = _Connection(client, address)
        links.append(conn)
        self._notify()

        def greeted(info: dict[str, Any]) -> None:
            self.bridge, conn.greeted = info, True
            self._notify()
            if self._open_pending:
                self.open_shot()

        def failed(exc: RotobridgeError) -> None:
            self.disconnect()
            self.report(exc, address)

        self._run(client.hello(), greeted, failed)

    def disconnect(self) -> None:
        """Close the session and the connection; prompts stay."""
        conn, session = self._conn, self.session
        if conn is None:
            return
        self._conn, self._open_pending = None, False
        self._forget_session()
        client = conn.client
        if session is None:
            client.close()
        else:  # the client closes once the bridge answered (or gave up), whatever the main thread does
            try:
                client.close_session(session).when_done(client.close)
            except RotobridgeError:
                client.close()
        self._notify()

    def open_shot(self) -> None:
        """Open a session on the host's shot and replay the stored prompts into it."""
        try:
            shot = self.host.shot()
        except RotobridgeError as exc:
            self.report(exc)
            return
        conn = self._conn
        if conn is None:
            self.report(PromptError("not connected to a bridge: connect first"))
            return
        if not conn.greeted:
            self._open_pending = True  # opened once hello is answered
            return
        self._open_pending = False
        old, client = self.session, conn.client
        self._forget_session()
        if old is not None:
            self._run(client.close_session(old), failed=lambda e: log.debug("closing a gone session: %s", e))
        self._run(client.open(**shot.fields()), lambda r: self._opened(shot, r))

    def _opened(self, shot: Shot, result: Mapping[str, Any]) -> None:
        session, size = str(result["session"]), (int(result["width"]), int(result["height"]))
        if shot.size is not None and shot.size != size:
            self.report(
                PromptError(
                    f"the plate the bridge reads is {size[0]}x{size[1]} but the host shows {shot.size[0]}x"
                    f"{shot.size[1]}: check the plate's format (clicks would land in the wrong place)"
                )
            )
            self._call(lambda c, s: c.close_session(s), session=session)
            return
        first, last = result["frames"]
        self._shot, self.session, self.frames = shot, session, (int(first), int(last))
        if self._conn is not None:
            self._sync = SessionSync(self._conn.client, session, self.prompts, self._run, self.host.show_preview, self.report)
        try:
            self._model = recipe.parse_part("model", result.get("model"), "model")
        except RecipeError:
            self._model = None  # export says why
        self._notify()
        for obj in self.prompts.objects:
            for prompt in obj.prompts:
                self._send(obj.id, prompt.frame, show=False)

    def _forget_session(self) -> None:
        self.session, self.frames, self._job, self._ran, self._model = None, None, None, False, None
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    # --- prompts -------------------------------------------------------------------

    def add_object(self, name: str, colour: Colour | None = None) -> int | None:
        """A new object (it reaches the bridge with its first click); its id, None on error."""
        done = self._edit(lambda: self.prompts.add_object(name, colour))
        return None if done is None else done[0].id

    def rename_object(self, object_id: int, name: str) -> None:
        if self._edit(lambda: self.prompts.rename(object_id, name)):
            frames = self.prompts.frames(object_id)
            if frames:
                self._send(object_id, frames[0], show=False)  # the name travels with prompts

    def recolour_object(self, object_id: int, colour: Colour | None) -> None:
        self._edit(lambda: self.prompts.recolour(object_id, colour))

    def remove_object(self, object_id: int) -> None:
        tracked = object_id in {o.id for o in self.prompts.objects} and bool(self.prompts.frames(object_id))
        if self._edit(lambda: self.prompts.remove(object_id)) and tracked:
            self._call(lambda c, s: c.remove(s, object_id))

    def click(self, object_id: int, frame: int, x: float, y: float, positive: bool = True) -> None:
        """Add a point (plate pixels) and show the new preview."""
        if self._edit(lambda: self.prompts.add_point(object_id, frame, x, y, positive)):
            self._send(object_id, frame)

    def move_point(self, object_id: int, frame: int, index: int, x: float, y: float) -> None:
        if self._edit(lambda: self.prompts.move_point(object_id, frame, index, x, y)):
            self._send(object_id, frame)

    def set_box(self, object_id: int, frame: int, box: Box | None) -> None:
        if self._edit(lambda: self.prompts.set_box(object_id, frame, box)):
            self._send(object_id, frame)

    def clear(self, object_id: int, frame: int) -> None:
        if self._edit(lambda: self.prompts.clear(object_id, frame)):
            self._send(object_id, frame)

    def preview(self, frame: int) -> None:
        """Show the preview of a frame that holds prompts or was tracked."""
        self._call(lambda c, s: c.preview(s, frame), self.host.show_preview)

    def set_matte(self, object_id: int, controls: MatteControls | None, frame: int) -> None:
        """Set an object's matte controls (None: SAM 2's raw matte), store them, and show
        `frame`'s preview with them: the bridge re-previews from what it tracked, it never
        re-tracks. An object not in the session yet takes its controls with its first click."""
        if self._edit(lambda: self.prompts.set_matte(object_id, controls)) and self._sync is not None:
            self._sync.matte(object_id, frame)

    def _edit(self, change: Callable[[], T]) -> tuple[T] | None:
        """Apply an edit to the prompt model and store it: (its result,), or None if refused."""
        if self._job is not None:
            self.report(PromptError("tracking is running: wait for it to finish or cancel it before changing prompts"))
            return None
        try:
            result = change()
        except RotobridgeError as exc:
            self.report(exc)
            return None
        self.host.store_prompts(self.prompts.dumps())
        return (result,)

    def _send(self, object_id: int, frame: int, show: bool = True) -> None:
        """Send the model's prompts of an object on a frame (without a session, the model catches up when one opens)."""
        if self._sync is not None:
            self._sync.prompt(object_id, frame, show)

    # --- tracking ------------------------------------------------------------------

    def propagate(
        self, direction: str = "both", first: int | None = None, last: int | None = None, overwrite: bool | None = None
    ) -> None:
        """Track the prompts over first..last (default: the plate) and write mattes.

        `overwrite` None means: replace mattes this session wrote (reruns after
        corrections), refuse to replace anything else.
        """
        conn, session, frames = self._conn, self.session, self.frames
        if self.state != SESSION_OPEN or conn is None or session is None or frames is None:
            self.report(PromptError(f"cannot track now ({self.state.replace('_', ' ')}): open the shot first"))
            return
        if not self.prompts.frames():
            self.report(PromptError("there are no clicks yet: click on an object first"))
            return
        job = _Job(session)
        self._job, self._direction = job, direction
        self._notify()
        replace = self._ran if overwrite is None else overwrite
        start, end = frames[0] if first is None else first, frames[1] if last is None else last

        def failed(exc: RotobridgeError) -> None:
            if self._job is job:
                self._job = None
                self._notify()
            self.report(exc)

        client = conn.client
        self._run(client.propagate(session, start, end, direction, replace, on_event=lambda ev: self._event(job, ev)), None, failed)

    def cancel(self) -> None:
        job = self._job
        if job is None or job.cancelling:
            return
        job.cancelling = True
        self._notify()
        self._call(lambda c, s: c.cancel(s))

    def _event(self, job: _Job, event: Message) -> None:
        if job is not self._job:
            return
        if event.event == "progress":
            self.host.progress(int(event["frame"]), int(event["done"]), int(event["total"]))
            return
        if event.event != "finished":
            return
        self._job = None
        written, status = int(event.get("written", 0)), str(event.get("status", "failed"))
        self._ran = self._ran or written > 0
        self._notify()
        if self._shot is not None:
            self.host.mattes_written(self._shot.output, status, written, int(event.get("total", 0)))
        error = event.get("error")
        if status == "failed":
            name, message = (error.get("name"), error.get("message")) if isinstance(error, dict) else ("internal", "")
            self.report(errors.from_wire(str(name), str(message or "tracking failed")))

    # --- recipes -------------------------------------------------------------------

    def export_recipe(self, path: str | os.PathLike[str]) -> recipe.Recipe | None:
        """Write the recipe of this shot (atomically), with the model the session's bridge serves.

        Local: everything it needs came with the session's `open` answer. Returns the
        recipe, None after reporting an error.
        """
        try:
            if self.session is None or self._shot is None:
                raise PromptError("export needs the open session (it records the bridge's exact model): open the shot")
            if self._model is None:
                raise PromptError("the bridge did not say which model it serves when the shot opened: update the bridge")
            shot = self._shot
            made = self.prompts.to_recipe(shot.plate, shot.output, self._model, shot.colour, recipe.Propagate(self._direction))
            recipe.save(made, path)
        except (RotobridgeError, OSError) as exc:
            self.report(exc)
            return None
        return made

    # --- plumbing ------------------------------------------------------------------

    def _call(
        self, fn: Callable[[Client, str], Pending[T]], then: Callable[[T], None] | None = None, session: str | None = None
    ) -> None:
        """Send `fn(client, session)` if a session is open (otherwise the model catches up on open)."""
        conn, session = self._conn, session or self.session
        if conn is not None and session is not None:
            try:
                pending = fn(conn.client, session)
            except RotobridgeError as exc:
                self.report(exc)
                return
            self._run(pending, then)

    def _run(
        self,
        pending: Pending[T],
        then: Callable[[T], None] | None = None,
        failed: Callable[[RotobridgeError], None] | None = None,
    ) -> None:
        """`then(answer)` or `failed(error)` (default: report it) on the main thread, once the bridge answers.

        What comes back after the connection was replaced or closed is dropped.
        """
        conn = self._conn

        def current(fn: Callable[[], None]) -> None:
            if conn is not None and self._conn is conn:
                fn()

        pending.then(
            lambda answer: current(lambda: then(answer)) if then is not None else None,
            lambda error: current(lambda: (failed or self.report)(error)),
        )

    def _on_session_lost(self, session: str) -> None:
        if session != self.session:
            return
        self._forget_session()
        self._notify()
        self.host.on_error(
            errors.UnknownSessionError.title,
            "The bridge no longer knows this shot's session (it restarted?). Open the shot again: "
            "your prompts are kept and will be sent again.",
        )

    def _notify(self) -> None:
        state = self.state
        if state != self._state:
            self._state = state
            self.host.state_changed(state)

    def report(self, exc: BaseException, address: str = "") -> None:
        """Tell the artist about an error: the one way errors reach `Host.on_error`."""
        title = exc.title if isinstance(exc, RotobridgeError) else "rotobridge"
        message = str(exc) or type(exc).__name__
        if isinstance(exc, BridgeUnreachableError):
            where = address or (self._conn.address if self._conn else "its address")
            message = (
                f"No answer from the bridge at {where}. Start it on the GPU machine "
                f"(`rotobridge serve`), or check the address and, for a remote bridge, the keys. ({message})"
            )
        self.host.on_error(title, message)

