"""``evaluate`` metrics bundled with hf-finetune-curve, and publishing them as Hub Spaces.

Each metric is a folder laid out like the metrics of the ``evaluate`` library (``<name>/<name>.py``,
``README.md`` with the Space card, ``app.py``, ``requirements.txt``), so it loads with ``evaluate.load``
from its local path, and from the Hub once pushed.

Example:
    >>> import evaluate
    >>> from hf_finetune_curve.metrics import metric_path
    >>> price_regression = evaluate.load(metric_path(), "scalar")
    >>> scores = price_regression.compute(predictions=[1.0, 2.0], references=[1.0, 3.0])
    >>> {key: round(value, 4) for key, value in scores.items()}
    {'r2': 0.5, 'r2_log': 0.7276, 'mae': 0.5, 'median_ae': 0.5, 'n_rows': 2}
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["available_metrics", "load_metric", "metric_path", "push_metric"]

logger = logging.getLogger(__name__)

METRICS_DIR = Path(__file__).resolve().parent
#: The files of a metric folder that make up its Space.
SPACE_FILES = ("{name}.py", "README.md", "app.py", "requirements.txt")


def available_metrics() -> list[str]:
    """Names of the bundled metrics (folders ``<name>/`` holding ``<name>.py``)."""
    return sorted(
        path.name for path in METRICS_DIR.iterdir() if path.is_dir() and (path / f"{path.name}.py").is_file()
    )


def metric_path(name: str = "price_regression") -> str:
    """Absolute path of the bundled metric folder ``name``, for ``evaluate.load(metric_path())``.

    Raises:
        ValueError: ``name`` is not a bundled metric; the message lists the ones there are.
    """
    available = available_metrics()
    if name not in available:
        raise ValueError(f"Unknown metric {name!r}; available metrics: {', '.join(available) or '(none)'}.")
    return str(METRICS_DIR / name)


def load_metric(config_name: str | None = None, *, name: str = "price_regression", keep_in_memory: bool = True, **kwargs: Any):
    """Instantiate a bundled metric without ``evaluate.load``: no module-cache copy, no lock, no network.

    ``evaluate.load(path)`` copies the script into ``HF_MODULES_CACHE`` under a file lock, which hangs
    forever where that lock cannot be taken (a stale lock file, or a network filesystem without
    ``flock``: evaluate issue #473). This imports the bundled script directly instead and returns the
    same ``evaluate.Metric`` object. ``keep_in_memory=True`` (the default here) also keeps the inputs
    out of evaluate's on-disk cache (``HF_METRICS_CACHE``) and its lock files.

    Args:
        config_name: ``"embeddings"`` (default) or ``"scalar"`` for ``price_regression``.
        name: which bundled metric.
        keep_in_memory, **kwargs: passed to the metric's constructor, as ``evaluate.load`` would
            (``cache_dir``, ``experiment_id``, ``seed``, ...).
    """
    import evaluate

    folder = Path(metric_path(name))
    module_name = f"hf_finetune_curve.metrics._bundled_{name}"
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    classes = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, evaluate.EvaluationModule)
        and obj.__module__ == module_name
    ]
    if len(classes) != 1:  # pragma: no cover - a packaging error
        raise RuntimeError(f"{folder / (name + '.py')} must define exactly one evaluate module class; found {len(classes)}.")
    return classes[0](config_name=config_name, keep_in_memory=keep_in_memory, **kwargs)


def _space_url(repo_url: str, repo_id: str) -> str:
    return str(repo_url) if repo_url else f"https://huggingface.co/spaces/{repo_id}"


def push_metric(
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    name: str = "price_regression",
) -> str:
    """Publish the bundled metric folder ``name`` as a Gradio Space ``repo_id`` and return the Space's URL.

    Afterwards ``evaluate.load(repo_id)`` loads it from the Hub. ``evaluate`` looks for the script
    ``<space name>.py`` in the Space, so when the Space is not named like the metric (e.g.
    ``org/airbnb-prices`` for ``price_regression``) the script is also uploaded under the Space's name.

    Args:
        repo_id: ``"namespace/space_name"``.
        token: a Hub token with write access; None uses the saved login / ``HF_TOKEN``. Never logged.
        private: create the Space private (only applies when it does not exist yet).
        name: which bundled metric to publish.

    Raises:
        ValueError: bad ``repo_id`` or unknown ``name``.
    """
    from huggingface_hub import HfApi

    folder = Path(metric_path(name))
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"repo_id must look like 'namespace/space_name'; got {repo_id!r}.")
    space_name = repo_id.split("/")[1]

    api = HfApi(token=token)
    repo_url = api.create_repo(
        repo_id, repo_type="space", space_sdk="gradio", exist_ok=True, private=private, token=token
    )
    with tempfile.TemporaryDirectory(prefix="hf-curve-metric-") as staging:
        for pattern in SPACE_FILES:
            filename = pattern.format(name=name)
            shutil.copy2(folder / filename, Path(staging) / filename)
        if space_name != name:
            shutil.copy2(folder / f"{name}.py", Path(staging) / f"{space_name}.py")
        api.upload_folder(
            repo_id=repo_id,
            repo_type="space",
            folder_path=staging,
            commit_message=f"Upload the {name} metric (hf-finetune-curve)",
            token=token,
        )
    url = _space_url(getattr(repo_url, "url", repo_url), repo_id)
    logger.info("Pushed metric %s to %s", name, url)
    return url
