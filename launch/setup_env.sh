#!/usr/bin/env bash
# Sourced by the launch scripts: makes .venv (when missing or stale) and sets up the MPI
# environment. Dependencies install in ONE pip command from launch/requirements.txt (torch
# pinned there) together with gnnsys itself; a stamp makes the second run instant.
set -euo pipefail
GNNSYS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$GNNSYS_ROOT/.venv"

_pip() {  # _pip VENV ARGS...: a quiet pip install into VENV
    local dir="$1"; shift
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
        | { grep -v "^WARNING: Location" || true; } >&2
}

# ensure_venv DIR REQUIREMENTS TAG MESSAGE [--no-deps]: create the venv DIR when missing and,
# when REQUIREMENTS or setup.cfg changed since the last install (a sha256 stamp), install the
# pinned REQUIREMENTS and gnnsys (editable) in ONE pip command; with --no-deps gnnsys goes in
# a second command without dependencies (the DGL stack pins an older torch and numpy).
ensure_venv() {
    local dir="$1" reqs="$2" tag="$3" message="$4" no_deps="${5:-}"
    local stamp="$dir/.gnnsys-deps" want
    want="$(cat "$reqs" "$GNNSYS_ROOT/setup.cfg" | sha256sum | cut -d' ' -f1)"
    if [ ! -x "$dir/bin/python" ]; then
        echo "[$tag] creating $dir" >&2
        python3 -m venv "$dir"
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "[$tag] $message" >&2
        if [ "$no_deps" = --no-deps ]; then
            _pip "$dir" -r "$reqs"
            _pip "$dir" --no-deps -e "$GNNSYS_ROOT"
        else
            _pip "$dir" -r "$reqs" -e "$GNNSYS_ROOT"
        fi
        echo "$want" > "$stamp"
    fi
}

ensure_venv "$VENV" "$GNNSYS_ROOT/launch/requirements.txt" setup \
    "installing pinned dependencies (about a minute the first time)"
export PATH="$VENV/bin:$PATH"
# Open MPI refuses to run as root unless told; ranks share 2 cores here, so one thread each.
if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# Ranks that wait for a message yield the core instead of spinning (matters when ranks
# outnumber cores, as on a laptop or this 2-core CI machine).
export OMPI_MCA_mpi_yield_when_idle="${OMPI_MCA_mpi_yield_when_idle:-1}"
