"""The one training engine: transformers' ``Trainer``, extended for planned curve points.

:class:`CurveTrainer` is a ``Trainer`` that

* draws its training chunks in the order a :class:`~hf_finetune_curve.train.recipe.CurvePlan` fixed
  (a sequential sampler over a :class:`ChunkStream`), so a point's data is known before training
  and a resumed run skips exactly the steps it already took;
* follows a point's learning-rate recipe (:class:`RecipeSchedule`, a ``LambdaLR``);
* saves the sparse-head MLM wrapper (whose decoder is tied to the input embeddings) in its own
  checkpoint format, so ``resume_from_checkpoint`` restores model, head, optimizer, scheduler,
  RNG and the :class:`PointProgress` counters.

Masking is a pure function of ``(seed, chunk, draw position)`` (:class:`PositionalMaskingCollator`):
the masks of a step do not depend on the RNG state, on where a run was resumed, or on which
process of a multi-process run drew the chunk.

Example:
    >>> from hf_finetune_curve.train.trainer import RecipeSchedule
    >>> import torch
    >>> optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    >>> schedule = RecipeSchedule(optimizer, lambda step: 1.0 - step / 4)
    >>> [round(g["lr"], 3) for g in optimizer.param_groups]
    [0.1]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import ExportableState

from ..config import FinetuneConfig
from ..errors import ConfigError
from .recipe import per_process_batch

logger = logging.getLogger(__name__)
# The Trainer's log dicts: below the package's logger, so the run's log file (logs/run.log) receives them.
trainer_logger = logging.getLogger("hf_finetune_curve.trainer")

# TrainingArguments fields the curve's recipe owns: set them through FinetuneConfig instead.
RECIPE_OWNED_ARGUMENTS = {
    "learning_rate": "learning_rate", "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps", "num_train_epochs": "epochs",
    "max_steps": "epochs / min_steps", "warmup_steps": "warmup_steps", "warmup_ratio": "warmup_steps",
    "lr_scheduler_type": "warmup_steps / cooldown_fraction / min_cooldown_steps", "weight_decay": "weight_decay",
    "output_dir": "(the run directory)", "seed": "(CurveConfig.seed)", "data_seed": "(CurveConfig.seed)",
    "save_strategy": "(checkpoints at size boundaries)", "report_to": "report_to",
    "train_sampling_strategy": "(the plan's draw order)",
}
# A multi-process run waits in a collective while rank 0 embeds and scores a point: hours, not minutes.
DDP_TIMEOUT_SECONDS = 6 * 3600


def validate_trainer_kwargs(trainer_kwargs: dict[str, Any]) -> None:
    """Refuse the ones the recipe owns (naming the flag to use), every field outside the allow-list
    (:data:`~hf_finetune_curve.config.ALLOWED_TRAINER_ARGUMENTS`, also checked when the config is built), and
    allowed fields the installed ``TrainingArguments`` lacks."""
    from ..config import check_trainer_kwargs

    owned = sorted(set(trainer_kwargs) & set(RECIPE_OWNED_ARGUMENTS))
    if owned:
        hints = ", ".join(f"{key} (use finetune.{RECIPE_OWNED_ARGUMENTS[key]})" for key in owned)
        raise ConfigError(f"finetune.trainer_kwargs sets what the curve's recipe owns: {hints}.")
    check_trainer_kwargs(trainer_kwargs)
    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    unknown = sorted(set(trainer_kwargs) - known)
    if unknown:
        raise ConfigError(f"finetune.trainer_kwargs: the installed transformers' TrainingArguments has no field(s) "
                          f"{unknown}; drop them or upgrade transformers.")


class ChunkStream(torch.utils.data.Dataset):
    """Packed chunks in a fixed draw order: item ``i`` is draw ``first_draw + i``."""

    def __init__(self, chunks, draws: np.ndarray, first_draw: int = 0) -> None:
        self.chunks = chunks
        self.draws = np.asarray(draws, dtype=np.int64)
        self.first_draw = int(first_draw)

    def __len__(self) -> int:
        return len(self.draws)

    def __getitem__(self, index: int) -> dict[str, Any]:
        chunk = int(self.draws[index])
        ids = self.chunks[chunk]
        return {"input_ids": ids.tolist() if hasattr(ids, "tolist") else list(ids), "chunk": chunk,
                "draw": self.first_draw + int(index)}


class PositionalMaskingCollator:
    """BERT-style masking (``mlm_probability`` of the non-special tokens; 80% [MASK], 10% random,
    10% kept) with a generator seeded by ``(seed, chunk, draw)`` per example, plus dynamic padding.

    The random numbers of a row come from that row's own generator (three draws of the row's length, in
    a fixed order); everything else is batched tensor work. So a batch's masks depend only on the seed,
    the chunks and their draw positions: not on the batch's other rows, on the process, or on which
    dataloader worker built it (the collator holds no state and runs in ``dataloader_num_workers``).

    Besides ``input_ids``, ``attention_mask`` and full-shape ``labels`` (-100 where nothing is predicted),
    a batch carries the masked positions in a fixed-shape form for :class:`SparseMaskedLM`, whose head then
    gathers rows instead of boolean-indexing (a data-dependent shape: a host synchronisation per step, and a
    break in a ``torch.compile`` graph):

    * ``masked_positions``: flat indices into ``batch x length`` of the masked tokens, in row-major order,
      padded with 0 up to :meth:`target_capacity` (a length that depends only on the batch's shape);
    * ``masked_labels``: the token each position must predict, -100 on the padding;
    * ``masked_count``: the number of real targets, a Python int (kept on the host: the trainer counts
      batches without targets from it, without reading anything back from the device).
    """

    # Capacity margin in standard deviations of the masked count (binomial): exceeded about once in 10^9
    # batches, and then the capacity grows to the next multiple of 64 (a new shape, never a lost target).
    CAPACITY_SIGMAS = 6.0

    def __init__(self, tokenizer, mlm_probability: float, seed: int) -> None:
        self.tokenizer = tokenizer
        self.mlm_probability = float(mlm_probability)
        self.seed = int(seed)
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        self.vocab_size = len(tokenizer)
        self.mask_id = int(tokenizer.mask_token_id)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def _generator(self, chunk: int, draw: int) -> torch.Generator:
        mixed = np.random.SeedSequence([self.seed, chunk, draw]).generate_state(1, dtype=np.uint64)[0]
        return torch.Generator().manual_seed(int(mixed) & 0x7FFF_FFFF_FFFF_FFFF)

    def target_capacity(self, positions: int, masked: int) -> int:
        """Length of ``masked_positions`` for a batch of ``positions`` tokens (padding included): the binomial
        mean plus :attr:`CAPACITY_SIGMAS` deviations, rounded up to 8; larger only if ``masked`` exceeds it."""
        p = self.mlm_probability
        mean = positions * p
        capacity = int(math.ceil(mean + self.CAPACITY_SIGMAS * math.sqrt(max(mean * (1.0 - p), 1.0))))
        capacity = max(8, -(-capacity // 8) * 8)
        return capacity if masked <= capacity else -(-masked // 64) * 64

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        rows = len(examples)
        lengths = [len(e["input_ids"]) for e in examples]
        longest = max(lengths)
        ids = torch.full((rows, longest), self.pad_id, dtype=torch.long)
        chosen_draw = torch.ones((rows, longest))     # >= any probability: padding is never chosen
        kind_draw = torch.zeros((rows, longest))
        random_tokens = torch.zeros((rows, longest), dtype=torch.long)
        for row, example in enumerate(examples):
            n = lengths[row]
            ids[row, :n] = torch.as_tensor(example["input_ids"], dtype=torch.long)
            generator = self._generator(int(example.get("chunk", 0)), int(example.get("draw", row)))
            # The same three draws, in the same order, as one row of the per-example collator before it.
            torch.rand(n, generator=generator, out=chosen_draw[row, :n])
            torch.rand(n, generator=generator, out=kind_draw[row, :n])
            torch.randint(self.vocab_size, (n,), generator=generator, out=random_tokens[row, :n])
        positions = torch.arange(longest).unsqueeze(0)
        attention = (positions < torch.tensor(lengths).unsqueeze(1)).long()
        chosen = (chosen_draw < self.mlm_probability) & ~torch.isin(ids, self.special_ids) & attention.bool()
        corrupted = torch.where(chosen & (kind_draw < 0.8), torch.full_like(ids, self.mask_id), ids)
        corrupted = torch.where(chosen & (kind_draw >= 0.8) & (kind_draw < 0.9), random_tokens, corrupted)
        labels = torch.where(chosen, ids, torch.full_like(ids, -100))
        flat = chosen.reshape(-1).nonzero().squeeze(1)
        count = int(flat.numel())
        capacity = self.target_capacity(rows * longest, count)
        masked_positions = torch.zeros(capacity, dtype=torch.long)
        masked_positions[:count] = flat
        masked_labels = torch.full((capacity,), -100, dtype=torch.long)
        masked_labels[:count] = ids.reshape(-1)[flat]
        return {"input_ids": corrupted, "attention_mask": attention, "labels": labels,
                "masked_positions": masked_positions, "masked_labels": masked_labels, "masked_count": count}


class RecipeSchedule(torch.optim.lr_scheduler.LambdaLR):
    """A ``LambdaLR`` over a point's recipe whose loaded state also re-applies the rate.

    A cooldown branch resumes the main run's checkpoint with the *point's* schedule: after loading
    the step count it must set the rate for that step from its own recipe, not keep the main run's.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, factor: Callable[[int], float]) -> None:
        def lr_lambda(step: int) -> float:  # a plain function: LambdaLR does not save its state
            return factor(step)

        super().__init__(optimizer, lr_lambda)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = {k: v for k, v in state_dict.items() if k != "lr_lambdas"}
        super().load_state_dict({**state, "lr_lambdas": [None] * len(self.lr_lambdas)})
        rates = [base * self.lr_lambdas[i](self.last_epoch) for i, base in enumerate(self.base_lrs)]
        for group, rate in zip(self.optimizer.param_groups, rates):
            group["lr"] = rate
        self._last_lr = rates


class PointProgress(TrainerCallback, ExportableState):
    """Counts what a run drew and the learning rate it actually stepped; saved in Trainer checkpoints.

    ``lr_sum`` is the sum over optimizer steps of (rate used / peak rate): the point's learning-rate
    integral measured on the scheduler, to compare with :meth:`PointRecipe.lr_integral`.
    """

    def __init__(self, peak_lr: float = 1.0, lr_sum: float = 0.0, steps: int = 0, final_lr: float | None = None,
                 loss_sum: float = 0.0, loss_count: int = 0) -> None:
        self.peak_lr = float(peak_lr)
        self.lr_sum = float(lr_sum)
        self.steps = int(steps)
        self.final_lr = final_lr
        self.loss_sum = float(loss_sum)
        self.loss_count = int(loss_count)

    def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        if optimizer is not None:  # the rate this step used (the scheduler steps right after)
            self.lr_sum += optimizer.param_groups[0]["lr"] / self.peak_lr
            self.steps += 1

    def on_step_end(self, args, state, control, lr_scheduler=None, **kwargs):
        if lr_scheduler is not None:
            self.final_lr = float(lr_scheduler.get_last_lr()[0]) / self.peak_lr

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs and math.isfinite(float(logs["loss"])):
            self.loss_sum += float(logs["loss"])
            self.loss_count += 1

    @property
    def mean_loss(self) -> float | None:
        return self.loss_sum / self.loss_count if self.loss_count else None

    def state(self) -> dict[str, Any]:
        return {"args": {"peak_lr": self.peak_lr, "lr_sum": self.lr_sum, "steps": self.steps,
                         "final_lr": self.final_lr, "loss_sum": self.loss_sum, "loss_count": self.loss_count},
                "attributes": {}}


class TrainerLogRecorder(TrainerCallback):
    """The Trainer's log dicts (loss, grad_norm, learning_rate, ...) as one JSON line each at DEBUG on the
    package's logger: the run's log file (``logs/run.log``) keeps them, the terminal shows them only with
    ``--verbose``. TensorBoard gets them too when ``--report-to tensorboard`` is set."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and state.is_world_process_zero:
            trainer_logger.debug("trainer step %d: %s", state.global_step, json.dumps(logs, default=str))


def route_trainer_logs(trainer: Trainer, show_progress: bool) -> None:
    """Send ``trainer``'s log dicts to :class:`TrainerLogRecorder` and off the terminal: without a progress bar
    the Trainer adds a printer of every log dict, removed here (public ``remove_callback``)."""
    from transformers.trainer_callback import PrinterCallback

    if not show_progress:
        trainer.remove_callback(PrinterCallback)
    trainer.add_callback(TrainerLogRecorder())


class StopAndSave(TrainerCallback):
    """Saves a Trainer checkpoint at ``step`` (a size boundary of the branching main run)."""

    def __init__(self, step: int) -> None:
        self.step = int(step)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_save = True
            control.should_training_stop = True
        return control


class CurveTrainer(Trainer):
    """``Trainer`` for planned chunk streams and recipe schedules (see the module docstring)."""

    def __init__(self, *args, lr_factor: Callable[[int], float], **kwargs) -> None:
        self.lr_factor = lr_factor
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, *args, **kwargs):
        # The plan fixed the draw order; the Trainer shards each step's batches across processes.
        # (training_arguments also sets the public train_sampling_strategy="sequential" where the
        # installed transformers has it; this override covers the versions that do not.)
        return torch.utils.data.SequentialSampler(self.train_dataset)

    def training_step(self, model, inputs, num_items_in_batch=None):
        # The collator counted the batch's targets on the host: a batch without any is counted here, so neither
        # the model nor the Trainer reads a value back from the device to learn it.
        count = inputs.pop("masked_count", None)
        if count is not None and int(count) == 0:
            counted = self.accelerator.unwrap_model(self.model)
            counted.batches_without_targets = int(getattr(counted, "batches_without_targets", 0)) + 1
            if counted.batches_without_targets == 1:
                logger.warning("A training batch has no maskable token (its texts are only special or unknown "
                               "tokens, e.g. emoji); such batches contribute no gradient and are counted in "
                               "finetune_stats.json (batches_without_targets)")
        return super().training_step(model, inputs, num_items_in_batch)

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        if self.lr_scheduler is None:
            self.lr_scheduler = RecipeSchedule(optimizer or self.optimizer, self.lr_factor)
        return self.lr_scheduler

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        # The MLM decoder shares its weight with the input embeddings, and safetensors refuses
        # shared tensors: each is stored once, and the names left out are the ones the Trainer
        # expects to be missing when it loads the checkpoint back (they share the stored tensor).
        import safetensors.torch

        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            # Each rank would save its own shard (FSDP's local state dict): not a checkpoint the curve can
            # verify or publish. Refused (also before any work, by config.check_supported_launch).
            raise ConfigError("FSDP and DeepSpeed are not supported: their checkpoints are sharded per rank. Launch "
                              "with plain data parallelism (torchrun, or accelerate launch without --use_fsdp / "
                              "--use_deepspeed).")
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model)
        shared = set(shared_tensor_names(model))
        tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()
                   if name not in shared}
        safetensors.torch.save_file(tensors, os.path.join(output_dir, "model.safetensors"), metadata={"format": "pt"})


def shared_tensor_names(module: torch.nn.Module) -> list[str]:
    """State-dict names whose tensor is an earlier name's (tied weights), in state-dict order."""
    seen, shared = set(), []
    for name, tensor in module.state_dict().items():
        key = (tensor.device, tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if key in seen:
            shared.append(name)
        seen.add(key)
    return shared


def training_arguments(
    config: FinetuneConfig,
    *,
    output_dir: str | Path,
    seed: int,
    max_steps: int,
    device: str,
    learning_rate: float,
    show_progress: bool,
    save: bool = False,
    logging_steps: int | None = None,
    args_class: type[TrainingArguments] = TrainingArguments,
) -> TrainingArguments:
    """The ``TrainingArguments`` of every curve run (``trainer_kwargs`` on top, validated).

    ``args_class``: a ``TrainingArguments`` subclass (``SentenceTransformerTrainingArguments`` for
    the sentence objectives), given the same fields.
    """
    validate_trainer_kwargs(config.trainer_kwargs)
    report_to = config.report_to if isinstance(config.report_to, list) else \
        [part.strip() for part in str(config.report_to).split(",") if part.strip()]
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=per_process_batch(config.batch_size, world_size()),  # the batch is global
        gradient_accumulation_steps=int(config.gradient_accumulation_steps),
        learning_rate=float(learning_rate),
        max_steps=int(max_steps),
        weight_decay=float(config.weight_decay),
        logging_steps=int(logging_steps or max(1, int(max_steps) // 10)),
        save_strategy="steps" if save else "no",
        save_steps=10**9,  # never by count: StopAndSave decides
        restore_callback_states_from_checkpoint=True,
        report_to=report_to or "none",
        seed=int(seed),
        data_seed=int(seed),
        use_cpu=device == "cpu",
        bf16=use_bf16(device),
        disable_tqdm=not show_progress,
        dataloader_num_workers=default_dataloader_workers(device),
        remove_unused_columns=False,
        ddp_timeout=DDP_TIMEOUT_SECONDS,
        # The Trainer's NaN/inf filter reads every step's loss back from the device (a host synchronisation per
        # step); the curve's own loss statistics (PointProgress) skip non-finite logged values instead.
        logging_nan_inf_filter=False,
        optim=default_optimizer(device),
    )
    if "train_sampling_strategy" in {f.name for f in dataclasses.fields(TrainingArguments)}:
        kwargs["train_sampling_strategy"] = "sequential"  # the plan fixed the order
    kwargs.update(config.trainer_kwargs)
    return args_class(**kwargs)


def fused_adamw_available(device: str) -> bool:
    """Whether ``torch.optim.AdamW(fused=True)`` steps a parameter on ``device``: tried on a one-element
    parameter through the public constructor and ``step`` (fused kernels exist for CUDA, and for the CPU in
    recent torch releases; other devices and older releases refuse it)."""
    try:
        param = torch.nn.Parameter(torch.zeros(1, device=torch.device(device)))
        param.grad = torch.zeros_like(param)
        torch.optim.AdamW([param], lr=1e-3, fused=True).step()
        return True
    except (RuntimeError, TypeError, ValueError):
        return False


def default_optimizer(device: str) -> str:
    """AdamW with fused kernels where the device has them (one kernel per step instead of several per
    tensor; the same update up to float rounding), the per-tensor ``adamw_torch`` otherwise.
    ``--trainer-arg optim=...`` still overrides it."""
    return "adamw_torch_fused" if fused_adamw_available(device) else "adamw_torch"


def default_dataloader_workers(device: str) -> int:
    """Masking workers: 2 beside a CUDA device (the collator then runs while the GPU computes), none on the CPU,
    where a worker would take a core from the training threads. Masks do not depend on it
    (:class:`PositionalMaskingCollator`); ``--trainer-arg dataloader_num_workers=N`` overrides it."""
    if not str(device).startswith("cuda"):
        return 0
    free = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(2, free - 1))


def use_bf16(device: str) -> bool:
    """bf16 mixed precision: on CUDA devices that support it."""
    return str(device).startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def world_size() -> int:
    """Processes of a ``torchrun`` / ``accelerate launch`` job (1 otherwise)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


__all__ = ["ChunkStream", "CurveTrainer", "PointProgress", "PositionalMaskingCollator", "RecipeSchedule",
            "StopAndSave", "TrainerLogRecorder", "default_dataloader_workers", "default_optimizer", "fused_adamw_available",
            "route_trainer_logs", "training_arguments", "use_bf16", "validate_trainer_kwargs", "world_size"]
