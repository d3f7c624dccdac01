"""A hostile client floods the bridge while an artist keeps clicking: the artist never notices.

Over 10,000 malformed, hostile or pointless messages (seeded, so a failure replays):
random bytes, broken and deeply nested JSON, wrong types, huge numbers, other protocol
versions, bad ids, unknown sessions and types, random frame counts, oversized messages,
and nonsense aimed at a real session. Meanwhile a well-behaved client pings and clicks
and must always get the right answer, and the server must still be running at the end.
"""

from __future__ import annotations

import json
import random
import string
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import zmq

from rotobridge import protocol

from .conftest import shot
from .wire import Peer, preview_planes

MESSAGES = 10_500
SEED = 20_260_124


def _junk(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value of any type."""
    kinds: list[Callable[[], Any]] = [
        lambda: rng.randint(-(10**30), 10**30),
        lambda: rng.choice([1e308, -1e308, 0.5, float("nan"), float("inf")]),
        lambda: "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 30))),
        lambda: rng.choice([True, False, None]),
    ]
    if depth < 3:
        kinds += [
            lambda: [_junk(rng, depth + 1) for _ in range(rng.randint(0, 4))],
            lambda: {rng.choice(["id", "x", "session", "frame", "points"]): _junk(rng, depth + 1) for _ in range(rng.randint(0, 4))},
        ]
    return rng.choice(kinds)()


def _header(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, allow_nan=True).encode()


def _hostile(rng: random.Random, n: int, session: str) -> list[bytes]:
    """Message `n` of the flood (frames after the identity)."""
    kind = n % 13
    rid = f"f{n}"
    if kind == 0:
        return [rng.randbytes(rng.randint(0, 300))]
    if kind == 1:
        text = json.dumps({"v": [1, 0], "id": rid, "type": "ping"})
        return [text[: rng.randint(0, len(text) - 1)].encode()]
    if kind == 2:
        return [_header(_junk(rng))]
    if kind == 3:  # every field of a real request type replaced by junk of another type
        type_ = rng.choice(list(protocol.REQUESTS))
        return [_header({"v": [1, 0], "id": rid, "type": type_, **{k: _junk(rng) for k in protocol.REQUESTS[type_]}})]
    if kind == 4:
        depth = rng.choice([50, 5_000, 100_000])  # under MAX_MESSAGE_BYTES: oversize has its own socket
        return [("[" * depth + "]" * depth).encode() if n % 2 else ('{"a":' * depth + "1" + "}" * depth).encode()]
    if kind == 5:
        big = rng.choice(["1" * 5_000, "9" * 400, "1e999", "-1e999", "NaN"])
        return [f'{{"v":[1,0],"id":"{rid}","type":"preview","session":"{session}","frame":{big}}}'.encode()]
    if kind == 6:
        v = rng.choice([[2, 0], [0, 9], [1], "1.0", [True, False], None, [1, 0, 0], [10**40, 0]])
        return [_header({"v": v, "id": rid, "type": "ping"})]
    if kind == 7:
        bad_id = rng.choice(["", "x" * 65, "a b", "ü", 7, None, ["x"], "\x00"])
        return [_header({"v": [1, 0], "id": bad_id, "type": "ping"})]
    if kind == 8:
        type_ = rng.choice(["attach", "prompt", "clear", "remove", "preview", "propagate", "cancel", "export", "close"])
        fields = {"session": "".join(rng.choices(string.ascii_letters, k=22)), "object": {"id": 1, "name": "x"}, "frame": 1001,
                  "object_id": 1, "start": 1, "end": 2, "direction": "both", "points": [[1, 1]], "labels": [1]}
        return [_header({"v": [1, 0], "id": rid, "type": type_, **fields})]
    if kind == 9:
        return [_header({"v": [1, 0], "id": rid, "type": "".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 80)))})]
    if kind == 10:
        return [rng.randbytes(rng.randint(0, 40)) for _ in range(rng.randint(1, 60))]
    if kind == 11:  # a real session (the hostile client's own), hostile contents
        choice = rng.randrange(6)
        if choice == 0:
            points = [[_junk(rng), _junk(rng)] for _ in range(rng.randint(0, 3))] or [[1e308, -1]]
            return [_header({"v": [1, 0], "id": rid, "type": "prompt", "session": session, "object": {"id": rng.randint(-3, 3), "name": "obj"},
                             "frame": rng.choice([1001, 1002, -1, 10**12]), "points": points, "labels": [rng.choice([0, 1, 2, -1])] * len(points)})]
        if choice == 1:
            return [_header({"v": [1, 0], "id": rid, "type": "prompt", "session": session, "object": {"id": 2, "name": "box"},
                             "frame": 1001, "box": [rng.uniform(-10, 100) for _ in range(rng.choice([3, 4, 5]))]})]
        if choice == 2:
            return [_header({"v": [1, 0], "id": rid, "type": "preview", "session": session, "frame": rng.randint(990, 1010)})]
        if choice == 3:
            return [_header({"v": [1, 0], "id": rid, "type": rng.choice(["clear", "remove"]), "session": session,
                             "object_id": rng.randint(-2, 4), "frame": rng.randint(990, 1010)})]
        if choice == 4:
            return [_header({"v": [1, 0], "id": rid, "type": "propagate", "session": session, "start": rng.randint(990, 1010),
                             "end": rng.randint(990, 1010), "direction": rng.choice(["both", "up", ""])})]
        return [_header({"v": [1, 0], "id": rid, "type": "open", "plate": _junk(rng), "output": {"path": "/etc/passwd.####.exr"}})]
    # many frames that together exceed the limit, each under it
    return [_header({"v": [1, 0], "id": rid, "type": "ping"}), *[b"x" * (300 << 10)] * 4]


def test_flood_of_hostile_messages_never_disturbs_a_working_client(start_bridge: Any, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    server = start_bridge(tmp_path)
    artist, attacker = Peer(server.endpoint), Peer(server.endpoint)
    session = artist.ok("open", **shot(tmp_path, "artist", frames=3))["session"]
    click = {"session": session, "object": {"id": 1, "name": "car"}, "frame": 1002, "points": [[20, 20]], "labels": [1]}
    expected = preview_planes(artist.call("prompt", **click))
    artist.ok("remove", session=session, object_id=1)  # a repeated click would refine the last mask: start afresh
    own = attacker.ok("open", **shot(tmp_path, "attacker", frames=3))["session"]
    oversize = Peer(server.endpoint)

    started = time.monotonic()
    checks = 0
    answers: Counter[str] = Counter()

    def read_answers() -> None:
        while attacker.socket.poll(0):
            reply = protocol.decode_reply(attacker.socket.recv_multipart())
            if reply.type == "reply":  # events of a job a hostile propagate started are not answers
                answers["ok" if reply["ok"] else reply["error"]["name"]] += 1
    for n in range(MESSAGES):
        attacker.socket.send_multipart(_hostile(rng, n, own))
        if n % 1000 == 999:  # whole messages over MAXMSGSIZE: libzmq drops the connection, which reconnects
            oversize.socket.send_multipart([b"x" * (protocol.MAX_MESSAGE_BYTES + 1)], zmq.NOBLOCK)
        if n % 250 == 0:
            assert artist.ok("ping") == {}
            planes = preview_planes(artist.call("prompt", **click))
            assert planes.keys() == expected.keys() and all((planes[k] == expected[k]).all() for k in planes)
            artist.ok("remove", session=session, object_id=1)
            checks += 1
        if n % 100 == 0:  # read some answers, as a careless client would; the rest pile up and get dropped
            read_answers()
    assert artist.ok("ping") == {} and checks > 40
    assert artist.ok("prompt", **click)["preview"]["objects"] == [1]
    assert artist.ok("attach", session=session)["objects"][0]["name"] == "car"
    assert server.alive
    assert time.monotonic() - started < 60
    deadline = time.monotonic() + 10
    while sum(answers.values()) < MESSAGES and time.monotonic() < deadline:
        attacker.socket.poll(100)
        read_answers()
    assert sum(answers.values()) == MESSAGES, answers  # every message answered, none lost
    assert "internal" not in answers, answers  # and none found a bug
    assert {"bad_message", "unknown_type", "version_mismatch", "unknown_session", "bad_recipe", "not_tracked"} <= set(answers)
    for peer in (artist, attacker, oversize):
        peer.close()
