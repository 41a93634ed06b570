#!/usr/bin/env bash
# How the bundled starter model was made: its data and its training, resumable.
# Run it again after an interruption (or in a later sitting) and training continues
# exactly where its last snapshot left off (--resume latest).
#
#   scripts/starter/train.sh [FOLDER]      (default: starter-work)
#
# Then export the run's snapshot as the bundled model and write its card:
#   python -m ganscapes.models.export FOLDER/runs/*/network-snapshot-NNNNNN.safetensors \
#       src/ganscapes/models/starter-64.safetensors
set -euo pipefail
folder=${1:-starter-work}
mkdir -p "$folder" && cd "$folder"
# 5,000 procedural paintings (seed 2026), center-rect crops at 64x64.
[ -f raw/.done ] || { ganscapes sample --out raw -n 5000 --seed 2026 && touch raw/.done; }
[ -f landscapes64.zip ] || ganscapes prepare raw --out landscapes64.zip --res 64 --workers 1
resume=""
ls runs/*/training-state-*.pt >/dev/null 2>&1 && resume="--resume latest"
# The tiny preset with ADA and x-flips, one CPU thread so that it can run beside other work.
OMP_NUM_THREADS=1 ganscapes train --data landscapes64.zip --outdir runs --cfg tiny --mirror --kimg 300 \
  --snap 5 --snap-minutes 20 --metric-images 512 --workers 1 --seed 0 --device cpu $resume
