"""A raw DEALER that speaks the protocol: what a host's client sends, with none of its conveniences.

Tests drive the bridge over real sockets with it, so what they prove is the wire behaviour
(replies, events, errors), not a client library's.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from typing import Any

import numpy as np
import zmq

from rotobridge import protocol

_ids = itertools.count(1)


class Peer:
    def __init__(
        self, endpoint: str, *, curve: tuple[bytes, bytes, bytes] | None = None, identity: bytes | None = None
    ) -> None:
        """curve: (server public, client public, client secret) keys, z85."""
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.sndtimeo = 2000  # a DEALER with no live connection (refused key) blocks on send
        if identity is not None:
            self.socket.setsockopt(zmq.ROUTING_ID, identity)
        if curve is not None:
            self.socket.curve_serverkey, self.socket.curve_publickey, self.socket.curve_secretkey = curve
        self.socket.connect(endpoint)
        #: events received so far, by request id
        self.events: dict[str, list[protocol.Message]] = defaultdict(list)
        self._replies: dict[str, protocol.Message] = {}

    def send(self, type_: str, *, binary: tuple[bytes, ...] = (), **fields: Any) -> str:
        rid = f"t{next(_ids)}"
        try:
            self.socket.send_multipart(protocol.request(type_, rid, binary, **fields))
        except zmq.Again:
            raise TimeoutError(f"cannot send {type_}: no connection to the bridge") from None
        return rid

    def _receive(self, timeout: float) -> bool:
        if not self.socket.poll(int(timeout * 1000)):
            return False
        msg = protocol.decode_reply(self.socket.recv_multipart())
        if msg.type == "event":
            self.events[msg.id].append(msg)
        else:
            self._replies[msg.id] = msg
        return True

    def reply(self, rid: str, timeout: float = 30) -> protocol.Message:
        deadline = time.monotonic() + timeout
        while rid not in self._replies:
            left = deadline - time.monotonic()
            if left <= 0 or not self._receive(left):
                raise TimeoutError(f"no reply to {rid} within {timeout} s")
        return self._replies.pop(rid)

    def call(self, type_: str, *, timeout: float = 30, binary: tuple[bytes, ...] = (), **fields: Any) -> protocol.Message:
        return self.reply(self.send(type_, binary=binary, **fields), timeout)

    def ok(self, type_: str, **fields: Any) -> dict[str, Any]:
        """The result of a request that must succeed."""
        msg = self.call(type_, **fields)
        assert msg["ok"], msg.fields
        return dict(msg["result"])

    def error(self, type_: str, **fields: Any) -> tuple[str, str]:
        """(name, message) of a request that must fail."""
        msg = self.call(type_, **fields)
        assert not msg["ok"], msg.fields
        return msg["error"]["name"], msg["error"]["message"]

    def wait_events(self, rid: str, count: int | None = None, timeout: float = 120) -> list[protocol.Message]:
        """Events of `rid` once there are `count` of them, or (count None) once `finished` came."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.events[rid]
            if (len(got) >= count) if count is not None else (got and got[-1]["event"] == "finished"):
                return list(got)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{len(got)} event(s) of {rid} after {timeout} s")
            self._receive(left)

    def finished(self, rid: str, timeout: float = 120) -> protocol.Message:
        return self.wait_events(rid, timeout=timeout)[-1]

    def close(self) -> None:
        """Close the socket and its context (again: nothing)."""
        if self.socket.closed:
            return
        self.socket.close(linger=0)
        self.context.term()


def preview_planes(msg: protocol.Message) -> dict[int, np.ndarray]:
    """A preview reply's planes by object id, (height, width) uint8."""
    p = msg["result"]["preview"]
    assert p["format"] == "u8" and len(msg.binary) == len(p["objects"])
    return {
        oid: np.frombuffer(data, np.uint8).reshape(p["height"], p["width"]) for oid, data in zip(p["objects"], msg.binary)
    }
