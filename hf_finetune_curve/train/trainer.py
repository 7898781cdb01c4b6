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
    10% kept) with a generator seeded by ``(seed, chunk, draw)`` per example, plus dynamic padding."""

    def __init__(self, tokenizer, mlm_probability: float, seed: int) -> None:
        self.tokenizer = tokenizer
        self.mlm_probability = float(mlm_probability)
        self.seed = int(seed)
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        self.vocab_size = len(tokenizer)

    def _generator(self, chunk: int, draw: int) -> torch.Generator:
        mixed = np.random.SeedSequence([self.seed, chunk, draw]).generate_state(1, dtype=np.uint64)[0]
        return torch.Generator().manual_seed(int(mixed) & 0x7FFF_FFFF_FFFF_FFFF)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        longest = max(len(e["input_ids"]) for e in examples)
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((len(examples), longest), pad_id, dtype=torch.long)
        attention = torch.zeros((len(examples), longest), dtype=torch.long)
        labels = torch.full((len(examples), longest), -100, dtype=torch.long)
        for row, example in enumerate(examples):
            ids = torch.tensor(example["input_ids"], dtype=torch.long)
            generator = self._generator(int(example.get("chunk", 0)), int(example.get("draw", row)))
            maskable = ~torch.isin(ids, self.special_ids)
            chosen = (torch.rand(len(ids), generator=generator) < self.mlm_probability) & maskable
            draw = torch.rand(len(ids), generator=generator)
            random_tokens = torch.randint(self.vocab_size, (len(ids),), generator=generator)
            corrupted = ids.clone()
            corrupted[chosen & (draw < 0.8)] = self.tokenizer.mask_token_id
            swap = chosen & (draw >= 0.8) & (draw < 0.9)
            corrupted[swap] = random_tokens[swap]
            input_ids[row, : len(ids)] = corrupted
            attention[row, : len(ids)] = 1
            labels[row, : len(ids)] = torch.where(chosen, ids, torch.full_like(ids, -100))
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


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
        per_device_train_batch_size=int(config.batch_size),
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
        dataloader_num_workers=0,
        remove_unused_columns=False,
        ddp_timeout=DDP_TIMEOUT_SECONDS,
    )
    if "train_sampling_strategy" in {f.name for f in dataclasses.fields(TrainingArguments)}:
        kwargs["train_sampling_strategy"] = "sequential"  # the plan fixed the order
    kwargs.update(config.trainer_kwargs)
    return args_class(**kwargs)


def use_bf16(device: str) -> bool:
    """bf16 mixed precision: on CUDA devices that support it."""
    return str(device).startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def world_size() -> int:
    """Processes of a ``torchrun`` / ``accelerate launch`` job (1 otherwise)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


__all__ = ["ChunkStream", "CurveTrainer", "PointProgress", "PositionalMaskingCollator", "RecipeSchedule",
           "StopAndSave", "TrainerLogRecorder", "route_trainer_logs", "training_arguments", "use_bf16", "validate_trainer_kwargs", "world_size"]
