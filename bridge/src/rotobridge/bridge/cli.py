"""`rotobridge`: the command line pipeline TDs and farm jobs run, and the bridge's own.

Exit status: 0 only when every requested frame was written; otherwise the error's own
code (`rotobridge.errors`; the table is in docs/farm.md), 1 for an incomplete render or
an unreachable bridge, 75 when stopped by SIGTERM or SIGINT (rerun with --resume), 130
when interrupted at once.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import logging
import os
import signal
import sys
import threading
from typing import Any, Iterator, Sequence

from rotobridge import protocol
from rotobridge import recipe as recipes
from rotobridge.errors import CancelledError, ConfigError, RotobridgeError, StoppedError
from rotobridge.version import __version__

from . import logs
from .config import COMPILE_ENV, COMPILE_MODES

log = logging.getLogger("rotobridge")


@contextlib.contextmanager
def _stop_on_signals(cancel: threading.Event) -> Iterator[list[str]]:
    """SIGTERM (a farm's pre-emption) and SIGINT ask the render to stop after the mattes under
    way; yields the names of the signals received. A second SIGINT stops at once."""
    received: list[str] = []

    def handler(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if cancel.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        received.append(name)
        cancel.set()
        log.warning("%s received: stopping after the mattes being written", name)

    if threading.current_thread() is not threading.main_thread():  # signals only reach the main thread
        yield received
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _render(args: argparse.Namespace) -> int:
    from . import model as models
    from . import render as rendering

    recipe = recipes.load(args.recipe)
    roots = tuple(os.path.realpath(os.path.expanduser(root)) for root in args.root or ())
    cancel = threading.Event()
    with _stop_on_signals(cancel) as received:
        job = rendering.prepare(recipe, frames=args.frames, roots=roots)
        try:
            loaded = models.from_recipe(
                recipe.model, lambda path: job.resolve(path, "model.checkpoint"), args.device, args.compile
            )
            log.info(
                "model %s on %s (checkpoint %s, sha256 %s)%s",
                loaded.name,
                loaded.device,
                loaded.checkpoint,
                loaded.sha256[:12],
                " — UNTRAINED random weights" if loaded.untrained else "",
            )
            written: list[int] = []
            with logs.frame_progress(len(job.frames), quiet=args.quiet) as report:
                def progress(frame: int, path: str, done: int) -> None:
                    written.append(frame)
                    report(frame, done)

                try:
                    result = rendering.run(
                        job, loaded, overwrite=args.overwrite, resume=args.resume,
                        checkpoint_every=args.checkpoint_every, progress=progress, cancel=cancel,
                    )
                except KeyboardInterrupt:  # a second Ctrl-C: at once
                    cancel.set()
                    raise CancelledError(
                        f"interrupted after writing {len(written)} of {len(job.frames)} frames; every matte on disk is whole"
                    ) from None
                except CancelledError:
                    if not received:
                        raise
                    raise StoppedError(
                        f"stopped by {received[0]} after writing {len(written)} of {len(job.frames)} frames; "
                        "every matte on disk is whole; rerun with --resume to continue"
                    ) from None
            if args.qc:
                from .qc import write_render_qc

                write_render_qc(args.qc, job, sorted(result.written.items()))
                log.info("QC picture: %s", args.qc)
        finally:
            job.close()
    done = len(result.written) + len(result.kept)
    rate = len(result.written) / result.seconds if result.seconds else 0.0
    print(
        f"rendered {done}/{len(result.requested)} frames"
        + (f" ({len(result.kept)} kept from an earlier run)" if result.kept else "")
        + f", {len(recipe.objects)} object(s), tracked {result.tracked.frames} frame(s), "
        f"in {result.seconds:.1f} s ({rate:.2f} frames/s) -> {recipe.resolve(recipe.output.path)}"
        + (f"; {len(result.untracked)} frame(s) not reached by propagation are empty" if result.untracked else "")
    )
    return 0 if result.complete else 1


def _refine(args: argparse.Namespace) -> int:
    from . import refine_mattes as refining

    controls = refining.parse_controls(args.controls, {name: getattr(args, name) for name in _control_names()})
    job = refining.prepare(
        args.mattes, args.plate, args.colourspace, args.out, controls, frames=args.frames, config=args.config,
        display=args.display, view=args.view, name=args.name, overwrite=args.overwrite, device=args.device,
    )
    try:
        with logs.frame_progress(len(job.frames), quiet=args.quiet) as report:
            paths = job.run(report)
    finally:
        job.close()
    print(f"refined {len(paths)} frame(s), {len(job.source.objects)} object(s) -> {args.out}")
    return 0


def _control_names() -> list[str]:
    """MatteControls' fields: `rotobridge refine` has a flag for each (`--clip-black` …)."""
    from rotobridge.controls import MatteControls

    return [f.name for f in dataclasses.fields(MatteControls)]


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
            "compile": args.compile,
            "decode_threads": args.decode_threads,
            "write_threads": args.write_threads,
            "read_ahead_mib": args.read_ahead_mib,
        },
        file=args.config,
    )
    from . import sizing

    sizing.configure(config.sizing)
    loaded = models.from_recipe(config.model_section(), os.path.abspath, config.device, config.compile)
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


def _write_text(path: str | None, text: str) -> None:
    """To `path` atomically, or to stdout without one."""
    if path is None:
        sys.stdout.write(text)
        return
    from .atomic import atomic_file

    with atomic_file(os.path.abspath(path)) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    log.info("wrote %s", path)


def _farm_openjd(args: argparse.Namespace) -> int:
    from . import farm, openjd

    tasks = farm.plan_all(args.recipes, frames=args.frames, chunk_size=args.chunk_size)
    name = args.name or "rotobridge " + " ".join(farm.shot_name(r) for r in args.recipes)
    template = openjd.job_template(tasks, name=name[:128], device=args.device, gpu=args.gpu)
    _write_text(args.out, openjd.dumps(template))
    return 0


def _env_pairs(pairs: Sequence[str] | None) -> dict[str, str]:
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env: {pair!r} is not NAME=VALUE")
        out[key] = value
    return out


def _farm_opencue(args: argparse.Namespace) -> int:
    from . import farm, opencue

    tasks = farm.plan_all(args.recipes, frames=args.frames, chunk_size=args.chunk_size)
    shots = [farm.shot_name(r) for r in args.recipes]
    job = opencue.outline(
        tasks,
        name=args.name or "rotobridge_" + "_".join(shots),
        show=args.show,
        shot=args.shot or shots[0],
        user=args.user or os.environ.get("USER", "rotobridge"),
        device=args.device,
        rotobridge=args.rotobridge,
        cores=args.cores,
        memory=args.memory,
        tags=args.tag or ["gpu"],
        env=_env_pairs(args.env),
        checkpoint_every=args.checkpoint_every,
    )
    if args.out or not args.submit:
        _write_text(args.out, opencue.serialise(job) + "\n")
    if args.submit:
        for name in opencue.submit(job):
            print(f"submitted OpenCue job {name}")
    return 0


def _sets(pairs: Sequence[str] | None) -> dict[str, str]:
    try:
        return _env_pairs(pairs)
    except ConfigError:
        raise ConfigError(f"--set: each is NAME=VALUE, got {list(pairs or ())}") from None


def _template(args: argparse.Namespace) -> int:
    from . import shots

    template = shots.load_json(args.template, "recipe template")
    shot = {"SHOT": args.shot, **({"SEQ": args.seq} if args.seq else {})}
    out = os.path.abspath(args.out)
    recipe = shots.recipe_from_template(template, shots.variables(shot, _sets(args.set)), os.path.dirname(out))
    shots.write_recipe(recipe, out)
    print(out)
    return 0


def _shots(args: argparse.Namespace) -> int:
    from . import shots

    for path in shots.recipes_from_timeline(args.timeline, args.template, args.prompts, args.out, _sets(args.set)):
        print(path)
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


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
    render.add_argument(
        "--compile", choices=COMPILE_MODES,
        help=f"torch.compile the model, sam2's own (default ${COMPILE_ENV}, else off; docs/performance.md)",
    )
    render.add_argument("--overwrite", action="store_true", help="replace existing mattes")
    render.add_argument("--qc", metavar="PNG", help="also write a QC picture: mattes over the plate")
    render.add_argument("--quiet", action="store_true", help="no progress (a bar on a terminal, else one line per frame)")
    render.add_argument(
        "--resume", action="store_true",
        help="keep whole mattes of this recipe and model already written, continue tracking from the "
        "latest checkpoint, save checkpoints beside the mattes (farm tasks always pass it)",
    )
    render.add_argument(
        "--checkpoint-every", type=_positive, default=10, metavar="N",
        help="with --resume: frames between tracking checkpoints (default 10)",
    )
    render.add_argument(
        "--root", action="append", metavar="DIR",
        help="confine the recipe: plate, masks, OCIO config and its files, checkpoint and mattes must lie in one of these (repeatable)",
    )
    render.set_defaults(run=_render)

    farm = sub.add_parser("farm", help="farm jobs for recipes: chained chunks (docs/farm.md)")
    fsub = farm.add_subparsers(dest="kind", required=True)
    for kind, help_text in (("openjd", "an Open Job Description job template (Deadline Cloud, openjd run)"),
                            ("opencue", "an OpenCue job (pyoutline), written as XML or submitted")):
        f = fsub.add_parser(kind, help=help_text)
        f.add_argument("recipes", nargs="+", metavar="RECIPE", help="recipe JSON files, one shot each")
        f.add_argument("--frames", help="subset of each plate's frames (default all)")
        f.add_argument("--chunk-size", type=_positive, default=10, metavar="N", help="frames per task (default 10)")
        f.add_argument("--name", help="job name")
        f.add_argument("--out", metavar="FILE", help="write here (default stdout)")
        if kind == "openjd":
            f.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"], help="the Device parameter's default")
            f.add_argument("--gpu", action="store_true", help="steps need a host with a GPU (amount.worker.gpu >= 1)")
            f.set_defaults(run=_farm_openjd)
        else:
            f.add_argument("--device", default="cuda", choices=["auto", "cuda", "mps", "cpu"])
            f.add_argument("--show", default="rotobridge", help="OpenCue show")
            f.add_argument("--shot", help="OpenCue shot (default the first recipe's name)")
            f.add_argument("--user", help="OpenCue user (default $USER)")
            f.add_argument("--rotobridge", default="rotobridge", metavar="CMD", help="the rotobridge command on the render hosts")
            f.add_argument("--cores", type=float, default=2.0)
            f.add_argument("--memory", default="8g", help="memory per frame, e.g. 8g")
            f.add_argument("--tag", action="append", help="host tag (repeatable; default gpu)")
            f.add_argument("--env", action="append", metavar="NAME=VALUE", help="environment of every layer (repeatable)")
            f.add_argument("--checkpoint-every", type=_positive, default=10, metavar="N")
            f.add_argument("--submit", action="store_true", help="submit to the Cuebot named by $CUEBOT_HOSTS")
            f.set_defaults(run=_farm_opencue)

    ref = sub.add_parser("refine", help="the matte controls on existing EXR/PNG mattes and their plate (docs/refine.md)")
    ref.add_argument("mattes", metavar="MATTES", help="matte sequence to refine, EXR or PNG, e.g. roto.####.exr")
    ref.add_argument("--plate", required=True, help="the plate the mattes belong to (sequence pattern or movie)")
    ref.add_argument("--colourspace", required=True, help="the plate's OCIO colourspace")
    ref.add_argument("--config", help="OCIO config (default $OCIO, else the built-in studio config)")
    ref.add_argument("--display", help="OCIO display the guide is seen through (default the config's)")
    ref.add_argument("--view", help="OCIO view (default the display's)")
    ref.add_argument("--out", required=True, metavar="PATTERN", help="refined EXR mattes, e.g. refined.####.exr")
    ref.add_argument("--frames", help="subset of the plate's frames (default all)")
    ref.add_argument("--controls", metavar="JSON", help="matte controls, as a recipe's objects[].matte block")
    for name in _control_names():
        parse_as = int if name == "despeckle" else float
        ref.add_argument(f"--{name.replace('_', '-')}", dest=name, type=parse_as, metavar="N", help=f"the {name} control (beats --controls)")
    ref.add_argument("--name", default="matte", help="object name of mattes not written by rotobridge (default matte)")
    ref.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    ref.add_argument("--overwrite", action="store_true", help="replace existing refined mattes (never the input)")
    ref.add_argument("--quiet", action="store_true", help="no progress")
    ref.set_defaults(run=_refine)

    template = sub.add_parser("template", help="a recipe from a recipe template with ${SHOT}, ${SEQ}, --set and environment variables")
    template.add_argument("template", help="recipe template JSON")
    template.add_argument("--shot", required=True, help="the value of ${SHOT}")
    template.add_argument("--seq", help="the value of ${SEQ}")
    template.add_argument("--set", action="append", metavar="NAME=VALUE", help="a template variable (repeatable; beats the environment)")
    template.add_argument("--out", required=True, metavar="RECIPE", help="the recipe to write")
    template.set_defaults(run=_template)

    shots_cmd = sub.add_parser("shots", help="one recipe per clip of an OpenTimelineIO edit")
    shots_cmd.add_argument("timeline", help="edit, e.g. EDIT.otio")
    shots_cmd.add_argument("--template", required=True, help="recipe template JSON (${PLATE}, ${FRAMES}, ${SHOT}, ${SEQ}, ...)")
    shots_cmd.add_argument("--prompts", required=True, metavar="PATTERN", help="each shot's prompt file, e.g. prompts/${SHOT}.json")
    shots_cmd.add_argument("--out", required=True, metavar="DIR", help="folder the recipes go to, as <SHOT>.json")
    shots_cmd.add_argument("--set", action="append", metavar="NAME=VALUE", help="a template variable (repeatable)")
    shots_cmd.set_defaults(run=_shots)

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
    serve.add_argument("--compile", choices=COMPILE_MODES, help="torch.compile the model, sam2's own (default off)")
    serve.add_argument("--decode-threads", type=int, metavar="N", help="plate decoding threads (default: one per core)")
    serve.add_argument("--write-threads", type=int, metavar="N", help="matte writing threads (default: half the cores)")
    serve.add_argument("--read-ahead-mib", type=int, metavar="MIB", help="memory for frames read ahead (default 512)")
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
