#!/usr/bin/env bash
# Issue 9's GPU check, one script for a machine with an NVIDIA GPU and no network:
#   1. a bridge venv from wheels carried in a folder (WHEELS=DIR; skipped when .venv exists),
#   2. tests/bridge/test_cuda.py (bf16 autocast equivalence with sam2, chunked renders),
#   3. `rotobridge render` vs raw sam2 frames/s at 1920x1080 EXR, tiny and large, with and
#      without torch.compile (benchmarks/throughput.py),
#   4. the pipeline with the stand-in model on the GPU (benchmarks/pipeline.py).
# Figures go to $OUT (default ./gpu_check_out) and stdout; copy them into docs/performance.md.
#   WHEELS=/path/to/wheels bash benchmarks/gpu_check.sh
#   DEVICE=cpu FRAMES=2 IMAGE_SIZE=256 MODELS=tiny COMPILES=off bash benchmarks/gpu_check.sh   (the CPU dry run)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
DEVICE=${DEVICE:-cuda}
FRAMES=${FRAMES:-32}
IMAGE_SIZE=${IMAGE_SIZE:-}
MODELS=${MODELS:-"tiny large"}
COMPILES=${COMPILES:-"off vos"}
PY=.venv/bin/python
mkdir -p "$OUT"

if [ ! -x "$PY" ]; then
    [ -n "${WHEELS:-}" ] || { echo "no .venv: set WHEELS to a folder of wheels (pip download -r install/requirements-bridge.txt)" >&2; exit 2; }
    python3 -m venv .venv
    .venv/bin/pip install -q --no-index --find-links "$WHEELS" -r install/requirements-bridge.txt -r install/requirements-dev.txt
    SAM2_BUILD_CUDA=0 .venv/bin/pip install -q --no-index --find-links "$WHEELS" --no-build-isolation sam2==1.1.0
    .venv/bin/pip install -q --no-index --find-links "$WHEELS" --no-deps -e ./plugin -e ./bridge
fi

"$PY" - "$DEVICE" <<'PY' | tee "$OUT/device.txt"
import sys, torch
device = sys.argv[1]
if device == "cuda":
    if not torch.cuda.is_available():
        sys.exit("torch sees no CUDA device: this check needs one (DEVICE=cpu for the dry run)")
    p = torch.cuda.get_device_properties(0)
    print(f"{p.name}, {p.total_memory / 2**30:.0f} GiB, compute {p.major}.{p.minor}, torch {torch.__version__}, CUDA {torch.version.cuda}")
else:
    print(f"dry run on the CPU, torch {torch.__version__}")
PY

# skipped without CUDA (the dry run), and then not a pass
"$PY" -m pytest tests/bridge/test_cuda.py -v -rs -p no:cacheprovider 2>&1 | tee "$OUT/test_cuda.txt"

declare -A CONFIGS=([tiny]=configs/sam2.1/sam2.1_hiera_t.yaml [large]=configs/sam2.1/sam2.1_hiera_l.yaml)
for model in $MODELS; do
    for compile in $COMPILES; do
        echo "== $model, compile $compile" | tee -a "$OUT/throughput.txt"
        "$PY" benchmarks/throughput.py --device "$DEVICE" --config "${CONFIGS[$model]}" --compile "$compile" \
            --frames "$FRAMES" ${IMAGE_SIZE:+--image-size "$IMAGE_SIZE"} --work "$OUT/work" 2>&1 | tee -a "$OUT/throughput.txt"
    done
done

"$PY" benchmarks/pipeline.py --device "$DEVICE" --size hd --size uhd --objects 2 --frames "$FRAMES" --work "$OUT/work" \
    2>&1 | tee "$OUT/pipeline.txt"
uptime | tee -a "$OUT/pipeline.txt"
