"""`rotobridge`: the command line pipeline TDs and farm jobs run.

Exit status: 0 only when every requested frame was written; otherwise the error's own
code (see `rotobridge.errors`), 1 for an incomplete render, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from pathlib import Path
from typing import Sequence

from rotobridge import recipe as recipes
from rotobridge.errors import CancelledError, RotobridgeError
from rotobridge.version import __version__

log = logging.getLogger("rotobridge")


def _render(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from . import model as models
    from . import render as rendering

    recipe = recipes.load(args.recipe)
    job = rendering.prepare(recipe, frames=args.frames)
    cancel = threading.Event()
    try:
        loaded = models.from_recipe(recipe.model, recipe.resolve, args.device)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rotobridge", description="SAM 2 mattes for compositing.")
    parser.add_argument("--version", action="version", version=f"rotobridge {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    render = sub.add_parser("render", help="render a recipe's mattes")
    render.add_argument("recipe", help="recipe JSON file (docs/recipe.md)")
    render.add_argument("--frames", help="subset of the plate's frames, e.g. 1001-1050 (a farm chunk)")
    render.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    render.add_argument("--overwrite", action="store_true", help="replace existing mattes")
    render.add_argument("--qc", metavar="PNG", help="also write a QC picture: mattes over the plate")
    render.add_argument("--quiet", action="store_true", help="no progress bar")
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
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
