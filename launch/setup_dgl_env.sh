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
ensure_venv "$DGL_VENV" "$GNNSYS_ROOT/launch/requirements-dgl.txt" setup-dgl \
    "installing the DGL stack (about 2 minutes and 6 GB the first time)" --no-deps
export PATH="$DGL_VENV/bin:$PATH"
export DGLBACKEND="${DGLBACKEND:-pytorch}"
