"""The session state machine a host panel drives: one shot, its prompts, one bridge session.

Everything a Nuke node and a Blender panel have in common lives here and is tested once
(tests/host/test_controller.py, and through each adapter by tests/host/host_suite.py).
An adapter implements `Host` — what only the host knows (the plate, where prompts are
stored, its main thread, its UI) — and calls the controller's methods from its buttons.

States: disconnected -> connecting -> ready -> session_open -> propagating (-> cancelling)
-> session_open. A lost connection shows as connecting while the client reconnects and
re-attaches the session by itself.

Threading: public methods run on the host's main thread and return at once. Bridge calls
run one at a time, in order, on a worker thread; their results, like the client's events,
come back through `Host.dispatch`, so every `Host` callback runs on the main thread.

The prompt model is the truth. Each edit is stored in the host at once (a saved script
keeps it) and then sent to the session; edits made while no session is open are sent
when one opens, which is also how a reopened script restores its session. Errors of any
kind end in exactly one place, `Host.on_error(title, message)`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, TypeVar

from . import recipe
from .client import Client, Event, Preview, load_keys, load_public_key
from .errors import BridgeUnreachableError, PromptError, RotobridgeError
from .coords import Box
from .prompts import Colour, PromptModel, wire_object

log = logging.getLogger(__name__)

DISCONNECTED = "disconnected"
CONNECTING = "connecting"
READY = "ready"
SESSION_OPEN = "session_open"
PROPAGATING = "propagating"
CANCELLING = "cancelling"

#: Dialog titles for error names (errors.py and docs/protocol.md).
_TITLES: Mapping[str, str] = {
    "bridge_unreachable": "Bridge unreachable",
    "version_mismatch": "Bridge version mismatch",
    "unknown_session": "Session lost",
    "busy": "Bridge busy",
    "not_tracked": "Nothing to preview",
    "bad_recipe": "Invalid settings",
    "bad_prompt": "Prompt",
    "bad_plate": "Plate cannot be read",
    "missing_frame": "Plate frame missing",
    "bad_colour": "Colour settings",
    "bad_model": "Model",
    "matte_exists": "Mattes already exist",
    "output_failed": "Writing mattes failed",
    "path_not_allowed": "Path not allowed",
    "host_setup": "Setup",
}

T = TypeVar("T")


@dataclass(frozen=True)
class Shot:
    """What the host knows about the plate being prompted and where its mattes go.

    `size` is the display window the host converts coordinates with; opening a session
    checks it against the plate the bridge reads, since a mismatch would misplace clicks.
    """

    plate: recipe.Plate
    output: recipe.Output
    colour: recipe.Colour = recipe.Colour()
    size: tuple[int, int] | None = None


@dataclass(frozen=True)
class Keys:
    """CURVE keys (z85) for a bridge outside this machine."""

    server_key: str
    client_public: str
    client_secret: str

    @classmethod
    def from_files(cls, server_public_file: str, client_secret_file: str) -> Keys:
        """From the bridge's `.key` file and this artist's `.key_secret` (which holds both keys)."""
        public, secret = load_keys(client_secret_file, client_secret_file)
        return cls(load_public_key(server_public_file), public, secret)


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


ClientFactory = Callable[..., Client]


@dataclass
class _Job:
    session: str
    cancelling: bool = False


@dataclass
class _Connection:
    """One client and its worker; callbacks of a replaced connection are dropped."""

    client: Client
    address: str
    work: queue.SimpleQueue[Callable[[], None] | None] = dataclasses.field(default_factory=queue.SimpleQueue)
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
        self._job: _Job | None = None
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
                address,
                server_key=keys and keys.server_key,
                client_public=keys and keys.client_public,
                client_secret=keys and keys.client_secret,
                dispatch=self.host.dispatch,
                on_state=on_state,
                on_session_lost=self._on_session_lost,
            )
        except (RotobridgeError, ValueError, OSError) as exc:
            self.report(exc)
            return
        conn = self._conn = _Connection(client, address)
        links.append(conn)
        threading.Thread(target=self._serve, args=(conn.work,), name="rotobridge-controller", daemon=True).start()
        self._notify()

        def greeted(info: dict[str, Any]) -> None:
            self.bridge, conn.greeted = info, True
            self._notify()
            if self._open_pending:
                self.open_shot()

        def failed(exc: RotobridgeError) -> None:
            self.disconnect()
            self.report(exc, address)

        self._run(client.hello, greeted, failed)

    def disconnect(self) -> None:
        """Close the session and the connection; prompts stay."""
        conn, session = self._conn, self.session
        if conn is None:
            return
        self._conn, self._open_pending = None, False
        self._forget_session()
        if session is not None:
            conn.work.put(lambda: _quietly(conn.client.close_session, session))
        conn.work.put(conn.client.close)
        conn.work.put(None)
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
            self._run(lambda: _quietly(client.close_session, old))
        colour = _json(shot.colour) or None
        self._run(lambda: client.open(_json(shot.plate), _json(shot.output), colour), lambda r: self._opened(shot, r))

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
        self._notify()
        for obj in self.prompts.objects:
            for prompt in obj.prompts:
                self._send(obj.id, prompt.frame, show=False)

    def _forget_session(self) -> None:
        self.session, self.frames, self._job, self._ran = None, None, None, False

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
        tracked = bool(self._frames_of(object_id))
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
        """Show the preview of a frame that holds prompts."""
        self._call(lambda c, s: c.preview(s, frame), self._show)

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
        """Bring the session's prompts of one object on one frame in line with the model."""
        obj, prompt = self.prompts.object(object_id), self.prompts.prompt(object_id, frame)
        if prompt is None:
            self._call(lambda c, s: c.clear(s, object_id, frame))
            return
        self._call(
            lambda c, s: c.prompt(s, wire_object(obj), frame, prompt.points, prompt.labels, prompt.box),
            self._show if show else None,
        )

    def _show(self, preview: Preview) -> None:
        self.host.show_preview(preview)

    def _frames_of(self, object_id: int) -> list[int]:
        try:
            return self.prompts.frames(object_id)
        except PromptError:
            return []

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
        self._run(
            lambda: client.propagate(session, start, end, direction, replace, on_event=lambda ev: self._event(job, ev)),
            None,
            failed,
        )

    def cancel(self) -> None:
        job = self._job
        if job is None or job.cancelling:
            return
        job.cancelling = True
        self._notify()
        self._call(lambda c, s: c.cancel(s))

    def _event(self, job: _Job, event: Event) -> None:
        if job is not self._job:
            return
        if event.name == "progress":
            self.host.progress(int(event["frame"]), int(event["done"]), int(event["total"]))
            return
        if event.name != "finished":
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
            self.host.on_error(_TITLES.get(str(name), "Tracking failed"), str(message or "tracking failed"))

    # --- recipes -------------------------------------------------------------------

    def export_recipe(self, path: str | os.PathLike[str]) -> recipe.Recipe | None:
        """Write the recipe of this shot (atomically); the model is the one the bridge serves.

        Returns the recipe, None after reporting an error. Blocks for one quick request.
        """
        conn, session, shot = self._conn, self.session, self._shot
        try:
            if conn is None or session is None or shot is None:
                raise PromptError("export needs the open session (it records the bridge's exact model): open the shot")
            served = conn.client.export(session).get("model")
            model: recipe.Model = recipe.parse_part("model", served, "model")
            made = self.prompts.to_recipe(shot.plate, shot.output, model, shot.colour, recipe.Propagate(self._direction))
            recipe.save(made, path)
        except (RotobridgeError, OSError) as exc:
            self.report(exc)
            return None
        return made

    # --- plumbing ------------------------------------------------------------------

    def _call(
        self, fn: Callable[[Client, str], T], then: Callable[[T], None] | None = None, session: str | None = None
    ) -> None:
        """Run `fn(client, session)` if a session is open (otherwise the model catches up on open)."""
        conn, session = self._conn, session or self.session
        if conn is not None and session is not None:
            client = conn.client
            self._run(lambda: fn(client, session), then)

    def _run(
        self,
        call: Callable[[], T],
        then: Callable[[T], None] | None = None,
        failed: Callable[[RotobridgeError], None] | None = None,
    ) -> None:
        """Queue `call` for the worker; `then(result)` or `failed(error)` run on the main thread.

        What comes back after the connection was replaced or closed is dropped.
        """
        conn = self._conn
        if conn is None:
            return

        def deliver(fn: Callable[[], None]) -> None:
            self.host.dispatch(lambda: fn() if self._conn is conn else None)

        def job() -> None:
            try:
                result = call()
            except RotobridgeError as exc:
                deliver(functools.partial(failed or self.report, exc))
            except Exception as exc:  # a bug must reach the artist, not die in a thread
                log.exception("rotobridge request failed")
                deliver(functools.partial(self.report, exc))
            else:
                if then is not None:
                    deliver(functools.partial(then, result))

        conn.work.put(job)

    @staticmethod
    def _serve(work: queue.SimpleQueue[Callable[[], None] | None]) -> None:
        while (job := work.get()) is not None:
            job()

    def _on_session_lost(self, session: str) -> None:
        if session != self.session:
            return
        self._forget_session()
        self._notify()
        self.host.on_error(
            _TITLES["unknown_session"],
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
        name = getattr(exc, "name", "internal")
        message = str(exc) or type(exc).__name__
        if isinstance(exc, BridgeUnreachableError):
            where = address or (self._conn.address if self._conn else "its address")
            message = (
                f"No answer from the bridge at {where}. Start it on the GPU machine "
                f"(`rotobridge serve`), or check the address and, for a remote bridge, the keys. ({message})"
            )
        self.host.on_error(_TITLES.get(str(name), "rotobridge"), message)


def _json(part: Any) -> dict[str, Any]:
    """A recipe part (plate, colour, output) as its protocol object, unset fields left out."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(part).items() if v is not None}


def _quietly(fn: Callable[[str], object], session: str) -> None:
    """Closing a session that is already gone is not worth telling anyone about."""
    try:
        fn(session)
    except RotobridgeError:
        log.debug("closing session %s failed", session, exc_info=True)
