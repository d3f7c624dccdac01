"""Keeping one bridge session's prompts and matte controls in line with the prompt model.

A drag moves a point, and a slider changes a control, many times a second. One request
per object and frame (prompts) or per object (controls) is on its way at a time; what
changes meanwhile waits, and only the latest goes out once the answer is in, so the
bridge never works through stale positions. The controller owns one `SessionSync` per
open session and closes it with the session: answers that arrive after that are dropped.
"""

from __future__ import annotations

from typing import Any, Callable

from .client import Client, Pending
from .errors import NotTrackedError, PromptError, RotobridgeError
from .prompts import PromptModel, wire_object
from .protocol import Preview

Key = tuple[object, ...]
#: The controller's `_run`: `then(answer)` or `failed(error)` on the host's main thread.
Run = Callable[[Pending[Any], Callable[[Any], None], Callable[[RotobridgeError], None]], None]


class SessionSync:
    """Sends the prompt model's changes to one session, latest only, one request per key."""

    def __init__(
        self,
        client: Client,
        session: str,
        prompts: PromptModel,
        run: Run,
        show: Callable[[Preview], None],
        report: Callable[[BaseException], None],
    ) -> None:
        self.client, self.session, self.prompts = client, session, prompts
        self._run, self._show, self._report = run, show, report
        self._busy: set[Key] = set()  # keys with a request on its way
        self._waiting: dict[Key, Any] = {}  # what goes out for a key once its answer is in
        self.closed = False

    @property
    def sending(self) -> bool:
        """Whether a request is on its way."""
        return bool(self._busy)

    def close(self) -> None:
        self.closed = True

    def prompt(self, object_id: int, frame: int, show: bool = True) -> None:
        """Bring the session's prompts of one object on one frame in line with the model (and
        show the preview if `show`, or if any edit that waited asked to)."""
        key = ("prompt", object_id, frame)
        if key in self._busy:
            self._waiting[key] = self._waiting.get(key, False) or show
            return
        if object_id not in {o.id for o in self.prompts.objects}:
            return  # removed meanwhile: the controller's `remove` told the bridge
        obj, prompt = self.prompts.object(object_id), self.prompts.prompt(object_id, frame)

        def send() -> Pending[Any]:
            if prompt is None:
                return self.client.clear(self.session, object_id, frame)
            return self.client.prompt(self.session, wire_object(obj), frame, prompt.points, prompt.labels, prompt.box)

        self._send(key, send, lambda again: self.prompt(object_id, frame, again), show)

    def matte(self, object_id: int, frame: int) -> None:
        """Send an object's matte controls and show `frame`'s preview made with them. An
        object the session does not hold yet takes its controls with its first prompt."""
        try:
            if not self.prompts.frames(object_id):
                return
        except PromptError:
            return
        key = ("matte", object_id)
        if key in self._busy:
            self._waiting[key] = frame
            return
        controls = self.prompts.object(object_id).matte
        self._send(
            key,
            lambda: self.client.matte(self.session, object_id, controls, frame),
            lambda again: self.matte(object_id, again),
            untracked_ok=True,  # the controls are set; that frame has nothing to show
        )

    def _send(
        self,
        key: Key,
        send: Callable[[], Pending[Any]],
        resend: Callable[[Any], None],
        show: bool = True,
        untracked_ok: bool = False,
    ) -> None:
        self._busy.add(key)

        def answered(preview: Preview | None = None) -> None:
            if self.closed:
                return
            self._busy.discard(key)
            if key in self._waiting:
                resend(self._waiting.pop(key))  # newer changes waited: the latest goes now
            elif preview is not None and show:
                self._show(preview)

        def failed(exc: RotobridgeError) -> None:
            if self.closed:
                return
            if untracked_ok and isinstance(exc, NotTrackedError):
                answered()
                return
            self._busy.discard(key)
            self._waiting.pop(key, None)
            self._report(exc)

        try:
            pending = send()
        except RotobridgeError as exc:
            failed(exc)
            return
        self._run(pending, answered, failed)
