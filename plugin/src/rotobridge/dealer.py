"""One DEALER socket to a bridge, with the monitor that explains why a connection failed.

ZeroMQ hides connection trouble: a DEALER just waits. The socket monitor tells the CURVE
handshake's outcome and disconnections, which is what lets the client say "the bridge
refused this client's key" instead of only "no answer". A new `Dealer` per connection
attempt (a closed socket cannot be reused); owned by the client's I/O thread.

Each socket gets a random 16-byte routing id: the bridge addresses replies and job events
by it, so it must not be guessable (ZeroMQ's own are a counter). The bridge refuses a
second connection that names an id already connected, so an id cannot be taken over.
"""

from __future__ import annotations

import secrets
import struct

import zmq

#: Largest message accepted from the bridge (previews: 512 x 512 bytes per object).
MAX_INBOUND_BYTES = 64 << 20

_EVENTS = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_DISCONNECTED
)


class Dealer:
    """A connecting DEALER with ZMTP heartbeats and optional CURVE keys, and its monitor."""

    def __init__(
        self,
        context: zmq.Context[zmq.Socket[bytes]],
        address: str,
        heartbeat: float,
        dead_after: float,
        curve: tuple[bytes, bytes, bytes] | None,
    ) -> None:
        self.address = address
        self._curve = curve is not None
        #: why the connection may be failing, from the handshake (None: nothing known)
        self.refusal: str | None = None
        self._handshake_ok = False
        self.socket: zmq.Socket[bytes] = context.socket(zmq.DEALER)
        try:
            self.socket.setsockopt(zmq.ROUTING_ID, routing_id())
            self.socket.setsockopt(zmq.LINGER, 0)
            self.socket.setsockopt(zmq.MAXMSGSIZE, MAX_INBOUND_BYTES)
            self.socket.setsockopt(zmq.HEARTBEAT_IVL, _ms(heartbeat))
            self.socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, _ms(dead_after))
            self.socket.setsockopt(zmq.HEARTBEAT_TTL, min(_ms(dead_after), 6553599))
            if curve is not None:
                server, public, secret = curve
                self.socket.setsockopt(zmq.CURVE_SERVERKEY, server)
                self.socket.setsockopt(zmq.CURVE_PUBLICKEY, public)
                self.socket.setsockopt(zmq.CURVE_SECRETKEY, secret)
            self.monitor: zmq.Socket[bytes] = self.socket.get_monitor_socket(_EVENTS)
        except zmq.ZMQError:
            self.socket.close(linger=0)
            raise

    def connect(self) -> None:
        """Start connecting (ZeroMQ connects in the background); zmq.ZMQError for a bad address."""
        self.socket.connect(self.address)

    def read_monitor(self) -> str | None:
        """Read the monitor's events; the reason the connection is lost, if one says so."""
        while True:
            try:
                frames = self.monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return None
            if len(frames) != 2 or len(frames[0]) != 6:
                continue
            event, value = struct.unpack("=Hi", frames[0])
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._handshake_ok = True
            elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                return (
                    f"the bridge at {self.address} refused this client's key (ZAP status {value}): "
                    "ask for its public key to be added to the bridge's allowed keys"
                )
            elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                return (
                    f"the security handshake with the bridge at {self.address} failed: one side uses CURVE "
                    "encryption and the other does not, or they disagree (set or fix server_key)"
                )
            elif event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL and self._curve:
                self.refusal = "the secure handshake failed: is server_key the bridge's public key?"
            elif event == zmq.EVENT_DISCONNECTED and self._handshake_ok:
                return f"the bridge at {self.address} closed the connection (stopped or restarted?); reconnecting"
            elif event == zmq.EVENT_DISCONNECTED and self.refusal is None:
                self.refusal = (
                    "it closed the connection during the security handshake: does it need CURVE keys "
                    "(server_key), or are they wrong?"
                )

    def close(self) -> None:
        try:
            self.socket.disable_monitor()
        except zmq.ZMQError:
            pass
        self.monitor.close(linger=0)
        self.socket.close(linger=0)


def routing_id() -> bytes:
    """16 random bytes, the first never 0 (ZeroMQ keeps ids starting with a zero byte for its own)."""
    return bytes([1 + secrets.randbelow(255)]) + secrets.token_bytes(15)


def _ms(seconds: float) -> int:
    return max(1, int(round(seconds * 1000)))
