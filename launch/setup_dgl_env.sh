#!/usr/bin/env bash
# Sourced (or run) to make the DGL environment .venv-dgl when missing or stale: DGL's wheels
# stop at torch 2.2.1, so DGL users live in an older stack (numpy 1.x) next to .venv. Pinned
# dependencies install in ONE pip command from launch/requirements-dgl.txt, then gnnsys itself
# with --no-deps (editable); a stamp makes the second run instant. Sources setup_env.sh first
# for GNNSYS_ROOT and the MPI environment, then puts .venv-dgl/bin first on PATH.
# First build: about 2 minutes and 6 GB (torch 2.2.1 from PyPI brings its CUDA libraries).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
DGL_VENV="$GNNSYS_ROOT/.venv-dgl"
DGL_STAMP="$DGL_VENV/.gnnsys-deps"
dgl_want="$(cat "$GNNSYS_ROOT/launch/requirements-dgl.txt" "$GNNSYS_ROOT/setup.cfg" \
    | sha256sum | cut -d' ' -f1)"
if [ ! -x "$DGL_VENV/bin/python" ]; then
    echo "[setup-dgl] creating $DGL_VENV" >&2
    python3 -m venv "$DGL_VENV"
fi
if [ "$(cat "$DGL_STAMP" 2>/dev/null)" != "$dgl_want" ]; then
    echo "[setup-dgl] installing the DGL stack (about 2 minutes and 6 GB the first time)" >&2
    "$DGL_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$GNNSYS_ROOT/launch/requirements-dgl.txt" 2>&1 \
        | { grep -v "^WARNING: Location" || true; } >&2
    "$DGL_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
        -e "$GNNSYS_ROOT" 2>&1 | { grep -v "^WARNING: Location" || true; } >&2
    echo "$dgl_want" > "$DGL_STAMP"
fi
export PATH="$DGL_VENV/bin:$PATH"
export DGLBACKEND="${DGLBACKEND:-pytorch}"
