"""What the Space shows, drawn from a run's points with no Gradio: the plotly curve and map figures,
and the Markdown / HTML tables beside them.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..curve.analysis import verdict_lines
from ..io_utils import hub_endpoint
from ..names import DEFAULT_COLOUR, FLOOR_COLOUR, METRICS, OBJECTIVE_COLOURS, OBJECTIVE_NAMES, Objective, format_money
from ..run_dir import sorted_points
from .samples import Samples, column_name
from .data import RunData, point_objectives

_METRIC_BY_NAME = {name: (key, name, better) for key, name, better in METRICS}


def format_value(value: Any, key: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{float(value):.4f}" if key in ("r2", "r2_log") else format_money(value)


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
                    color=[FLOOR_COLOUR if s == 0 else DEFAULT_COLOUR for s in sizes]),
        line=dict(color=DEFAULT_COLOUR), error_y=error_y, hovertext=hover, hovertemplate="%{hovertext}<extra></extra>"))
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
        figure.add_hline(y=float(floor), line_dash="dot", line_color=FLOOR_COLOUR, line_width=1,
                         annotation_text=f"factory floor (f0): {format_value(floor, key)}",
                         annotation_position="bottom right", annotation_font_color=FLOOR_COLOUR)
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


def _objectives_figure(points: list[dict[str, Any]], curve: dict[str, Any], key: str, name: str,
                       higher_is_better: bool, *, log_x: bool, show_fit: bool):
    """One curve per objective on the same axes, each starting at the shared f0, with 95% intervals
    and (``show_fit``) each objective's fitted curve."""
    import plotly.graph_objects as go

    objectives = point_objectives(points)
    base = next((p for p in points if int(p.get("finetune_size", 0)) == 0), None)
    sizes_all = sorted({int(p.get("finetune_size", 0)) for p in points})
    use_log, xmap, zero_x = _size_axis(sizes_all, log_x)

    figure = go.Figure()
    sections = curve.get("objectives") or {}
    for objective in objectives:
        color = OBJECTIVE_COLOURS.get(objective, DEFAULT_COLOUR)
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
    meta, curve = run.saved, run.curve
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
            lines.append(f"**Next size:** none suggested ({html.escape(str(next_size.get('reason', '')))}).")
    verdict = answer.get("verdict") if isinstance(answer, dict) else None
    if isinstance(verdict, dict) and verdict.get("call"):
        metric = {key: name for key, name, _ in METRICS}.get(answer.get("metric", "r2"), answer.get("metric"))
        lines.extend(html.escape(line) for line in verdict_lines(verdict, metric))
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
                                    marker=dict(symbol="star", size=18, color=FLOOR_COLOUR,
                                                line=dict(width=1, color="black")),
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
