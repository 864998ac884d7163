#!/usr/bin/env bash
# The main job on the built-in default: partition Cora into 4 parts with METIS, then train a
# 2-layer GCN on 4 ranks under mpirun and print the test accuracy. Sets up .venv on first use.
# Override with env vars: DATASET (cora), PARTS (4), EPOCHS (200), MODEL (gcn).
set -euo pipefail
source "$(dirname "$0")/setup_env.sh"
cd "$GNNSYS_ROOT"
DATASET="${DATASET:-cora}" PARTS="${PARTS:-4}" EPOCHS="${EPOCHS:-200}" MODEL="${MODEL:-gcn}"
OUT="partitions/${DATASET}-${PARTS}"
gnnsys partition --dataset "$DATASET" --parts "$PARTS" --out "$OUT" --overwrite
mpirun -n "$PARTS" --oversubscribe --bind-to none \
    gnnsys train "$OUT" --model "$MODEL" --epochs "$EPOCHS" --normalize-features row \
    --metrics "runs/${DATASET}-${PARTS}.jsonl"
