#!/usr/bin/env bash
# Does finetuning hurt the probe because of MLM, or because of how much it moves the encoder?
# On a lent GPU machine (no network), from the repository root: four `hf-curve run`s side by side on the
# same synthetic corpus, split and sizes, against one deadline:
#   mlm (the default recipe), mlm --lora, simcse, tsdae.
# Each run's points are written as they finish; summary.txt lists every point's scores.
#
# What must be in the working tree: see device_setup.sh.
# Knobs for a small rehearsal on a CPU: PYTHON, WORK, OUT, DEVICE, ROWS, SIZES, PROBE_ROWS, BUDGET_S, THREADS,
# EXTRA_RUN_FLAGS.
set -uo pipefail

ROWS=${ROWS:-30000}
SIZES=${SIZES:-0,2k,all}
PROBE_ROWS=${PROBE_ROWS:-6000}
BUDGET_S=${BUDGET_S:-200}
THREADS=${THREADS:-4}
EXTRA_RUN_FLAGS=${EXTRA_RUN_FLAGS:-}

. "$(dirname "$0")/device_setup.sh"
write_synthetic "$ROWS" "$WORK/corpus.jsonl.gz" || exit 1

start_gpu_monitor
left=$(budget_left)

arms=("mlm:--objective mlm" "lora:--objective mlm --lora" "simcse:--objective simcse" "tsdae:--objective tsdae")
pids=()
for arm in "${arms[@]}"; do
    name=${arm%%:*}
    (
        export OMP_NUM_THREADS=$THREADS
        t0=$(date +%s)
        # shellcheck disable=SC2086
        timeout "$left" "$PYTHON" -c 'import sys; from hf_finetune_curve.cli import main; sys.exit(main())' run \
            --data "$WORK/corpus.jsonl.gz" --sizes "$SIZES" --probe-rows "$PROBE_ROWS" --probe-seeds 1 \
            --no-tfidf-baseline --model "$WORK/minilm" --device "$DEVICE" --output-dir "$WORK/$name" \
            --no-progress ${arm#*:} $EXTRA_RUN_FLAGS
        echo "exit $? after $(( $(date +%s) - t0 )) s wall"
    ) > "$OUT/$name.log" 2>&1 &
    pids+=($!)
done
wait "${pids[@]}"
stop_gpu_monitor

"$PYTHON" - "$WORK" > "$OUT/summary.txt" 2>&1 <<'PY'
import json, sys
from pathlib import Path

work = Path(sys.argv[1])
print(f"{'arm':7} {'point':12} {'R²':>8} {'log R²':>8} {'MAE':>10} {'MedAE':>10} {'steps':>6} {'train s':>8}")
for arm in ("mlm", "lora", "simcse", "tsdae"):
    for path in sorted((work / arm / "points").rglob("*.json")):
        p = json.loads(path.read_text())
        print(f"{arm:7} {str(path.relative_to(work / arm / 'points')):12} {p.get('r2', float('nan')):8.4f} "
              f"{p.get('r2_log', float('nan')):8.4f} {p.get('mae', float('nan')):10.1f} "
              f"{p.get('median_ae', float('nan')):10.1f} {p.get('finetune_steps', 0):6} "
              f"{p.get('train_seconds', 0):8.1f}")
PY
echo "whole script $(( $(date +%s) - started )) s" >> "$OUT/env.txt"
