"""A seeded flood of hostile messages against a real `rotobridge serve`, while an artist clicks.

Issue 14's acceptance run: at least 20,000 hostile messages (tests/bridge/hostile.py: the
fuzz suite's corpus — malformed and oversized messages, numbers too large for a float, NUL
and lone surrogates in paths, requests over the limits, random mutations of valid requests
— plus closes raced by requests) from another process, in bursts with quiet spells between
them, against a bridge serving the random-weight SAM 2.1 tiny model on the CPU. Meanwhile a
good client clicks on its own session. Prints the figures, then each criterion:

- no hostile message is answered `internal`, and every one is answered;
- the bridge process is still up and answers;
- the good client's previews stay bit-identical to the one before the flood;
- its median click round trip under the flood is at most twice the idle one (clicks in
  the quiet spells and before and after the flood), and none takes over 3 s.

Exit status 0 when all hold.

    .venv/bin/python benchmarks/fuzz_bridge.py [--messages 20000] [--seed 20260124] [--rate 400]

`--rate` is hostile messages per second within a burst (0: as fast as the attacker can).
On a 2-core machine a sender going flat out takes a core for itself, which no server can
give back, so the default leaves the bridge a core, as the test suite does.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.bridge.hostile import flood  # noqa: E402
from tests.bridge.wire import Peer  # noqa: E402

CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"


def _serve(root: Path, checkpoint: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "rotobridge.bridge.cli", "--log-level", "WARNING", "serve",
        "--address", f"tcp://127.0.0.1:{port}", "--root", str(root), "--config-file", CONFIG,
        "--checkpoint", str(checkpoint), "--override", "++model.image_size=256", "--device", "cpu",
    ]
    with log.open("ab") as out:
        return subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=20_260_124)
    parser.add_argument("--rate", type=float, default=400, help="messages per second in a burst (0: flat out)")
    args = parser.parse_args()

    from rotobridge.bridge.model import make_random_checkpoint

    with tempfile.TemporaryDirectory(prefix="rotobridge-fuzz-") as tmp:
        work = Path(tmp)
        root = work / "root"
        root.mkdir()
        checkpoint = make_random_checkpoint(CONFIG, work / "random-tiny.pt", seed=1)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        endpoint = f"tcp://127.0.0.1:{port}"
        log = work / "bridge.log"
        bridge = _serve(root, checkpoint, port, log)
        try:
            probe = Peer(endpoint)
            deadline = time.monotonic() + 120
            while True:
                try:
                    if probe.call("hello", client="fuzz benchmark", timeout=2)["ok"]:
                        break
                except TimeoutError:
                    if time.monotonic() > deadline or bridge.poll() is not None:
                        print(log.read_text(), file=sys.stderr)
                        raise SystemExit("the bridge did not start") from None
            report = flood(endpoint, root, args.messages, args.seed, rate=args.rate)
            alive = bridge.poll() is None and probe.call("ping", timeout=10)["ok"]
            probe.close()
        finally:
            bridge.terminate()
            status = bridge.wait(30)
        print(report.summary())
        idle, loaded = statistics.median(report.idle), statistics.median(report.loaded)
        checks = {
            f"at least 20,000 hostile messages ({report.messages})": report.messages >= 20_000,
            f"none answered internal ({report.answers.get('internal', 0)})": "internal" not in report.answers,
            f"all answered, no problems ({len(report.problems)})": not report.problems,
            f"the bridge stayed up (and stopped cleanly: exit {status})": alive and status == 0,
            "previews bit-identical": report.previews_identical,
            f"median click {loaded * 1000:.0f} ms <= 2 x idle {idle * 1000:.0f} ms": loaded <= 2 * idle,
            f"slowest click {max(report.loaded) * 1000:.0f} ms < 3000 ms": max(report.loaded) < 3,
        }
        for what, ok in checks.items():
            print(f"{'ok  ' if ok else 'FAIL'} {what}")
        return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
