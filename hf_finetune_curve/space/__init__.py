"""The finetuning-curve Space: the Gradio app, launching and publishing it.

The app reads a local run directory or a published curve dataset repo (the same file names, read
through :class:`~hf_finetune_curve.run_dir.RunDirectory`) and never writes into either. Its maps and
nearest neighbours come from the run's ``samples.parquet`` (:mod:`hf_finetune_curve.space.samples`, a stage
of the run), so it embeds nothing but what a user types.

Modules, in the order the app uses them:

- :mod:`~hf_finetune_curve.space.data`: the run, from a directory or the Hub (:class:`RunData`), and the
  checkpoints' models and probes (:class:`CheckpointCache`);
- :mod:`~hf_finetune_curve.space.figures`: the plotly curve and map figures and the tables beside them;
- :mod:`~hf_finetune_curve.space.app`: the Gradio app (:class:`CurveExplorer`, :func:`build_app`,
  :func:`launch_space`);
- :mod:`~hf_finetune_curve.space.deploy`: the Space's files and :func:`push_space`.

The deployed Space (``spaces/finetune_curve/app.py``) imports :func:`build_app` and :func:`launch_kwargs` from here.

Example:
    >>> from hf_finetune_curve.space import launch_space, push_space
    >>> launch_space("runs/bat", port=7860)                         # doctest: +SKIP
    >>> push_space("runs/bat", "my-org/bat-space", token="hf_...")  # doctest: +SKIP
"""

from .app import CSS, MAX_DESCRIPTION_CHARS, N_NEIGHBOURS, CurveExplorer, build_app, launch_kwargs, launch_space
from .data import (ENV_MAX_MODELS, ENV_REPO, ENV_RUN_DIR, SPACE_CONFIG_FILE, CheckpointCache, RunData,
                   derived_model_repo, load_run_data, point_objectives, resolve_source)
from .deploy import SPACE_FILES, push_space, space_files, space_source_dir
from .figures import (COLOUR_OPTIONS, curve_figure, format_value, map_figure, points_table_markdown, prices_html,
                      short_name, summary_markdown)

__all__ = [
    "COLOUR_OPTIONS", "CSS", "ENV_MAX_MODELS", "ENV_REPO", "ENV_RUN_DIR", "MAX_DESCRIPTION_CHARS", "N_NEIGHBOURS",
    "SPACE_CONFIG_FILE", "SPACE_FILES", "CheckpointCache", "CurveExplorer", "RunData", "build_app", "curve_figure",
    "derived_model_repo", "format_value", "launch_kwargs", "launch_space", "load_run_data", "map_figure",
    "point_objectives", "points_table_markdown", "prices_html", "push_space", "resolve_source", "short_name",
    "space_files", "space_source_dir", "summary_markdown",
]
