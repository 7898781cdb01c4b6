"""Finetune stage: masked-LM training of a SentenceTransformer's own transformer.

Texts are tokenised and packed into chunks of ``max_seq_length`` tokens (the tail of a long text
goes into the next chunk instead of being truncated), masked with
``DataCollatorForLanguageModeling`` and trained with the transformers ``Trainer``. Most
sentence-transformers models ship no MLM head: one is built on the model's config, its decoder
tied to the input embeddings, and trained with the encoder. Vocabulary logits are computed only
at masked positions (20% of tokens), not at every token.

The pieces both schedules share live here: :func:`prepare_mlm` (MLM model, LoRA, loss wrapper),
:func:`pack_token_lists`, :func:`make_collator`, :func:`build_optimizer` (the Trainer's default
AdamW) and :func:`sentence_transformer_with_encoder`. The independent schedule trains with the
transformers ``Trainer`` (CPU, ``cuda`` with bf16, or data-parallel under ``torchrun``); the
branching schedule (:mod:`hf_finetune_curve.branching`) runs a plain loop on the same pieces.

Example:
    >>> from hf_finetune_curve.finetune import finetune_sentence_transformer
    >>> result = finetune_sentence_transformer(model, texts, FinetuneConfig(epochs=1))  # doctest: +SKIP
    >>> result.model.encode(["a 1996 Porsche 911 Turbo"])  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .config import FinetuneConfig

logger = logging.getLogger(__name__)

# Attribute names under which transformers' *ForMaskedLM classes keep their prediction head.
_HEAD_ATTRIBUTES = ("cls", "lm_head")
_announced_new_head = False


@dataclass
class FinetuneResult:
    """The finetuned SentenceTransformer and what training cost."""

    model: Any
    texts_seen: int
    tokens_seen: int
    optimizer_steps: int
    train_seconds: float
    final_loss: float | None
    chunk_length: int
    num_chunks: int
    schedule: str = "independent"
    cooldown_steps: int = 0     # branching: steps of the point's LR cooldown (included in optimizer_steps)
    cooldown_tokens: int = 0    # branching: tokens drawn by its cooldown branch (included in tokens_seen)

    def stats(self) -> dict[str, Any]:
        """The statistics a run saves beside the checkpoint (``finetune_stats.json``)."""
        values = {
            "finetune_texts_seen": self.texts_seen,
            "finetune_tokens_seen": self.tokens_seen,
            "finetune_steps": self.optimizer_steps,
            "final_mlm_loss": self.final_loss,
            "train_seconds": self.train_seconds,
            "chunk_length": self.chunk_length,
            "num_chunks": self.num_chunks,
        }
        if self.schedule != "independent":
            values.update(schedule=self.schedule, cooldown_steps=self.cooldown_steps,
                          cooldown_tokens=self.cooldown_tokens)
        return values


def transformer_module(model):
    """The first module of a SentenceTransformer: its Hugging Face transformer wrapper."""
    module = model[0]
    if not hasattr(module, "auto_model"):
        raise TypeError(
            f"The first module of this SentenceTransformer is {type(module).__name__}, not a Transformer; "
            "MLM finetuning needs a transformers-based model."
        )
    return module


def chunk_length_for(model, max_seq_length: int | None) -> int:
    """Chunk length: the requested length, capped by the model's position embeddings."""
    module = transformer_module(model)
    limit = getattr(module.auto_model.config, "max_position_embeddings", None) or 512
    # RoBERTa-style models reserve two positions for the padding offset.
    if getattr(module.auto_model.config, "model_type", "") in {"roberta", "xlm-roberta", "camembert", "mpnet"}:
        limit -= 2
    wanted = int(max_seq_length) if max_seq_length else int(module.max_seq_length or limit)
    return max(8, min(wanted, limit))


def tokenize_texts(texts: Sequence[str], tokenizer) -> list[list[int]]:
    """Token ids of every text, with special tokens and without truncation."""
    return tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]


def pack_token_lists(
    encoded: Sequence[Sequence[int]], chunk_length: int, *, first_index: int = 0, with_sources: bool = False
):
    """Pack tokenised texts into chunks of ``chunk_length`` tokens, keeping every token.

    With ``with_sources`` it also returns, per chunk, the ``(text_index, n_tokens)`` pieces it holds
    (text indices start at ``first_index``): what lets a caller audit which texts a chunk came from.
    """
    if chunk_length < 2:
        raise ValueError(f"chunk_length must be >= 2, got {chunk_length}")
    chunks: list[list[int]] = []
    sources: list[list[tuple[int, int]]] = []
    current: list[int] = []
    pieces: list[tuple[int, int]] = []
    for offset, ids in enumerate(encoded):
        index = first_index + offset
        position = 0
        while position < len(ids):
            take = min(chunk_length - len(current), len(ids) - position)
            current.extend(ids[position:position + take])
            if with_sources:
                pieces.append((index, take))
            position += take
            if len(current) == chunk_length:
                chunks.append(current)
                sources.append(pieces)
                current, pieces = [], []
    if current:
        chunks.append(current)
        sources.append(pieces)
    return (chunks, sources) if with_sources else chunks


def pack_into_chunks(texts: Sequence[str], tokenizer, chunk_length: int) -> list[list[int]]:
    """Tokenise ``texts`` (with special tokens) and pack the stream into ``chunk_length`` chunks.

    Every token of every text is kept: the last chunk may be shorter, and a long text simply
    continues into the next chunk.
    """
    if chunk_length < 2:
        raise ValueError(f"chunk_length must be >= 2, got {chunk_length}")
    return pack_token_lists(tokenize_texts(texts, tokenizer), chunk_length)


class _ChunkDataset(torch.utils.data.Dataset):
    def __init__(self, chunks: list[list[int]]) -> None:
        self.chunks = chunks

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return {"input_ids": self.chunks[index]}


def build_mlm_model(model) -> nn.Module:
    """A ``*ForMaskedLM`` model whose encoder holds ``model``'s transformer weights.

    The head is new (the config's initialisation, decoder tied to the word embeddings): the
    SentenceTransformer checkpoints this tool targets ship no MLM head.
    """
    from transformers import AutoModelForMaskedLM

    global _announced_new_head
    encoder = transformer_module(model).auto_model
    mlm = AutoModelForMaskedLM.from_config(copy.deepcopy(encoder.config))
    result = mlm.base_model.load_state_dict(encoder.state_dict(), strict=False)
    missing = [key for key in result.missing_keys if "pooler" not in key]
    if missing:
        raise RuntimeError(f"Encoder weights do not fit the MLM model: missing {missing[:5]}")
    mlm.tie_weights()
    if not _announced_new_head:
        logger.info(
            "%s ships no MLM head: built a new %s head (decoder tied to the input embeddings); it is "
            "trained with the encoder and dropped when the checkpoint is saved.",
            type(encoder).__name__, type(mlm).__name__,
        )
        _announced_new_head = True
    return mlm


def _head_name(mlm: nn.Module) -> str | None:
    for name in _HEAD_ATTRIBUTES:
        if hasattr(mlm, name):
            return name
    return None


class SparseMaskedLM(nn.Module):
    """Runs the encoder, then the MLM head only on masked positions.

    A plain ``*ForMaskedLM`` forward computes vocabulary logits for every token although only the
    masked ~20% carry a label; gathering those hidden states first saves most of the head's work.
    The loss equals the full-logits loss (mean cross-entropy over labelled positions). Models
    without a recognised head attribute fall back to the full forward.

    With ``num_items_in_batch`` (the Trainer passes it under gradient accumulation and across
    processes) the loss is the summed cross-entropy divided by that count, so every masked token
    of an accumulated / distributed batch weighs the same.
    """

    # Tells the Trainer that the loss honours num_items_in_batch (so it does not rescale it again).
    accepts_loss_kwargs = True

    def __init__(self, mlm: nn.Module) -> None:
        super().__init__()
        self.mlm = mlm
        self.head_name = _head_name(mlm)

    def forward(self, input_ids, attention_mask=None, labels=None, token_type_ids=None,
                num_items_in_batch=None, **_: Any):
        if labels is None:
            return self.mlm(input_ids=input_ids, attention_mask=attention_mask)
        selected = labels != -100
        if self.head_name is None:
            loss = self.mlm(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
            if num_items_in_batch is not None:
                loss = loss * selected.sum() / _as_count(num_items_in_batch, loss)
            return {"loss": loss}
        outputs = self.mlm.base_model(input_ids=input_ids, attention_mask=attention_mask)
        hidden = outputs[0]
        head = getattr(self.mlm, self.head_name)
        logits = head(hidden[selected])
        if logits.shape[0] == 0:
            loss = hidden.sum() * 0.0
        elif num_items_in_batch is None:
            loss = nn.functional.cross_entropy(logits.float(), labels[selected])
        else:
            summed = nn.functional.cross_entropy(logits.float(), labels[selected], reduction="sum")
            loss = summed / _as_count(num_items_in_batch, summed)
        return {"loss": loss}


def _as_count(value, like: torch.Tensor) -> torch.Tensor:
    count = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    return count.to(device=like.device, dtype=torch.float32).clamp_min(1.0)


def make_collator(tokenizer, mlm_probability: float, seed: int):
    """The masking collator shared by both schedules (dynamic padding, ``mlm_probability`` masking)."""
    from transformers import DataCollatorForLanguageModeling

    kwargs: dict[str, Any] = {"tokenizer": tokenizer, "mlm": True, "mlm_probability": mlm_probability}
    if "seed" in inspect.signature(DataCollatorForLanguageModeling.__init__).parameters:
        kwargs["seed"] = seed
    return DataCollatorForLanguageModeling(**kwargs)


_collator = make_collator  # the old private name


def resolve_device(device: str | None) -> str:
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def use_bf16(device: str) -> bool:
    """bf16 mixed precision: on CUDA devices that support it."""
    return str(device).startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def _apply_lora(mlm: nn.Module, config: FinetuneConfig) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    head = _head_name(mlm)
    lora_config = LoraConfig(
        r=int(config.lora_r),
        lora_alpha=int(config.lora_alpha),
        lora_dropout=float(config.lora_dropout),
        target_modules=list(config.lora_target_modules) if config.lora_target_modules else None,
        # A new, randomly initialised head must learn too, or the loss stays near log(vocab).
        modules_to_save=[head] if head else None,
    )
    return get_peft_model(mlm, lora_config)


@dataclass
class MLMSetup:
    """What both schedules train: the MLM model (LoRA-injected with ``config.lora``) and its loss wrapper."""

    mlm: nn.Module
    peft_model: nn.Module | None
    trainable: SparseMaskedLM
    tokenizer: Any
    chunk_length: int


def prepare_mlm(model, config: FinetuneConfig, seed: int) -> MLMSetup:
    """Build the MLM model on ``model``'s transformer weights (+ LoRA), seeded for the new head.

    Raises:
        TypeError: the first module is not a transformers Transformer.
        ValueError: the tokenizer has no mask token.
    """
    from transformers import set_seed

    module = transformer_module(model)
    tokenizer = module.tokenizer
    if tokenizer.mask_token is None:
        raise ValueError(f"The tokenizer of {type(module.auto_model).__name__} has no mask token; MLM needs one.")
    chunk_length = chunk_length_for(model, config.max_seq_length)
    set_seed(seed)
    mlm = build_mlm_model(model)
    peft_model = _apply_lora(mlm, config) if config.lora else None
    return MLMSetup(mlm=mlm, peft_model=peft_model, trainable=SparseMaskedLM(mlm), tokenizer=tokenizer,
                    chunk_length=chunk_length)


# Parameter names that get no weight decay: the Trainer's own rule (biases and norm weights).
_NO_DECAY_PATTERNS = (r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)")


def build_optimizer(trainable: nn.Module, config: FinetuneConfig, device: str | None = None) -> torch.optim.AdamW:
    """AdamW as the Trainer builds it by default: weight decay on all but biases and norm weights,
    betas (0.9, 0.999), eps 1e-8, fused kernel where torch has one for ``device``."""
    from transformers.trainer_pt_utils import get_parameter_names

    decay_names = set(get_parameter_names(trainable, [nn.LayerNorm], list(_NO_DECAY_PATTERNS)))
    named = [(name, param) for name, param in trainable.named_parameters() if param.requires_grad]
    groups = [
        {"params": [p for n, p in named if n in decay_names], "weight_decay": float(config.weight_decay)},
        {"params": [p for n, p in named if n not in decay_names], "weight_decay": 0.0},
    ]
    groups = [group for group in groups if group["params"]]
    kwargs: dict[str, Any] = dict(lr=float(config.effective_learning_rate()), betas=(0.9, 0.999), eps=1e-8)
    device_type = torch.device(resolve_device(device)).type if device else next(trainable.parameters()).device.type
    if device_type in ("cuda", "cpu"):
        kwargs["fused"] = True
    try:
        return torch.optim.AdamW(groups, **kwargs)
    except (RuntimeError, ValueError):
        kwargs.pop("fused", None)
        return torch.optim.AdamW(groups, **kwargs)


def max_grad_norm(config: FinetuneConfig) -> float:
    """Gradient clipping norm (the Trainer's default 1.0 unless ``trainer_kwargs`` sets another)."""
    return float(config.trainer_kwargs.get("max_grad_norm", 1.0))


def finetuned_encoder_state(setup: MLMSetup, *, inplace: bool = False) -> dict[str, torch.Tensor]:
    """The encoder's weights on the CPU, LoRA adapters merged in.

    With ``inplace`` a LoRA model is merged into itself (cheaper; the setup cannot train on).
    Without it a copy is merged and the training model keeps its separate adapters.
    """
    mlm = setup.mlm
    if setup.peft_model is not None:
        peft_model = setup.peft_model if inplace else copy.deepcopy(setup.peft_model)
        with warnings.catch_warnings():
            # The MLM decoder is dropped here, so its untying on merge does not matter.
            warnings.filterwarnings("ignore", message=".*no longer tied after merging.*")
            mlm = peft_model.merge_and_unload()
    return {key: value.detach().to("cpu", copy=True) for key, value in mlm.base_model.state_dict().items()}


def sentence_transformer_with_encoder(model, encoder_state: dict[str, torch.Tensor], device=None):
    """A copy of ``model`` (same module stack) whose transformer carries ``encoder_state``, in eval mode,
    on ``device`` (default: ``model``'s device)."""
    finetuned = copy.deepcopy(model)
    target = transformer_module(finetuned).auto_model
    result = target.load_state_dict(encoder_state, strict=False)
    missing = [key for key in result.missing_keys if "pooler" not in key]
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"Finetuned weights do not fit the SentenceTransformer: missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    finetuned.to(device if device is not None else model.device)
    finetuned.eval()
    return finetuned


# trainer_kwargs that choose the optimizer: with any of them the Trainer builds its own.
_OPTIMIZER_KWARGS = ("optim", "optim_args", "optim_target_modules", "adam_beta1", "adam_beta2", "adam_epsilon")


def finetune_sentence_transformer(
    model,
    texts: Sequence[str],
    config: FinetuneConfig,
    *,
    seed: int = 42,
    device: str | None = "auto",
    work_dir: str | Path | None = None,
    show_progress: bool = True,
):
    """MLM-finetune a copy of ``model`` on ``texts`` and return it with training statistics.

    ``model`` itself is left unchanged. The returned SentenceTransformer has the same module
    stack (its Pooling, Normalize, ...) with the finetuned transformer weights.

    Runs on ``device`` ("cpu", "cuda", "auto"); under ``torchrun`` / ``accelerate launch`` the
    Trainer trains data-parallel over the processes (``batch_size`` is per process) and every
    process returns the same finetuned model. ``tokens_seen`` is the total over all processes.
    """
    from transformers import Trainer, TrainingArguments

    if not texts:
        raise ValueError("finetune_sentence_transformer needs at least one text.")
    device = resolve_device(device)
    setup = prepare_mlm(model, config, seed)
    chunk_length = setup.chunk_length
    chunks = pack_into_chunks(texts, setup.tokenizer, chunk_length)
    tokens_per_epoch = sum(len(chunk) for chunk in chunks)

    world_size = _world_size()
    per_step = config.batch_size * config.gradient_accumulation_steps * world_size
    steps_per_epoch = math.ceil(len(chunks) / per_step)
    total_steps = max(1, math.ceil(steps_per_epoch * config.epochs))
    learning_rate = config.effective_learning_rate()
    owns_work_dir = work_dir is None
    work_path = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="hf-curve-train-"))
    args_kwargs: dict[str, Any] = dict(
        output_dir=str(work_path),
        per_device_train_batch_size=int(config.batch_size),
        gradient_accumulation_steps=int(config.gradient_accumulation_steps),
        learning_rate=float(learning_rate),
        num_train_epochs=float(config.epochs),
        warmup_steps=int(math.ceil(total_steps * config.warmup_ratio)),
        weight_decay=float(config.weight_decay),
        lr_scheduler_type="linear",
        logging_steps=max(1, total_steps // 10),
        save_strategy="no",
        report_to=config.report_to,
        seed=int(seed),
        data_seed=int(seed),
        use_cpu=device == "cpu",
        bf16=use_bf16(device),
        disable_tqdm=not show_progress,
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    args_kwargs.update(config.trainer_kwargs)
    training_args = TrainingArguments(**args_kwargs)
    optimizers: tuple[Any, Any] = (None, None)
    if not any(key in config.trainer_kwargs for key in _OPTIMIZER_KWARGS):
        # The same optimizer the branching schedule uses (it equals the Trainer's default AdamW),
        # built on the parameters where they will train (cuda:<local rank> under torchrun).
        setup.trainable.to(training_args.device)
        optimizers = (build_optimizer(setup.trainable, config, str(training_args.device)), None)
    trainer = Trainer(
        model=setup.trainable,
        args=training_args,
        data_collator=make_collator(setup.tokenizer, config.mlm_probability, seed),
        train_dataset=_ChunkDataset(chunks),
        optimizers=optimizers,
    )
    started = time.perf_counter()
    try:
        output = trainer.train()
    finally:
        if owns_work_dir:  # each process made its own temporary folder
            shutil.rmtree(work_path, ignore_errors=True)
    train_seconds = time.perf_counter() - started

    # Under several processes each keeps its copy on its own device (cuda:<local rank>), not model's.
    target_device = training_args.device if world_size > 1 else None
    encoder_state = finetuned_encoder_state(setup, inplace=True)
    finetuned = sentence_transformer_with_encoder(model, encoder_state, target_device)
    epochs_done = float(config.epochs)
    return FinetuneResult(
        model=finetuned,
        texts_seen=int(round(len(texts) * epochs_done)),
        tokens_seen=int(round(tokens_per_epoch * epochs_done)),
        optimizer_steps=int(trainer.state.global_step),
        train_seconds=train_seconds,
        final_loss=float(output.training_loss) if output.training_loss is not None else None,
        chunk_length=chunk_length,
        num_chunks=len(chunks),
    )


def _world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    import os

    return max(1, int(os.environ.get("WORLD_SIZE", "1")))

