#!/usr/bin/env bash
# Sourced by the launch scripts: makes .venv (when missing or stale) and sets up the MPI
# environment. Dependencies install in ONE pip command from launch/requirements.txt (torch
# pinned there) together with gnnsys itself; a stamp makes the second run instant.
set -euo pipefail
GNNSYS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$GNNSYS_ROOT/.venv"
STAMP="$VENV/.gnnsys-deps"
want="$(cat "$GNNSYS_ROOT/launch/requirements.txt" "$GNNSYS_ROOT/setup.cfg" | sha256sum | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV" >&2
    python3 -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
    echo "[setup] installing pinned dependencies (about a minute the first time)" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$GNNSYS_ROOT/launch/requirements.txt" -e "$GNNSYS_ROOT" 2>&1 \
        | { grep -v "^WARNING: Location" || true; } >&2
    echo "$want" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
# Open MPI refuses to run as root unless told; ranks share 2 cores here, so one thread each.
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# Ranks that wait for a message yield the core instead of spinning (matters when ranks
# outnumber cores, as on a laptop or this 2-core CI machine).
export OMPI_MCA_mpi_yield_when_idle="${OMPI_MCA_mpi_yield_when_idle:-1}"
