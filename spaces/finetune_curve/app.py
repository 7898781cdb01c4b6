"""Finetuning-curve explorer: a Gradio Space over a hf-finetune-curve run.

Data source, first found: the env var HF_CURVE_RUN_DIR (a local run directory:
`HF_CURVE_RUN_DIR=runs/NAME python app.py`, or just `hf-curve space runs/NAME`), HF_CURVE_REPO
(a curve dataset repo, e.g. a Space variable), or curve_space.json next to this file (written by
`hf-curve space RUN --push ORG/NAME-space`). The app only reads its run; it writes nothing into it.
"""

from pathlib import Path

from hf_finetune_curve.space import build_app, launch_kwargs

demo = build_app(app_dir=Path(__file__).resolve().parent)

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=2).launch(**launch_kwargs())
