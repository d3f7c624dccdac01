"""The wire protocol between hosts and the bridge: the only module that (de)serializes it.

`docs/protocol.md` is the authority; a test checks the tables below against it. A message
is one JSON header frame plus optional binary frames. Decoding never trusts the peer:
sizes are capped, the header must be a JSON object with the fields its type requires,
unknown fields are tolerated (newer minor versions), and nothing is evaluated.
Stdlib only: hosts import it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from .errors import ProtocolError, RotobridgeError

#: [major, minor]; a peer with another major is refused.
PROTOCOL_VERSION = (1, 0)
#: Largest message the bridge accepts (all frames together); previews travel the other way.
MAX_MESSAGE_BYTES = 1 << 20
DEFAULT_ADDRESS = "tcp://127.0.0.1:47400"

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
    "propagate": {"session": "str", "start": "int", "end": "int", "direction": "str", "overwrite": "bool?"},
    "cancel": {"session": "str"},
    "export": {"session": "str"},
    "close": {"session": "str"},
    "status": {},
}

#: Event names streamed after a `propagate` reply, and their fields.
EVENTS: Mapping[str, tuple[str, ...]] = {
    "progress": ("frame", "path", "done", "total"),
    "finished": ("written", "total", "status", "error"),
}

#: Stable error names a reply may carry.
ERRORS: tuple[str, ...] = (
    "bad_message",
    "unknown_type",
    "version_mismatch",
    "unknown_session",
    "busy",
    "not_tracked",
    "bad_recipe",
    "bad_plate",
    "missing_frame",
    "bad_colour",
    "bad_model",
    "matte_exists",
    "output_failed",
    "path_not_allowed",
    "cancelled",
    "internal",
)

_TYPES: Mapping[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


@dataclass(frozen=True)
class Message:
    """A decoded message: its header fields and any binary frames."""

    id: str
    type: str
    fields: Mapping[str, Any]
    binary: tuple[bytes, ...] = field(default=())
    version: tuple[int, int] = PROTOCOL_VERSION

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.fields.get(key, default)


def encode(header: Mapping[str, Any], binary: Sequence[bytes] = ()) -> list[bytes]:
    """Frames for one message; `header` gains the protocol version."""
    body = {"v": list(PROTOCOL_VERSION), **header}
    return [json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8"), *map(bytes, binary)]


def request(type_: str, id_: str, binary: Sequence[bytes] = (), **fields: Any) -> list[bytes]:
    return encode({"id": id_, "type": type_, **fields}, binary)


def reply(id_: str, result: Mapping[str, Any] | None = None, binary: Sequence[bytes] = ()) -> list[bytes]:
    return encode({"id": id_, "type": "reply", "ok": True, "result": dict(result or {})}, binary)


def error_reply(id_: str | None, name: str, message: str) -> list[bytes]:
    if name not in ERRORS:
        raise ValueError(f"{name!r} is not a protocol error name")
    return encode({"id": id_ or "", "type": "reply", "ok": False, "error": {"name": name, "message": message}})


def error_object(exc: RotobridgeError) -> dict[str, str]:
    """`{"name", "message"}` for a rotobridge error: its own stable name when the protocol knows it.

    What an error reply carries, and a `finished` event's `error`.
    """
    return {"name": exc.name if exc.name in ERRORS else "internal", "message": str(exc)}


def error_from(id_: str | None, exc: RotobridgeError) -> list[bytes]:
    """The reply for a rotobridge error."""
    error = error_object(exc)
    return error_reply(id_, error["name"], error["message"])


def event(id_: str, name: str, **fields: Any) -> list[bytes]:
    if name not in EVENTS:
        raise ValueError(f"{name!r} is not a protocol event")
    missing = set(EVENTS[name]) - set(fields)
    if missing:
        raise ValueError(f"event {name} needs {sorted(missing)}")
    return encode({"id": id_, "type": "event", "event": name, **fields})


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


def _version(header: Mapping[str, Any], request_id: str | None) -> tuple[int, int]:
    v = header.get("v")
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in v)):
        raise ProtocolError("v: must be [major, minor]", request_id=request_id)
    if v[0] != PROTOCOL_VERSION[0]:
        raise ProtocolError(
            f"protocol {v[0]}.{v[1]} cannot talk to this peer's {PROTOCOL_VERSION[0]}.{PROTOCOL_VERSION[1]}: "
            "install matching rotobridge versions on the host and the bridge",
            name="version_mismatch",
            request_id=request_id,
        )
    return (v[0], v[1])


def _request_id(header: Mapping[str, Any]) -> str | None:
    rid = header.get("id")
    return rid if isinstance(rid, str) and _ID.match(rid) else None


def decode_request(frames: Sequence[bytes]) -> Message:
    """A request from a client; raises ProtocolError (with the request id when known)."""
    header = _header(frames, MAX_MESSAGE_BYTES)
    rid = _request_id(header)
    if rid is None:
        raise ProtocolError("id: must be a string of 1-64 letters, digits or _.:-")
    version = _version(header, rid)
    kind = header.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("type: must be a string", request_id=rid)
    schema = REQUESTS.get(kind)
    if schema is None:
        raise ProtocolError(f"unknown message type {kind[:40]!r}", name="unknown_type", request_id=rid)
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
    fields = {k: v for k, v in header.items() if k not in ("v", "id", "type")}
    return Message(rid, kind, fields, tuple(bytes(f) for f in frames[1:]), version)


def decode_reply(frames: Sequence[bytes]) -> Message:
    """A reply or event from the bridge (type "reply" or "event").

    No size cap here: previews of many objects are large, and the client's socket caps
    what it accepts (libzmq MAXMSGSIZE) before anything reaches Python.
    """
    header = _header(frames, None)
    rid = header.get("id")
    if not isinstance(rid, str):
        raise ProtocolError("reply without an id")
    version = _version(header, rid)
    kind = header.get("type")
    if kind not in ("reply", "event"):
        raise ProtocolError(f"unexpected message type {kind!r} from the bridge", request_id=rid)
    fields = {k: v for k, v in header.items() if k not in ("v", "id", "type")}
    return Message(rid, kind, fields, tuple(bytes(f) for f in frames[1:]), version)
