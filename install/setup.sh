#!/usr/bin/env bash
# Set up rotobridge from this checkout: the bridge venv (.venv, pinned torch + sam2 +
# OpenImageIO + OpenColorIO), a host-side venv (.venv-host: stdlib + pyzmq + numpy only,
# standing in for a host's own Python) and Blender's (.venv-blender: bpy 4.5 LTS on Python
# 3.11; .venv-blender5: bpy 5.2 LTS on Python 3.13), which build and test the Blender
# extension. Safe to rerun; it only adds what is missing.
#   PYTHON=python3.11  interpreter to build the venvs from (default: python3.11, else python3)
#   PYTHON313=python3.13  interpreter for .venv-blender5 (default: python3.13, or pyenv's 3.13)
#   ROTOBRIDGE_SKIP_HOST=1  skip the host venv (a render-only farm node)
#   ROTOBRIDGE_SKIP_BLENDER=1  skip both Blender venvs (bpy, ~1 GB each)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$python" - <<'PY' || { echo "rotobridge needs Python 3.10-3.13 (found $("$python" --version 2>&1)); set PYTHON=" >&2; exit 1; }
import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)
PY
"$python" -c "import venv, ensurepip" 2>/dev/null || {
    echo "python venv support is missing: run 'apt-get install python3-venv' (Debian/Ubuntu)" >&2; exit 1; }

make_venv() {  # make_venv DIR [PYTHON]: a venv with a current pip
    [ -x "$1/bin/python" ] || "${2:-$python}" -m venv "$1"
    "$1/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
}

find_python313() {  # a working Python 3.13 (bpy 5.1+ supports no other), or nothing
    local candidate
    for candidate in "${PYTHON313:-}" python3.13 "$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3.13; do
        if [ -n "$candidate" ] && "$candidate" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
}

# The distributions the workspace root (pyproject.toml) names, in its order: plugin bridge.
members=$("$python" - <<'PY'
import tomllib
print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["tool"]["uv"]["workspace"]["members"]))
PY
)
install_members() {  # install_members VENV MEMBER...: editable installs of workspace members
    local venv=$1 args=() site
    shift
    for member in "$@"; do args+=(-e "./$member"); done
    "$venv/bin/pip" install -q --disable-pip-version-check "${args[@]}"
    # Checkouts set up before the two distributions put plugin/ itself on the path (so
    # `import nuke` found plugin/nuke): drop that link.
    site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    rm -f "$site/rotobridge-src.pth"
}

echo "== bridge venv: .venv"
make_venv .venv
.venv/bin/pip install -q --disable-pip-version-check -r install/requirements-bridge.txt -r install/requirements-dev.txt \
    -r install/requirements-bridge-dev.txt
# vos-benchmark (the evaluation tests' reference scorer) declares opencv-python, which
# would clash with opencv-python-headless: its dependencies come from the files above.
.venv/bin/pip install -q --disable-pip-version-check --no-deps vos-benchmark==0.1.0
# sam2 1.1.0 is an sdist that builds against the torch above; no CUDA extension (NOTES.md).
.venv/bin/python -c "import sam2" 2>/dev/null || \
    SAM2_BUILD_CUDA=0 .venv/bin/pip install -q --disable-pip-version-check --no-build-isolation sam2==1.1.0
# shellcheck disable=SC2086  # members is a list of folder names
install_members .venv $members
.venv/bin/python -m rotobridge.bridge.integrity

if [ "${ROTOBRIDGE_SKIP_HOST:-0}" != 1 ]; then
    echo "== host venv: .venv-host"
    make_venv .venv-host
    .venv-host/bin/pip install -q --disable-pip-version-check -r install/requirements-host.txt -r install/requirements-dev.txt
    install_members .venv-host plugin
fi
if [ "${ROTOBRIDGE_SKIP_BLENDER:-0}" != 1 ]; then
    echo "== Blender venv: .venv-blender (bpy 4.5 LTS)"
    make_venv .venv-blender
    .venv-blender/bin/pip install -q --disable-pip-version-check -r install/requirements-blender.txt
    echo "== Blender venv: .venv-blender5 (bpy 5.2 LTS)"
    python313=$(find_python313)
    if [ -z "$python313" ]; then
        echo "Blender 5.2 as a Python module needs Python 3.13 with venv: 'apt-get install python3.13-venv'" \
             "(Debian 13, Ubuntu 25.04+), or set PYTHON313; ROTOBRIDGE_SKIP_BLENDER=1 skips the Blender venvs" >&2
        exit 1
    fi
    make_venv .venv-blender5 "$python313"
    .venv-blender5/bin/pip install -q --disable-pip-version-check -r install/requirements-blender5.txt
fi
echo "== rotobridge is set up: .venv/bin/rotobridge --help"
