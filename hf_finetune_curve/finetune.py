"""Finetune stage: masked-LM training of a SentenceTransformer's own transformer.

Texts are tokenised and packed into chunks of ``max_seq_length`` tokens (the tail of a long text
goes into the next chunk instead of being truncated), masked with
``DataCollatorForLanguageModeling`` and trained with the transformers ``Trainer``. Most
sentence-transformers models ship no MLM head: one is built on the model's config, its decoder
tied to the input embeddings, and trained with the encoder. Vocabulary logits are computed only
at masked positions (20% of tokens), not at every token.

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


def pack_into_chunks(texts: Sequence[str], tokenizer, chunk_length: int) -> list[list[int]]:
    """Tokenise ``texts`` (with special tokens) and pack the stream into ``chunk_length`` chunks.

    Every token of every text is kept: the last chunk may be shorter, and a long text simply
    continues into the next chunk.
    """
    if chunk_length < 2:
        raise ValueError(f"chunk_length must be >= 2, got {chunk_length}")
    encoded = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    chunks: list[list[int]] = []
    current: list[int] = []
    for ids in encoded:
        current.extend(ids)
        while len(current) >= chunk_length:
            chunks.append(current[:chunk_length])
            current = current[chunk_length:]
    if current:
        chunks.append(current)
    return chunks


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
    """

    def __init__(self, mlm: nn.Module) -> None:
        super().__init__()
        self.mlm = mlm
        self.head_name = _head_name(mlm)

    def forward(self, input_ids, attention_mask=None, labels=None, token_type_ids=None, **_: Any):
        if self.head_name is None or labels is None:
            return self.mlm(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        outputs = self.mlm.base_model(input_ids=input_ids, attention_mask=attention_mask)
        hidden = outputs[0]
        selected = labels != -100
        head = getattr(self.mlm, self.head_name)
        logits = head(hidden[selected])
        if logits.shape[0] == 0:
            loss = hidden.sum() * 0.0
        else:
            loss = nn.functional.cross_entropy(logits.float(), labels[selected])
        return {"loss": loss}


def _collator(tokenizer, mlm_probability: float, seed: int):
    from transformers import DataCollatorForLanguageModeling

    kwargs: dict[str, Any] = {"tokenizer": tokenizer, "mlm": True, "mlm_probability": mlm_probability}
    if "seed" in inspect.signature(DataCollatorForLanguageModeling.__init__).parameters:
        kwargs["seed"] = seed
    return DataCollatorForLanguageModeling(**kwargs)


def resolve_device(device: str | None) -> str:
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


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
    """
    from transformers import Trainer, TrainingArguments, set_seed

    if not texts:
        raise ValueError("finetune_sentence_transformer needs at least one text.")
    device = resolve_device(device)
    module = transformer_module(model)
    tokenizer = module.tokenizer
    if tokenizer.mask_token is None:
        raise ValueError(f"The tokenizer of {type(module.auto_model).__name__} has no mask token; MLM needs one.")
    chunk_length = chunk_length_for(model, config.max_seq_length)
    chunks = pack_into_chunks(texts, tokenizer, chunk_length)
    tokens_per_epoch = sum(len(chunk) for chunk in chunks)

    set_seed(seed)
    mlm = build_mlm_model(model)
    peft_model = _apply_lora(mlm, config) if config.lora else None
    trainable = SparseMaskedLM(mlm)

    steps_per_epoch = math.ceil(len(chunks) / (config.batch_size * config.gradient_accumulation_steps))
    total_steps = max(1, math.ceil(steps_per_epoch * config.epochs))
    learning_rate = config.effective_learning_rate()
    owns_work_dir = work_dir is None
    work_path = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="hf-curve-train-"))
    use_bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
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
        bf16=use_bf16,
        disable_tqdm=not show_progress,
        dataloader_num_workers=0,
        remove_unused_columns=False,
    )
    args_kwargs.update(config.trainer_kwargs)
    training_args = TrainingArguments(**args_kwargs)
    trainer = Trainer(
        model=trainable,
        args=training_args,
        data_collator=_collator(tokenizer, config.mlm_probability, seed),
        train_dataset=_ChunkDataset(chunks),
    )
    started = time.perf_counter()
    try:
        output = trainer.train()
    finally:
        if owns_work_dir:
            shutil.rmtree(work_path, ignore_errors=True)
    train_seconds = time.perf_counter() - started

    if peft_model is not None:
        mlm = peft_model.merge_and_unload()
    finetuned = copy.deepcopy(model)
    target = transformer_module(finetuned).auto_model
    state = {key: value.detach().to("cpu") for key, value in mlm.base_model.state_dict().items()}
    result = target.load_state_dict(state, strict=False)
    missing = [key for key in result.missing_keys if "pooler" not in key]
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"Finetuned weights do not fit the SentenceTransformer: missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    finetuned.to(model.device)
    finetuned.eval()
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
