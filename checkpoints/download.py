"""Download and verify the official SAM 2 / 2.1 checkpoints.

    python checkpoints/download.py                      # every SAM 2.1 model
    python checkpoints/download.py sam2.1-hiera-tiny    # named models
    python checkpoints/download.py --all                # SAM 2.1 and SAM 2
    python checkpoints/download.py --verify             # check the files already here
    python checkpoints/download.py --list               # the model table

Every file is checked against the sha256 recorded in rotobridge's model registry, so a
mirror (--base-url) can only ever provide the official bytes. Exit status 0 on success;
otherwise one line on stderr says what failed and what to do.
Needs only the standard library and rotobridge (run it with the bridge environment's python).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

try:
    from rotobridge.bridge import registry
    from rotobridge.errors import CheckpointDownloadError, RotobridgeError
except ImportError as exc:  # the script's whole job needs rotobridge; say how to get it
    sys.exit(f"download.py: cannot import rotobridge ({exc}); run it with the bridge environment's python")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="download.py", description="Download and verify the official SAM 2 / 2.1 checkpoints."
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help="models to fetch (default: every SAM 2.1 model)"
    )
    parser.add_argument("--all", action="store_true", help="every model, SAM 2.1 and SAM 2")
    parser.add_argument(
        "--dir", type=Path, default=None,
        help="checkpoint folder (default: $ROTOBRIDGE_CHECKPOINTS, else this folder)",
    )
    parser.add_argument(
        "--verify", action="store_true", help="only check the files already present; download nothing"
    )
    parser.add_argument("--list", action="store_true", help="print the model table and exit")
    parser.add_argument(
        "--base-url", default=None, metavar="URL",
        help="fetch <URL>/<filename> instead of Meta's server, for studio mirrors (checksums still apply)",
    )
    parser.add_argument("--timeout", type=float, default=30, help="network timeout in seconds (default: 30)")
    args = parser.parse_args(argv)
    if args.all and args.names:
        parser.error("give model names or --all, not both")
    return args


def _selected(args: argparse.Namespace) -> list[registry.ModelSpec]:
    if args.names:
        return [registry.get(name) for name in args.names]
    if args.all or args.verify:
        return list(registry.MODELS.values())
    return [spec for spec in registry.MODELS.values() if spec.name.startswith("sam2.1-")]


def _print_list(folder: Path) -> None:
    rows = [("NAME", "FILE", "HERE", "CONFIG")]
    for spec in registry.MODELS.values():
        here = "yes" if (folder / spec.filename).is_file() else "no"
        rows.append((spec.name, spec.filename, here, spec.config))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    print(f"\nfolder: {folder}")


def _verify(specs: list[registry.ModelSpec], folder: Path, named: bool) -> None:
    # Without names, only the files present are checked; a named model must be present.
    present = [spec for spec in specs if named or (folder / spec.filename).is_file()]
    if not present:
        raise CheckpointDownloadError(
            f"no checkpoints in {folder}; run `python checkpoints/download.py` or copy official files there"
        )
    for spec in present:
        print(f"{registry.verify(spec, folder)}: ok")


def _progress(name: str) -> registry.Progress | None:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int | None) -> None:
        size = f"{done / 1e6:.0f}/{total / 1e6:.0f} MB" if total else f"{done / 1e6:.0f} MB"
        print(f"\r{name}: {size}", end="", file=sys.stderr, flush=True)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    folder = args.dir if args.dir is not None else registry.checkpoints_dir()
    try:
        if args.list:
            _print_list(folder)
            return 0
        specs = _selected(args)
        if args.verify:
            _verify(specs, folder, named=bool(args.names))
            return 0
        for spec in specs:
            if args.base_url:
                spec = dataclasses.replace(spec, url=f"{args.base_url.rstrip('/')}/{spec.filename}")
            path = registry.download(spec, folder, timeout=args.timeout, progress=_progress(spec.name))
            if sys.stderr.isatty():
                print("\r\033[K", end="", file=sys.stderr, flush=True)  # clear the progress line
            print(f"{path}: ok")
    except RotobridgeError as exc:
        print(f"download.py: {exc.name}: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
