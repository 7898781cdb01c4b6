#!/usr/bin/env bash
# One prepared run on a lent GPU machine (no network there), from the repository root:
#
#   1. the reference case at full size (issue 14): 120,000 synthetic listings, sizes 0,10k,20k,50k,all,
#      the default recipe (branching, bf16 on the GPU), through `hf-curve run` as a user runs it;
#   2. benchmarks/recipe_check.py on every Airbnb row (issue 10): sizes 1k,2k,4k,all, 3 finetune seeds,
#      the four arms {independent, branching} x {no head warmup, head warmup}.
#
# Both run side by side (one small model leaves the GPU mostly idle; 8 CPU threads each), against one
# deadline, so the whole script fits one device call; each writes its results as they come.
#
# What must be in the working tree: see device_setup.sh.
#
# Knobs for a small rehearsal on a CPU: PYTHON, WORK, OUT, DEVICE, REF_ROWS, REF_SIZES, RC_ROWS, RC_SIZES, RC_SEEDS, RC_ARMS, BUDGET_S,
# THREADS, EXTRA_RUN_FLAGS.
set -uo pipefail

REF_ROWS=${REF_ROWS:-120000}
REF_SIZES=${REF_SIZES:-0,10k,20k,50k,all}
RC_ROWS=${RC_ROWS:-20000}
RC_SIZES=${RC_SIZES:-1000,2000,4000,all}
RC_SEEDS=${RC_SEEDS:-3}
RC_ARMS=${RC_ARMS:-independent,independent+head,branching,branching+head}
BUDGET_S=${BUDGET_S:-520}
THREADS=${THREADS:-8}
EXTRA_RUN_FLAGS=${EXTRA_RUN_FLAGS:-}

. "$(dirname "$0")/device_setup.sh"

write_synthetic "$REF_ROWS" "$WORK/ref.jsonl.gz" || exit 1

start_gpu_monitor
left=$(budget_left)

(
    export OMP_NUM_THREADS=$THREADS
    t0=$(date +%s)
    # shellcheck disable=SC2086
    timeout "$left" "$PYTHON" -c 'import sys; from hf_finetune_curve.cli import main; sys.exit(main())' run \
        --data "$WORK/ref.jsonl.gz" --sizes "$REF_SIZES" --model "$WORK/minilm" --device "$DEVICE" \
        --output-dir "$WORK/reference" --no-progress $EXTRA_RUN_FLAGS
    echo "exit $? after $(( $(date +%s) - t0 )) s wall"
) > "$OUT/ref.log" 2>&1 &
ref=$!

(
    export OMP_NUM_THREADS=$THREADS
    cd benchmarks || exit 1
    rc_sizes=$RC_SIZES
    if [[ $rc_sizes == *all* ]]; then  # "all" = the finetune pool of the check's split
        pool=$("$PYTHON" -c 'import sys
from hf_finetune_curve.data.corpus import load_corpus
from hf_finetune_curve.data.subsets import make_splits
corpus = load_corpus(sys.argv[1], max_rows=int(sys.argv[2]))
print(len(make_splits(len(corpus), 0.2, 42).pool_order))' ../.gpu/airbnb_usd.jsonl.gz "$RC_ROWS") || exit 1
        rc_sizes=${rc_sizes//all/$pool}
    fi
    t0=$(date +%s)
    timeout "$left" "$PYTHON" recipe_check.py --data ../.gpu/airbnb_usd.jsonl.gz --max-rows "$RC_ROWS" \
        --sizes "$rc_sizes" --seeds "$RC_SEEDS" --arms "$RC_ARMS" --model "$WORK/minilm" --device "$DEVICE" \
        --out "$WORK/rc"
    echo "exit $? after $(( $(date +%s) - t0 )) s wall"
    "$PYTHON" recipe_check.py --data ../.gpu/airbnb_usd.jsonl.gz --max-rows "$RC_ROWS" --sizes "$rc_sizes" \
        --seeds "$RC_SEEDS" --arms "$RC_ARMS" --model "$WORK/minilm" --device "$DEVICE" --out "$WORK/rc" --report-only \
        > "$OUT/recipe_check_table.txt" 2>&1
) > "$OUT/recipe_check.log" 2>&1 &
rc=$!

wait "$ref" "$rc"
stop_gpu_monitor

run_dir=$WORK/reference
hf_curve report "$run_dir" > "$OUT/ref_report.txt" 2>&1
cp "$run_dir/curve.csv" "$OUT/ref_curve.csv" 2>/dev/null
cp "$WORK/rc/results.jsonl" "$OUT/recipe_check_results.jsonl" 2>/dev/null
echo "whole script $(( $(date +%s) - started )) s" >> "$OUT/env.txt"
