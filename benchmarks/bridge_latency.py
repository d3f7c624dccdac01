"""What the bridge's protocol costs: a click's round trip, and progress events during propagation.

Shot: 1920x1080 ACEScg half EXRs with overscan (examples/make_shot.py at scale 3); model:
the random-weight SAM 2.1 tiny checkpoint at ++model.image_size=512 (random weights cost
the same compute as trained ones); CPU. The bridge is a real `rotobridge serve` process;
the client is a DEALER in this process speaking the raw protocol.

1. Click: `prompt` on an already decoded frame, from sending the request to the decoded
   reply with its preview (512x288, one object), against `Engine.add_points` + the same
   preview computation in this process. Median of --clicks each, interleaved so machine
   noise hits both; the difference is the protocol's overhead (goal < 15 ms).
2. Propagation: --frames frames forward from the click, mattes written, through the bridge
   (`propagate` request to `finished` event) against the same `tracking.write_mattes` loop in
   this process. Best of --runs each, interleaved; the slowdown is the cost of stepping one
   frame at a time and sending progress events (goal < 2 %). On a shared 2-core machine
   run-to-run noise is a few %, so:
3. Events alone: encoding one `progress` event and sending it from a ROUTER to a DEALER
   over loopback TCP, timed over 20,000 events, as a share of one propagated frame's time —
   the part of the slowdown the events themselves can cause, free of machine noise.
    .venv/bin/python benchmarks/bridge_latency.py [--clicks 20] [--frames 12] [--runs 2]
"""

from __future__ import annotations

import argparse
import itertools
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import zmq

from common import CONFIG, ROOT, prepare

from rotobridge import protocol
from rotobridge import recipe as recipes
from rotobridge.bridge import model as models
from rotobridge.bridge import tracking
from rotobridge.bridge.colour import ColourPipeline
from rotobridge.bridge.engine import Engine
from rotobridge.bridge.plate import open_plate
from rotobridge.bridge.session import preview

_ids = itertools.count()


class Client:
    def __init__(self, address: str) -> None:
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.linger = 0
        self.socket.connect(address)

    def send(self, type_: str, **fields: Any) -> str:
        rid = f"b{next(_ids)}"
        self.socket.send_multipart(protocol.request(type_, rid, **fields))
        return rid

    def next(self, timeout: float = 600) -> protocol.Message:
        if not self.socket.poll(int(timeout * 1000)):
            raise SystemExit("the bridge did not answer")
        return protocol.decode_reply(self.socket.recv_multipart())

    def call(self, type_: str, **fields: Any) -> dict[str, Any]:
        rid = self.send(type_, **fields)
        while (msg := self.next()).id != rid or msg.type != "reply":
            pass
        if not msg["ok"]:
            raise SystemExit(f"{type_} failed: {msg['error']}")
        return dict(msg["result"])


def start_bridge(recipe: recipes.Recipe, work: Path) -> tuple[subprocess.Popen[bytes], Client]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "rotobridge.bridge.cli", "--log-level", "WARNING", "serve", "--address", address,
        "--root", str(work), "--config-file", CONFIG, "--checkpoint", str(recipe.model.checkpoint), "--device", "cpu",
        *[f"--override={o}" for o in recipe.model.overrides],
    ]
    bridge = subprocess.Popen(command, cwd=ROOT)
    client = Client(address)
    client.call("hello", client="benchmark")
    return bridge, client


def event_cost(count: int = 20000) -> float:
    """Seconds per progress event from encoding on a ROUTER to arrival on a DEALER (loopback TCP)."""
    context = zmq.Context.instance()
    router, dealer = context.socket(zmq.ROUTER), context.socket(zmq.DEALER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    dealer.connect(f"tcp://127.0.0.1:{port}")
    dealer.send(b"hi")
    identity, _ = router.recv_multipart()
    started = time.perf_counter()
    for i in range(count):
        router.send_multipart([identity, *protocol.event("job-1", "progress", frame=1001 + i, path="/shots/sh010/m.1001.exr", done=i, total=count)])
        dealer.recv_multipart()
    elapsed = time.perf_counter() - started
    router.close(0)
    dealer.close(0)
    return elapsed / count


def open_fields(recipe: recipes.Recipe, output: Path) -> dict[str, Any]:
    return recipes.Shot(recipe.plate, recipes.Output(str(output / "m.####.exr")), recipe.colour).fields()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=20)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "rotobridge-bench")
    args = parser.parse_args()
    recipe = recipes.load(prepare(args.work, args.frames, scale=3, image_size=args.image_size))
    prompt = recipe.objects[0].prompts[0]
    x, y = prompt.points[0]
    clicks = [[[x + dx, y + dy]] for dx, dy in zip(range(-9, 9), itertools.cycle([-4, 0, 4]))] * (args.clicks // 18 + 1)
    loaded = models.from_recipe(recipe.model, recipe.resolve, "cpu")
    colour = ColourPipeline(recipe.plate.colourspace)
    plate = open_plate(recipe.plate.path, recipe.plate.frames)
    width, height = plate.info.display.width, plate.info.display.height
    print(f"{width}x{height} EXR plate, {loaded.name} (random weights) at {loaded.image_size}, CPU, {torch.get_num_threads()} threads")

    bridge, client = start_bridge(recipe, args.work)
    try:
        session = client.call("open", **open_fields(recipe, args.work / "bridge_clicks"))["session"]
        engine = Engine(loaded, plate, colour)
        for points in clicks[:2]:  # warm up: decode the frame, compute its image features
            engine.add_points(prompt.frame, 1, points, [1])
            client.call("prompt", session=session, object={"id": 1, "name": "ball"}, frame=prompt.frame, points=points, labels=[1])
        local, remote = [], []
        for points in clicks[: args.clicks]:
            started = time.perf_counter()
            preview(engine.add_points(prompt.frame, 1, points, [1]), width, height)
            local.append(time.perf_counter() - started)
            started = time.perf_counter()
            client.call("prompt", session=session, object={"id": 1, "name": "ball"}, frame=prompt.frame, points=points, labels=[1])
            remote.append(time.perf_counter() - started)
        engine.close()
        ms_local, ms_remote = statistics.median(local) * 1000, statistics.median(remote) * 1000
        print(f"click, in process (add_points + preview): median {ms_local:.1f} ms over {len(local)} clicks")
        print(f"click, through the bridge (prompt round trip): median {ms_remote:.1f} ms")
        print(f"protocol overhead per click: {ms_remote - ms_local:.1f} ms (goal < 15 ms)")

        frames = list(plate.info.frames)
        in_process, through = [], []
        for run in range(args.runs):
            engine = Engine(loaded, plate, colour)
            engine.add_points(prompt.frame, 1, prompt.points, prompt.labels)
            writer = tracking.matte_writer(recipe, plate.info, colour, loaded, overwrite=True)
            started = time.perf_counter()
            for _ in tracking.write_mattes(engine, writer, [1], tracking.passes(recipe, frames), frames):
                pass
            in_process.append(time.perf_counter() - started)
            engine.close()

            fields = open_fields(recipe, args.work / "bridge_mattes")
            session = client.call("open", **fields)["session"]
            client.call("prompt", session=session, object={"id": 1, "name": "ball"}, frame=prompt.frame,
                        points=[list(p) for p in prompt.points], labels=list(prompt.labels))
            started = time.perf_counter()
            rid = client.send("propagate", session=session, start=frames[0], end=frames[-1], direction="forward", overwrite=True)
            events = 0
            while (msg := client.next()).type != "event" or msg["event"] != "finished":
                events += msg.type == "event"
            through.append(time.perf_counter() - started)
            assert msg.id == rid and msg["status"] == "done" and events == len(frames), msg.fields
            client.call("close", session=session)
            print(f"run {run + 1}: {len(frames)} frames in process {in_process[-1]:.2f} s, through the bridge {through[-1]:.2f} s")
        best_local, best_remote = min(in_process), min(through)
        print(
            f"propagation of {len(frames)} frames: in process {best_local:.2f} s, through the bridge {best_remote:.2f} s "
            f"(best of {args.runs}): slowdown {100 * (best_remote / best_local - 1):+.1f} % (goal < 2 %)"
        )
        per_event = event_cost()
        print(
            f"one progress event (encode + send + receive): {per_event * 1e6:.1f} us = "
            f"{100 * per_event / (best_remote / len(frames)):.4f} % of a frame's {best_remote / len(frames):.2f} s (goal < 2 %)"
        )
    finally:
        bridge.terminate()
        bridge.wait(30)
        plate.close()


if __name__ == "__main__":
    main()
