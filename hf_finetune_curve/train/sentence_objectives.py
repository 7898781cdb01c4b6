"""TSDAE, unsupervised SimCSE, MLM→SimCSE and supervised curve points, trained with sentence-transformers' Trainer.

Every point ``f<n>`` of these objectives trains on the same :class:`~hf_finetune_curve.train.recipe.PointRecipe`
as the MLM point of that size (steps, warmup, cooldown, learning-rate integral), from the base
model, on units (whole texts or sentences, ``FinetuneConfig.text_unit``) of ``pool[:n]`` only. The
engine is :class:`SentenceCurveTrainer`, a ``SentenceTransformerTrainer`` (itself a transformers
``Trainer``) with the curve's sequential draw order and :class:`~hf_finetune_curve.train.trainer.RecipeSchedule`,
so ``report_to``, callbacks, ``trainer_kwargs`` and several processes behave as for MLM.

* TSDAE: ``DenoisingAutoEncoderLoss(model, tie_encoder_decoder=True)``; the input is the text with
  ``tsdae_deletion_ratio`` of its words deleted (:func:`~hf_finetune_curve.train.objectives.delete_words`,
  seeded by the draw), the target the text itself. The decoder is built from the encoder's
  checkpoint path (so the base model must be a local folder or a reachable id; the default model
  resolves to its packaged copy).
* SimCSE: ``MultipleNegativesRankingLoss`` on (text, text): the two forward passes differ only by
  dropout, the other texts of the batch are the negatives. A step draws ``simcse_batch_size`` units
  (64, the SimCSE paper's batch: 63 negatives per text) on the size's recipe of steps.
* MLM→SimCSE (``mlm-simcse``): the same SimCSE point, started from the MLM checkpoint of the same
  size and seed instead of the base model (``start_model``).
* supervised: :class:`PriceRegressionLoss` on (text, standardised log price) of whole texts of
  ``pool[:n]``: a linear head on the pooled, normalised embedding, first fitted in closed form on the
  base model's embeddings of the subset (ridge), then trained with the encoder (linear probing, then
  finetuning: the encoder's first updates follow a head that already predicts, not a random one).

Only the independent schedule: a branch would resume a Trainer checkpoint, and sentence-transformers'
checkpoints hold the SentenceTransformer but not the TSDAE decoder's own weights (cross-attention,
LM head), so a resumed TSDAE branch would not continue the run it branched from. SimCSE's loss has no
weights of its own and could branch; that is not implemented yet. The log says which schedule ran.

Example:
    >>> from hf_finetune_curve.train.sentence_objectives import finetune_objective_independent
    >>> finetune_objective_independent(model, pool_texts, [200, 400], FinetuneConfig(), Objective.TSDAE,
    ...                                seed=42, work_dir="runs/x/checkpoints/.tsdae",
    ...                                on_point=lambda n, result: result.model.save(f"tsdae-f{n}"))  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..config import FinetuneConfig
from .finetune import (FinetuneResult, chunk_length_for, keep_logs, resolve_device, result_device, tokenize_texts,
                       transformer_module)
from .objectives import Objective, TextUnit, delete_words, text_units, training_spec
from .recipe import UnitPlan, plan_curve, plan_units
from .trainer import PointProgress, RecipeSchedule, route_trainer_logs, training_arguments, world_size

logger = logging.getLogger(__name__)

# The objectives this engine trains: those whose spec says so (hf_finetune_curve/objectives/).
SENTENCE_OBJECTIVES = tuple(o for o in Objective if o.spec.engine == "sentence")


def _loss(objective: Objective | str) -> str:
    """The sentence loss ``objective`` trains with (its spec's): tsdae, simcse (mlm-simcse's second stage too)
    or supervised."""
    return training_spec(objective).loss

# Fewer rows than this in the smallest supervised subset: the closed-form head and the regression are noise.
MIN_SUPERVISED_ROWS = 32


class PriceRegressionLoss(torch.nn.Module):
    """Mean squared error of a linear head on the sentence embedding against standardised log prices.

    ``weight`` / ``bias``: the head's starting values (:func:`fit_linear_head`). The head is a parameter
    of the loss, which sentence-transformers' Trainer hands to the optimizer with the model's; it is not
    part of the saved SentenceTransformer.
    """

    def __init__(self, model, weight: np.ndarray, bias: float) -> None:
        super().__init__()
        self.model = model
        self.head = torch.nn.Linear(len(weight), 1)
        with torch.no_grad():
            self.head.weight.copy_(torch.as_tensor(np.asarray(weight, dtype=np.float32))[None])
            self.head.bias.fill_(float(bias))

    def forward(self, sentence_features, labels: torch.Tensor) -> torch.Tensor:
        embeddings = self.model(sentence_features[0])["sentence_embedding"]
        predicted = self.head(embeddings.float()).squeeze(-1)
        return torch.nn.functional.mse_loss(predicted, labels.to(predicted.dtype))


def fit_linear_head(embeddings: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, float]:
    """Ridge regression of ``targets`` on ``embeddings``, its alpha by leave-one-out CV on these rows only.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(200, 5)); y = X @ np.array([1.0, -2.0, 0.0, 0.5, 0.0]) + 0.1 * rng.normal(size=200)
        >>> weight, bias = fit_linear_head(X, y)
        >>> (np.round(weight, 1) + 0.0).tolist()  # + 0.0: no -0.0
        [1.0, -2.0, 0.0, 0.5, 0.0]
    """
    from sklearn.linear_model import RidgeCV

    ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(np.asarray(embeddings, dtype=np.float64),
                                                      np.asarray(targets, dtype=np.float64))
    return np.asarray(ridge.coef_, dtype=np.float64), float(ridge.intercept_)


def standardized_log_targets(targets: np.ndarray) -> np.ndarray:
    """log(price), centred and scaled on the rows given (the subset a point trains on)."""
    logged = np.log(np.asarray(targets, dtype=np.float64))
    scale = logged.std()
    return (logged - logged.mean()) / (scale if scale > 0 else 1.0)


def _sentence_trainer_class():
    from sentence_transformers import SentenceTransformerTrainer
    from sentence_transformers import DefaultBatchSampler

    class SentenceCurveTrainer(SentenceTransformerTrainer):
        """``SentenceTransformerTrainer`` drawing its examples in the plan's order with a recipe schedule."""

        def __init__(self, *args, lr_factor: Callable[[int], float], **kwargs) -> None:
            self.lr_factor = lr_factor
            super().__init__(*args, **kwargs)

        def get_batch_sampler(self, dataset, batch_size, drop_last, valid_label_columns=None, generator=None,
                              seed=0):
            # The plan fixed the order (the dataset is the draw stream itself); the Trainer shards
            # the batches across processes.
            return DefaultBatchSampler(torch.utils.data.SequentialSampler(dataset), batch_size=batch_size,
                                       drop_last=False, valid_label_columns=valid_label_columns)

        def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
            if self.lr_scheduler is None:
                self.lr_scheduler = RecipeSchedule(optimizer or self.optimizer, self.lr_factor)
            return self.lr_scheduler

    return SentenceCurveTrainer


def build_loss(model, objective: Objective, head: tuple[np.ndarray, float] | None = None):
    """The sentence-transformers loss of ``objective`` on ``model`` (TSDAE: a decoder tied to it;
    supervised: :class:`PriceRegressionLoss` starting from ``head``)."""
    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer.losses import (DenoisingAutoEncoderLoss,
                                                                       MultipleNegativesRankingLoss)
    except ImportError:  # pragma: no cover - older releases
        from sentence_transformers.losses import DenoisingAutoEncoderLoss, MultipleNegativesRankingLoss

    if _loss(objective) == "tsdae":
        # The decoder loads from the encoder's checkpoint path and tying replaces the encoder's
        # parameters with the decoder's: put the in-memory weights back into the tied parameters so
        # the point starts from exactly the base model.
        state = {k: v.detach().clone() for k, v in transformer_module(model).auto_model.state_dict().items()}
        from .finetune import quiet_transformers

        with quiet_transformers():  # the decoder's new cross-attention and LM head are expected, not news
            loss = DenoisingAutoEncoderLoss(model, tie_encoder_decoder=True)
        transformer_module(model).auto_model.load_state_dict(state, strict=False)
        return loss
    if _loss(objective) == "simcse":
        return MultipleNegativesRankingLoss(model)
    if _loss(objective) == "supervised":
        if head is None:
            raise ValueError("the supervised loss needs its starting head (fit_linear_head).")
        return PriceRegressionLoss(model, *head)
    raise ValueError(f"{objective} is not a sentence objective (MLM trains in hf_finetune_curve.train.finetune).")


def examples_for(objective: Objective, units: Sequence[str], stream: np.ndarray, config: FinetuneConfig,
                 seed: int, labels: np.ndarray | None = None) -> dict[str, list]:
    """The columns a point's Trainer reads, one row per draw of ``stream``.

    TSDAE: (damaged, original), the deletion seeded by (seed, unit, draw); SimCSE: (text, text);
    supervised: (text, label), ``labels`` being each unit's standardised log price.
    """
    originals = [units[int(u)] for u in stream]
    if _loss(objective) == "supervised":
        return {"text": originals, "label": [float(labels[int(u)]) for u in stream]}
    if _loss(objective) == "tsdae":
        damaged = [delete_words(units[int(u)], config.tsdae_deletion_ratio, [seed, 6, int(u), draw])
                   for draw, u in enumerate(stream)]
        return {"damaged": damaged, "original": originals}
    return {"anchor": originals, "positive": list(originals)}


def input_length(model, objective: Objective, config: FinetuneConfig) -> int:
    """Tokens of a training input: ``simcse_max_seq_length`` for SimCSE steps, else the MLM chunk length."""
    chunk_length = chunk_length_for(model, config.max_seq_length)
    return min(chunk_length, int(config.simcse_max_seq_length)) if _loss(objective) == "simcse" else chunk_length


def units_per_step(objective: Objective, config: FinetuneConfig) -> int:
    """Units one optimizer step draws over all processes: SimCSE's batch, or the MLM batch's count of chunks."""
    per_device = int(config.simcse_batch_size) if _loss(objective) == "simcse" else int(config.batch_size)
    return per_device * int(config.gradient_accumulation_steps)


def plan_objective(model, pool_texts: Sequence[str], sizes: Sequence[int], config: FinetuneConfig,
                   seed: int, objective: Objective = Objective.SIMCSE) -> tuple[UnitPlan, list[str], np.ndarray]:
    """The sentence objective's plan (the MLM plan's recipes), its units and their token counts.

    Supervised points train on whole texts (a price belongs to a text, not to one of its sentences).
    """
    tokenizer = transformer_module(model).tokenizer
    chunk_length = chunk_length_for(model, config.max_seq_length)
    texts = list(pool_texts[: max(sizes)])
    mlm_plan = plan_curve(tokenize_texts(texts, tokenizer), sizes, config, seed=seed, chunk_length=chunk_length,
                          world_size=world_size())
    unit = TextUnit.WHOLE if _loss(objective) == "supervised" else config.text_unit
    units, unit_text = text_units(texts, unit)
    offsets = tokenize_texts(units, tokenizer).offsets
    # What the Trainer's inputs hold after truncation.
    lengths = np.minimum(np.diff(offsets), input_length(model, objective, config))
    plan = plan_units(unit_text, mlm_plan, per_step=units_per_step(objective, config))  # global: any process count
    return plan, units, np.asarray(lengths, dtype=np.int64)


def finetune_objective_independent(
    model,
    pool_texts: Sequence[str],
    sizes: Sequence[int],
    config: FinetuneConfig,
    objective: Objective,
    *,
    seed: int,
    device: str | None = "auto",
    work_dir: str | Path,
    on_point: Callable[[int, FinetuneResult], None],
    completed: set[int] | frozenset[int] = frozenset(),
    callbacks: Sequence[Any] = (),
    show_progress: bool = True,
    log_dir: str | Path | None = None,
    audit: dict[str, list[int]] | None = None,
    pool_targets: Sequence[float] | None = None,
    start_model: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """Train every size of a sentence-objective curve; returns the plan's summary.

    Every point starts from ``model`` (the base model), or from ``start_model(n)`` where given
    (mlm-simcse: the MLM checkpoint of size n). Each point draws only units of ``pool_texts[:n]``
    (checked: :class:`~hf_finetune_curve.errors.SubsetLeakError`) and is handed to ``on_point(n, result)``
    in ascending order; sizes in ``completed`` are skipped. ``pool_targets`` (supervised only): the price
    of each pool text. ``audit`` receives each point's drawn unit ids (tests).
    """
    from .finetune import check_no_leak

    objective = Objective(objective)
    if objective not in SENTENCE_OBJECTIVES:
        raise ValueError(f"{objective.value} is not trained here; use finetune_independent / finetune_branching.")
    device = resolve_device(device)
    sizes = sorted(int(s) for s in sizes)
    work_dir = Path(work_dir)
    plan, units, unit_tokens = plan_objective(model, pool_texts, sizes, config, seed, objective)
    pending = [s for s in sizes if s not in completed]
    supervision = _Supervision(model, pool_texts, pool_targets, sizes, config) \
        if _loss(objective) == "supervised" and pending else None
    try:
        for size in pending:
            start = start_model(size) if start_model is not None else model
            result = _train_point(start, plan, units, unit_tokens, size, config, objective, seed=seed, device=device,
                                  output_dir=work_dir / f"f{size}", callbacks=callbacks, show_progress=show_progress,
                                  audit=audit, supervision=supervision)
            check_no_leak(result, size)
            keep_logs(work_dir, log_dir)
            shutil.rmtree(work_dir / f"f{size}", ignore_errors=True)
            on_point(size, result)
    finally:
        keep_logs(work_dir, log_dir)
        shutil.rmtree(work_dir, ignore_errors=True)
    text_unit = TextUnit.WHOLE.value if _loss(objective) == "supervised" else config.text_unit
    return {"objective": objective.value, "schedule": "independent", "text_unit": text_unit,
            "learning_rate": config.effective_learning_rate(objective), **plan.summary()}


class _Supervision:
    """The supervised points' labels and starting heads: the pool's log prices, and the base model's
    embeddings of ``pool[:max(sizes)]`` computed once (subsets are nested: size n uses the first n rows)."""

    def __init__(self, model, pool_texts: Sequence[str], pool_targets: Sequence[float] | None, sizes: Sequence[int],
                 config: FinetuneConfig) -> None:
        if pool_targets is None:
            raise ValueError("the supervised objective needs pool_targets (the price of each pool text).")
        largest = max(sizes)
        self.targets = np.asarray(pool_targets, dtype=np.float64)[:largest]
        if len(self.targets) < largest:
            raise ValueError(f"pool_targets holds {len(self.targets)} prices for a subset of {largest} texts.")
        smallest = min(sizes)
        if smallest < MIN_SUPERVISED_ROWS:
            raise ValueError(f"supervised points need at least {MIN_SUPERVISED_ROWS} rows; the smallest size is "
                             f"{smallest}.")
        # Embedded as the points train: inputs truncated at the chunk length.
        base_length = model.max_seq_length
        model.max_seq_length = chunk_length_for(model, config.max_seq_length)
        try:
            self.embeddings = model.encode(list(pool_texts[:largest]), batch_size=64, convert_to_numpy=True,
                                           show_progress_bar=False)
        finally:
            model.max_seq_length = base_length

    def labels_and_head(self, size: int) -> tuple[np.ndarray, tuple[np.ndarray, float]]:
        """Standardised log prices of ``pool[:size]`` and the ridge head fitted on their base embeddings."""
        labels = standardized_log_targets(self.targets[:size])
        return labels, fit_linear_head(self.embeddings[:size], labels)


def _train_point(model, plan: UnitPlan, units: list[str], unit_tokens: np.ndarray, size: int,
                 config: FinetuneConfig, objective: Objective, *, seed: int, device: str, output_dir: Path,
                 callbacks: Sequence[Any], show_progress: bool, audit: dict[str, list[int]] | None,
                 supervision: _Supervision | None = None) -> FinetuneResult:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainingArguments
    from transformers import set_seed

    recipe = plan.recipes[size]
    k = plan.sizes.index(size)
    logger.info("%s f%d: independent run, %d steps (warmup %d, cooldown %d) on %d units (%s)", objective.display,
                size, recipe.steps, recipe.warmup_steps, recipe.cooldown_steps, plan.unit_ends[k], config.text_unit)
    stream = plan.independent_stream(size)
    if audit is not None:
        audit[f"{objective.value}:{size}"] = stream.tolist()
    set_seed(seed)
    trained = copy.deepcopy(model).to(device)
    base_length = trained.max_seq_length
    # Inputs as long as MLM's chunks; the saved model keeps the base model's own length for embedding.
    trained.max_seq_length = input_length(model, objective, config)
    labels, head = supervision.labels_and_head(size) if supervision is not None else (None, None)
    loss = build_loss(trained, objective, head=head)
    if not config.train_word_embeddings:  # as for MLM: rows of tokens a subset never uses would drift
        transformer_module(trained).auto_model.get_input_embeddings().weight.requires_grad_(False)
    rate = config.effective_learning_rate(objective)
    # The global batch of a step; training_arguments splits it over the processes (refused if it does not divide).
    step_config = dataclasses.replace(config, batch_size=plan.chunks_per_step // int(config.gradient_accumulation_steps))
    args = training_arguments(step_config, output_dir=output_dir, seed=seed, max_steps=recipe.steps, device=device,
                              learning_rate=rate, show_progress=show_progress,
                              logging_steps=max(1, recipe.steps // 20),
                              args_class=SentenceTransformerTrainingArguments)
    progress = PointProgress(peak_lr=rate)
    trainer = _sentence_trainer_class()(
        model=trained, args=args,
        train_dataset=Dataset.from_dict(examples_for(objective, units, stream, config, seed, labels)),
        loss=loss, callbacks=[progress, *callbacks], lr_factor=recipe.lr_factor,
    )
    route_trainer_logs(trainer, show_progress)  # its log dicts to the run's log file, not the terminal
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    progress = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, PointProgress))
    # A copy of the SentenceTransformer alone: the TSDAE decoder (which shares its tensors) stays behind.
    finetuned = copy.deepcopy(trained)
    finetuned.max_seq_length = base_length
    finetuned.to(result_device(device) or model.device)
    finetuned.eval()
    del trainer, loss, trained
    return FinetuneResult(
        model=finetuned,
        texts_seen=int(round(float(config.epochs) * size)),
        tokens_seen=int(unit_tokens[stream].sum()) if len(stream) else 0,
        optimizer_steps=int(progress.steps),
        train_seconds=seconds,
        final_loss=progress.mean_loss,
        chunk_length=input_length(model, objective, config),
        num_chunks=int(plan.unit_ends[k]),
        schedule="independent",
        recipe=recipe,
        lr_integral=float(progress.lr_sum),
        final_lr=progress.final_lr,
        subset_epochs=len(stream) / max(1, plan.unit_ends[k]),
        max_text_index=plan.max_text_index(stream),
        # No MLM head: the objective trains the sentence embedding itself (supervised: through a linear head)
        head="ridge-initialised regression head" if supervision is not None else "none",
    )


__all__ = ["MIN_SUPERVISED_ROWS", "PriceRegressionLoss", "SENTENCE_OBJECTIVES", "build_loss", "examples_for",
           "finetune_objective_independent", "fit_linear_head", "plan_objective", "standardized_log_targets",
           "units_per_step"]
