"""`rotobridge evaluate score|run`: the command lines of docs/evaluation.md."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from rotobridge.errors import DatasetError

from . import datasets, report, runs
from .scores import Convention

log = logging.getLogger("rotobridge")

#: the semi-supervised default of each format's official evaluation
DEFAULT_CONVENTION = {"davis": "davis", "mose": "davis", "youtube": "vos", "sav": "vos", "studio": "vos"}


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", required=True, choices=datasets.FORMATS, help="dataset layout (docs/evaluation.md)")
    parser.add_argument("--split", default="val", help="DAVIS ImageSets/2017 list to read (default val)")
    parser.add_argument("--out", required=True, metavar="DIR", help="where scores and the report go (resumes a run there)")
    parser.add_argument(
        "--convention", choices=[c.value for c in Convention],
        help="davis: objects of the first frame, every frame; vos: objects from their first appearance "
        "(default: the format's own)",
    )
    parser.add_argument("--keep-first-last", action="store_true", help="also score the first and last annotated frames")
    parser.add_argument("--min-absent", type=int, default=1, metavar="N", help="absent frames before a return counts as a reappearance")
    parser.add_argument("--baseline", metavar="JSON", help="summary.json of an earlier run: adds the J&F delta")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N", help="scoring processes")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_parser(sub: Any) -> None:
    evaluate = sub.add_parser("evaluate", help="J&F of predictions or of a model on a benchmark (docs/evaluation.md)")
    esub = evaluate.add_subparsers(dest="action", required=True)

    score = esub.add_parser("score", help="score predictions made by any tool")
    score.add_argument("--truth", required=True, metavar="DIR", help="the dataset's folder")
    score.add_argument("--predictions", required=True, metavar="DIR", help="predictions in the dataset's format")
    _common(score)
    score.set_defaults(run=_score)

    run = esub.add_parser("run", help="run a protocol with a model on a dataset, then score it")
    run.add_argument("--dataset", required=True, metavar="DIR", help="the dataset's folder")
    which = run.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", metavar="NAME", help="registry model (checkpoint from checkpoints/)")
    which.add_argument("--config", metavar="CFG", help="sam2 config of --checkpoint, e.g. configs/sam2.1/sam2.1_hiera_t.yaml")
    run.add_argument("--checkpoint", metavar="PT", help="checkpoint file (with --config, or instead of the registry's)")
    run.add_argument("--override", action="append", metavar="KEY=VALUE", help="sam2 config override (repeatable)")
    run.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    run.add_argument("--protocol", default="semi-supervised", choices=["semi-supervised", "interactive"])
    run.add_argument("--rounds", type=int, default=8, metavar="K", help="interactive: annotated frames, 1..K (default 8)")
    run.add_argument("--mode", default="offline", choices=["offline", "online"], help="interactive: how frames are chosen")
    run.add_argument("--seed", type=int, default=0, help="interactive: seed for ties between click positions")
    _common(run)
    run.set_defaults(run=_run)


def _options(args: argparse.Namespace) -> runs.ScoreOptions:
    return runs.ScoreOptions(Convention(args.convention or DEFAULT_CONVENTION[args.format]), not args.keep_first_last)


def _finish(args: argparse.Namespace, root: str, scores: list[Any], options: runs.ScoreOptions) -> int:
    baseline = report.load_summary(args.baseline) if args.baseline else None
    data = report.summary(
        f"{args.format}:{os.path.basename(os.path.normpath(root))}", scores,
        convention=options.convention.value, min_absent=args.min_absent,
        skip_first_last=options.skip_first_last,
    )
    print(report.write(args.out, data, scores, baseline), end="")
    return 0


def _bar(total: int, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="seq", desc="sequences", disable=quiet, file=sys.stderr)


def _score(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.predictions):
        raise DatasetError(f"missing predictions folder: {args.predictions}")
    sequences = datasets.load(args.format, args.truth, split=args.split)
    options = _options(args)
    with _bar(len(sequences), args.quiet) as bar:
        scores = runs.score_dataset(
            sequences, args.predictions, args.out, options, workers=args.workers, progress=lambda _: bar.update(1)
        )
    return _finish(args, args.truth, scores, options)


def _run(args: argparse.Namespace) -> int:
    from .. import model as models
    from .. import registry
    from .tracker import TrackerFactory, engine_trackers

    sequences = datasets.load(args.format, args.dataset, split=args.split)
    if args.config and not args.checkpoint:
        raise DatasetError("--config needs --checkpoint")

    def trackers() -> TrackerFactory:
        """The model, loaded only when a sequence is left to predict (a finished run resumes in seconds)."""
        spec = registry.get(args.model) if args.model else None
        config = args.config or (spec.config if spec else "")
        checkpoint = Path(args.checkpoint) if args.checkpoint else registry.checkpoints_dir() / (spec.filename if spec else "")
        loaded = models.build(config, checkpoint, device=args.device, overrides=args.override or (), name=args.model)
        if loaded.untrained:
            log.warning("evaluating RANDOMLY INITIALISED weights: the scores measure the harness, not a model")
        return engine_trackers(loaded)

    if args.protocol == "interactive":
        with _bar(len(sequences), args.quiet) as bar:
            done = runs.run_interactive(
                sequences, trackers, args.out, rounds=args.rounds, mode=args.mode, seed=args.seed,
                progress=lambda _: bar.update(1),
            )
        from .interactive import curve

        data = {
            "dataset": f"{args.format}:{os.path.basename(os.path.normpath(args.dataset))}",
            "protocol": "interactive", "mode": args.mode, "seed": args.seed, "curve": curve(done),
        }
        print(report.write_interactive(args.out, data), end="")
        return 0
    options = _options(args)
    predictions = os.path.join(args.out, "predictions")
    with _bar(len(sequences), args.quiet) as bar:
        scores = runs.run_semisupervised(
            sequences, trackers, predictions, args.out, options, progress=lambda _: bar.update(1)
        )
    return _finish(args, args.dataset, scores, options)
