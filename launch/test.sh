#!/usr/bin/env bash
# Run the gnnsys test suite (sets up .venv on first use). Extra arguments go to pytest,
# e.g. `bash launch/test.sh tests/partition -x`. pytest's exit code is returned as is, so a run
# that collects no test (exit 5) fails.
set -euo pipefail
source "$(dirname "$0")/setup_env.sh"
cd "$GNNSYS_ROOT"
exec python -m pytest -q -p no:cacheprovider "${@:-tests}"
