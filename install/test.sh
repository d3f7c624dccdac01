#!/usr/bin/env bash
# Set everything up, then run every test suite, each in the interpreter it targets.
# The host suite runs first in .venv-host (no torch, OIIO or OCIO), then the Blender suite
# in .venv-blender (bpy 4.5 LTS) and in .venv-blender5 (bpy 5.2 LTS; ROTOBRIDGE_SKIP_BLENDER=1
# skips both), the bridge suite last, so the run ends with pytest's summary line. Extra arguments go to the bridge pytest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash install/setup.sh
echo "== host tests (.venv-host)"
.venv-host/bin/python -m pytest tests/host -q -p no:cacheprovider
if [ "${ROTOBRIDGE_SKIP_BLENDER:-0}" != 1 ]; then
    for venv in .venv-blender .venv-blender5; do  # Blender 4.5 LTS, then 5.2 LTS
        echo "== Blender tests ($venv)"
        "$venv/bin/python" -m pytest tests/blender -q -p no:cacheprovider
    done
fi
echo "== bridge tests (.venv)"
.venv/bin/python -m pytest tests/bridge -q -p no:cacheprovider "$@"
