#!/usr/bin/env python3
"""Install rotobridge into Nuke 15, 16 or 17 from this checkout.

    python3 install/install_nuke.py                  # add plugin/nuke to ~/.nuke/init.py (once)
    python3 install/install_nuke.py --print          # change nothing; print the NUKE_PATH line instead
    python3 install/install_nuke.py --for-nuke 17    # also put pyzmq for Nuke 17's Python in plugin/nuke/lib/py3.11
    python3 install/install_nuke.py --vendor 3.10    # ... or name Nuke's Python yourself

Nuke's Python has no pyzmq. `--for-nuke` (or `--vendor`) asks pip for the pyzmq wheel that
fits Nuke's Python version on this platform (run it on the OS Nuke runs on); plugin/nuke
puts that folder on sys.path in sessions of that version only. Farm nodes that only render
scripts need neither pyzmq nor the bridge.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUKE_FOLDER = ROOT / "plugin" / "nuke"
MARK = "# rotobridge (added by install/install_nuke.py)"
#: The Python each supported Nuke embeds (Foundry's third-party library lists: Nuke 15
#: follows VFX Reference Platform 2023, Nuke 16 and 17 the 2024 and 2025 platforms, Python 3.11).
NUKE_PYTHON = {"15": "3.10", "16": "3.11", "17": "3.11"}


def plugin_line() -> str:
    return f"nuke.pluginAddPath({str(NUKE_FOLDER)!r})"


def add_to_init(nuke_home: Path) -> str:
    """Append the plugin path to the user's init.py unless it is there; what happened."""
    init = nuke_home / "init.py"
    text = init.read_text(encoding="utf-8") if init.exists() else ""
    if plugin_line() in text:
        return f"{init} already adds {NUKE_FOLDER}"
    nuke_home.mkdir(parents=True, exist_ok=True)
    block = f"{MARK}\nimport nuke\n{plugin_line()}\n"
    init.write_text(text + ("\n" if text and not text.endswith("\n") else "") + block, encoding="utf-8")
    return f"{init} now adds {NUKE_FOLDER}"


def vendor_command(python_version: str) -> list[str]:
    """pip installing the host's pinned pyzmq for Nuke's Python into plugin/nuke/lib/py<version>."""
    requirements = (ROOT / "install" / "requirements-host.txt").read_text(encoding="utf-8").splitlines()
    pin = next(line.strip() for line in requirements if line.startswith("pyzmq"))
    target = NUKE_FOLDER / "lib" / f"py{python_version}"
    return [
        sys.executable, "-m", "pip", "install", "--upgrade", "--target", str(target),
        "--python-version", python_version, "--only-binary=:all:", pin,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nuke-home", type=Path, default=Path.home() / ".nuke", help="Nuke's user folder (~/.nuke)")
    parser.add_argument("--print", action="store_true", help="change nothing: print the NUKE_PATH line (and pip command)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--for-nuke", metavar="MAJOR", choices=sorted(NUKE_PYTHON), help="vendor pyzmq for this Nuke (15, 16, 17)")
    which.add_argument(
        "--vendor", metavar="X.Y", choices=sorted(set(NUKE_PYTHON.values())),
        help="vendor pyzmq for this Python: 3.10 (Nuke 15), 3.11 (Nuke 16, 17)",
    )
    args = parser.parse_args(argv)
    python = NUKE_PYTHON[args.for_nuke] if args.for_nuke else args.vendor
    command = vendor_command(python) if python else None
    if args.print:
        print(f"export NUKE_PATH={NUKE_FOLDER}${{NUKE_PATH:+:$NUKE_PATH}}")
        if command:
            print(" ".join(command))
        return 0
    print(add_to_init(args.nuke_home))
    if command:
        return subprocess.run(command).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
