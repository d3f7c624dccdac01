#!/usr/bin/env bash
# Set everything up, then run every test suite, each in the interpreter it targets.
# The host suite runs first in .venv-host (no torch, OIIO or OCIO); the bridge suite last,
# so the run ends with pytest's summary line. Extra arguments go to the bridge pytest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash install/setup.sh
echo "== host tests (.venv-host)"
.venv-host/bin/python -m pytest tests/host -q -p no:cacheprovider
echo "== bridge tests (.venv)"
.venv/bin/python -m pytest tests/bridge -q -p no:cacheprovider "$@"
