"""The wire protocol between hosts and the bridge: the one module that (de)serialises it.

`docs/protocol.md` is the authority; a test checks the tables below against it (request
fields, result fields, events, errors, the version). A message is one JSON header frame
plus optional binary frames, decoded into one type, `Message`, whichever way it travels.
Decoding never trusts the peer: sizes are capped, the header must be a JSON object with
the fields its type requires, unknown fields are tolerated (newer minor versions), and
nothing is evaluated. Both ends use the same encoders, so a reply's result fields, an
event's fields and an error's name cannot drift from the tables. Stdlib only (numpy,
lazily, for `Preview.as_array`): hosts import it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from . import errors, fields, recipe
from .errors import ProtocolError, RotobridgeError, UnknownTypeError, VersionMismatchError

#: [major, minor]; a peer with another major is refused. 1.1 added `matte`.
PROTOCOL_VERSION = (1, 1)
#: Largest request the bridge accepts (all frames together; libzmq MAXMSGSIZE drops bigger ones).
MAX_MESSAGE_BYTES = 1 << 20
DEFAULT_ADDRESS = "tcp://127.0.0.1:47400"
#: Requests one client (one connection) may have waiting for the bridge's device worker.
MAX_PENDING = 16
#: Sessions one client (one connection) may hold open.
MAX_SESSIONS = 16

#: Every bound on what one request or one client may cost: name -> (value, the errors a
#: breach is answered with; none when it is not answered). docs/protocol.md, Limits, lists
#: the same; the bridge refuses a breach before doing the work, so a client that asks too
#: much cannot delay anyone else's clicks.
LIMITS: Mapping[str, tuple[int, tuple[str, ...]]] = {
    "message_bytes": (MAX_MESSAGE_BYTES, ()),
    "text_chars": (fields.MAX_TEXT, ("bad_recipe", "bad_message")),
    "plate_frames": (fields.MAX_FRAMES, ("bad_recipe",)),
    "points_per_prompt": (recipe.MAX_POINTS, ("bad_recipe",)),
    "objects_per_session": (recipe.MAX_OBJECTS, ("bad_recipe",)),
    "pending_requests_per_client": (MAX_PENDING, ("busy",)),
    "sessions_per_client": (MAX_SESSIONS, ("busy",)),
}

_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

#: Request types and their fields: type name, "?" suffix when optional.
REQUESTS: Mapping[str, Mapping[str, str]] = {
    "hello": {"client": "str"},
    "ping": {},
    "open": {"plate": "dict", "colour": "dict?", "output": "dict", "model": "dict?"},
    "attach": {"session": "str"},
    "prompt": {"session": "str", "object": "dict", "frame": "int", "points": "list?", "labels": "list?", "box": "list?"},
    "clear": {"session": "str", "object_id": "int", "frame": "int"},
    "remove": {"session": "str", "object_id": "int"},
    "preview": {"session": "str", "frame": "int"},
    "matte": {"session": "str", "object_id": "int", "controls": "dict?", "frame": "int"},
    "propagate": {"session": "str", "start": "int", "end": "int", "direction": "str", "overwrite": "bool?"},
    "cancel": {"session": "str"},
    "export": {"session": "str"},
    "close": {"session": "str"},
    "status": {},
}

_SESSION = ("session", "frames", "width", "height", "model", "objects", "job")
#: The fields of each request type's result (an ok reply's `result`).
RESULTS: Mapping[str, tuple[str, ...]] = {
    "hello": ("protocol", "bridge_version", "model", "untrained", "device", "heartbeat_ms"),
    "ping": (),
    "open": _SESSION,
    "attach": _SESSION,
    "prompt": ("preview",),
    "clear": (),
    "remove": (),
    "preview": ("preview",),
    "matte": ("preview",),
    "propagate": ("job",),
    "cancel": ("cancelled",),
    "export": ("recipe",),
    "close": (),
    "status": ("sessions", "queue", "device", "memory"),
}

#: Event names streamed after a `propagate` reply, and their fields.
EVENTS: Mapping[str, tuple[str, ...]] = {
    "progress": ("frame", "path", "done", "total"),
    "finished": ("written", "total", "status", "error"),
}

#: Stable error names a reply may carry: the classes in rotobridge.errors that travel.
ERRORS: tuple[str, ...] = tuple(errors.WIRE)

_TYPES: Mapping[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


@dataclass(frozen=True)
class Message:
    """One message: a request, a reply or an event, with its binary frames.

    `type` is the wire's: a request type, "reply" or "event". `result` turns a reply into
    the answer to its request, whose `type` is then the request's and whose fields are the
    result's. An event's name is `event`. `synthetic` marks a message the client made
    itself (a `finished` for a job whose session the bridge lost); nothing decoded is.
    """

    id: str
    type: str
    fields: Mapping[str, Any]
    binary: tuple[bytes, ...] = field(default=())
    version: tuple[int, int] = PROTOCOL_VERSION
    synthetic: bool = False

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)

    @property
    def event(self) -> str:
        """An event's name ("" for other messages)."""
        name = self.fields.get("event", "") if self.type == "event" else ""
        return name if isinstance(name, str) else ""


# --- encoding ----------------------------------------------------------------------------


def encode(header: Mapping[str, Any], binary: Sequence[bytes] = ()) -> list[bytes]:
    """Frames for one message; `header` gains the protocol version."""
    body = {"v": list(PROTOCOL_VERSION), **header}
    return [json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8"), *map(bytes, binary)]


def request(type_: str, id_: str, binary: Sequence[bytes] = (), **fields: Any) -> list[bytes]:
    """A request's frames; ProtocolError for one larger than any bridge accepts, before it is sent."""
    frames = encode({"id": id_, "type": type_, **fields}, binary)
    size = sum(len(f) for f in frames)
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"{type_} request is {size} bytes; the bridge accepts at most {MAX_MESSAGE_BYTES}")
    return frames


def reply(id_: str, type_: str, result: Mapping[str, Any], binary: Sequence[bytes] = ()) -> list[bytes]:
    """The ok reply to a `type_` request; its result fields are exactly RESULTS[type_]."""
    expected = RESULTS[type_]
    if set(result) != set(expected):
        raise ValueError(f"a {type_} result has {sorted(expected)}, not {sorted(result)}")
    return encode({"id": id_, "type": "reply", "ok": True, "result": dict(result)}, binary)


def error_object(exc: RotobridgeError) -> dict[str, str]:
    """`{"name", "message"}` for an error: its own name when it travels, else `internal`.

    What an error reply carries, and a `finished` event's `error`.
    """
    return {"name": exc.name if exc.name in errors.WIRE else "internal", "message": str(exc)}


def error_reply(id_: str | None, exc: RotobridgeError) -> list[bytes]:
    """The error reply for `exc` (id "" when the request's id could not be read)."""
    return encode({"id": id_ or "", "type": "reply", "ok": False, "error": error_object(exc)})


def event(id_: str, name: str, **fields: Any) -> list[bytes]:
    if name not in EVENTS:
        raise ValueError(f"{name!r} is not a protocol event")
    if set(fields) != set(EVENTS[name]):
        raise ValueError(f"a {name} event has {sorted(EVENTS[name])}, not {sorted(fields)}")
    return encode({"id": id_, "type": "event", "event": name, **fields})


# --- decoding ----------------------------------------------------------------------------


def _header(frames: Sequence[bytes], limit: int | None) -> dict[str, Any]:
    if not frames:
        raise ProtocolError("empty message")
    if limit is not None and sum(len(f) for f in frames) > limit:
        raise ProtocolError(f"message larger than {limit} bytes")
    try:
        header = json.loads(bytes(frames[0]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
        raise ProtocolError(f"header is not UTF-8 JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header must be a JSON object")
    return header


def check_version(theirs: Any, where: str = "v", request_id: str | None = None) -> tuple[int, int]:
    """A peer's [major, minor] (a header's `v`, hello's `protocol`); VersionMismatchError for another major."""
    if not (isinstance(theirs, list) and len(theirs) == 2 and all(_is_int(x) for x in theirs)):
        raise ProtocolError(f"{where}: must be [major, minor]", request_id=request_id)
    major, minor = theirs
    if major != PROTOCOL_VERSION[0]:
        raise VersionMismatchError(
            f"protocol {major}.{minor} cannot talk to this peer's {PROTOCOL_VERSION[0]}.{PROTOCOL_VERSION[1]}: "
            "install matching rotobridge versions on the host and the bridge",
            request_id=request_id,
        )
    return (major, minor)


def _request_id(header: Mapping[str, Any]) -> str | None:
    rid = header.get("id")
    return rid if isinstance(rid, str) and _ID.match(rid) else None


def _message(header: Mapping[str, Any], rid: str, kind: str, frames: Sequence[bytes], version: tuple[int, int]) -> Message:
    fields = {k: v for k, v in header.items() if k not in ("v", "id", "type")}
    return Message(rid, kind, fields, tuple(bytes(f) for f in frames[1:]), version)


def decode_request(frames: Sequence[bytes]) -> Message:
    """A request from a client; raises ProtocolError (with the request id when known)."""
    header = _header(frames, MAX_MESSAGE_BYTES)
    rid = _request_id(header)
    if rid is None:
        raise ProtocolError("id: must be a string of 1-64 letters, digits or _.:-")
    version = check_version(header.get("v"), "v", rid)
    kind = header.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("type: must be a string", request_id=rid)
    schema = REQUESTS.get(kind)
    if schema is None:
        raise UnknownTypeError(f"unknown message type {kind[:40]!r}", request_id=rid)
    for key, spec in schema.items():
        optional = spec.endswith("?")
        value = header.get(key)
        if value is None:
            if optional:
                continue
            raise ProtocolError(f"{key}: is required for {kind}", request_id=rid)
        types = _TYPES[spec.rstrip("?")]
        if not isinstance(value, types) or (spec.startswith("int") and isinstance(value, bool)):
            raise ProtocolError(f"{key}: must be {spec.rstrip('?')} for {kind}", request_id=rid)
        if isinstance(value, str) and len(value) > fields.MAX_TEXT:
            raise ProtocolError(f"{key}: at most {fields.MAX_TEXT} characters", request_id=rid)
    return _message(header, rid, kind, frames, version)


def decode_reply(frames: Sequence[bytes]) -> Message:
    """A reply or event from the bridge (type "reply" or "event").

    No size cap here: previews of many objects are large, and the client's socket caps
    what it accepts (libzmq MAXMSGSIZE) before anything reaches Python.
    """
    header = _header(frames, None)
    rid = header.get("id")
    if not isinstance(rid, str):
        raise ProtocolError("reply without an id")
    version = check_version(header.get("v"), "v", rid)
    kind = header.get("type")
    if kind not in ("reply", "event"):
        raise ProtocolError(f"unexpected message type {kind!r} from the bridge", request_id=rid)
    return _message(header, rid, kind, frames, version)


def result(request_type: str, reply_message: Message) -> Message:
    """The answer a reply carries to a `request_type` request, or the error it stands for, raised.

    An ok reply becomes a Message of the request's type whose fields are the result (read
    tolerantly: the bridge's `reply` guarantees RESULTS, and a caller checks what it
    uses); an error reply raises its own class (`errors.from_wire`). `hello`'s result
    must name a compatible version.
    """
    ok = reply_message.get("ok")
    if ok is True:
        answer = reply_message.get("result")
        if not isinstance(answer, dict):
            raise ProtocolError(f"the reply to {request_type} has no result object", request_id=reply_message.id)
        if request_type == "hello":
            check_version(answer.get("protocol"), "protocol", reply_message.id)
        return replace(reply_message, type=request_type, fields=answer)
    error = reply_message.get("error")
    if ok is False and isinstance(error, dict):
        name, message = error.get("name"), error.get("message")
        if isinstance(name, str) and isinstance(message, str):
            raise errors.from_wire(name, message)
    raise ProtocolError(f"the reply to {request_type} is neither a result nor an error", request_id=reply_message.id)


# --- previews ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """One frame's mattes at preview size: one `width*height` byte plane per object.

    Planes are row-major, top row first, 0-255 = the object's matte, its controls applied
    (docs/protocol.md, Previews). `as_array(i)` gives plane `i` as a numpy (height, width) uint8 array.
    """

    frame: int
    width: int
    height: int
    objects: tuple[int, ...]
    planes: tuple[bytes, ...]

    def encode(self) -> tuple[dict[str, Any], list[bytes]]:
        """The `preview` result field and the binary frames that carry it."""
        info = {"frame": self.frame, "width": self.width, "height": self.height, "objects": list(self.objects), "format": "u8"}
        return info, list(self.planes)

    @classmethod
    def decode(cls, answer: Message) -> Preview:
        """The preview in a `prompt` or `preview` answer (see `result`); ProtocolError if malformed."""
        info = answer.get("preview")
        if not isinstance(info, dict):
            raise ProtocolError(f"{answer.type} reply without a preview object")
        frame, width, height = info.get("frame"), info.get("width"), info.get("height")
        objects = info.get("objects")
        numbers = (frame, width, height)
        if not (isinstance(frame, int) and isinstance(width, int) and isinstance(height, int)) or any(
            isinstance(n, bool) for n in numbers
        ) or min(width, height) < 1:
            raise ProtocolError(f"preview: frame, width and height must be integers, got {frame!r}, {width!r}, {height!r}")
        if not (isinstance(objects, list) and all(_is_int(o) for o in objects)):
            raise ProtocolError("preview: objects must be a list of object ids")
        if info.get("format", "u8") != "u8":
            raise ProtocolError(f"preview: unknown format {info.get('format')!r}")
        if len(answer.binary) != len(objects):
            raise ProtocolError(f"preview: {len(objects)} objects but {len(answer.binary)} planes")
        for oid, plane in zip(objects, answer.binary):
            if len(plane) != width * height:
                raise ProtocolError(f"preview: object {oid}'s plane has {len(plane)} bytes, not {width}x{height}")
        return cls(frame, width, height, tuple(objects), tuple(answer.binary))

    def plane(self, object_id: int) -> bytes:
        """The plane of object `object_id`."""
        return self.planes[self.objects.index(object_id)]

    def as_array(self, i: int) -> Any:
        """Plane `i` (index into `objects`) as a read-only numpy (height, width) uint8 array."""
        import numpy

        return numpy.frombuffer(self.planes[i], dtype=numpy.uint8).reshape(self.height, self.width)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
