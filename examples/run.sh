#!/usr/bin/env bash
# The README's main command: set up, generate the example shot, render its mattes and a
# QC picture (examples/out/sh010_qc.png).
# With the official sam2.1-hiera-tiny checkpoint (downloaded into checkpoints/ if the
# network allows) the mattes are real. Offline, it says so loudly and renders with a
# randomly initialised checkpoint instead: the pipeline runs end to end, the mattes mean nothing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash install/setup.sh
.venv/bin/python examples/make_shot.py examples/shot
recipe=examples/sh010.recipe.json
if ! .venv/bin/python checkpoints/download.py sam2.1-hiera-tiny; then
    echo "!! The official checkpoint is not available (offline?). Rendering with a RANDOM, UNTRAINED" >&2
    echo "!! checkpoint: the pipeline runs end to end but these mattes mean nothing." >&2
    .venv/bin/rotobridge checkpoint random examples/shot/random-sam2.1-hiera-tiny.pt --model sam2.1-hiera-tiny
    recipe=examples/sh010.offline.recipe.json
fi
.venv/bin/rotobridge render "$recipe" --overwrite --qc examples/out/sh010_qc.png
