#!/usr/bin/env bash
# Nin's GPU check, in one call: on a GPU host with PyTorch (and no .NET, nothing from the network), run
# from the bundle (./nin bundle):
#
#   ./gpu-check.sh --data DIR                 # DIR holds fashion-mnist/*-idx?-ubyte[.gz]
#
#  1. trains d2l's recipe (224 px, 10 epochs, batch 128, SGD lr 0.1) with Nin's own training loop
#     (`nin bench train`) and prints images/s, peak GPU memory and the final test accuracy;
#  2. runs the same recipe in PyTorch in the same run, as the anchor (tools/d2l_nin_pytorch.py: data kept
#     on the GPU and resized there, as Nin does);
#  3. benches /predict on the real service at 1, 16 and 64 clients, and the raw forward pass
#     (`nin bench predict`);
#  4. prints one summary table with the ratios (also written to OUT/summary.md; logs beside it).
#
# Rehearsal on a CPU (what CI runs): --device cpu --epochs 1 --image-size 67 --max-train 512 --max-test 256
#   --clients 1,4 --seconds 2. Options: --device (cuda) --epochs (10) --image-size (224) --batch (128)
#   --lr (0.1) --max-train/--max-test (all) --clients (1,16,64) --seconds (8 per measure, 2 rounds)
#   --out (./gpu-check-DATE) --skip-pytorch --skip-predict
set -euo pipefail
HERE=$(cd -P -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd)

DATA= DEVICE=cuda EPOCHS=10 SIZE=224 BATCH=128 LR=0.1 MAX_TRAIN=0 MAX_TEST=0 CLIENTS=1,16,64 SECONDS_PER=8
OUT= SKIP_PYTORCH=0 SKIP_PREDICT=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --data) DATA=$2; shift 2 ;;
        --device) DEVICE=$2; shift 2 ;;
        --epochs) EPOCHS=$2; shift 2 ;;
        --image-size) SIZE=$2; shift 2 ;;
        --batch) BATCH=$2; shift 2 ;;
        --lr) LR=$2; shift 2 ;;
        --max-train) MAX_TRAIN=$2; shift 2 ;;
        --max-test) MAX_TEST=$2; shift 2 ;;
        --clients) CLIENTS=$2; shift 2 ;;
        --seconds) SECONDS_PER=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --skip-pytorch) SKIP_PYTORCH=1; shift ;;
        --skip-predict) SKIP_PREDICT=1; shift ;;
        -h | --help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu-check: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ -n $DATA ]] || { echo "gpu-check: --data DIR is required (DIR/fashion-mnist/*-idx?-ubyte[.gz])" >&2; exit 2; }
DATA=$(realpath -- "$DATA")
[[ -d $DATA/fashion-mnist ]] || { echo "gpu-check: $DATA/fashion-mnist not found" >&2; exit 2; }
OUT=$(realpath -m -- "${OUT:-gpu-check-$(date -u +%Y%m%d-%H%M%S)}")
mkdir -p "$OUT"
START=$SECONDS
step() { printf '\n==== [+%ds] %s\n' "$((SECONDS - START))" "$*"; }
limit=()
[[ $MAX_TRAIN != 0 ]] && limit+=(--max-train "$MAX_TRAIN")
[[ $MAX_TEST != 0 ]] && limit+=(--max-test "$MAX_TEST")

# Peak GPU memory of a phase: nvidia-smi sampled every 0.2 s (the whole device, so it includes the CUDA
# context; the same way for both engines). Empty on a CPU.
SAMPLER=
gpu_sampler_start() {
    : >"$OUT/gpu-$1.samples"
    command -v nvidia-smi >/dev/null 2>&1 && [[ $DEVICE == cuda* ]] || return 0
    local index=0
    [[ $DEVICE == cuda:* ]] && index=${DEVICE#cuda:}
    (while :; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i "$index" 2>/dev/null | head -n 1; sleep 0.2; done) \
        >>"$OUT/gpu-$1.samples" 2>/dev/null &
    SAMPLER=$!
}
gpu_sampler_stop() { if [[ -n $SAMPLER ]]; then kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=; fi; }
gpu_peak() { sort -n "$OUT/gpu-$1.samples" 2>/dev/null | tail -n 1; }
trap gpu_sampler_stop EXIT

step "host"
{
    uname -srm
    command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "no nvidia-smi"
    python3 -c 'import torch; print("pytorch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 || echo "no PyTorch"
    "$HERE/nin" doctor
} | tee "$OUT/host.txt"

# ------------------------------------------------------------------ training

# On an H200 the first process to train on a fresh machine spent ~15 s more in its first epoch, whichever framework
# it was (2026-12-04: Nin first 2,626 vs PyTorch 9,363 images/s; PyTorch first 2,904 vs Nin 8,628): a one-time cost
# of the machine. A few batches first pay it, so neither framework's first epoch below carries it.
if [[ $DEVICE == cuda* ]]; then
    step "warm-up: 4 training batches, so the machine's one-time CUDA costs fall in neither framework's figures"
    "$HERE/nin" bench train --data "$DATA" --dataset fashion-mnist --epochs 1 --image-size "$SIZE" --batch "$BATCH" \
        --lr "$LR" --seed 1 --device "$DEVICE" --max-train $((4 * BATCH)) --max-test "$BATCH" 2>&1 | grep -E '^(epoch|done)' || true
fi

step "Nin: d2l's recipe with the service's training loop ($SIZE px, $EPOCHS epochs, batch $BATCH, lr $LR, $DEVICE)"
gpu_sampler_start nin-train
"$HERE/nin" bench train --data "$DATA" --dataset fashion-mnist --epochs "$EPOCHS" --image-size "$SIZE" --batch "$BATCH" \
    --lr "$LR" --momentum 0 --weight-decay 0 --seed 1 --device "$DEVICE" "${limit[@]}" 2>&1 | tee "$OUT/nin-train.log"
gpu_sampler_stop
# Per-epoch images/s: the median of the epochs after the first (cuDNN's autotuning and JIT warm-up fall in it).
nin_epochs=$(grep -E '^epoch [0-9]+: ' "$OUT/nin-train.log" | sed -E 's/.* ([0-9.]+) img\/s .*/\1/')
median_after_first() {
    local all rest
    all=$(cat)
    rest=$(tail -n +2 <<<"$all" | sort -g)
    [[ -n $rest ]] || rest=$(head -n 1 <<<"$all")
    awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }' <<<"$rest"
}
nin_ips=$(median_after_first <<<"$nin_epochs")
nin_first=$(head -n 1 <<<"$nin_epochs")
nin_acc=$(sed -nE 's/^done: test accuracy ([0-9.]+),.*/\1/p' "$OUT/nin-train.log" | tail -n 1)
nin_mem=$(gpu_peak nin-train)

pt_ips= pt_first= pt_acc= pt_mem=
if ((SKIP_PYTORCH == 0)); then
    step "PyTorch anchor: the same recipe (tools/d2l_nin_pytorch.py)"
    gpu_sampler_start pytorch
    python3 "$HERE/tools/d2l_nin_pytorch.py" --data "$DATA/fashion-mnist" --device "$DEVICE" --epochs "$EPOCHS" \
        --image-size "$SIZE" --batch "$BATCH" --lr "$LR" --max-train "$MAX_TRAIN" --max-test "$MAX_TEST" \
        --json "$OUT/pytorch.json" 2>&1 | tee "$OUT/pytorch-train.log"
    gpu_sampler_stop
    read -r pt_ips pt_first pt_acc < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["imagesPerSecond"], r["firstEpochImagesPerSecond"], r["testAccuracy"])' "$OUT/pytorch.json")
    pt_mem=$(gpu_peak pytorch)
fi

# ------------------------------------------------------------------ serving

declare -A served=()
raw_single= raw_batch= p50=
if ((SKIP_PREDICT == 0)); then
    step "/predict on the real service at $CLIENTS clients, and the raw forward pass ($SIZE px, $DEVICE)"
    # On CUDA the engine is TorchSharp (ONNX Runtime's CUDA provider is not bundled); on a CPU the service's default.
    engine=auto
    [[ $DEVICE == cuda* ]] && engine=torch
    "$HERE/nin" bench predict --data "$DATA" --device "$DEVICE" --image-size "$SIZE" --engine "$engine" --clients "$CLIENTS" \
        --seconds "$((SECONDS_PER * 2))" --rounds 2 --warmup 3 2>&1 | tee "$OUT/nin-predict.log" ||
        echo "gpu-check: the /predict bench failed (status $?); the summary has what it printed (see $OUT/nin-predict.log)" >&2
    raw_single=$(sed -nE 's/^raw torch, +1 image: +([0-9.]+) ms;.*/\1/p' "$OUT/nin-predict.log")
    raw_batch=$(sed -nE 's/^raw torch, +1 image: .*\(([0-9.]+) images\/s\).*/\1/p' "$OUT/nin-predict.log")
    p50=$(sed -nE 's/^engine [^:]+: HTTP \/predict 1 client p50 ([0-9.]+) ms.*/\1/p' "$OUT/nin-predict.log" | head -n 1)
    while read -r c rate; do served[$c]=$rate; done < <(sed -nE 's/^ +([0-9]+) clients: +([0-9.]+) images\/s.*/\1 \2/p' "$OUT/nin-predict.log")
fi

# ------------------------------------------------------------------ summary

ratio() { [[ -n $1 && -n $2 ]] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "" }' || true; }
fmt() { [[ -n $1 ]] && awk -v v="$1" -v d="${2:-1}" 'BEGIN { printf "%.*f", d, v }' || echo "—"; }
{
    echo "## Nin GPU check — $(date -u +%Y-%m-%dT%H:%MZ), device $DEVICE"
    echo
    echo "d2l's recipe: Fashion-MNIST, $SIZE px, $EPOCHS epochs, batch $BATCH, SGD lr $LR$( [[ $MAX_TRAIN != 0 ]] && echo " (first $MAX_TRAIN training images)"); $(head -n 2 "$OUT/host.txt" | tail -n 1)"
    echo
    echo "| measure | Nin (TorchSharp) | PyTorch | Nin / PyTorch | aim |"
    echo "| --- | --- | --- | --- | --- |"
    echo "| training images/s (median epoch after the first) | $(fmt "$nin_ips") | $(fmt "$pt_ips") | $(ratio "$nin_ips" "$pt_ips") | ≥ 13,000 and ≥ 0.97× |"
    echo "| first epoch images/s | $(fmt "$nin_first") | $(fmt "$pt_first") | $(ratio "$nin_first" "$pt_first") | |"
    echo "| test accuracy after $EPOCHS epochs | $(fmt "$nin_acc" 4) | $(fmt "$pt_acc" 4) | | ≥ 0.86 (10 epochs, 224 px) |"
    echo "| peak GPU memory, MiB (nvidia-smi, device) | ${nin_mem:-—} | ${pt_mem:-—} | $(ratio "$nin_mem" "$pt_mem") | |"
    if ((SKIP_PREDICT == 0)); then
        echo "| raw forward (TorchSharp), 1 image (ms) / batch (images/s) | $(fmt "$raw_single" 2) / $(fmt "$raw_batch") | | | |"
        echo "| HTTP /predict, 1 client p50 (ms) | $(fmt "$p50" 2) | | p50 / raw $(ratio "$p50" "$raw_single") | |"
        for c in $(tr ',' ' ' <<<"$CLIENTS"); do
            echo "| HTTP /predict images/s, $c clients | $(fmt "${served[$c]:-}") | | | $([[ $c == 64 ]] && echo '≥ 5,000') |"
        done
    fi
    echo
    echo "Logs: $OUT ($((SECONDS - START)) s in all)."
} | tee "$OUT/summary.md"
[[ -n $nin_ips && -n $nin_acc ]] || { echo "gpu-check: the Nin training figures are missing (see $OUT/nin-train.log)" >&2; exit 1; }
((SKIP_PYTORCH)) || [[ -n $pt_ips ]] || { echo "gpu-check: the PyTorch figures are missing" >&2; exit 1; }
((SKIP_PREDICT)) || [[ -n ${served[${CLIENTS##*,}]:-} ]] || { echo "gpu-check: the /predict figures are missing" >&2; exit 1; }
