"""The finetuning-curve Space: the Gradio app, launching and publishing it.

The app reads a local run directory or a published curve dataset repo (the same file names, read
through :class:`~hf_finetune_curve.run_dir.RunDirectory`) and never writes into either. Its maps and
nearest neighbours come from the run's ``samples.parquet`` (:mod:`hf_finetune_curve.samples`, a stage
of the run; ``build_samples`` is importable from here too), so it embeds nothing but what a user types.

Example:
    >>> from hf_finetune_curve.space import launch_space, push_space
    >>> launch_space("runs/bat", port=7860)                         # doctest: +SKIP
    >>> push_space("runs/bat", "my-org/bat-space", token="hf_...")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
import re
import logging
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import SpaceError
from ..io_utils import HUB_REPO_ID as _REPO_ID, hub_endpoint, read_json
from ..model_card import PROBE_PATH_IN_REPO
from ..probe import METRICS  # (key, display name, higher is better)
from ..run_dir import (CONFIG_FILE, CURVE_CSV_FILE, CURVE_JSON_FILE, DATA_REPORT_FILE, PROBES_DIR, SAMPLES_FILE,
                      RunDirectory, parse_file_label)
# build_samples and read_samples lived here before the samples stage had its own module: still importable from here.
from ..samples import Samples, build_samples, column_name, read_samples, sorted_points  # noqa: F401

logger = logging.getLogger(__name__)

SPACE_CONFIG_FILE = "curve_space.json"
ENV_RUN_DIR = "HF_CURVE_RUN_DIR"
ENV_REPO = "HF_CURVE_REPO"
ENV_MAX_MODELS = "HF_CURVE_MAX_MODELS"
MAX_DESCRIPTION_CHARS = 2_000
N_NEIGHBOURS = 5
_METRIC_BY_NAME = {name: (key, name, better) for key, name, better in METRICS}


# ----------------------------------------------------------------------------------------------------
# Where the app's data comes from: a local run directory or a published curve dataset repo
# ----------------------------------------------------------------------------------------------------
def derived_model_repo(curve_repo: str, label: str) -> str:
    """``org/bat-curve`` -> ``org/bat-f50`` (or ``org/bat-tsdae-f50`` for the point key ``tsdae/f50``):
    the naming a published run's model repos follow."""
    base = curve_repo[: -len("-curve")] if curve_repo.endswith("-curve") else curve_repo
    return f"{base}-{label.replace('/', '-')}"


@dataclass
class RunData:
    """Everything the app shows, read once at start-up (no model is loaded here)."""

    root: Path
    points: list[dict[str, Any]]
    curve: dict[str, Any]
    meta: dict[str, Any]
    samples: Samples | None
    curve_repo: str | None = None
    local: bool = True
    model_repos: dict[str, str] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [p["label"] for p in self.points]

    @property
    def directory(self) -> RunDirectory:
        """The run directory, or the curve repo's snapshot (it keeps the run directory's file names)."""
        return RunDirectory(self.root)

    @property
    def base_model_id(self) -> str:
        return self.meta.get("model", {}).get("model_id") or self.meta.get("config", {}).get("model", "")

    def point(self, label: str) -> dict[str, Any]:
        return next(p for p in self.points if p["label"] == label)

    def model_location(self, label: str) -> str | None:
        """A local folder or a Hub model id to load ``label``'s SentenceTransformer from."""
        if label == "f0":
            path = self.meta.get("model", {}).get("path")
            if self.local and path and Path(path).exists():
                return path
            return self.base_model_id or None
        # A point key ("f200", "tsdae/f200") names the checkpoint's label and objective.
        if self.local and self.directory.has_checkpoint(*parse_file_label(label)):
            return str(self.directory.checkpoint_dir(*parse_file_label(label)))
        return self.model_repos.get(label)

    def probe_file(self, label: str) -> Path | None:
        """The saved probe for ``label``: in the run / curve repo, else in the checkpoint's model repo."""
        local = self.directory.probe_path(*parse_file_label(label))
        if local.exists():
            return local
        repo = self.model_repos.get(label)
        if repo and label != "f0":
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(repo, PROBE_PATH_IN_REPO))
        return None

    def hub_url(self, label: str) -> str | None:
        repo = self.model_repos.get(label)
        if repo is None and label == "f0" and self.meta.get("model", {}).get("source") in ("hub", "package"):
            repo = self.base_model_id
        return f"{hub_endpoint()}/{repo}" if repo else None


def _load_local_run(run_dir: Path) -> RunData:
    run = RunDirectory(run_dir)
    run.require_run()  # NotARunDirectoryError, a FileNotFoundError
    curve_file = run.read_curve()
    curve = curve_file.to_dict() if curve_file is not None else {}
    points = curve.get("points") or [p.to_dict() for p in run.read_points()]
    return RunData(root=run_dir, points=sorted_points(points), curve=curve, meta=run.read_config(),
                   samples=run.read_samples(), curve_repo=None, local=True, model_repos={})


def _load_repo_run(curve_repo: str, token: str | None = None) -> RunData:
    from huggingface_hub import snapshot_download

    # The curve repo keeps the run directory's names for the files it publishes.
    root = Path(snapshot_download(
        curve_repo, repo_type="dataset", token=token,
        allow_patterns=[CONFIG_FILE, CURVE_JSON_FILE, CURVE_CSV_FILE, DATA_REPORT_FILE, SAMPLES_FILE, f"{PROBES_DIR}/*"],
    ))
    run = RunDirectory(root)
    curve_file = run.read_curve()
    if curve_file is None:
        raise FileNotFoundError(f"The curve repo {curve_repo} has no {CURVE_JSON_FILE}.")
    curve = curve_file.to_dict()
    points = sorted_points(curve["points"])
    repos = {point["label"]: derived_model_repo(curve_repo, point["label"]) for point in points
             if point["label"] != "f0"}
    return RunData(root=root, points=points, curve=curve, meta=run.read_config(), samples=run.read_samples(),
                   curve_repo=curve_repo, local=False, model_repos=repos)


def point_objectives(points: Sequence[dict[str, Any]]) -> list[str]:
    """The objectives of a run's points in order of appearance (f0 counts for the first)."""
    return list(dict.fromkeys(str(p.get("objective") or "mlm") for p in points))


def resolve_source(app_dir: str | os.PathLike | None = None) -> str | None:
    """``HF_CURVE_RUN_DIR``, else ``HF_CURVE_REPO`` (a Space variable), else ``curve_space.json`` beside the app."""
    for name in (ENV_RUN_DIR, ENV_REPO):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    if app_dir is not None:
        config = Path(app_dir) / SPACE_CONFIG_FILE
        if config.exists():
            return read_json(config).get("curve_repo")
    return None


def load_run_data(source: str | os.PathLike, token: str | None = None) -> RunData:
    """A local run directory, or a curve dataset repo id (``org/name-curve``)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return _load_local_run(path)
    text = str(source)
    if _REPO_ID.match(text) and not text.startswith((".", "/", "~")):
        return _load_repo_run(text, token=token)
    raise FileNotFoundError(f"{source!r} is neither a run directory nor a Hub dataset repo id (org/name).")


# ----------------------------------------------------------------------------------------------------
# Models and probes, loaded lazily and cached
# ----------------------------------------------------------------------------------------------------
class CheckpointCache:
    """Loads each checkpoint's SentenceTransformer and probe on first use; keeps the last few models."""

    def __init__(self, run: RunData, max_models: int | None = None) -> None:
        self.run = run
        self.max_models = max(1, int(max_models or os.environ.get(ENV_MAX_MODELS, 8)))
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._probes: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()  # one load at a time: two users must not load a model twice

    def _cached(self, label: str):
        with self._lock:
            if label in self._models:
                self._models.move_to_end(label)
                return self._models[label]
        return None

    def model(self, label: str):
        model = self._cached(label)
        if model is not None:
            return model
        with self._load_lock:
            model = self._cached(label)
            if model is not None:
                return model
            location = self.run.model_location(label)
            if location is None:
                raise LookupError(f"no checkpoint for {label} (not in the run and not published)")
            from ..models import load_sentence_transformer

            model, _ = load_sentence_transformer(location)
            with self._lock:
                self._models[label] = model
                while len(self._models) > self.max_models:
                    self._models.popitem(last=False)
        return model

    def probe(self, label: str):
        with self._lock:
            if label in self._probes:
                return self._probes[label]
        path = self.run.probe_file(label)
        if path is None:
            raise LookupError(f"no saved probe for {label}")
        from ..probe import PriceProbe

        probe = PriceProbe.load(path)
        with self._lock:
            self._probes[label] = probe
        return probe

    def embed(self, label: str, texts: list[str]) -> np.ndarray:
        model = self.model(label)
        return np.asarray(model.encode(texts, convert_to_numpy=True, show_progress_bar=False), dtype=np.float32)


# ----------------------------------------------------------------------------------------------------
# Figures and tables
# ----------------------------------------------------------------------------------------------------
def format_value(value: Any, key: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    value = float(value)
    if key in ("r2", "r2_log"):
        return f"{value:.4f}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def _interval(point: dict[str, Any], key: str) -> tuple[float, float] | None:
    found = (point.get("extras") or {}).get("intervals", {}).get(key)
    if not isinstance(found, dict):
        return None
    low, high = found.get("low"), found.get("high")
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return None
    return float(low), float(high)


def _fit_grid(curve: dict[str, Any], key: str) -> dict[str, list[float]] | None:
    fit = (curve.get("fit") or {}).get(key)
    if not isinstance(fit, dict):
        return None
    grid = fit.get("grid") if isinstance(fit.get("grid"), dict) else fit
    if not grid.get("sizes") or not grid.get("predicted") or len(grid["sizes"]) != len(grid["predicted"]):
        return None
    return grid


def _baseline(curve: dict[str, Any], key: str) -> tuple[str, float] | None:
    baselines = curve.get("baselines")
    if isinstance(baselines, dict) and "name" not in baselines:
        baselines = next(iter(baselines.values()), None)
    if isinstance(baselines, list):
        baselines = baselines[0] if baselines else None
    if isinstance(baselines, dict) and isinstance(baselines.get(key), (int, float)):
        return str(baselines.get("name", "baseline")), float(baselines[key])
    return None


def curve_figure(points: Sequence[dict[str, Any]], curve: dict[str, Any], metric: str = "R²",
                 log_x: bool = True, show_fit: bool = True):
    """One metric against finetune size; f0 marked (star + dashed reference line); CIs and fit when present."""
    import plotly.graph_objects as go

    key, name, higher_is_better = _METRIC_BY_NAME.get(metric, METRICS[0])
    points = sorted_points(points)
    if len(point_objectives(points)) > 1:
        return _objectives_figure(points, curve, key, name, higher_is_better, log_x=log_x, show_fit=show_fit)
    sizes = [int(p.get("finetune_size", 0)) for p in points]
    values = [float(p.get(key, float("nan"))) for p in points]
    use_log, xmap, zero_x = _size_axis(sizes, log_x)

    figure = go.Figure()
    grid = _fit_grid(curve, key) if show_fit else None
    if grid is not None:
        pairs = _grid_pairs(grid, xmap, use_log, zero_x)
        gx = [x for x, _ in pairs]
        if grid.get("low") and grid.get("high") and len(grid["low"]) == len(grid["sizes"]):
            figure.add_trace(go.Scatter(x=gx, y=[grid["low"][i] for _, i in pairs], mode="lines",
                                        line=dict(width=0), hoverinfo="skip", showlegend=False, name="fit low"))
            figure.add_trace(go.Scatter(x=gx, y=[grid["high"][i] for _, i in pairs], mode="lines",
                                        line=dict(width=0), fill="tonexty", fillcolor="rgba(99,110,250,0.15)",
                                        hoverinfo="skip", name="fit 95% band"))
        family = (curve.get("fit") or {}).get(key, {}).get("family", "")
        figure.add_trace(go.Scatter(
            x=gx, y=[grid["predicted"][i] for _, i in pairs], mode="lines", name=f"fit ({family})" if family else "fit",
            line=dict(dash="dash", color="rgba(99,110,250,0.9)", width=1.5),
            hovertemplate="fit at %{customdata:,.0f}: %{y:.6g}<extra></extra>",
            customdata=[grid["sizes"][i] for _, i in pairs]))
    intervals = [_interval(p, key) for p in points]
    has_ci = any(interval is not None for interval in intervals)
    if has_ci and grid is None:
        figure.add_trace(go.Scatter(x=[xmap(s) for s in sizes], y=[iv[0] if iv else v for iv, v in zip(intervals, values)],
                                    mode="lines", line=dict(width=0), hoverinfo="skip", showlegend=False))
        figure.add_trace(go.Scatter(x=[xmap(s) for s in sizes], y=[iv[1] if iv else v for iv, v in zip(intervals, values)],
                                    mode="lines", line=dict(width=0), fill="tonexty",
                                    fillcolor="rgba(99,110,250,0.12)", hoverinfo="skip", name="95% interval"))
    hover = []
    for point, value, interval in zip(points, values, intervals):
        text = f"<b>{html.escape(str(point.get('label')))}</b> ({int(point.get('finetune_size', 0)):,} finetune texts)"
        text += f"<br>{name}: {value:.6g}" if key == "r2" else f"<br>{name}: {value:,.4f}"
        if interval is not None:
            text += f"<br>95% CI: [{format_value(interval[0], key)}, {format_value(interval[1], key)}]"
        text += f"<br>tokens seen: {int(point.get('finetune_tokens_seen', 0)):,}"
        hover.append(text)
    error_y = None
    if has_ci:
        error_y = dict(type="data", symmetric=False, thickness=1.2, width=4,
                       array=[max(iv[1] - v, 0) if iv else 0 for iv, v in zip(intervals, values)],
                       arrayminus=[max(v - iv[0], 0) if iv else 0 for iv, v in zip(intervals, values)])
    figure.add_trace(go.Scatter(
        x=[xmap(s) for s in sizes], y=values, mode="lines+markers+text", name="measured",
        text=[p.get("label", "") for p in points], textposition="top center", textfont=dict(size=10, color="gray"),
        marker=dict(size=[14 if s == 0 else 9 for s in sizes], symbol=["star" if s == 0 else "circle" for s in sizes],
                    color=["#EF553B" if s == 0 else "#636EFA" for s in sizes]),
        line=dict(color="#636EFA"), error_y=error_y, hovertext=hover, hovertemplate="%{hovertext}<extra></extra>"))
    floor = values[0] if sizes and sizes[0] == 0 else None
    return _finish_figure(figure, curve, key, floor, sizes, xmap if use_log else None,
                          f"{name} vs finetune size ({'higher' if higher_is_better else 'lower'} is better)", name)


def _size_axis(sizes: Sequence[int], log_x: bool) -> tuple[bool, Any, float]:
    """``(use_log, xmap, zero_x)``: a log axis has no 0, so the factory floor sits at ``zero_x``, a
    little left of the smallest finetuned size; ``xmap`` puts a size on the axis."""
    positive = [s for s in sizes if s > 0]
    use_log = bool(log_x and positive)
    zero_x = min(positive) / 4 if use_log else 0.0

    def xmap(size: float) -> float:
        return zero_x if size <= 0 else float(size)

    return use_log, xmap, zero_x


def _grid_pairs(grid: dict[str, Any], xmap: Any, use_log: bool, zero_x: float) -> list[tuple[float, int]]:
    """(x, index) of the fit grid's sizes to draw: on a log axis, none between 0 and the f0 position."""
    return [(xmap(s), i) for i, s in enumerate(grid["sizes"]) if not (use_log and 0 < s < zero_x)]


def _finish_figure(figure, curve: dict[str, Any], key: str, floor: float | None, sizes: Sequence[int],
                   log_xmap: Any, title: str, name: str):
    """What every curve figure shares: the factory-floor and baseline lines, the size axis, the layout."""
    if floor is not None and math.isfinite(float(floor)):
        figure.add_hline(y=float(floor), line_dash="dot", line_color="#EF553B", line_width=1,
                         annotation_text=f"factory floor (f0): {format_value(floor, key)}",
                         annotation_position="bottom right", annotation_font_color="#EF553B")
    baseline = _baseline(curve, key)
    if baseline is not None:
        figure.add_hline(y=baseline[1], line_dash="dashdot", line_color="gray", line_width=1,
                         annotation_text=f"{baseline[0]} baseline: {format_value(baseline[1], key)}",
                         annotation_position="top right", annotation_font_color="gray")
    use_log = log_xmap is not None
    xaxis: dict[str, Any] = dict(title="finetune examples" + (" (log scale; f0 drawn at the left)" if use_log else ""))
    if use_log:
        xaxis.update(type="log", tickvals=[log_xmap(s) for s in sizes],
                     ticktext=["0" if s == 0 else f"{s:,}" for s in sizes])
    figure.update_layout(
        title=dict(text=title, x=0.01),
        xaxis=xaxis, yaxis=dict(title=name), hovermode="closest", height=460, template="plotly_white",
        margin=dict(l=60, r=20, t=60, b=60), legend=dict(orientation="h", y=-0.2),
    )
    return figure


# Plotly colours of the objectives' curves (the same hues as curve.png's).
_OBJECTIVE_PLOT_COLORS = {"mlm": "#636EFA", "tsdae": "#00A15A", "simcse": "#AB63FA"}


def _objectives_figure(points: list[dict[str, Any]], curve: dict[str, Any], key: str, name: str,
                       higher_is_better: bool, *, log_x: bool, show_fit: bool):
    """One curve per objective on the same axes, each starting at the shared f0, with 95% intervals
    and (``show_fit``) each objective's fitted curve."""
    import plotly.graph_objects as go

    from ..objectives import OBJECTIVE_NAMES, Objective

    objectives = point_objectives(points)
    base = next((p for p in points if int(p.get("finetune_size", 0)) == 0), None)
    sizes_all = sorted({int(p.get("finetune_size", 0)) for p in points})
    use_log, xmap, zero_x = _size_axis(sizes_all, log_x)

    figure = go.Figure()
    sections = curve.get("objectives") or {}
    for objective in objectives:
        color = _OBJECTIVE_PLOT_COLORS.get(objective, "#636EFA")
        display = Objective(objective).display if objective in OBJECTIVE_NAMES else objective
        own = [p for p in points if p.get("objective") == objective and int(p.get("finetune_size", 0)) > 0]
        series = ([base] if base is not None else []) + own
        grid = _fit_grid(sections.get(objective) or {}, key) if show_fit else None
        if grid is not None:
            pairs = _grid_pairs(grid, xmap, use_log, zero_x)
            figure.add_trace(go.Scatter(
                x=[x for x, _ in pairs], y=[grid["predicted"][i] for _, i in pairs], mode="lines",
                name=f"{display} fit", line=dict(dash="dash", color=color, width=1), hoverinfo="skip"))
        values = [float(p.get(key, float("nan"))) for p in series]
        intervals = [_interval(p, key) for p in series]
        hover = []
        for point, value, interval in zip(series, values, intervals):
            text = (f"<b>{html.escape(display)} {html.escape(str(point.get('size_label') or point.get('label')))}</b> "
                    f"({int(point.get('finetune_size', 0)):,} finetune texts)<br>{name}: {format_value(value, key)}")
            if interval is not None:
                text += f"<br>95% CI: [{format_value(interval[0], key)}, {format_value(interval[1], key)}]"
            hover.append(text)
        error_y = None
        if any(interval is not None for interval in intervals):
            error_y = dict(type="data", symmetric=False, thickness=1.2, width=4, color=color,
                           array=[max(iv[1] - v, 0) if iv else 0 for iv, v in zip(intervals, values)],
                           arrayminus=[max(v - iv[0], 0) if iv else 0 for iv, v in zip(intervals, values)])
        sizes = [int(p.get("finetune_size", 0)) for p in series]
        figure.add_trace(go.Scatter(
            x=[xmap(s) for s in sizes], y=values, mode="lines+markers", name=display,
            marker=dict(size=[14 if s == 0 else 9 for s in sizes], symbol=["star" if s == 0 else "circle" for s in sizes],
                        color=color), line=dict(color=color), error_y=error_y, hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>"))
    floor = float(base[key]) if base is not None and base.get(key) is not None else None
    return _finish_figure(figure, curve, key, floor, sizes_all, xmap if use_log else None,
                          f"{name} vs finetune size by objective ({'higher' if higher_is_better else 'lower'} is better)",
                          name)


def points_table_markdown(run: RunData) -> str:
    if not run.points:
        return "*No finished sizes yet.*"
    base = run.points[0] if run.points[0].get("finetune_size") == 0 else None
    several = len(point_objectives(run.points)) > 1
    lines = ["| size | checkpoint | R² [95% CI] | log R² | ΔR² vs f0 [95% CI] | MAE | MedAE | tokens seen |",
             "|---:|:---|:---|---:|:---|---:|---:|---:|"]
    if several:  # one block per objective, each against the shared f0
        lines = ["| objective " + lines[0], "|:---" + lines[1]]
    order = point_objectives(run.points)
    for point in sorted(run.points, key=lambda p: (0 if int(p.get("finetune_size", 0)) == 0
                                                   else 1 + order.index(str(p.get("objective") or "mlm")),
                                                   int(p.get("finetune_size", 0)))):
        label = str(point.get("label"))
        url = run.hub_url(label)
        name = f"[{label}]({url})" if url else label
        if label == "f0":
            name += f" (base: `{short_name(run.base_model_id)}`)" if run.base_model_id else ""
        r2 = format_value(point.get("r2"), "r2")
        interval = _interval(point, "r2")
        if interval:
            r2 += f" [{interval[0]:.3f}, {interval[1]:.3f}]"
        delta = "–"
        if base is not None and point is not base:
            delta = f"{float(point.get('r2', float('nan'))) - float(base.get('r2', float('nan'))):+.4f}"
            paired = (point.get("extras") or {}).get("delta_vs_f0", {}).get("r2")
            if isinstance(paired, dict) and paired.get("low") is not None and paired.get("high") is not None:
                delta += f" [{paired['low']:+.3f}, {paired['high']:+.3f}]"
        lines.append(("| " + ("all" if point is base else str(point.get("objective") or "mlm")) + " " if several else "")
                     + f"| {int(point.get('finetune_size', 0)):,} | {name} | {r2} | "
                     f"{format_value(point.get('r2_log'), 'r2_log')} | {delta} | "
                     f"{format_value(point.get('mae'))} | {format_value(point.get('median_ae'))} | "
                     f"{int(point.get('finetune_tokens_seen', 0)):,} |")
    return "\n".join(lines)


def short_name(value: str) -> str:
    """A Hub id or ``embedded:...`` as is; a local path by its last part (no local paths on a public page)."""
    text = str(value or "")
    if text.startswith(("/", ".", "~")) or "\\" in text or text.count("/") > 1:
        return Path(text.rstrip("/\\")).name or text
    return text


def summary_markdown(run: RunData) -> str:
    meta, curve = run.meta, run.curve
    model, corpus_source = run.base_model_id, str(meta.get("corpus", {}).get("source", "?"))
    title = curve.get("title") or f"{model} on {corpus_source}: price probe vs MLM finetuning data"
    for long in sorted({model, corpus_source, str(meta.get("config", {}).get("model", ""))}, key=len, reverse=True):
        if long and short_name(long) != long:
            title = title.replace(long, short_name(long))
    split = meta.get("split", {})
    corpus = meta.get("corpus", {})
    source = f"[{run.curve_repo}]({hub_endpoint()}/datasets/{run.curve_repo})" if run.curve_repo else "a local run"
    lines = [f"### {html.escape(title)}",
             f"Base model `{short_name(model)}` · corpus `{short_name(corpus_source)}` "
             f"({int(corpus.get('rows', 0)):,} rows; probe trained on {int(split.get('probe_train_rows', 0)):,}, "
             f"scored on {int(split.get('test_rows', 0)):,} held-out listings) · from {source}."]
    answer = curve.get("answer") or {}
    n90 = answer.get("n_for_90") if isinstance(answer, dict) else None
    if isinstance(n90, dict):
        if n90.get("n_needed") is not None:
            interval = ""
            if n90.get("low") is not None and n90.get("high") is not None:
                interval = f" (95% CI {n90['low']:,.0f}–{n90['high']:,.0f})"
            metric = {key: name for key, name, _ in METRICS}.get(answer.get("metric", "r2"), answer.get("metric"))
            lines.append(f"**Finetune texts for 90% of the attainable {metric} gain:** "
                         f"{n90['n_needed']:,.0f}{interval}.")
        elif n90.get("reason"):
            lines.append(f"*N for 90% of the gain: not estimated ({html.escape(str(n90['reason']))}).*")
    next_size = answer.get("next_size") if isinstance(answer, dict) else None
    if isinstance(next_size, dict) and next_size.get("available"):
        if next_size.get("size") is not None:
            lines.append(f"**Next size to measure:** {next_size['size']:,.0f} texts "
                         f"({html.escape(str(next_size.get('reason', '')))}).")
        else:
            lines.append(f"**Next size:** none needed ({html.escape(str(next_size.get('reason', '')))}).")
    for warning in (curve.get("warnings") or [])[:3]:
        lines.append(f"> ⚠️ {html.escape(str(warning))}")
    return "\n\n".join(lines)


def _truncate(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _wrap_hover(text: str, limit: int = 240, width: int = 60) -> str:
    words, lines, current = html.escape(_truncate(text, limit)).split(" "), [], ""
    for word in words:
        if current and len(current) + len(word) + 1 > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}".strip()
    lines.append(current)
    return "<br>".join(lines)


COLOUR_OPTIONS = ("true price", "predicted price", "error (pred - true)")


def map_figure(samples: Samples | None, label: str, colour_by: str = COLOUR_OPTIONS[0],
               query: tuple[float, float] | None = None):
    """The sample listings on ``label``'s 2-D PCA map, coloured by price; hover shows text and prices."""
    import plotly.graph_objects as go

    figure = go.Figure()
    if samples is None or label not in samples.embeddings:
        figure.update_layout(title=f"No sample listings for {label} (samples.parquet missing)", height=420,
                             template="plotly_white")
        return figure
    frame = samples.frame
    true = frame["price"].to_numpy(dtype=float)
    predicted = frame[column_name("pred", label)].to_numpy(dtype=float)
    if colour_by == COLOUR_OPTIONS[1]:
        colour, colour_title, scale = np.log10(np.clip(predicted, 1e-9, None)), "log10 predicted", "Viridis"
    elif colour_by == COLOUR_OPTIONS[2]:
        colour, colour_title, scale = predicted - true, "pred - true", "RdBu"
    else:
        colour, colour_title, scale = np.log10(np.clip(true, 1e-9, None)), "log10 price", "Viridis"
    hover = [f"{_wrap_hover(text)}<br><b>true</b> {format_value(t)} · <b>predicted</b> {format_value(p)}"
             for text, t, p in zip(frame["text"], true, predicted)]
    marker = dict(size=8, color=colour, colorscale=scale, colorbar=dict(title=colour_title), opacity=0.85,
                  line=dict(width=0.5, color="white"))
    if colour_by == COLOUR_OPTIONS[2]:
        limit = float(np.nanmax(np.abs(colour))) if len(colour) else 1.0
        marker.update(cmin=-limit, cmax=limit, cmid=0)
    figure.add_trace(go.Scatter(x=frame[column_name("x", label)], y=frame[column_name("y", label)], mode="markers",
                                name="held-out listings", marker=marker, hovertext=hover,
                                hovertemplate="%{hovertext}<extra></extra>"))
    if query is not None:
        figure.add_trace(go.Scatter(x=[query[0]], y=[query[1]], mode="markers", name="your description",
                                    marker=dict(symbol="star", size=18, color="#EF553B", line=dict(width=1, color="black")),
                                    hovertemplate="your description<extra></extra>"))
    explained = samples.info.get("pca", {}).get(label, {}).get("explained_variance_ratio", [0, 0])
    figure.update_layout(
        title=dict(text=f"{len(frame)} held-out listings embedded by {label} (PCA of this checkpoint)", x=0.01),
        xaxis=dict(title=f"PC1 ({explained[0]:.0%} of variance)", zeroline=False),
        yaxis=dict(title=f"PC2 ({explained[1]:.0%})", zeroline=False),
        height=480, template="plotly_white", margin=dict(l=60, r=20, t=60, b=50), showlegend=query is not None,
        legend=dict(orientation="h", y=-0.15),
    )
    return figure


def _html_note(text: str) -> str:
    return f'<p class="hfc-caption">{html.escape(text)}</p>'


def prices_html(rows: Sequence[dict[str, Any]]) -> str:
    """The side-by-side price table (one ``tr.price-row`` per checkpoint, ``data-label`` on each)."""
    body = []
    for row in rows:
        if row["price"] is None:
            price = f'<td class="price unavailable" title="{html.escape(str(row["error"]))}">unavailable</td>'
        else:
            price = f'<td class="num price">{format_value(row["price"])}</td>'
        body.append(f'<tr class="price-row" data-label="{html.escape(row["label"])}"><td>{html.escape(row["label"])}'
                    f'</td><td class="num">{row["finetune_size"]:,}</td>{price}<td class="num">'
                    f'{format_value(row["r2"], "r2")}</td><td class="num">{format_value(row["mae"])}</td></tr>')
    return ('<p class="hfc-caption">Predicted price of your description, per checkpoint '
            '(test R² and MAE say how far to trust each)</p><table class="hfc-table" id="prices"><thead><tr>'
            '<th>checkpoint</th><th>finetune size</th><th>predicted price</th><th>test R²</th><th>test MAE</th>'
            f'</tr></thead><tbody>{"".join(body)}</tbody></table>')



# ----------------------------------------------------------------------------------------------------
# The app
# ----------------------------------------------------------------------------------------------------
class CurveExplorer:
    """The app's state and event handlers (each usable without a browser)."""

    def __init__(self, run: RunData, cache: CheckpointCache | None = None) -> None:
        self.run = run
        self.cache = cache or CheckpointCache(run)

    # -- curve tab ------------------------------------------------------------------------------------
    def curve_plot(self, metric: str, log_x: bool, show_fit: bool):
        return curve_figure(self.run.points, self.run.curve, metric, bool(log_x), bool(show_fit))

    # -- listings tab ---------------------------------------------------------------------------------
    def _query_xy(self, label: str, query: dict[str, Any] | None) -> tuple[float, float] | None:
        if not query or label not in query.get("embeddings", {}) or self.run.samples is None:
            return None
        if label not in self.run.samples.info.get("pca", {}):
            return None
        x, y = self.run.samples.project(label, np.asarray(query["embeddings"][label]))[0]
        return float(x), float(y)

    def neighbour_rows(self, label: str, query: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The sample listings nearest (cosine) to the query under ``label``'s embeddings."""
        samples = self.run.samples
        if not query or samples is None or label not in samples.embeddings or label not in query.get("embeddings", {}):
            return []
        vector = np.asarray(query["embeddings"][label], dtype=np.float32)
        matrix = samples.embeddings[label]
        norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(vector) or 1.0)
        similarity = (matrix @ vector) / np.where(norms == 0, 1.0, norms)
        frame = samples.frame
        return [{"similarity": float(similarity[i]), "price": float(frame["price"].iloc[i]),
                 "predicted": float(frame[column_name("pred", label)].iloc[i]), "text": str(frame["text"].iloc[i]),
                 "row": int(frame["row"].iloc[i])}
                for i in np.argsort(-similarity)[:N_NEIGHBOURS]]

    def neighbours_html(self, label: str, query: dict[str, Any] | None) -> str:
        rows = self.neighbour_rows(label, query)
        if not rows:
            return _html_note("Predict a description to see its nearest sample listings under the chosen checkpoint.")
        body = "".join(
            f'<tr><td class="num">{r["similarity"]:.3f}</td><td class="num">{format_value(r["price"])}</td>'
            f'<td class="num">{format_value(r["predicted"])}</td><td>{html.escape(_truncate(r["text"], 400))}</td></tr>'
            for r in rows)
        return (f'<p class="hfc-caption">Nearest sample listings under <b>{html.escape(label)}</b> (cosine)</p>'
                '<table class="hfc-table" id="neighbours"><thead><tr><th>similarity</th><th>true price</th>'
                f'<th>predicted ({html.escape(label)})</th><th>listing</th></tr></thead><tbody>{body}</tbody></table>')

    def show_checkpoint(self, label: str, colour_by: str, query: dict[str, Any] | None):
        return map_figure(self.run.samples, label, colour_by, self._query_xy(label, query)), \
            self.neighbours_html(label, query)

    def price_rows(self, text: str) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
        """Every checkpoint's predicted price for ``text`` (``price`` None where it is unavailable).

        Raises:
            gr.Error: empty or longer than ``MAX_DESCRIPTION_CHARS`` (shown in the app as a message).
        """
        import gradio as gr

        text = (text or "").strip()
        if not text:
            raise gr.Error("Type or paste a listing description first.")
        if len(text) > MAX_DESCRIPTION_CHARS:
            raise gr.Error(f"The description is {len(text):,} characters long; the limit is "
                           f"{MAX_DESCRIPTION_CHARS:,}. Shorten it and try again.")
        rows, embeddings = [], {}
        for point in self.run.points:
            label = str(point["label"])
            row = {"label": label, "finetune_size": int(point.get("finetune_size", 0)), "price": None, "error": None,
                   "r2": point.get("r2"), "mae": point.get("mae")}
            try:
                vector = self.cache.embed(label, [text])
                embeddings[label] = vector[0].tolist()
                row["price"] = float(self.cache.probe(label).predict(vector)[0])
            except Exception as exc:  # one unavailable checkpoint must not hide the others
                logger.warning("Prediction with %s failed: %s", label, exc)
                row["error"] = str(exc) or type(exc).__name__
            rows.append(row)
        return rows, embeddings

    def predict(self, text: str, label: str, colour_by: str = COLOUR_OPTIONS[0]):
        """Handler of the Predict button: price table, neighbours, map with the query, state."""
        import gradio as gr

        rows, embeddings = self.price_rows(text)
        failures = [row["label"] for row in rows if row["price"] is None]
        if failures:
            gr.Warning(f"No prediction from {', '.join(failures)}: checkpoint or probe not available here.")
        query = {"embeddings": embeddings}
        figure, neighbours = self.show_checkpoint(label, colour_by, query)
        return prices_html(rows), neighbours, figure, query


    # -- layout ---------------------------------------------------------------------------------------
    def blocks(self):
        import gradio as gr

        run = self.run
        labels = run.labels
        default_label = labels[-1] if labels else None
        with gr.Blocks(title="Finetuning curve explorer", analytics_enabled=False, **_blocks_kwargs()) as demo:
            gr.Markdown(summary_markdown(run), elem_id="summary")
            with gr.Tab("Curve", id="curve"):
                with gr.Row():
                    metric = gr.Radio([name for _, name, _ in METRICS], value=METRICS[0][1], label="Metric",
                                      elem_id="metric", scale=3)
                    log_x = gr.Checkbox(value=True, label="Log-scale x (f0 drawn left of the smallest size)",
                                        elem_id="log-x", scale=2)
                    show_fit = gr.Checkbox(value=True, label="Fitted curve and band (when the run has one)",
                                           elem_id="show-fit", scale=2)
                curve_plot = gr.Plot(value=self.curve_plot(METRICS[0][1], True, True), label="Curve",
                                     elem_id="curve-plot")
                gr.Markdown(points_table_markdown(run), elem_id="points-table")
            with gr.Tab("Listings", id="listings"):
                with gr.Row():
                    checkpoint = gr.Dropdown(labels, value=default_label, label="Checkpoint", elem_id="checkpoint",
                                             scale=1)
                    colour = gr.Radio(list(COLOUR_OPTIONS), value=COLOUR_OPTIONS[0], label="Colour by",
                                      elem_id="colour", scale=2)
                query_state = gr.State(None)
                map_plot = gr.Plot(value=map_figure(run.samples, default_label) if default_label else None,
                                   label="Sample listings", elem_id="map-plot")
                description = gr.Textbox(
                    lines=4, max_length=MAX_DESCRIPTION_CHARS, label="Listing description",
                    info=f"Up to {MAX_DESCRIPTION_CHARS:,} characters. Every checkpoint's probe prices it; the "
                         "nearest sample listings are found with the chosen checkpoint. Nothing is stored.",
                    placeholder="e.g. 1991 Porsche 911 Carrera 2 coupe, 63k miles, manual, clean title",
                    elem_id="description")
                predict_button = gr.Button("Predict price", variant="primary", elem_id="predict-btn")
                predictions = gr.HTML(_html_note("Every checkpoint's predicted price appears here."),
                                      elem_id="predictions-table")
                neighbours = gr.HTML(self.neighbours_html(default_label or "", None), elem_id="neighbours-table")
            curve_inputs = [metric, log_x, show_fit]
            for control in curve_inputs:
                control.change(self.curve_plot, curve_inputs, curve_plot, show_progress="hidden")
            for control in (checkpoint, colour):
                control.change(self.show_checkpoint, [checkpoint, colour, query_state], [map_plot, neighbours],
                               show_progress="hidden")
            for event in (predict_button.click, description.submit):
                event(self.predict, [description, checkpoint, colour], [predictions, neighbours, map_plot, query_state],
                      concurrency_limit=2)
        return demo


def _theme():
    import gradio as gr

    # System fonts only: the default theme would fetch Google Fonts from the browser.
    return gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "monospace"])


CSS = """
.hfc-table {border-collapse: collapse; width: 100%; font-size: 0.92rem; margin: 0.25rem 0 0.75rem}
.hfc-table th, .hfc-table td {border-bottom: 1px solid var(--border-color-primary); padding: 0.3rem 0.6rem;
  text-align: left; vertical-align: top}
.hfc-table th {font-weight: 600}
.hfc-table td.num {text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap}
.hfc-table td.unavailable {color: var(--body-text-color-subdued)}
.hfc-caption {margin: 0.5rem 0 0.25rem; color: var(--body-text-color-subdued)}
"""


def _theme_in_launch() -> bool:
    import inspect

    import gradio as gr

    return "theme" in inspect.signature(gr.Blocks.launch).parameters


def _blocks_kwargs() -> dict[str, Any]:
    return {} if _theme_in_launch() else {"theme": _theme(), "css": CSS}


def launch_kwargs() -> dict[str, Any]:
    """Keyword arguments for ``demo.launch()`` (the theme moved there in Gradio 6)."""
    return {"theme": _theme(), "css": CSS} if _theme_in_launch() else {}


def _message_app(message: str):
    import gradio as gr

    with gr.Blocks(title="Finetuning curve explorer", analytics_enabled=False, **_blocks_kwargs()) as demo:
        gr.Markdown(f"### Finetuning curve explorer\n\n{message}", elem_id="summary")
    return demo


def build_app(source: str | os.PathLike | None = None, *, app_dir: str | os.PathLike | None = None,
              token: str | None = None):
    """The Gradio Blocks app for a run directory or curve dataset repo (default: :func:`resolve_source`).

    When the data cannot be loaded, the app still starts and says why.
    """
    source = source if source is not None else resolve_source(app_dir)
    if not source:
        return _message_app(f"No run configured. Set `{ENV_RUN_DIR}` to a run directory, or `{ENV_REPO}` "
                            "(e.g. a Space variable) to a curve dataset repo such as `org/bat-curve`.")
    try:
        run = load_run_data(source, token=token or os.environ.get("HF_TOKEN"))
    except Exception as exc:
        logger.exception("Could not load %s", source)
        return _message_app(f"Could not load the run `{html.escape(str(source))}`: {html.escape(str(exc))}")
    return CurveExplorer(run).blocks()


def launch_space(run_dir: str | os.PathLike, host: str = "127.0.0.1", port: int | None = None,
                 share: bool = False, *, block: bool = True):
    """Serve the app on ``host:port`` for a finished run (builds ``samples.parquet`` first if missing).

    With ``block=False`` it returns ``(demo, url)`` right away; call ``demo.close()`` when done.
    """
    run_dir = Path(run_dir)
    run = RunDirectory(run_dir)
    run.require_run(SpaceError)
    if not run.samples_path.exists():
        logger.info("%s has no %s yet; building it", run_dir, run.samples_path.name)
        try:
            build_samples(run)
        except Exception as exc:  # the curve tab still works; the map says the samples are missing
            logger.warning("Could not build %s (%s); the Listings tab will have no map.", run.samples_path.name, exc)
    demo = build_app(run_dir)
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(server_name=host, server_port=port, share=share, show_error=False,
                            prevent_thread_lock=not block, quiet=not block, **launch_kwargs())
    return demo, url


# ----------------------------------------------------------------------------------------------------
# The Space's files and publishing
# ----------------------------------------------------------------------------------------------------
# The deployed files are the files of spaces/finetune_curve/ (shipped as the package
# hf_finetune_curve.space_app): push_space uploads them as they are, only filling in the Space's
# title, its dataset / model links and where its data comes from.
SPACE_FILES = ("app.py", "README.md", "requirements.txt")
_DEFAULT_TITLE = "Finetuning curve explorer"


def space_source_dir() -> Path:
    """The folder holding the Space's files: ``spaces/finetune_curve/`` of the source tree beside this code when
    there is one (a checkout), else the installed package ``hf_finetune_curve.space_app``."""
    checkout = Path(__file__).resolve().parents[2] / "spaces" / "finetune_curve"
    if (checkout / "app.py").is_file():
        return checkout
    from importlib.resources import files

    return Path(str(files("hf_finetune_curve.space_app")))


def space_files(curve_repo: str | None = None, model_repos: Sequence[str] = (), title: str | None = None
                ) -> dict[str, str]:
    """The Space's files: ``app.py``, ``README.md``, ``requirements.txt`` (and ``curve_space.json`` for a repo).

    Without arguments they are exactly the files in ``spaces/finetune_curve/``.
    """
    source_dir = space_source_dir()
    files = {name: (source_dir / name).read_text(encoding="utf-8") for name in SPACE_FILES}
    readme = files["README.md"]
    if title:
        readme = re.sub(r"^title: .*$", f"title: {title}", readme, count=1, flags=re.M)
        readme = readme.replace(f"\n# {_DEFAULT_TITLE}\n", f"\n# {title}\n", 1)
    links = ""
    if curve_repo:
        links += f"datasets:\n- {curve_repo}\n"
    if model_repos:
        links += "models:\n" + "".join(f"- {repo}\n" for repo in model_repos)
    if links:  # into the front matter, before its closing ---
        head, sep, body = readme[4:].partition("\n---\n")
        readme = "---\n" + head + "\n" + links.rstrip("\n") + sep + body
    if curve_repo:
        source = (f"Data: the curve dataset [{curve_repo}](https://huggingface.co/datasets/{curve_repo}) "
                  f"(Space variable `{ENV_REPO}` / `{SPACE_CONFIG_FILE}`).\n\n")
        readme = readme.replace("Run it locally on a finished run", source + "Run it locally on a finished run", 1)
    files["README.md"] = readme
    if curve_repo:
        files[SPACE_CONFIG_FILE] = json.dumps({"curve_repo": curve_repo}, indent=2) + "\n"
    return files


def _run_name(run_dir: Path) -> str:
    """The name ``hf-curve push`` gives a run by default (its repos are ``ORG/<name>-<label>``, ``-curve``)."""
    from ..model_card import RunInfo
    from ..publish import default_hub_name

    return default_hub_name(RunInfo.load(run_dir))


def _curve_repo_for(run_dir_or_curve_repo: str | os.PathLike, namespace: str) -> str:
    path = Path(run_dir_or_curve_repo).expanduser()
    if path.is_dir():
        run = _load_local_run(path)
        return run.curve_repo or f"{namespace}/{_run_name(path)}-curve"
    text = str(run_dir_or_curve_repo)
    if not _REPO_ID.match(text):
        raise SpaceError(f"{text!r} is neither a run directory nor a curve dataset repo id (org/name-curve).")
    return text


def push_space(run_dir_or_curve_repo: str | os.PathLike, repo_id: str, *, token: str | None = None,
               private: bool = False, curve_repo: str | None = None) -> str:
    """Create (or update) the Gradio Space ``repo_id`` showing a published run; return its URL.

    The Space reads the run's curve dataset repo at start-up; its id goes in the Space variable
    ``HF_CURVE_REPO`` and in ``curve_space.json`` in the Space. For a run directory the curve repo is
    the one ``hf-curve push`` makes by default, ``<Space namespace>/<run name>-curve``; ``curve_repo``
    (or passing the repo id instead of a directory) names another. The token is never logged.

    Raises:
        SpaceError: bad ids, or the curve dataset repo does not exist (publish the run first).
    """
    from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    if not isinstance(repo_id, str) or not _REPO_ID.match(repo_id):
        raise SpaceError(f"The Space id must look like 'namespace/space_name'; got {repo_id!r}.")
    curve_repo = curve_repo or _curve_repo_for(run_dir_or_curve_repo, repo_id.split("/")[0])
    if not _REPO_ID.match(curve_repo):
        raise SpaceError(f"The curve repo id must look like 'namespace/name-curve'; got {curve_repo!r}.")
    api = HfApi(token=token)
    try:  # the Space would have nothing to show without the curve repo: fail before creating anything
        meta = read_json(hf_hub_download(curve_repo, CONFIG_FILE, repo_type="dataset", token=token))
    except (RepositoryNotFoundError, EntryNotFoundError) as exc:
        raise SpaceError(
            f"No curve dataset repo {curve_repo} (with a config.json) on {hub_endpoint()}. Publish the run first "
            "(`hf-curve push RUN_DIR --hub-org ORG`), or name the published repo with --curve-repo."
        ) from exc
    labels = [p for p in meta.get("labels", []) if p != "f0"]
    model_repos = [derived_model_repo(curve_repo, label) for label in labels]
    base = meta.get("model", {})
    if base.get("source") in ("hub", "package") and _REPO_ID.match(str(base.get("model_id", ""))):
        model_repos.insert(0, base["model_id"])
    repo_url = api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True,
                               space_variables=[{"key": ENV_REPO, "value": curve_repo}], token=token)
    try:  # create_repo sets variables only on creation; this also updates an existing Space's
        api.add_space_variable(repo_id, ENV_REPO, curve_repo, token=token)
    except HfHubHTTPError as exc:
        logger.warning("Could not set the Space variable %s (%s); the Space reads %s instead.",
                       ENV_REPO, type(exc).__name__, SPACE_CONFIG_FILE)
    name = curve_repo.split("/")[-1]
    title = f"{name[: -len('-curve')] if name.endswith('-curve') else name} finetuning curve"
    operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=content.encode("utf-8"))
                  for path, content in space_files(curve_repo, model_repos, title=title).items()]
    api.create_commit(repo_id, operations, repo_type="space", token=token,
                      commit_message=f"Finetuning-curve explorer for {curve_repo} (hf-finetune-curve)")
    url = str(getattr(repo_url, "url", "") or f"{hub_endpoint()}/spaces/{repo_id}")
    logger.info("Pushed the Space %s (data: %s)", url, curve_repo)
    return url

