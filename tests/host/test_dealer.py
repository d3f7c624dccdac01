"""The client's socket: a routing id nobody can guess, so nobody can claim its replies."""

from __future__ import annotations

import zmq

from rotobridge.dealer import Dealer


def test_each_connection_has_its_own_random_routing_id_and_the_bridge_sees_it() -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    router = context.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealers = [Dealer(context, f"tcp://127.0.0.1:{port}", 1.0, 3.0, None) for _ in range(3)]
    try:
        ids = []
        for dealer in dealers:
            dealer.connect()
            dealer.socket.send(b"hi")
            assert router.poll(5000)
            ids.append(router.recv_multipart()[0])
        assert ids == [d.socket.getsockopt(zmq.ROUTING_ID) for d in dealers]
        assert len(set(ids)) == 3 and all(len(i) == 16 and i[0] != 0 for i in ids)  # ZeroMQ's own: 0 + a counter
    finally:
        for dealer in dealers:
            dealer.close()
        router.close(linger=0)
        context.term()
