"""The finetuning-curve Space: the Gradio app, launching and publishing it (:mod:`~hf_finetune_curve.space.app`).

The deployed Space (``spaces/finetune_curve/app.py``) imports :func:`build_app` and :func:`launch_kwargs` from here.
"""

from .app import (COLOUR_OPTIONS, CSS, ENV_MAX_MODELS, ENV_REPO, ENV_RUN_DIR, MAX_DESCRIPTION_CHARS, N_NEIGHBOURS,
                  SPACE_CONFIG_FILE, SPACE_FILES, CheckpointCache, CurveExplorer, RunData, build_app, curve_figure,
                  derived_model_repo, format_value, launch_kwargs, launch_space, load_run_data, map_figure,
                  point_objectives, points_table_markdown, prices_html, push_space, resolve_source, short_name,
                  space_files, space_source_dir, summary_markdown)

__all__ = [
    "COLOUR_OPTIONS", "CSS", "ENV_MAX_MODELS", "ENV_REPO", "ENV_RUN_DIR", "MAX_DESCRIPTION_CHARS", "N_NEIGHBOURS",
    "SPACE_CONFIG_FILE", "SPACE_FILES", "CheckpointCache", "CurveExplorer", "RunData", "build_app", "curve_figure",
    "derived_model_repo", "format_value", "launch_kwargs", "launch_space", "load_run_data", "map_figure",
    "point_objectives", "points_table_markdown", "prices_html", "push_space", "resolve_source", "short_name",
    "space_files", "space_source_dir", "summary_markdown",
]
