"""Handing work to a thread that sleeps in `zmq.Poller.poll`: a queue plus a wake-up socket.

A ZeroMQ socket belongs to one thread, so other threads cannot send on the client's
DEALER; they put requests here, and an inproc PAIR wakes the I/O thread, whose poller
watches `socket`. Stdlib + pyzmq.
"""

from __future__ import annotations

import queue
import threading
from typing import Generic, TypeVar

import zmq

T = TypeVar("T")


class Inbox(Generic[T]):
    """Items for the polling thread; `put` from any thread, `take`/`drain` on the polling one."""

    def __init__(self, context: zmq.Context[zmq.Socket[bytes]], name: str) -> None:
        self._items: queue.SimpleQueue[T] = queue.SimpleQueue()
        self.socket: zmq.Socket[bytes] = context.socket(zmq.PAIR)  # register with the poller
        self.socket.bind(f"inproc://{name}")
        self._wake = context.socket(zmq.PAIR)
        self._wake.connect(f"inproc://{name}")
        self._lock = threading.Lock()  # the waking side is shared by every caller thread

    def put(self, item: T) -> None:
        self._items.put(item)
        self.wake()

    def wake(self) -> None:
        with self._lock:
            if self._wake.closed:
                return
            try:
                self._wake.send(b"", zmq.NOBLOCK)
            except zmq.ZMQError:
                pass  # the pipe is full: the polling thread is awake anyway

    def take(self) -> list[T]:
        """Everything queued, oldest first; also clears the wake-ups."""
        while True:
            try:
                self.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        items = []
        while True:
            try:
                items.append(self._items.get_nowait())
            except queue.Empty:
                return items

    def close(self) -> None:
        self.socket.close(linger=0)
        with self._lock:
            self._wake.close(linger=0)
