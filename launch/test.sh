#!/usr/bin/env bash
# Run the gnnsys test suite (sets up .venv on first use). Extra arguments go to pytest,
# e.g. `bash launch/test.sh tests/partition -x`. pytest's exit code is returned as is, so a run
# that collects no test (exit 5) fails.
# Without arguments (what .ci/run calls), once the main suite passes, a DGL stage runs the
# DGL-marked tests in .venv-dgl (torch 2.2.1, numpy 1.x, dgl 2.1.0; built by
# launch/setup_dgl_env.sh when missing or stale: ~2 min and 6 GB the first time), so DGL support
# and the older stack cannot rot. GNNSYS_SKIP_DGL=1 skips that stage for quick local runs.
set -euo pipefail
source "$(dirname "$0")/setup_env.sh"
cd "$GNNSYS_ROOT"
if [ "$#" -gt 0 ]; then
    exec python -m pytest -q -p no:cacheprovider "$@"
fi
python -m pytest -q -p no:cacheprovider tests
if [ "${GNNSYS_SKIP_DGL:-0}" = 1 ]; then
    echo "[test] GNNSYS_SKIP_DGL=1: DGL stage skipped" >&2
    exit 0
fi
source "$GNNSYS_ROOT/launch/setup_dgl_env.sh"
echo "[test] DGL stage in $DGL_VENV" >&2
# DGL tests skip themselves where dgl cannot be imported: here that must fail, not skip.
python -c "from gnnsys.nn.adapters.dgl import import_dgl; import_dgl()"
exec python -m pytest -q -p no:cacheprovider -m dgl tests
