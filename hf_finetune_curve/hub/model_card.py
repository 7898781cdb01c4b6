"""Hub cards for a published finetuning curve: one model card per finetuned size, one dataset card.

The cards are rendered from the Jinja2 templates in ``model_cards/`` (shipped in the wheel as
``hf_finetune_curve.model_cards``) with ``huggingface_hub``'s ``ModelCard.from_template``.

Example:
    >>> from hf_finetune_curve.hub.model_card import HubNames, build_model_card, read_finished_run
    >>> run = read_finished_run("runs/bat")  # doctest: +SKIP
    >>> names = HubNames.for_run(run, org="me", name="bat")  # doctest: +SKIP
    >>> print(build_model_card(run, "f10k", names))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import string
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..config import CurveConfig, FinetuneConfig, default_learning_rate
from ..data.corpus import EMBEDDED_PREFIX
from ..errors import PublishError
from ..io_utils import DEFAULT_HUB_ENDPOINT
from ..run_dir import (CONFIG_FILE, CURVE_CSV_FILE, CURVE_JSON_FILE, CURVE_PNG_FILE, DATA_REPORT_FILE, SAMPLES_FILE,
                      RunRecord)
from ..names import MLM, METRICS as _PROBE_METRICS, format_money
from ..objectives import spec_for

MODEL_CARD_TEMPLATE = "finetune_curve_model_card.md"
DATASET_CARD_TEMPLATE = "finetune_curve_dataset_card.md"
TAGS = ("sentence-transformers", "feature-extraction", "domain-adaptation", "mlm", "finetune-curve")
# Where a model repo keeps the probe its size was scored with, and its curve point.
PROBE_PATH_IN_REPO = "probe/xgboost_probe.json"
POINT_PATH_IN_REPO = "probe/curve_point.json"
METRICS = tuple((key, f"{name} (held-out)") for key, name, _ in _PROBE_METRICS)


def template_path(name: str = MODEL_CARD_TEMPLATE) -> Path:
    """Path of a card template: the source tree's ``model_cards/`` beside this code when there is one (a checkout,
    or a worktree whose package an editable install of another checkout would shadow), else the installed package's."""
    fallback = Path(__file__).resolve().parents[2] / "model_cards" / name
    if fallback.is_file():
        return fallback
    try:
        from importlib.resources import files

        candidate = files("hf_finetune_curve.model_cards") / name
        if candidate.is_file():
            return Path(str(candidate))
    except (ImportError, TypeError, ValueError):  # package not installed with its data (old editable install)
        pass
    raise FileNotFoundError(f"Card template {name!r} not found in hf_finetune_curve.model_cards or {fallback.parent}.")


def read_finished_run(run_dir: str | Path) -> RunRecord:
    """The finished run to publish; :class:`PublishError` names what is missing (no curve.json, unfinished sizes)."""
    return RunRecord.read(run_dir, error=PublishError).require_finished(PublishError)


@dataclass(frozen=True)
class HubNames:
    """Repo ids and URLs of one published curve: ``ORG/NAME-<label>`` models and ``ORG/NAME-curve``."""

    org: str
    name: str
    base_model_id: str
    base_is_hub: bool
    base_label: str | None = "f0"
    endpoint: str = DEFAULT_HUB_ENDPOINT

    @classmethod
    def for_run(cls, run: RunRecord, org: str, name: str, endpoint: str | None = None) -> "HubNames":
        base = run.base_point
        return cls(org=org, name=name, base_model_id=run.base_model_id, base_is_hub=run.base_is_hub,
                   base_label=base["label"] if base else None, endpoint=(endpoint or DEFAULT_HUB_ENDPOINT).rstrip("/"))

    def model_repo_id(self, label: str) -> str:
        """``ORG/NAME-f50k`` (MLM), ``ORG/NAME-tsdae-f50k`` for the point key ``tsdae/f50k``."""
        return f"{self.org}/{self.name}-{label.replace('/', '-')}"

    def repo_id(self, label: str) -> str:
        """The Hub id that holds ``label``: the base model's own id for f0."""
        return self.base_model_id if label == self.base_label else self.model_repo_id(label)

    def model_url(self, repo_id: str) -> str:
        return f"{self.endpoint}/{repo_id}"

    def url(self, label: str) -> str | None:
        if label == self.base_label and not self.base_is_hub:
            return None
        return self.model_url(self.repo_id(label))

    @property
    def curve_repo_id(self) -> str:
        return f"{self.org}/{self.name}-curve"

    @property
    def curve_url(self) -> str:
        return f"{self.endpoint}/datasets/{self.curve_repo_id}"

    @property
    def curve_png_url(self) -> str:
        return f"{self.curve_url}/resolve/main/curve.png"


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _fmt_r2(value: Any, signed: bool = False) -> str:
    number = _finite(value)
    if number is None:
        return "–"
    return f"{number:+.4f}" if signed else f"{number:.4f}"


def _fmt_interval(interval: Any, kind: str = "r2", signed: bool = False) -> str | None:
    if not isinstance(interval, dict):
        return None
    low, high = _finite(interval.get("low")), _finite(interval.get("high"))
    if low is None or high is None:
        return None
    if kind == "r2":
        spec = "+.3f" if signed else ".3f"
        return f"[{low:{spec}}, {high:{spec}}]"
    return f"[{format_money(low)}, {format_money(high)}]"


def _extras(point: dict[str, Any], key: str, metric: str) -> Any:
    section = (point.get("extras") or {}).get(key)
    return section.get(metric) if isinstance(section, dict) else None


def _base_markdown(names: HubNames) -> str:
    if names.base_is_hub:
        return f"[{names.base_model_id}]({names.model_url(names.base_model_id)})"
    return f"`{Path(names.base_model_id).name or names.base_model_id}` (a local model, not on the Hub)"


def _corpus(run: RunRecord, corpus_is_hub: bool, endpoint: str) -> dict[str, Any]:
    source = run.corpus_source
    if run.is_synthetic:
        name = source[len(EMBEDDED_PREFIX):] or "synthetic"
        return {"source": source, "name": name, "rows": f"{run.corpus_rows:,}", "dataset_type": name,
                "markdown": f"the embedded **synthetic** car-auction corpus (`{source}`)", "needs_data_flag": False}
    if corpus_is_hub:
        return {"source": source, "name": source, "rows": f"{run.corpus_rows:,}", "dataset_type": source,
                "markdown": f"[{source}]({endpoint}/datasets/{source})", "needs_data_flag": False}
    name = Path(source.rstrip("/")).name or source
    return {"source": source, "name": name, "rows": f"{run.corpus_rows:,}", "dataset_type": name,
            "markdown": f"`{name}` (a local corpus, not on the Hub)", "needs_data_flag": True}


def _rows(run: RunRecord, names: HubNames, this_label: str | None) -> list[dict[str, Any]]:
    base = run.base_point
    rows = []
    for point in run.points:
        label = point["label"]
        if label == names.base_label:
            model = f"base model: {_base_markdown(names)}"
        else:
            repo_id = names.model_repo_id(label)
            model = f"[{repo_id}]({names.model_url(repo_id)})"
        if base is None or point is base:
            delta = "–"
        else:
            delta = _fmt_r2(float(point["r2"]) - float(base["r2"]), signed=True)
        rows.append({
            "size": f"{int(point['finetune_size']):,}",
            "label": label,
            "model": model,
            "r2": _fmt_r2(point.get("r2")),
            "r2_log": _fmt_r2(point.get("r2_log")) if _finite(point.get("r2_log")) is not None else "–",
            "r2_ci": _fmt_interval(_extras(point, "intervals", "r2")) or "–",
            "delta": delta,
            "delta_ci": _fmt_interval(_extras(point, "delta_vs_f0", "r2"), signed=True) or "–",
            "mae": format_money(point.get("mae")),
            "median_ae": format_money(point.get("median_ae")),
            "tokens": f"{int(point.get('finetune_tokens_seen') or 0):,}",
            "is_this": label == this_label,
        })
    return rows


def _answer_lines(run: RunRecord) -> list[str]:
    summary = {key: value for key, value in run.curve.items() if key != "points"}
    if not summary.get("answer") and not summary.get("warnings"):
        return []
    try:
        from ..curve.analysis import answer_lines

        return [str(line) for line in answer_lines(summary)]
    except (KeyError, TypeError, ValueError):  # an older curve.json layout: leave the section out, push the rest
        return []


def _baseline(run: RunRecord) -> dict[str, Any] | None:
    baseline = run.curve.get("baselines")
    if not isinstance(baseline, dict) or _finite(baseline.get("r2")) is None:
        return None
    intervals = baseline.get("intervals") or {}
    return {"r2": _fmt_r2(baseline.get("r2")), "r2_ci": _fmt_interval(intervals.get("r2")),
            "mae": format_money(baseline.get("mae")), "median_ae": format_money(baseline.get("median_ae"))}


def _split(run: RunRecord) -> dict[str, Any]:
    split = run.saved.get("split") or {}
    config = run.config
    test_fraction = _finite(config.get("test_fraction")) or CurveConfig.test_fraction
    return {
        "test_rows": f"{int(split.get('test_rows') or 0):,}",
        "probe_train_rows": f"{int(split.get('probe_train_rows') or 0):,}",
        "pool_rows": f"{int(split.get('finetune_pool_rows') or 0):,}",
        "test_pct": f"{test_fraction * 100:g}",
        "seed": config.get("seed", "?"),
        "include_test_in_finetune": bool(config.get("include_test_in_finetune")),
    }


def _hyperparameters(run: RunRecord, point: dict[str, Any], stats: dict[str, Any]) -> list[tuple[str, str]]:
    config = run.config
    tune = config.get("finetune") or {}
    defaults = FinetuneConfig()  # what a run whose record lacks a field trained with
    lora = bool(tune.get("lora"))
    lr = tune.get("learning_rate")
    objective = str(point.get("objective") or "mlm")
    if stats.get("learning_rate") is not None and lr is None:  # recorded per point since objectives have their own
        lr_text = f"{float(stats['learning_rate']):g} (default for {objective}{' with LoRA' if lora else ''})"
    else:
        lr_text = f"{lr:g}" if lr is not None else \
            f"{default_learning_rate(lora, objective):g} (default for {'LoRA' if lora else 'full finetuning'})"
    chunk = stats.get("chunk_length") or tune.get("max_seq_length") or "model maximum"
    rows = [
        ("finetuning texts", f"{int(point.get('finetune_texts_seen') or point.get('finetune_size') or 0):,}"),
        ("tokens seen", f"{int(point.get('finetune_tokens_seen') or 0):,}"),
        ("chunks of packed tokens", f"{int(stats['num_chunks']):,}" if stats.get("num_chunks") else "–"),
        ("epochs", f"{tune.get('epochs', defaults.epochs):g}"),
        ("optimizer steps", f"{int(point.get('finetune_steps') or 0):,}"),
        ("learning rate", lr_text),
        ("batch size (per device)", str(tune.get("batch_size", "?"))),
        ("gradient accumulation steps", str(tune.get("gradient_accumulation_steps", defaults.gradient_accumulation_steps))),
        ("warmup steps", str(point.get("warmup_steps") or tune.get("warmup_steps", 0))),
        ("cooldown (1-sqrt decay to 0)", f"{int(point.get('cooldown_steps') or 0):,} steps"),
        ("learning-rate integral", f"{float(point.get('lr_integral') or 0):.1f} peak-LR steps"),
        ("passes over its subset", f"{float(point.get('subset_epochs') or 0):.2f}"),
        ("MLM head", str(stats.get("head", "new"))
         + (f" (trained alone for {tune.get('head_warmup_steps')} steps first)" if stats.get("head") == "warmed up"
            else "")),
        ("weight decay", f"{tune.get('weight_decay', 0):g}"),
        ("chunk length (tokens)", str(chunk)),
        ("tokens read per text when embedded for the probe (f0 and every checkpoint alike)",
         str(config.get("embed_max_length") or "the base model's max_seq_length")),
        ("MLM masking probability", f"{tune.get('mlm_probability', defaults.mlm_probability):g}"),
        ("LoRA", (f"yes: r={tune.get('lora_r')}, alpha={tune.get('lora_alpha')}, dropout={tune.get('lora_dropout')}, "
                  f"target modules {tune.get('lora_target_modules') or 'peft default'}; merged before saving")
         if lora else "no (all weights trained)"),
        ("schedule", f"{point.get('schedule') or config.get('schedule', 'independent')} "
         + ("(trained from the base model)" if (point.get("schedule") or config.get("schedule")) == "independent"
            else "(cooldown branch of a shared main run; same recipe as an independent run)")),
        ("seed (data order, masking, probe)", str(config.get("seed", "?"))),
    ]
    for key, value in sorted((tune.get("trainer_kwargs") or {}).items()):
        rows.append((f"TrainingArguments.{key}", json.dumps(value)))
    # The objective's own rows come from its spec (hf_finetune_curve/objectives/): what it trained on and saw.
    spec = spec_for(objective)
    settings = {**asdict(defaults), **{k: v for k, v in tune.items() if v is not None},
                **{k: v for k, v in stats.items() if v is not None}}
    own_rows = [(name, _spec_text(text, settings)) for name, text in spec.card_rows]
    if spec.trains_mlm:
        if objective != MLM:
            rows.insert(0, ("objective", spec.description))
        rows.extend(own_rows)
    else:  # the MLM-only rows become the sentence objective's own
        unit = stats.get("text_unit") or tune.get("text_unit", defaults.text_unit)
        own = {"objective": spec.description, "examples": f"{unit} of the texts (truncated at {chunk} tokens)",
               **dict(own_rows)}
        for stage, values in (stats.get("stages") or {}).items():
            own[f"stage {stage}"] = (f"{int(values.get('finetune_steps') or 0):,} steps at peak "
                                     f"{float(values.get('learning_rate') or 0):g} ({values.get('schedule') or '?'})")
        skip = {"MLM head", "MLM masking probability", "chunks of packed tokens", "chunk length (tokens)"}
        rows = [row for row in rows if row[0] not in skip]
        rows[:0] = list(own.items())
    loss = _finite(point.get("final_mlm_loss"))
    rows.append(("final MLM loss" if objective == "mlm" else f"final {objective} loss",
                 f"{loss:.4f}" if loss is not None else "–"))
    train_seconds = _finite(point.get("train_seconds"))
    device = run.saved.get("device") or config.get("device") or "?"
    rows.append(("training time", f"{train_seconds:.0f} s on {device}" if train_seconds is not None else "–"))
    return rows


def _spec_text(text: str, values: dict[str, Any]) -> str:
    """A card row an objective's spec declares, its ``{field}`` placeholders filled with the point's finetune
    settings and training stats; a field the record lacks (or cannot format) shows as "?" rather than failing
    the card."""
    try:
        return text.format_map(values)
    except (KeyError, IndexError, ValueError, TypeError):
        return "".join(literal + ("?" if name is not None else "")
                       for literal, name, _, _ in string.Formatter().parse(text))


def _probe_settings(run: RunRecord) -> str:
    probe = dict(run.config.get("probe") or {})
    keys = ("n_estimators", "learning_rate", "max_depth", "subsample", "colsample_bytree", "min_child_weight",
            "reg_lambda")
    parts = [f"{key}={probe[key]}" for key in keys if key in probe]
    parts.append(f"random_state={run.config.get('seed', probe.get('seed', 0))}")
    for key, value in sorted((probe.get("xgb_params") or {}).items()):
        parts.append(f"{key}={value}")
    return "`" + ", ".join(parts) + "`"


def _checkpoint_shape(folder: Path) -> tuple[int | None, int | None]:
    """(embedding dimension, max_seq_length) read from a saved SentenceTransformer folder."""
    dim = seq = None
    try:
        seq = _read_json(folder / "sentence_bert_config.json").get("max_seq_length")
    except (OSError, ValueError):
        pass
    try:
        for module in _read_json(folder / "modules.json"):
            if "Pooling" in str(module.get("type", "")):
                pooling = _read_json(folder / module.get("path", "") / "config.json")
                dim = pooling.get("embedding_dimension") or pooling.get("word_embedding_dimension")
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    return (int(dim) if dim else None), (int(seq) if seq else None)


def _versions(run: RunRecord) -> list[tuple[str, str]]:
    versions = run.saved.get("versions") or {}
    return [(str(name), str(version)) for name, version in versions.items()]


def _common_vars(run: RunRecord, names: HubNames, corpus_is_hub: bool, this_label: str | None) -> dict[str, Any]:
    uncertainty = run.curve.get("uncertainty") or {}
    rows = _rows(run, names, this_label)
    return {
        "curve_repo_id": names.curve_repo_id,
        "probe_path": PROBE_PATH_IN_REPO,
        "curve_repo_url": names.curve_url,
        "curve_png_url": names.curve_png_url,
        "is_synthetic": run.is_synthetic,
        "base": {"id": names.base_model_id, "markdown": _base_markdown(names), "is_hub": names.base_is_hub,
                 "name": Path(names.base_model_id.rstrip("/")).name or names.base_model_id},
        "corpus": _corpus(run, corpus_is_hub, names.endpoint),
        "split": _split(run),
        "rows": rows,
        "has_intervals": any(row["r2_ci"] != "–" for row in rows),
        "has_seeds": any((p.get("extras") or {}).get("seeds") for p in run.points),
        "interval_method": uncertainty.get("method", "percentile bootstrap over held-out rows"),
        "n_resamples": uncertainty.get("n_resamples", "?"),
        "answer_lines": _answer_lines(run),
        "baseline": _baseline(run),
        "text_column": run.config.get("text_column", "text"),
        "target_column": run.config.get("target_column", "price"),
    }


# ---------------------------------------------------------------------------------------------
# Cards
# ---------------------------------------------------------------------------------------------


def eval_results(run: RunRecord, label: str, names: HubNames, corpus_is_hub: bool) -> list:
    """``model-index`` entries for ``label``: r2, r2_log, mae and median_ae on the held-out split."""
    from huggingface_hub import EvalResult

    point = run.point(label)
    corpus = _corpus(run, corpus_is_hub, names.endpoint)
    split = _split(run)
    transform = run.config.get("probe", {}).get("target_transform", run.curve.get("target_transform", "log"))
    results = []
    for metric, metric_name in METRICS:
        value = _finite(point.get(metric))
        if value is None:
            continue
        results.append(EvalResult(
            task_type="regression",
            task_name=f"Price regression: XGBoost probe on the embeddings ({transform} target)",
            dataset_type=corpus["dataset_type"],
            dataset_name=f"held-out {split['test_pct']}% split of {corpus['name']}",
            dataset_split="test",
            metric_type=metric,
            metric_name=metric_name,
            metric_value=value,
            source_name="hf-finetune-curve",
            source_url=names.curve_url,
        ))
    return results


def build_model_card(run: RunRecord, label: str, names: HubNames, *, base_license: str | None = None,
                     corpus_is_hub: bool = False):
    """The ``ModelCard`` of the finetuned size ``label``, rendered from ``model_cards/``'s template."""
    from huggingface_hub import ModelCard, ModelCardData

    point = run.point(label)
    repo_id = names.model_repo_id(label)
    folder = run.checkpoint_dir(label)
    stats = run.checkpoint_stats(label)
    objective_tag = str(point.get("objective") or "mlm")  # "mlm", "tsdae", "simcse", "mlm-simcse", ...
    tags = [t for t in TAGS if t != "mlm"] + [objective_tag] + (["synthetic-data"] if run.is_synthetic else [])
    card_data = ModelCardData(
        model_name=repo_id,
        base_model=names.base_model_id if names.base_is_hub else None,
        base_model_relation="finetune" if names.base_is_hub else None,
        license=base_license,
        library_name="sentence-transformers",
        pipeline_tag="sentence-similarity",
        tags=tags,
        datasets=[run.corpus_source] if corpus_is_hub else None,
        eval_results=eval_results(run, label, names, corpus_is_hub),
    )
    variables = _common_vars(run, names, corpus_is_hub, this_label=label)
    this = next(row for row in variables["rows"] if row["is_this"])
    this = dict(this, r2_ci=this["r2_ci"] if this["r2_ci"] != "–" else None,
                delta=this["delta"] if this["delta"] != "–" else None,
                delta_ci=this["delta_ci"] if this["delta_ci"] != "–" else None)
    embedding_dim, max_seq_length = _checkpoint_shape(folder)
    if base_license:
        license_text = f"`{base_license}`, the base model's license"
    else:
        license_text = "not determined: the base model's license terms apply"
    example = ("1990 Porsche 911 Carrera 4 coupe, 5-speed manual, 62k miles, clean California title"
               if run.is_synthetic else "A text like the ones in the finetuning corpus")
    from ..names import Objective

    objective = Objective(point.get("objective") or "mlm")
    variables.update(
        repo_id=repo_id,
        label=label,
        size_label=point.get("size_label") or label,
        objective=objective.value,
        objective_display=objective.display,
        objective_description=objective.description,
        uses_labels=objective.spec.uses_labels,  # the card says it saw prices (its spec declares it)
        trains_mlm=objective.spec.trains_mlm,
        this=this,
        texts_seen=f"{int(point.get('finetune_texts_seen') or point['finetune_size']):,}",
        tokens_seen=f"{int(point.get('finetune_tokens_seen') or 0):,}",
        hyperparameters=_hyperparameters(run, point, stats),
        chunk_length=stats.get("chunk_length") or (run.config.get("finetune") or {}).get("max_seq_length") or "model-length",
        probe_settings=_probe_settings(run),
        target_transform=(run.config.get("probe") or {}).get("target_transform", "log"),
        embedding_dim=embedding_dim,
        max_seq_length=max_seq_length,
        license_text=license_text,
        example_text=example,
        versions=_versions(run),
        result_key=run.saved.get("result_key", ""),
        run_name=names.name,
    )
    card = ModelCard.from_template(card_data, template_path=str(template_path(MODEL_CARD_TEMPLATE)), **variables)
    _check_round_trip(card, ModelCard)
    return card


# The curve dataset repo's files (it keeps the run directory's names), as the dataset card describes them.
DATASET_FILES = (
    (CURVE_CSV_FILE, "one row per finetune size: R², MAE, median AE (with interval columns when computed), tokens, "
                     "timings"),
    (CURVE_JSON_FILE, "the same points with their intervals, plus the curve fit, the answer and baselines when "
                      "computed"),
    (CURVE_PNG_FILE, "the plot above"),
    (CONFIG_FILE, "the run's configuration, resolved model and corpus, split sizes and library versions"),
    (DATA_REPORT_FILE, "what was read from the corpus, what was dropped and why"),
    (SAMPLES_FILE, "sample rows of the corpus"),
)


def build_dataset_card(run: RunRecord, names: HubNames, *, files: list[str], corpus_is_hub: bool = False):
    """The ``DatasetCard`` of the curve repo ``ORG/NAME-curve``."""
    from huggingface_hub import DatasetCard, DatasetCardData

    tags = ["finetune-curve", "sentence-transformers", "mlm", "domain-adaptation"]
    if run.is_synthetic:
        tags.append("synthetic-data")
    card_data = DatasetCardData(
        pretty_name=f"Finetuning curve: {names.name}",
        tags=tags,
        configs=[{"config_name": "default", "data_files": "curve.csv"}],
    )
    variables = _common_vars(run, names, corpus_is_hub, this_label=None)
    variables["files"] = [(name, text) for name, text in DATASET_FILES if name in files]
    card = DatasetCard.from_template(card_data, template_path=str(template_path(DATASET_CARD_TEMPLATE)), **variables)
    _check_round_trip(card, DatasetCard)
    return card


def _check_round_trip(card, card_class) -> None:
    """The rendered card must parse back to the same metadata (catches template/YAML mistakes early)."""
    parsed = card_class(str(card))
    if parsed.data.to_dict() != card.data.to_dict():
        raise PublishError("The rendered card's metadata does not parse back to what was written (template bug).")


def read_license(path_or_id: str, *, token: str | None = None, local_path: str | None = None) -> str | None:
    """The ``license`` in a model's README metadata: from ``local_path`` when it is a folder, else the Hub."""
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard import metadata_load

    try:
        if local_path and (Path(local_path) / "README.md").is_file():
            metadata = metadata_load(Path(local_path) / "README.md") or {}
            return _license_of(metadata)
        card = ModelCard.load(path_or_id, token=token)
        return _license_of(card.data.to_dict())
    except Exception:  # no README, not on the Hub, offline: the card says the license was not determined
        return None


def _license_of(metadata: dict[str, Any]) -> str | None:
    license_ = metadata.get("license")
    if isinstance(license_, list):
        license_ = license_[0] if license_ else None
    return str(license_) if license_ else None


def _read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
