"""The Space's Gradio app: :class:`CurveExplorer` (its state and event handlers), :func:`build_app` and
:func:`launch_space`, and the theme the app is drawn with.

Its maps and nearest neighbours come from the run's ``samples.parquet``
(:mod:`hf_finetune_curve.score.samples`, a stage of the run), so it embeds nothing but what a user types.
"""

from __future__ import annotations

import html
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SpaceError
from ..run_dir import RunDirectory
from ..config import DEFAULT_ANSWER_METRIC
from ..names import METRIC_NAMES, METRICS  # (key, display name, higher is better)
from .samples import build_samples, column_name
from .data import ENV_REPO, ENV_RUN_DIR, CheckpointCache, RunData, load_run_data, resolve_source
from .figures import (COLOUR_OPTIONS, _truncate, curve_figure, format_value, map_figure, points_table_markdown,
                      prices_html, summary_markdown)

logger = logging.getLogger(__name__)

MAX_DESCRIPTION_CHARS = 2_000
N_NEIGHBOURS = 5


def _html_note(text: str) -> str:
    return f'<p class="hfc-caption">{html.escape(text)}</p>'


class CurveExplorer:
    """The app's state and event handlers (each usable without a browser)."""

    def __init__(self, run: RunData, cache: CheckpointCache | None = None) -> None:
        self.run = run
        self.cache = cache or CheckpointCache(run)

    # -- curve tab ------------------------------------------------------------------------------------
    @property
    def default_metric(self) -> str:
        """The metric the Curve tab opens on: the one the run's answer uses (its fit and "N needed"; log R² by
        default), as the metric control names it."""
        key = (self.run.curve.get("answer") or {}).get("metric") or \
            ((self.run.saved or {}).get("config") or {}).get("answer_metric") or DEFAULT_ANSWER_METRIC
        return METRIC_NAMES.get(key, METRICS[0][1])

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
                    metric = gr.Radio([name for _, name, _ in METRICS], value=self.default_metric, label="Metric",
                                      elem_id="metric", scale=3)
                    log_x = gr.Checkbox(value=True, label="Log-scale x (f0 drawn left of the smallest size)",
                                        elem_id="log-x", scale=2)
                    show_fit = gr.Checkbox(value=True, label="Fitted curve and band (when the run has one)",
                                           elem_id="show-fit", scale=2)
                curve_plot = gr.Plot(value=self.curve_plot(self.default_metric, True, True), label="Curve",
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
