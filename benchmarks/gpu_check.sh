#!/usr/bin/env bash
# Everything of ganscapes that only runs on CUDA, in one command, with one summary table.
#
#   bash benchmarks/gpu_check.sh [PATH-TO-NVIDIA-CHECKOUT]
#
# Runs, on the first CUDA device: the CUDA tests (fp16 against fp32 with clamping, fused
# modulated convolution, a few fp16 training iterations, generate), the parity benchmark
# on CUDA when a checkout of NVlabs/stylegan2-ada-pytorch is given (or in $OFFICIAL), and
# the generate and train benchmarks at 256² and 1024², and with the checkout the
# side-by-side ratios of generate.py/train.py --official. About 15 minutes on one modern GPU.
#
# STEPS="cuda-tests side-by-side-generate" runs only the steps named (all by default), for a
# machine lent for a few minutes; ROUNDS (default 5) sets the side-by-side rounds and TRAIN_RES
# (default 64,128) the resolutions of the training side by side.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OFFICIAL=${1:-${OFFICIAL:-}}
OUT=${OUT:-gpu-check}
STEPS=${STEPS:-all}
ROUNDS=${ROUNDS:-5}
TRAIN_RES=${TRAIN_RES:-64,128}
mkdir -p "$OUT"
declare -a ROWS

step() {  # step NAME LIMIT_SECONDS COMMAND...: run, time, keep the log, add a row
    local name=$1 limit=$2; shift 2
    if [ "$STEPS" != all ] && [[ " $STEPS " != *" $name "* ]]; then
        ROWS+=("$(printf '| %-22s | %-22s | %5ss | %s |' "$name" "not asked for" 0 "STEPS=$STEPS")")
        return
    fi
    echo "$(date +%H:%M:%S) $name ..."
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    local verdict=passed
    [ $rc -eq 0 ] || verdict="FAILED (exit $rc)"
    [ $rc -eq 124 ] && verdict="TIMED OUT after ${limit}s"
    ROWS+=("$(printf '| %-22s | %-22s | %5ss | %s |' "$name" "$verdict" "$((SECONDS - start))" "$(tail -n 1 "$OUT/$name.log" | cut -c1-90)")")
}

if ! $PY -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "No CUDA device is visible to $PY; nothing to check here (the CPU paths are covered by make test)."
    exit 1
fi
$PY -c 'import torch; print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__)' | tee "$OUT/device.txt"

step cuda-tests 240 $PY -m pytest -q -rs tests/gpu tests/gan/test_augment.py -k "cuda or gpu or test_cuda"
if [ -n "$OFFICIAL" ]; then
    step parity-cuda 180 env CUDA_VISIBLE_DEVICES=0 $PY benchmarks/parity_official.py --official "$OFFICIAL" \
        --device cuda --iters 16 --images 300 --out "$OUT/parity.json"
else
    ROWS+=("| parity-cuda            | skipped                |     0s | no NVIDIA checkout given |")
fi
if [ -n "$OFFICIAL" ]; then  # the same ratios as on the CPU, NVIDIA's code with its own CUDA kernels
    step side-by-side-generate 300 $PY benchmarks/generate.py --official "$OFFICIAL" --device cuda --res 64,256 \
        --batch 8 --rounds "$ROUNDS" --seconds 3 --json "$OUT/side-by-side-generate.json"
    step side-by-side-train 600 $PY benchmarks/train.py --official "$OFFICIAL" --device cuda --res "$TRAIN_RES" \
        --batch 8 --iters 8 --rounds "$ROUNDS" --json "$OUT/side-by-side-train.json"
fi
step generate-256-1024 150 $PY benchmarks/generate.py --device cuda --res 256,1024 --batch 8,32 --modes eager --seconds 5
step train-256 120 $PY benchmarks/train.py --device cuda --res 256 --batch 16 --iters 12
step train-1024 150 $PY benchmarks/train.py --device cuda --res 1024 --batch 4 --iters 8

echo
echo "| check                  | result                 |  time | last line of its log ($OUT/NAME.log) |"
echo "|------------------------|------------------------|-------|---------------------------------------|"
printf '%s\n' "${ROWS[@]}"
