"""The hostile corpus: what an attacker on the bridge's socket sends, seeded so a failure replays.

Used by tests/bridge/test_fuzz.py (a suite-sized run) and benchmarks/fuzz_bridge.py (the
20,000-message run). Each message is the frames after the routing id. Kinds, by n % KINDS:
random bytes, cut JSON, junk JSON, every field of a real request replaced by junk, deep
nesting, huge numbers, other versions, bad ids, unknown sessions and types, many frames,
hostile contents aimed at the sender's own session, oversized multi-frame messages — and
(issue 14) numbers too large for a float written as JSON digits, NUL and lone surrogates in
paths and names, `//` in matte paths, requests over the limits that still fit a message,
and random mutations of valid requests. Closes raced by requests are `Racer`'s.
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import random
import statistics
import string
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import zmq

from rotobridge import protocol

from .wire import Peer, preview_planes

#: how many kinds of message `hostile` makes (n % KINDS picks one)
KINDS = 17
_DIGITS = "1" + "0" * 400  # 10**400 as JSON digits: an int no float can hold
_BIG_FRAME = b"x" * (300 << 10)  # one object, however many messages carry it
_NASTY = ["\ud800", "\udfff", "\x00", "\ud83d", "a\x00b", "\udc80\udc80", "//", "\\", "\u202e", "%n%s", "$HOME", "..", "~"]


def junk(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value of any type."""
    kinds: list[Callable[[], Any]] = [
        lambda: rng.randint(-(10**30), 10**30),
        lambda: rng.choice([1e308, -1e308, 0.5, float("nan"), float("inf")]),
        lambda: "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 30))),
        lambda: rng.choice([True, False, None]),
    ]
    if depth < 3:
        kinds += [
            lambda: [junk(rng, depth + 1) for _ in range(rng.randint(0, 4))],
            lambda: {rng.choice(["id", "x", "session", "frame", "points"]): junk(rng, depth + 1) for _ in range(rng.randint(0, 4))},
        ]
    return rng.choice(kinds)()


def header(fields: Any) -> bytes:
    """JSON as a careless client writes it: NaN allowed, lone surrogates escaped (`\\ud800`)."""
    return json.dumps(fields, allow_nan=True).encode()


def _nasty_text(rng: random.Random, base: str) -> str:
    """`base` with a NUL, a lone surrogate, `//` or the like put somewhere in it."""
    at = rng.randint(0, len(base))
    return base[:at] + rng.choice(_NASTY) + base[at:]


def valid_requests(session: str, root: str) -> list[dict[str, Any]]:
    """Requests that would be fine for `session` (a 3-frame, 64x48 plate under `root`)."""
    plate = {"path": f"{root}/attacker/attacker.####.exr", "frames": "1001-1003", "colourspace": "ACEScg"}
    output = {"path": f"{root}/attacker_mattes/attacker.####.exr"}
    return [
        {"type": "prompt", "session": session, "object": {"id": 1, "name": "obj", "colour": [1, 0.5, 0]}, "frame": 1001,
         "points": [[10, 10], [20, 30]], "labels": [1, 0]},
        {"type": "prompt", "session": session, "object": {"id": 2, "name": "box"}, "frame": 1002, "box": [5, 5, 40, 30]},
        {"type": "preview", "session": session, "frame": 1001},
        {"type": "clear", "session": session, "object_id": 1, "frame": 1001},
        {"type": "remove", "session": session, "object_id": 2},
        {"type": "attach", "session": session},
        {"type": "export", "session": session},
        {"type": "propagate", "session": session, "start": 1001, "end": 1002, "direction": "forward", "overwrite": True},
        {"type": "cancel", "session": session},
        {"type": "open", "plate": plate, "output": output, "colour": {"config": "ocio://studio-config-latest"}},
        {"type": "status"},
        {"type": "hello", "client": "fuzz"},
    ]


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """One random change somewhere in a JSON value."""
    if isinstance(value, dict) and value and depth < 4 and rng.random() < 0.7:
        key = rng.choice(list(value))
        out = dict(value)
        action = rng.randrange(4)
        if action == 0:
            del out[key]
        elif action == 1:
            out[rng.choice([key + "x", "", "\ud800", "v", "id", "type"])] = junk(rng)
        else:
            out[key] = _mutate(rng, value[key], depth + 1)
        return out
    if isinstance(value, list) and value and depth < 4 and rng.random() < 0.7:
        out_list = list(value)
        i = rng.randrange(len(out_list))
        action = rng.randrange(4)
        if action == 0:
            del out_list[i]
        elif action == 1:
            out_list.insert(i, junk(rng))
        elif action == 2:
            out_list = out_list * rng.choice([2, 3, 40])
        else:
            out_list[i] = _mutate(rng, out_list[i], depth + 1)
        return out_list
    if isinstance(value, str) and rng.random() < 0.6:
        return _nasty_text(rng, value) if rng.random() < 0.7 else value * rng.choice([2, 200, 5000])
    if isinstance(value, (int, float)) and not isinstance(value, bool) and rng.random() < 0.6:
        return rng.choice([10**400, -(10**400), 10**20, -1, 0, 2**63, 1e308, 0.5, float("nan"), True, str(value)])
    return junk(rng)


def hostile(rng: random.Random, n: int, session: str, root: str) -> list[bytes]:
    """Message `n` of the flood (frames after the identity); `session` is the sender's own."""
    kind = n % KINDS
    rid = f"f{n}"
    if kind == 0:
        return [rng.randbytes(rng.randint(0, 300))]
    if kind == 1:
        text = json.dumps({"v": [1, 0], "id": rid, "type": "ping"})
        return [text[: rng.randint(0, len(text) - 1)].encode()]
    if kind == 2:
        return [header(junk(rng))]
    if kind == 3:  # every field of a real request type replaced by junk of another type
        type_ = rng.choice(list(protocol.REQUESTS))
        return [header({"v": [1, 0], "id": rid, "type": type_, **{k: junk(rng) for k in protocol.REQUESTS[type_]}})]
    if kind == 4:
        depth = rng.choice([50, 5_000, 100_000])  # under MAX_MESSAGE_BYTES: oversize has its own socket
        return [("[" * depth + "]" * depth).encode() if n % 2 else ('{"a":' * depth + "1" + "}" * depth).encode()]
    if kind == 5:
        big = rng.choice(["1" * 5_000, "9" * 400, "1e999", "-1e999", "NaN"])
        return [f'{{"v":[1,0],"id":"{rid}","type":"preview","session":"{session}","frame":{big}}}'.encode()]
    if kind == 6:
        v = rng.choice([[2, 0], [0, 9], [1], "1.0", [True, False], None, [1, 0, 0], [10**40, 0]])
        return [header({"v": v, "id": rid, "type": "ping"})]
    if kind == 7:
        bad_id = rng.choice(["", "x" * 65, "a b", "ü", 7, None, ["x"], "\x00", "\ud800"])
        return [header({"v": [1, 0], "id": bad_id, "type": "ping"})]
    if kind == 8:
        type_ = rng.choice(["attach", "prompt", "clear", "remove", "preview", "propagate", "cancel", "export", "close"])
        fields = {"session": "".join(rng.choices(string.ascii_letters, k=22)), "object": {"id": 1, "name": "x"}, "frame": 1001,
                  "object_id": 1, "start": 1, "end": 2, "direction": "both", "points": [[1, 1]], "labels": [1]}
        return [header({"v": [1, 0], "id": rid, "type": type_, **fields})]
    if kind == 9:
        return [header({"v": [1, 0], "id": rid, "type": "".join(rng.choices(string.ascii_lowercase, k=rng.randint(1, 80)))})]
    if kind == 10:
        return [rng.randbytes(rng.randint(0, 40)) for _ in range(rng.randint(1, 60))]
    if kind == 11:  # the sender's own session, hostile contents
        choice = rng.randrange(6)
        if choice == 0:
            points = [[junk(rng), junk(rng)] for _ in range(rng.randint(0, 3))] or [[1e308, -1]]
            return [header({"v": [1, 0], "id": rid, "type": "prompt", "session": session, "object": {"id": rng.randint(-3, 3), "name": "obj"},
                            "frame": rng.choice([1001, 1002, -1, 10**12]), "points": points, "labels": [rng.choice([0, 1, 2, -1])] * len(points)})]
        if choice == 1:
            return [header({"v": [1, 0], "id": rid, "type": "prompt", "session": session, "object": {"id": 2, "name": "box"},
                            "frame": 1001, "box": [rng.uniform(-10, 100) for _ in range(rng.choice([3, 4, 5]))]})]
        if choice == 2:
            return [header({"v": [1, 0], "id": rid, "type": "preview", "session": session, "frame": rng.randint(990, 1010)})]
        if choice == 3:
            return [header({"v": [1, 0], "id": rid, "type": rng.choice(["clear", "remove"]), "session": session,
                            "object_id": rng.randint(-2, 4), "frame": rng.randint(990, 1010)})]
        if choice == 4:
            return [header({"v": [1, 0], "id": rid, "type": "propagate", "session": session, "start": rng.randint(990, 1010),
                            "end": rng.randint(990, 1010), "direction": rng.choice(["both", "up", ""])})]
        return [header({"v": [1, 0], "id": rid, "type": "open", "plate": junk(rng), "output": {"path": "/etc/passwd.####.exr"}})]
    if kind == 12:  # many frames that together exceed the limit, each under it
        return [header({"v": [1, 0], "id": rid, "type": "ping"}), *[_BIG_FRAME] * 4]
    if kind == 13:  # numbers too large for a float, as JSON digits, where the recipe reads floats
        where = rng.randrange(4)
        obj = f'{{"id":1,"name":"obj","colour":[{_DIGITS},0,0]}}' if where == 2 else '{"id":1,"name":"obj"}'
        pick = f'"points":[[{_DIGITS},1]],"labels":[1]' if where == 0 else f'"box":[1,1,-{_DIGITS},5]' if where == 1 else '"points":[[1,1]],"labels":[1]'
        if where == 3:
            return [f'{{"v":[1,0],"id":"{rid}","type":"open","plate":{{"path":"{root}/a.####.exr","frames":"1-2","colourspace":"ACEScg",'
                    f'"first_frame":{_DIGITS}}},"output":{{"path":"{root}/m.####.exr"}}}}'.encode()]
        return [f'{{"v":[1,0],"id":"{rid}","type":"prompt","session":"{session}","object":{obj},"frame":1001,{pick}}}'.encode()]
    if kind == 14:  # NUL, lone surrogates and `//` in paths and names
        fields = valid_requests(session, root)[9]
        part, key = rng.choice([("plate", "path"), ("output", "path"), ("colour", "config"), ("plate", "colourspace"), ("plate", "frames")])
        fields = copy.deepcopy(fields)
        fields[part][key] = _nasty_text(rng, fields[part][key])
        if rng.random() < 0.2:
            fields["output"]["path"] = f"{root}/m//x.####.exr"
        return [header({"v": [1, 0], "id": rid, **fields})]
    if kind == 15:  # over the limits, yet under the message size
        choice = rng.randrange(5)
        if choice == 0:
            count = rng.choice([65, 1_000, 20_000])
            return [header({"v": [1, 0], "id": rid, "type": "prompt", "session": session, "object": {"id": 1, "name": "obj"}, "frame": 1001,
                            "points": [[round(rng.uniform(0, 64), 2), round(rng.uniform(0, 48), 2)] for _ in range(count)], "labels": [1] * count})]
        if choice == 1:
            frames = rng.choice(["1-9999999", "1-100000000", "1-99999999999999999999", "1-100001", "1-1000000x9,1-5"])
            request = copy.deepcopy(valid_requests(session, root)[9])
            request["plate"]["frames"] = frames
            return [header({"v": [1, 0], "id": rid, **request})]
        if choice == 2:
            request = copy.deepcopy(valid_requests(session, root)[9])
            request["plate"]["path"] = root + "/a" * rng.choice([2_100, 150_000]) + "/x.####.exr"
            return [header({"v": [1, 0], "id": rid, **request})]
        if choice == 3:
            return [header({"v": [1, 0], "id": rid, "type": "attach", "session": "s" * rng.choice([4_097, 300_000])})]
        return [header({"v": [1, 0], "id": rid, "type": "prompt", "session": session, "object": {"id": rng.randint(100, 10**6), "name": f"o{n}"},
                        "frame": 1001, "box": [1, 1, 9, 9]})]
    # kind 16: a valid request, mutated at random
    request = rng.choice(valid_requests(session, root))
    mutated = _mutate(rng, {"v": [1, 0], "id": rid, **request})
    return [header(mutated)]


class Racer:
    """A client that closes its own sessions with requests right behind the close.

    Every request after the close must be answered `unknown_session` and no propagation may
    start; `check` says what went wrong (an empty list: nothing).
    """

    def __init__(self, endpoint: str, open_fields: dict[str, Any]) -> None:
        self.peer = Peer(endpoint)
        self.open_fields = open_fields
        self.sent = 0
        self.problems: list[str] = []

    def race(self) -> None:
        opened = self.peer.call("open", **self.open_fields)
        self.sent += 1
        if not opened["ok"]:
            self.problems.append(f"open failed: {opened['error']}")
            return
        session = opened["result"]["session"]
        self.peer.send("prompt", session=session, object={"id": 1, "name": "obj"}, frame=1001, points=[[20, 20]], labels=[1])
        close = self.peer.send("close", session=session)
        behind = [(self.peer.send(type_, **fields), type_) for type_, fields in _racing(session)]
        self.sent += 2 + len(behind)
        deadline = time.monotonic() + 30
        answer = self.peer.reply(close, max(0.1, deadline - time.monotonic()))
        if not answer["ok"]:
            self.problems.append(f"close answered {answer['error']}")
        for rid, type_ in behind:
            reply = self.peer.reply(rid, max(0.1, deadline - time.monotonic()))
            if reply["ok"] or reply["error"]["name"] != "unknown_session":
                self.problems.append(f"{type_} behind close answered {reply.fields}")
            if self.peer.events.get(rid):
                self.problems.append(f"{type_} behind close started a job")

    def close(self) -> None:
        self.peer.close()


def _racing(session: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("clear", {"session": session, "object_id": 1, "frame": 1001}),
        ("remove", {"session": session, "object_id": 1}),
        ("prompt", {"session": session, "object": {"id": 2, "name": "o"}, "frame": 1002, "points": [[5, 5]], "labels": [1]}),
        ("preview", {"session": session, "frame": 1001}),
        ("attach", {"session": session}),
        ("export", {"session": session}),
        ("propagate", {"session": session, "start": 1001, "end": 1003, "direction": "forward", "overwrite": True}),
        ("cancel", {"session": session}),
        ("close", {"session": session}),
    ]


@dataclass
class Report:
    """What a flood did: answers by error name, a good client's click round trips, what went wrong."""

    messages: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    #: click round trips with no flood: before it and after it
    idle: list[float] = field(default_factory=list)
    loaded: list[float] = field(default_factory=list)
    previews_identical: bool = True
    problems: list[str] = field(default_factory=list)
    races: int = 0
    seconds: float = 0.0

    @property
    def ratio(self) -> float:
        """Median click round trip under load over its idle value."""
        return statistics.median(self.loaded) / statistics.median(self.idle)

    def summary(self) -> str:
        return (
            f"{self.messages} hostile messages in {self.seconds:.1f} s ({self.messages / self.seconds:.0f}/s), "
            f"{self.races} raced closes; answers: {dict(sorted(self.answers.items()))}; "
            f"click round trip idle median {statistics.median(self.idle) * 1000:.0f} ms, under load median "
            f"{statistics.median(self.loaded) * 1000:.0f} ms (x{self.ratio:.2f}), max {max(self.loaded) * 1000:.0f} ms "
            f"over {len(self.loaded)} clicks; previews identical: {self.previews_identical}; problems: {self.problems or 'none'}"
        )


#: The flood comes in bursts of BURST seconds with QUIET seconds between them, when the good
#: client's clicks measure the idle round trip: both sides of the comparison then share
#: whatever else the machine is doing (a shared CI box runs other jobs).
BURST, QUIET = 2.5, 0.8


def _attack(endpoint: str, root: str, own: str, racer_open: dict[str, Any], messages: int, seed: int, rate: float,
            races_every: int, results: Any, sent: Any, flooding: Any) -> None:
    """The attacker's process: send the flood at `rate` per second (0: flat out) in bursts,
    race closes, then collect every answer; puts (answers, racer messages, races, problems)
    on `results`. `flooding` is set during a burst, `sent` once every message is out."""
    rng = random.Random(seed)
    attacker, oversize = Peer(endpoint), Peer(endpoint)
    racer = Racer(endpoint, racer_open)
    answers: Counter[str] = Counter()
    races = 0

    def read_answers() -> None:
        while attacker.socket.poll(0):
            reply = protocol.decode_reply(attacker.socket.recv_multipart())
            if reply.type == "reply":  # events of a job a hostile propagate started are not answers
                answers["ok" if reply["ok"] else reply["error"]["name"]] += 1

    problems: list[str] = []
    try:
        # made up front, so that making them (20,000 random points take a while) does not
        # eat the CPU the bridge is measured on
        flood = [hostile(rng, n, own, root) for n in range(messages)]
        started = burst = time.monotonic()
        flooding.set()
        for n in range(messages):
            if time.monotonic() - burst > BURST:  # a quiet spell: the good client measures its idle clicks
                flooding.clear()
                time.sleep(QUIET)
                burst = time.monotonic()
                started = burst - n / rate if rate else burst
                flooding.set()
            attacker.socket.send_multipart(flood[n])
            if n % 1000 == 999:  # whole messages over MAXMSGSIZE: libzmq drops the connection, which reconnects
                oversize.socket.send_multipart([b"x" * (protocol.MAX_MESSAGE_BYTES + 1)], zmq.NOBLOCK)
            if n % races_every == races_every - 1:
                racer.race()
                races += 1
            if n % 100 == 0:  # read some answers, as a careless client would; the rest wait in the socket
                read_answers()
            ahead = started + (n + 1) / rate - time.monotonic() if rate else 0
            if ahead > 0:
                time.sleep(ahead)
        flooding.clear()
        sent.set()
        deadline = time.monotonic() + 60
        while sum(answers.values()) < messages and time.monotonic() < deadline:
            attacker.socket.poll(100)
            read_answers()
    except Exception as exc:
        problems.append(f"the attacker failed: {exc!r}")
    finally:
        flooding.clear()
        sent.set()
        results.put((dict(answers), racer.sent, races, racer.problems + problems))
        for peer in (attacker, oversize):
            peer.close()
        racer.close()


def flood(endpoint: str, root: Path, messages: int, seed: int, *, rate: float, races_every: int = 500) -> Report:
    """Throw `messages` hostile messages (plus raced closes and oversized ones) at a bridge at
    about `rate` per second (0: as fast as it can) from another process, as an attacker on
    the machine would, while a good client clicks on its own session.

    Every hostile message must be answered (`Report.answers` counts them by error name) and
    the good client's previews must stay what they were before the flood.
    """
    from .conftest import shot  # the bridge's test helpers (torch): not for the attacker's process

    report = Report()
    artist, attacker = Peer(endpoint), Peer(endpoint)
    process: multiprocessing.process.BaseProcess | None = None
    try:
        mine = artist.ok("open", **shot(root, "artist", frames=3))["session"]
        click = {"session": mine, "object": {"id": 1, "name": "car"}, "frame": 1002, "points": [[20, 20]], "labels": [1]}

        def clicked() -> float:
            started = time.monotonic()
            reply = artist.call("prompt", **click)
            took = time.monotonic() - started
            planes = preview_planes(reply)
            if planes.keys() != expected.keys() or not all(np.array_equal(planes[k], expected[k]) for k in planes):
                report.previews_identical = False
            artist.ok("remove", session=mine, object_id=1)  # a repeated click would refine the last mask
            return took

        expected = preview_planes(artist.call("prompt", **click))
        artist.ok("remove", session=mine, object_id=1)
        report.idle = [clicked() for _ in range(9)]
        own = attacker.ok("open", **shot(root, "attacker", frames=3))["session"]  # the attacker's own session
        racer_open = shot(root, "racer", frames=3)

        spawn = multiprocessing.get_context("spawn")
        results, sent, flooding = spawn.Queue(), spawn.Event(), spawn.Event()
        process = spawn.Process(
            target=_attack, args=(endpoint, str(root), own, racer_open, messages, seed, rate, races_every, results, sent, flooding),
            name="attacker",
        )
        started = time.monotonic()
        process.start()
        quiet_since = time.monotonic()
        while process.is_alive() and not sent.is_set():  # clicks while the flood goes on, and between its bursts
            before = flooding.is_set()
            took = clicked()
            after = flooding.is_set()
            if before and after:
                report.loaded.append(took)
            elif not before and not after and time.monotonic() - took - quiet_since > 0.4:  # the bridge has caught up
                report.idle.append(took)
            if after:
                quiet_since = float("inf")
            elif quiet_since == float("inf"):
                quiet_since = time.monotonic()
            time.sleep(0.05)
        answers, racer_sent, report.races, problems = results.get(timeout=120)
        report.seconds = time.monotonic() - started
        report.answers = Counter(answers)
        report.messages = messages + racer_sent
        report.problems += problems
        if sum(report.answers.values()) != messages:
            report.problems.append(f"{messages - sum(report.answers.values())} hostile messages got no answer")
        if artist.ok("ping") != {} or artist.ok("attach", session=mine)["session"] != mine:
            report.problems.append("the good client's session is gone")
        report.loaded.append(clicked())
        # idle again: clicks before and after the flood make the idle value, so that the
        # machine's other work (a shared CI box) weighs on both sides of the comparison
        time.sleep(1)
        report.idle += [clicked() for _ in range(9)]
    finally:
        if process is not None:
            process.join(30)
            if process.is_alive():  # the flood was cut short by a failure here: stop the attacker too
                process.kill()
                process.join()
        artist.close()
        attacker.close()
    return report
