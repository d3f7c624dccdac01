"""`rotobridge`: the command line pipeline TDs and farm jobs run, and the bridge's own.

Exit status: 0 only when every requested frame was written; otherwise the error's own
code (see `rotobridge.errors`), 1 for an incomplete render or an unreachable bridge,
130 when interrupted.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sys
import threading
from typing import Any, Sequence

from rotobridge import protocol
from rotobridge import recipe as recipes
from rotobridge.errors import CancelledError, ConfigError, RotobridgeError
from rotobridge.version import __version__

from . import logs

log = logging.getLogger("rotobridge")


def _render(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from . import model as models
    from . import render as rendering

    recipe = recipes.load(args.recipe)
    roots = tuple(os.path.realpath(os.path.expanduser(root)) for root in args.root or ())
    job = rendering.prepare(recipe, frames=args.frames, roots=roots)
    cancel = threading.Event()
    try:
        loaded = models.from_recipe(recipe.model, lambda path: job.resolve(path, "model.checkpoint"), args.device)
        log.info(
            "model %s on %s (checkpoint %s, sha256 %s)%s",
            loaded.name,
            loaded.device,
            loaded.checkpoint,
            loaded.sha256[:12],
            " — UNTRAINED random weights" if loaded.untrained else "",
        )
        bar = tqdm(total=len(job.frames), unit="frame", desc="mattes", disable=args.quiet, file=sys.stderr)
        try:
            result = rendering.run(
                job, loaded, overwrite=args.overwrite, progress=lambda frame, path: bar.update(1), cancel=cancel
            )
        except KeyboardInterrupt:
            cancel.set()
            raise CancelledError(
                f"interrupted after {bar.n} of {len(job.frames)} frames; the mattes written so far are complete"
            ) from None
        finally:
            bar.close()
        if args.qc:
            from .qc import write_render_qc

            write_render_qc(args.qc, job, sorted(result.written.items()))
            log.info("QC picture: %s", args.qc)
    finally:
        job.close()
    rate = len(result.written) / result.seconds if result.seconds else 0.0
    print(
        f"rendered {len(result.written)}/{len(result.requested)} frames, {len(recipe.objects)} object(s), "
        f"in {result.seconds:.1f} s ({rate:.2f} frames/s) -> {recipe.resolve(recipe.output.path)}"
        + (f"; {len(result.untracked)} frame(s) not reached by propagation are empty" if result.untracked else "")
    )
    return 0 if result.complete else 1


def _checkpoint_random(args: argparse.Namespace) -> int:
    from . import model as models
    from . import registry

    config = args.config or registry.get(args.model).config
    path = models.make_random_checkpoint(config, args.out, seed=args.seed)
    print(
        f"WARNING: {path} holds RANDOMLY INITIALISED, UNTRAINED weights for {config}.\n"
        "It is for tests and offline plumbing checks only: its mattes mean nothing.",
        file=sys.stderr,
    )
    print(path)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from . import config as configs
    from . import model as models
    from .server import Server

    config = configs.load(
        {
            "address": args.address,
            "roots": args.root,
            "model": args.model,
            "model_config": args.config_file,
            "checkpoint": args.checkpoint,
            "overrides": args.override,
            "device": args.device,
            "session_timeout": args.session_timeout,
            "curve_secret": args.curve_secret,
            "curve_authorized": args.curve_authorized,
        },
        file=args.config,
    )
    loaded = models.from_recipe(config.model_section(), os.path.abspath, config.device)
    # Everything alive now (the model above all) leaves the garbage collector's care: a full
    # collection would otherwise walk it, a ~0.3 s pause that the click in progress waits
    # for whenever a flood of junk sets one off. Done here, in the bridge's own process,
    # not in Server, which tests run inside other processes.
    gc.collect()
    gc.freeze()
    server = Server(config, loaded)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: server.stop())
    server.serve_forever()
    log.info("bridge stopped")
    return 0


def _keys(args: argparse.Namespace) -> int:
    from .security import write_keys

    public, secret = write_keys(args.dir, args.name)
    print(f"public key (hand out: a client's goes in the bridge's curve_authorized folder): {public}")
    print(f"secret key (keep private: curve_secret of a bridge, --client-key of a client): {secret}")
    return 0


def _ask_status(address: str, timeout: float, server_key: str | None, client_key: str | None) -> dict[str, Any]:
    """One `status` round trip through the host client (its errors say why a bridge did not answer)."""
    from rotobridge.client import Client
    from rotobridge.keys import Keys

    keys = None
    if server_key and client_key:
        try:
            keys = Keys.from_files(server_key, client_key)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--server-key/--client-key: {exc}") from None
    with Client(address, keys=keys, timeout=timeout, name="rotobridge status") as client:
        return client.status().result()


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.2f} GiB"


def _status(args: argparse.Namespace) -> int:
    if (args.server_key is None) != (args.client_key is None):
        raise ConfigError("--server-key and --client-key go together: a CURVE bridge needs both")
    status = _ask_status(args.address, args.timeout, args.server_key, args.client_key)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    queue, memory, sessions = status["queue"], status["memory"], status["sessions"]
    cuda = memory.get("cuda")
    print(
        f"bridge at {args.address}: device {status['device']}; {queue['requests']} request(s) waiting, "
        f"{queue['jobs']} propagation(s) running"
    )
    print(
        f"memory: {_gib(memory['rss_bytes'])} resident"
        + (f"; CUDA {_gib(cuda['allocated_bytes'])} allocated, {_gib(cuda['reserved_bytes'])} reserved" if cuda else "")
    )
    print(f"{len(sessions)} session(s)" + (":" if sessions else ""))
    for s in sessions:
        job = s["job"]
        running = f"job {job['id']} {job['done']}/{job['total']}" if job else "no job"
        print(f"  {s['session']}  idle {s['idle_s']:.0f} s  {s['objects']} object(s)  {running}  {s['plate']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rotobridge", description="SAM 2 mattes for compositing.")
    parser.add_argument("--version", action="version", version=f"rotobridge {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--log-format", default="human", choices=logs.FORMATS, help="json: one JSON object per line")
    sub = parser.add_subparsers(dest="command", required=True)

    render = sub.add_parser("render", help="render a recipe's mattes")
    render.add_argument("recipe", help="recipe JSON file (docs/recipe.md)")
    render.add_argument("--frames", help="subset of the plate's frames, e.g. 1001-1050 (a farm chunk)")
    render.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    render.add_argument("--overwrite", action="store_true", help="replace existing mattes")
    render.add_argument("--qc", metavar="PNG", help="also write a QC picture: mattes over the plate")
    render.add_argument("--quiet", action="store_true", help="no progress bar")
    render.add_argument(
        "--root", action="append", metavar="DIR",
        help="confine the recipe: plate, masks, OCIO config and its files, checkpoint and mattes must lie in one of these (repeatable)",
    )
    render.set_defaults(run=_render)

    checkpoint = sub.add_parser("checkpoint", help="checkpoint tools")
    csub = checkpoint.add_subparsers(dest="action", required=True)
    rnd = csub.add_parser("random", help="write a randomly initialised (UNTRAINED) checkpoint for tests")
    rnd.add_argument("out", help="output .pt file")
    which = rnd.add_mutually_exclusive_group()
    which.add_argument("--model", default="sam2.1-hiera-tiny", help="registry name (default sam2.1-hiera-tiny)")
    which.add_argument("--config", help="sam2 config, e.g. configs/sam2.1/sam2.1_hiera_t.yaml")
    rnd.add_argument("--seed", type=int, default=0)
    rnd.set_defaults(run=_checkpoint_random)

    serve = sub.add_parser("serve", help="run the bridge hosts connect to (docs/bridge.md)")
    serve.add_argument("--config", metavar="FILE", help="TOML configuration (default: $ROTOBRIDGE_CONFIG, else "
                       "~/.config/rotobridge/bridge.toml if present)")
    serve.add_argument("--address", help=f"where to listen (default {protocol.DEFAULT_ADDRESS})")
    serve.add_argument("--root", action="append", metavar="DIR", help="folder plates and mattes may be in (repeatable; default: home)")
    which = serve.add_mutually_exclusive_group()
    which.add_argument("--model", metavar="NAME", help="registry model to serve")
    which.add_argument("--config-file", metavar="CFG", help="sam2 config of --checkpoint, e.g. configs/sam2.1/sam2.1_hiera_t.yaml")
    serve.add_argument("--checkpoint", metavar="PT", help="checkpoint file")
    serve.add_argument("--override", action="append", metavar="KEY=VALUE", help="sam2 config override, e.g. ++model.image_size=512")
    serve.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"])
    serve.add_argument("--session-timeout", type=float, metavar="S", help="close sessions idle this many seconds (default 1800)")
    serve.add_argument("--curve-secret", metavar="FILE", help="the bridge's NAME.key_secret: enables CURVE")
    serve.add_argument("--curve-authorized", metavar="DIR", help="folder of the public keys of the clients let in")
    serve.set_defaults(run=_serve)

    keys = sub.add_parser("keys", help="write a CURVE key pair: NAME.key (public) and NAME.key_secret")
    keys.add_argument("dir", help="folder to write the pair to")
    keys.add_argument("--name", required=True, help="e.g. bridge, or the artist's or host's name")
    keys.set_defaults(run=_keys)

    status = sub.add_parser("status", help="ask a running bridge for its sessions, queue and memory")
    status.add_argument("--address", default=protocol.DEFAULT_ADDRESS)
    status.add_argument("--server-key", metavar="FILE", help="the bridge's public key (CURVE)")
    status.add_argument("--client-key", metavar="FILE", help="this client's NAME.key_secret (CURVE)")
    status.add_argument("--timeout", type=float, default=5.0, metavar="S")
    status.add_argument("--json", action="store_true", help="print the reply as JSON")
    status.set_defaults(run=_status)

    from .evaluate import command as evaluate

    evaluate.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    try:
        return int(args.run(args))
    except RotobridgeError as exc:
        print(f"rotobridge: {exc.name}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("rotobridge: cancelled", file=sys.stderr)
        return CancelledError.exit_code


if __name__ == "__main__":
    sys.exit(main())
