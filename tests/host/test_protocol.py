"""The protocol module agrees with docs/protocol.md, and decoding refuses what it should."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from rotobridge import errors, protocol
from rotobridge.errors import HostError, MissingFrameError, ProtocolError
from rotobridge.protocol import Preview

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def _section(title: str) -> str:
    match = re.search(rf"^## {title}\n(.*?)(?=^## )", DOC + "\n## end", re.S | re.M)
    assert match, title
    return match.group(1)


def _rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| `")]


def test_doc_version_is_the_code_version() -> None:
    assert f"(version {protocol.PROTOCOL_VERSION[0]}.{protocol.PROTOCOL_VERSION[1]})" in DOC.splitlines()[0]


def test_doc_request_table_is_the_code_schema() -> None:
    documented, results = {}, {}
    for type_cell, fields_cell, result_cell in _rows(_section("Requests")):
        fields = {m.group(1): m.group(2) == "?" for m in re.finditer(r"`(\w+)`(\??)", fields_cell)}
        documented[type_cell.strip("`")] = fields
        results[type_cell.strip("`")] = set(re.findall(r"`(\w+)`", result_cell.split("(")[0]))
    code = {t: {k: spec.endswith("?") for k, spec in schema.items()} for t, schema in protocol.REQUESTS.items()}
    assert documented == code
    assert results == {t: set(fields) for t, fields in protocol.RESULTS.items()}


def test_doc_error_and_event_tables_are_the_code_lists() -> None:
    assert tuple(r[0].strip("`") for r in _rows(_section("Errors"))) == protocol.ERRORS
    events = {r[0].strip("`"): tuple(re.findall(r"`(\w+)`", r[1])) for r in _rows(_section("Events"))}
    assert events == dict(protocol.EVENTS)


def test_doc_limits_table_is_the_code_table() -> None:
    documented = {
        name.strip("`"): (int(value), tuple(n for n in re.findall(r"`(\w+)`", breach) if n in protocol.ERRORS))
        for name, value, breach in _rows(_section("Limits"))
    }
    assert documented == dict(protocol.LIMITS)
    assert all(name in protocol.ERRORS for _, names in protocol.LIMITS.values() for name in names)


def _frames(header: Any, *binary: bytes) -> list[bytes]:
    return [json.dumps(header).encode(), *binary]


GOOD = {"v": [1, 0], "id": "c-1", "type": "preview", "session": "s1", "frame": 1001}


@pytest.mark.parametrize(
    "frames,name,words,request_id",
    [
        ([], "bad_message", "empty", None),
        ([b"\xff\xfe"], "bad_message", "UTF-8 JSON", None),
        ([b"[1, 2]"], "bad_message", "JSON object", None),
        ([b"{not json"], "bad_message", "JSON", None),
        ([b"[" * 100_000], "bad_message", "JSON", None),  # nested too deeply for the decoder
        (_frames({**GOOD, "id": ""}), "bad_message", "id:", None),
        (_frames({**GOOD, "id": "x" * 65}), "bad_message", "id:", None),
        (_frames({**GOOD, "v": "1"}), "bad_message", "v:", "c-1"),
        (_frames({**GOOD, "v": [2, 0]}), "version_mismatch", "protocol 2.0", "c-1"),
        (_frames({**GOOD, "type": "format_disk"}), "unknown_type", "format_disk", "c-1"),
        (_frames({**GOOD, "type": 7}), "bad_message", "type:", "c-1"),
        (_frames({k: v for k, v in GOOD.items() if k != "frame"}), "bad_message", "frame: is required", "c-1"),
        (_frames({**GOOD, "frame": "1001"}), "bad_message", "frame: must be int", "c-1"),
        (_frames({**GOOD, "frame": True}), "bad_message", "frame: must be int", "c-1"),
        (_frames({**GOOD, "session": "s" * 4097}), "bad_message", "session: at most 4096 characters", "c-1"),
        ([json.dumps(GOOD).encode(), b"x" * protocol.MAX_MESSAGE_BYTES], "bad_message", "larger than", None),
    ],
)
def test_malformed_requests_are_refused_with_stable_names(
    frames: list[bytes], name: str, words: str, request_id: str | None
) -> None:
    with pytest.raises(ProtocolError) as err:
        protocol.decode_request(frames)
    assert err.value.name == name and words in str(err.value) and err.value.request_id == request_id


def test_unknown_fields_are_tolerated_and_binary_kept() -> None:
    msg = protocol.decode_request(_frames({**GOOD, "future_field": {"a": 1}}, b"\x00\x01"))
    assert (msg.id, msg.type, msg["frame"], msg.get("future_field"), msg.binary) == ("c-1", "preview", 1001, {"a": 1}, (b"\x00\x01",))


def test_round_trips() -> None:
    req = protocol.decode_request(protocol.request("prompt", "r1", session="s", object={"id": 1, "name": "car"}, frame=3, points=[[1, 2]], labels=[1]))
    assert req.type == "prompt" and req["object"] == {"id": 1, "name": "car"}
    ok = protocol.decode_reply(protocol.reply("r1", "propagate", {"job": "s"}, [b"ab"]))
    assert ok.type == "reply" and ok["ok"] is True and ok["result"] == {"job": "s"} and ok.binary == (b"ab",)
    answer = protocol.result("propagate", ok)
    assert (answer.id, answer.type, dict(answer.fields), answer.binary) == ("r1", "propagate", {"job": "s"}, (b"ab",))
    err = protocol.decode_reply(protocol.error_reply("r1", MissingFrameError(3, "/x")))
    assert err["error"] == {"name": "missing_frame", "message": "plate frame 3 is missing: /x"}
    with pytest.raises(MissingFrameError, match="plate frame 3 is missing: /x"):  # the same class on the host
        protocol.result("open", err)
    ev = protocol.decode_reply(protocol.event("r1", "progress", frame=1001, path="/m.1001.exr", done=1, total=5))
    assert ev.type == "event" and ev["event"] == "progress" and ev["frame"] == 1001


def test_senders_refuse_names_outside_the_protocol() -> None:
    oops = protocol.decode_reply(protocol.error_reply("r", HostError("x")))  # a host-side error is no wire name
    assert oops["error"] == {"name": "internal", "message": "x"}
    with pytest.raises(ValueError):
        protocol.event("r", "progress", frame=1)
    with pytest.raises(ValueError):
        protocol.reply("r", "open", {"session": "s"})  # the documented result fields, all of them


@pytest.mark.parametrize("name", protocol.ERRORS)
def test_every_wire_error_comes_back_as_its_own_class(name: str) -> None:
    error = errors.from_wire(name, "what happened")
    assert type(error) is errors.WIRE[name] and error.name == name and str(error) == "what happened"
    assert protocol.error_object(error) == {"name": name, "message": "what happened"}
    assert error.title and error.title != "rotobridge"


def test_an_error_name_from_a_newer_bridge_is_kept() -> None:
    error = errors.from_wire("quota_exceeded", "too many sessions")
    assert isinstance(error, errors.BridgeError) and error.name == "quota_exceeded"


def test_previews_round_trip() -> None:
    preview = Preview(1003, 3, 2, (1, 9), (b"abcdef", b"ghijkl"))
    info, planes = preview.encode()
    answer = protocol.result("preview", protocol.decode_reply(protocol.reply("r", "preview", {"preview": info}, planes)))
    assert Preview.decode(answer) == preview
