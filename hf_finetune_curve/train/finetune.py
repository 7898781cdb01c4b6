"""Finetune stage: masked-LM training of a SentenceTransformer's own transformer.

Texts are tokenised and packed into chunks of ``max_seq_length`` tokens (the tail of a long text
goes into the next chunk instead of being truncated), masked 20% and trained with the transformers
``Trainer`` (:class:`~hf_finetune_curve.train.trainer.CurveTrainer`) on the recipe of
:mod:`hf_finetune_curve.train.recipe`. Vocabulary logits are computed only at masked positions.

The MLM head: a model that ships one (``bert-base-uncased``) trains with it. Most
sentence-transformers models ship none: a new head is built on the model's config (decoder tied
to the input embeddings) and, before any encoder update, trained alone for ``head_warmup_steps``
with the encoder frozen, on the smallest subset of the curve only; a random head's gradients
would otherwise spend a small subset's few steps disturbing the encoder.

This module holds the pieces both schedules share and the independent schedule itself
(:func:`finetune_independent`: every size from the base model); the branching schedule is in
:mod:`hf_finetune_curve.train.branching`.

Example:
    >>> from hf_finetune_curve.train.finetune import finetune_sentence_transformer
    >>> result = finetune_sentence_transformer(model, texts, FinetuneConfig())  # doctest: +SKIP
    >>> result.model.encode(["a 1996 Porsche 911 Turbo"])  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..config import FinetuneConfig
from .recipe import CurvePlan, PointRecipe, TokenizedTexts, pack_segments, plan_curve

logger = logging.getLogger(__name__)

# Attribute names under which transformers' *ForMaskedLM classes keep their prediction head.
_HEAD_ATTRIBUTES = ("cls", "lm_head")


@dataclass
class FinetuneResult:
    """A finetuned point: its SentenceTransformer, the recipe it trained on and what it cost."""

    model: Any
    texts_seen: int
    tokens_seen: int
    optimizer_steps: int
    train_seconds: float
    final_loss: float | None
    chunk_length: int
    num_chunks: int
    schedule: str = "independent"
    recipe: PointRecipe | None = None
    lr_integral: float = 0.0          # measured on the scheduler actually stepped (peak-LR steps)
    final_lr: float | None = None     # rate after the last step, relative to the peak (0 when decayed)
    subset_epochs: float = 0.0        # draws / chunks of the subset: passes over its texts
    max_text_index: int = -1          # highest pool index of any text it trained on (< size)
    head: str = "new"                 # "shipped", "warmed up" or "new"
    # Training batches with no maskable token, which contributed no gradient (this process's, since the model
    # was prepared: a Trainer checkpoint resumed from holds no count of its earlier steps).
    batches_without_targets: int = 0


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
    if max_seq_length and wanted > limit:  # said once per plan: the recorded chunk_length is the capped one
        logger.warning("--max-seq-length %d is longer than the model's %d positions: chunks are %d tokens",
                       wanted, limit, limit)
    return max(8, min(wanted, limit))


def tokenize_texts(texts: Sequence[str], tokenizer, batch_size: int = 2048) -> TokenizedTexts:
    """Token ids of every text, with special tokens and without truncation, in flat arrays.

    Tokenised a batch at a time, so the Python lists the tokenizer returns never hold more than
    one batch.
    """
    parts = []
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start:start + batch_size])
        parts.append(TokenizedTexts.from_lists(
            tokenizer(batch, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]))
    return TokenizedTexts.concatenate(parts)



def pack_token_lists(encoded: TokenizedTexts | Sequence[Sequence[int]], chunk_length: int) -> list[list[int]]:
    """Pack tokenised texts into chunks of ``chunk_length`` tokens, keeping every token."""
    if not len(encoded):
        return []
    chunks, _, _ = pack_segments(encoded, [len(encoded)], chunk_length)
    return chunks.to_lists()


def pack_into_chunks(texts: Sequence[str], tokenizer, chunk_length: int) -> list[list[int]]:
    """Tokenise ``texts`` (with special tokens) and pack the stream into ``chunk_length`` chunks.

    Every token of every text is kept: the last chunk may be shorter, and a long text simply
    continues into the next chunk.
    """
    if chunk_length < 2:
        raise ValueError(f"chunk_length must be >= 2, got {chunk_length}")
    return pack_token_lists(tokenize_texts(texts, tokenizer), chunk_length)


def quiet_transformers():
    """A context manager: transformers' warnings and progress bars off for a block (loading a model whose new
    head is expected to be initialised), restored after it."""
    from transformers.utils import logging as hf_logging

    @contextlib.contextmanager
    def quiet():
        before = hf_logging.get_verbosity()
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            yield
        finally:
            hf_logging.set_verbosity(before)
            if bars:
                hf_logging.enable_progress_bar()

    return quiet()


def build_mlm_model(model) -> tuple[nn.Module, bool]:
    """A ``*ForMaskedLM`` model whose encoder holds ``model``'s transformer weights.

    Returns ``(mlm, shipped)``: when the transformer's source checkpoint ships a trained MLM head
    (``bert-base-uncased`` does; sentence-transformers checkpoints do not) that head is used and
    ``shipped`` is True; otherwise the head is new (the config's initialisation, decoder tied to
    the word embeddings).
    """
    from transformers import AutoModelForMaskedLM

    encoder = transformer_module(model).auto_model
    mlm, shipped = None, False
    source = getattr(encoder, "name_or_path", None) or getattr(encoder.config, "_name_or_path", None)
    if source:
        try:
            with quiet_transformers(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loaded, info = AutoModelForMaskedLM.from_pretrained(source, output_loading_info=True)
            head = _head_name(loaded)
            missing_head = [k for k in info.get("missing_keys", []) if head and k.startswith(f"{head}.")]
            if head and not missing_head:
                mlm, shipped = loaded, True
        except Exception as exc:  # no MLM class for this architecture, files not reachable, ...
            logger.debug("No shipped MLM head at %s: %s", source, exc)
    if mlm is None:
        mlm = AutoModelForMaskedLM.from_config(copy.deepcopy(encoder.config))
    result = mlm.base_model.load_state_dict(encoder.state_dict(), strict=False)
    missing = [key for key in result.missing_keys if "pooler" not in key]
    if missing:
        raise RuntimeError(f"Encoder weights do not fit the MLM model: missing {missing[:5]}")
    mlm.tie_weights()
    return mlm, shipped


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

    def __init__(self, mlm: nn.Module, teacher: nn.Module | None = None, distill_weight: float = 0.0) -> None:
        super().__init__()
        self.mlm = mlm
        self.head_name = _head_name(mlm)
        self.distill_weight = float(distill_weight)
        # The frozen factory encoder (mlm-distill), kept outside the module tree on purpose: it is not
        # trained, saved, checkpointed or handed to the optimizer, and the saved model never holds it.
        self._teacher = (teacher,) if teacher is not None and self.distill_weight > 0 else ()
        from .trainer import shared_tensor_names

        # Tied weights are stored once in a Trainer checkpoint; the Trainer expects these missing.
        self._keys_to_ignore_on_save = shared_tensor_names(self) or None
        # Batches with no masked token (nothing to predict), counted for the point's statistics.
        self.batches_without_targets = 0

    def distillation(self, hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask) -> torch.Tensor:
        """Mean over the batch of 1 - cos(pooled student, pooled teacher), both on the same (masked) chunk.

        Mean pooling over real tokens, then L2 normalisation: the geometry all-MiniLM-L6-v2 and most
        sentence-transformers models embed with. Before the first update the term is 0 up to the
        student's dropout (the teacher runs in eval mode): it penalises drift from the factory embedding.
        """
        teacher = self._teacher[0]
        if next(teacher.parameters()).device != hidden.device:
            teacher.to(hidden.device)
        mask = (attention_mask if attention_mask is not None else torch.ones_like(input_ids)).unsqueeze(-1)
        mask = mask.to(hidden.dtype)

        def pooled(states: torch.Tensor) -> torch.Tensor:
            mean = (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            return nn.functional.normalize(mean.float(), dim=-1)

        with torch.no_grad():
            target = pooled(teacher(input_ids=input_ids, attention_mask=attention_mask)[0])
        return (1.0 - (pooled(hidden) * target).sum(-1)).mean()

    def tie_weights(self) -> None:
        """Re-tie the decoder to the input embeddings (the Trainer calls it after loading weights).

        Under LoRA the head is peft's trainable copy (``modules_to_save``), no longer tied: nothing to do.
        """
        if any(".modules_to_save." in f".{name}." for name, _ in self.mlm.named_modules()):
            return
        self.mlm.tie_weights()

    def forward(self, input_ids, attention_mask=None, labels=None, token_type_ids=None,
                num_items_in_batch=None, masked_positions=None, masked_labels=None, **_: Any):
        if labels is None and masked_labels is None:
            return self.mlm(input_ids=input_ids, attention_mask=attention_mask)
        if masked_positions is not None and masked_labels is not None and self.head_name is not None:
            return {"loss": self._gathered_loss(input_ids, attention_mask, masked_positions, masked_labels,
                                                num_items_in_batch)}
        selected = labels != -100
        if not bool(selected.any()):
            # Nothing to predict in this batch (texts of special / unknown tokens only: emoji, symbols): the step
            # learns nothing. The loss is a zero still connected to every trainable weight (zero gradients), so
            # backward works when only the head trains (head warmup: the encoder's output has no grad) and every
            # DDP rank reduces the same parameters.
            self.batches_without_targets += 1
            if self.batches_without_targets == 1:
                logger.warning("A training batch has no maskable token (its texts are only special or unknown "
                               "tokens, e.g. emoji); such batches contribute no gradient and are counted in "
                               "finetune_stats.json (batches_without_targets)")
            trainable = [param.sum() for param in self.parameters() if param.requires_grad]
            return {"loss": torch.stack(trainable).sum() * 0.0}
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
        if self._teacher:
            loss = loss + self.distill_weight * self.distillation(hidden, input_ids, attention_mask)
        return {"loss": loss}


    def _gathered_loss(self, input_ids, attention_mask, masked_positions, masked_labels, num_items_in_batch):
        """The loss on the collator's fixed-shape masked positions (:class:`PositionalMaskingCollator`).

        The head runs on a gathered ``(capacity, hidden)`` block whose padding rows (label -100) add an exact 0 to
        the summed cross-entropy: no data-dependent shape and no branch on the device's values, so a step never
        waits for the device. A batch without targets gives a loss of 0 still connected to the head (zero
        gradients, and every DDP rank reduces the same parameters); the trainer counts such batches from the
        collator's host-side ``masked_count``.
        """
        hidden = self.mlm.base_model(input_ids=input_ids, attention_mask=attention_mask)[0]
        head = getattr(self.mlm, self.head_name)
        gathered = hidden.reshape(-1, hidden.shape[-1]).index_select(0, masked_positions)
        summed = nn.functional.cross_entropy(head(gathered).float(), masked_labels, ignore_index=-100,
                                             reduction="sum")
        count = num_items_in_batch if num_items_in_batch is not None else (masked_labels != -100).sum()
        loss = summed / _as_count(count, summed)
        if self._teacher:
            loss = loss + self.distill_weight * self.distillation(hidden, input_ids, attention_mask)
        return loss


def _as_count(value, like: torch.Tensor) -> torch.Tensor:
    count = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    return count.to(device=like.device, dtype=torch.float32).clamp_min(1.0)



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
        # A new head must learn too, or the loss stays near log(vocab).
        modules_to_save=[head] if head else None,
    )
    return get_peft_model(mlm, lora_config)


@dataclass
class MLMSetup:
    """What the Trainer trains: the MLM model (LoRA-injected with ``config.lora``) and its loss wrapper."""

    mlm: nn.Module
    peft_model: nn.Module | None
    trainable: SparseMaskedLM
    tokenizer: Any
    chunk_length: int
    head_shipped: bool = False


def prepare_mlm(model, config: FinetuneConfig, seed: int) -> MLMSetup:
    """Build the MLM model on ``model``'s transformer weights (+ LoRA), seeded for a new head.

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
    mlm, shipped = build_mlm_model(model)
    mlm.to(model.device)
    teacher = None
    distill_weight = float(config.distill_weight or 0.0)  # None: no term (FinetuneConfig.for_objective resolves it)
    if distill_weight > 0:  # mlm-distill: the factory encoder, frozen, copied before LoRA touches it
        teacher = copy.deepcopy(mlm.base_model).eval().requires_grad_(False)
    if not config.train_word_embeddings:
        mlm.get_input_embeddings().weight.requires_grad_(False)  # and the decoder tied to it
    peft_model = _apply_lora(mlm, config) if config.lora else None
    return MLMSetup(mlm=mlm, peft_model=peft_model,
                    trainable=SparseMaskedLM(mlm, teacher=teacher, distill_weight=distill_weight),
                    tokenizer=tokenizer, chunk_length=chunk_length, head_shipped=shipped)


def head_parameters(setup: MLMSetup) -> dict[str, nn.Parameter]:
    """The MLM head's own parameters (names in ``setup.trainable``), without the tied word embeddings."""
    head_name = setup.trainable.head_name
    if head_name is None:
        return {}
    encoder_ids = {id(p) for p in setup.mlm.base_model.parameters()}
    prefix = f"mlm.{head_name}."
    return {name: param for name, param in setup.trainable.named_parameters(remove_duplicate=False)
            if name.startswith(prefix) and id(param) not in encoder_ids}


@contextlib.contextmanager
def only_head_trainable(setup: MLMSetup):
    """Freeze everything but the head (the encoder, LoRA adapters and tied embeddings) inside the block."""
    params = dict(setup.trainable.named_parameters())
    before = {name: p.requires_grad for name, p in params.items()}
    head = head_parameters(setup)
    try:
        for name, param in params.items():
            param.requires_grad_(name in head and ".original_module." not in name)
        yield
    finally:
        for name, param in params.items():
            param.requires_grad_(before[name])


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


# --------------------------------------------------------------------------------------------
# Running the Trainer on a planned stream
# --------------------------------------------------------------------------------------------
@dataclass
class StreamRun:
    """What one Trainer run over a chunk stream did."""

    progress: Any            # the (restored) PointProgress callback
    seconds: float
    global_step: int


def run_stream(
    setup: MLMSetup,
    plan: CurvePlan,
    stream: np.ndarray,
    lr_factor: Callable[[int], float],
    *,
    max_steps: int,
    config: FinetuneConfig,
    seed: int,
    device: str,
    output_dir: str | Path,
    learning_rate: float | None = None,
    resume_from: str | Path | None = None,
    save_at: int | None = None,
    callbacks: Sequence[Any] = (),
    show_progress: bool = True,
    audit: list[tuple[int, int]] | None = None,
) -> StreamRun:
    """Train ``setup`` with a :class:`CurveTrainer` on ``stream`` (chunk ids of ``plan``), in order.

    ``resume_from`` is a Trainer checkpoint (model, head, optimizer, scheduler, RNG, counters);
    ``save_at`` saves one at that global step and stops there.
    """
    from .trainer import ChunkStream, CurveTrainer, PointProgress, PositionalMaskingCollator, StopAndSave, \
        route_trainer_logs, training_arguments

    rate = float(learning_rate if learning_rate is not None else config.effective_learning_rate())
    args = training_arguments(config, output_dir=output_dir, seed=seed, max_steps=max_steps, device=device,
                              learning_rate=rate, show_progress=show_progress, save=save_at is not None,
                              # one value for every run of a plan: a resumed checkpoint expects the same
                              logging_steps=max(1, max(r.steps for r in plan.recipes.values()) // 20))
    own_callbacks: list[Any] = [PointProgress(peak_lr=rate)]
    if save_at is not None:
        own_callbacks.append(StopAndSave(save_at))
    collator = PositionalMaskingCollator(setup.tokenizer, config.mlm_probability, seed)
    if audit is not None:
        args.dataloader_num_workers = 0  # the audit list lives in this process, not in a worker's copy
        inner = collator

        def collator(examples, _inner=inner):  # type: ignore[no-redef]
            audit.extend((int(e["draw"]), int(e["chunk"])) for e in examples)
            return _inner(examples)

    trainer = CurveTrainer(
        model=setup.trainable, args=args, data_collator=collator, train_dataset=ChunkStream(plan.chunks, stream),
        callbacks=[*own_callbacks, *callbacks], lr_factor=lr_factor,
    )
    route_trainer_logs(trainer, show_progress)  # its log dicts to the run's log file, not the terminal
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
    seconds = time.perf_counter() - started
    progress = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, PointProgress))
    return StreamRun(progress=progress, seconds=seconds, global_step=int(trainer.state.global_step))


def warm_up_head(
    setup: MLMSetup,
    plan: CurvePlan,
    config: FinetuneConfig,
    *,
    seed: int,
    device: str,
    work_dir: str | Path,
    callbacks: Sequence[Any] = (),
    show_progress: bool = True,
) -> dict[str, torch.Tensor] | None:
    """Train a new head alone (encoder frozen) on the smallest subset; return its weights.

    None when the model shipped its head or ``head_warmup_steps`` is 0. Only ``pool[:sizes[0]]``
    is drawn, so every point still trains on nothing beyond its own first ``n`` texts.
    """
    steps = int(config.head_warmup_steps)
    if setup.head_shipped or steps <= 0 or setup.trainable.head_name is None:
        return None
    stream = plan.head_warmup_stream(steps)
    with only_head_trainable(setup):
        run_stream(setup, plan, stream, lambda step: 1.0, max_steps=steps, config=config, seed=seed, device=device,
                   output_dir=work_dir, learning_rate=float(config.head_warmup_learning_rate),
                   callbacks=callbacks, show_progress=show_progress)
    return {name: param.detach().to("cpu", copy=True) for name, param in head_parameters(setup).items()}


def load_head(setup: MLMSetup, head_state: dict[str, torch.Tensor] | None) -> None:
    if not head_state:
        return
    params = head_parameters(setup)
    with torch.no_grad():
        for name, value in head_state.items():
            params[name].copy_(value.to(params[name].device))


def head_label(setup: MLMSetup, config: FinetuneConfig) -> str:
    """How the point's MLM head started: shipped with the model, warmed up alone first, or new."""
    if setup.head_shipped:
        return "shipped"
    return "warmed up" if int(config.head_warmup_steps) > 0 and setup.trainable.head_name else "new"


def point_result(model, setup: MLMSetup, plan: CurvePlan, size: int, stream: np.ndarray, run: StreamRun,
                 *, schedule: str, head: str, device=None) -> FinetuneResult:
    """The finetuned SentenceTransformer of a point (LoRA merged into a copy) and its statistics."""
    k = plan.sizes.index(size)
    finetuned = sentence_transformer_with_encoder(model, finetuned_encoder_state(setup, inplace=False), device)
    return FinetuneResult(
        model=finetuned,
        texts_seen=int(round(plan.epochs * size)),
        tokens_seen=plan.tokens(stream),
        optimizer_steps=run.global_step,
        train_seconds=run.seconds,
        final_loss=run.progress.mean_loss,
        chunk_length=plan.chunk_length,
        num_chunks=int(plan.segment_ends[k]),
        schedule=schedule,
        recipe=plan.recipes[size],
        lr_integral=float(run.progress.lr_sum),
        final_lr=run.progress.final_lr,
        subset_epochs=len(stream) / max(1, plan.segment_ends[k]),
        max_text_index=plan.max_text_index(stream),
        head=head,
        batches_without_targets=int(getattr(setup.trainable, "batches_without_targets", 0)),
    )


def check_no_leak(result: FinetuneResult, size: int) -> None:
    """The guarantee the curve rests on: f<n> trained on nothing beyond pool text n-1."""
    from ..errors import SubsetLeakError

    if result.max_text_index >= size:
        raise SubsetLeakError(f"f{size} trained on pool text {result.max_text_index} (only 0..{size - 1} allowed).")


def plan_for(setup: MLMSetup, pool_texts: Sequence[str], sizes: Sequence[int], config: FinetuneConfig,
             seed: int) -> CurvePlan:
    from .trainer import world_size

    encoded = tokenize_texts(pool_texts[: max(sizes)], setup.tokenizer)
    return plan_curve(encoded, sizes, config, seed=seed, chunk_length=setup.chunk_length, world_size=world_size())


# --------------------------------------------------------------------------------------------
# The independent schedule
# --------------------------------------------------------------------------------------------
def finetune_independent(
    model,
    pool_texts: Sequence[str],
    sizes: Sequence[int],
    config: FinetuneConfig,
    *,
    seed: int,
    device: str | None = "auto",
    work_dir: str | Path,
    completed: set[int] | frozenset[int] = frozenset(),
    on_point: Callable[[int, FinetuneResult], None],
    callbacks: Sequence[Any] = (),
    show_progress: bool = True,
    audit: dict[str, list] | None = None,
    log_dir: str | Path | None = None,
) -> CurvePlan:
    """Train every size in ``sizes`` from the base model on its own recipe; returns the plan.

    Each point ``n`` gets a fresh MLM model (the same warmed-up head for all), draws only from
    ``pool_texts[:n]`` and is handed to ``on_point(n, result)`` in ascending order. Sizes in
    ``completed`` are skipped. TensorBoard logs (``report_to``) are moved to ``log_dir``.
    """
    device = resolve_device(device)
    sizes = sorted(int(s) for s in sizes)
    work_dir = Path(work_dir)
    base_setup = prepare_mlm(model, config, seed)
    plan = plan_for(base_setup, pool_texts, sizes, config, seed)
    pending = [s for s in sizes if s not in completed]
    if not pending:
        return plan
    try:
        _train_independent_points(model, plan, pending, base_setup, config, seed=seed, device=device,
                                  work_dir=work_dir, on_point=on_point, callbacks=callbacks,
                                  show_progress=show_progress, audit=audit, log_dir=log_dir)
    finally:  # Trainer work folders hold nothing a rerun needs
        keep_logs(work_dir, log_dir)
        shutil.rmtree(work_dir, ignore_errors=True)
    return plan


def _train_independent_points(model, plan: CurvePlan, pending: list[int], base_setup: MLMSetup,
                              config: FinetuneConfig, *, seed: int, device: str, work_dir: Path,
                              on_point: Callable[[int, FinetuneResult], None], callbacks: Sequence[Any],
                              show_progress: bool, audit: dict[str, list] | None, log_dir) -> None:
    head_state = warm_up_head(base_setup, plan, config, seed=seed, device=device, work_dir=work_dir / "head",
                              callbacks=callbacks, show_progress=show_progress)
    for size in pending:
        recipe = plan.recipes[size]
        logger.info("f%d: independent MLM run, %d steps (warmup %d, cooldown %d)", size, recipe.steps,
                    recipe.warmup_steps, recipe.cooldown_steps)
        setup = prepare_mlm(model, config, seed)
        load_head(setup, head_state)
        stream = plan.independent_stream(size)
        draws: list | None = [] if audit is not None else None
        run = run_stream(setup, plan, stream, recipe.lr_factor, max_steps=recipe.steps, config=config, seed=seed,
                         device=device, output_dir=work_dir / f"f{size}", callbacks=callbacks,
                         show_progress=show_progress, audit=draws)
        if audit is not None:
            audit[f"independent:{size}"] = draws
        result = point_result(model, setup, plan, size, stream, run, schedule="independent",
                              head=head_label(setup, config), device=result_device(device))
        check_no_leak(result, size)
        keep_logs(work_dir, log_dir)
        shutil.rmtree(work_dir / f"f{size}", ignore_errors=True)
        on_point(size, result)


def keep_logs(work_dir: str | Path, log_dir: str | Path | None) -> None:
    """Move the Trainer runs' TensorBoard folders (``<output_dir>/runs``) out of a work folder."""
    if log_dir is None:
        return
    for runs in sorted(Path(work_dir).glob("**/runs")):
        if not runs.is_dir():
            continue
        target = Path(log_dir) / runs.parent.relative_to(work_dir)
        target.mkdir(parents=True, exist_ok=True)
        for entry in runs.iterdir():
            destination = target / entry.name
            if not destination.exists():
                shutil.move(str(entry), destination)


def result_device(device: str):
    """Where a finished point's model goes: None (it stays where it trained), or under several processes this
    process's own cuda:<local rank>."""
    from .trainer import world_size

    # Under several processes each keeps its copy on its own device (cuda:<local rank>).
    if world_size() > 1 and str(device).startswith("cuda"):
        import os

        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return None


def finetune_sentence_transformer(
    model,
    texts: Sequence[str],
    config: FinetuneConfig,
    *,
    seed: int = 42,
    device: str | None = "auto",
    work_dir: str | Path | None = None,
    callbacks: Sequence[Any] = (),
    show_progress: bool = True,
) -> FinetuneResult:
    """MLM-finetune a copy of ``model`` on ``texts`` (one point of the curve) and return it.

    ``model`` itself is left unchanged; the returned SentenceTransformer has the same module stack
    (Pooling, Normalize, ...) with the finetuned transformer weights. Under ``torchrun`` /
    ``accelerate launch`` the Trainer trains data-parallel over the processes (``batch_size`` is
    per process) and every process returns the same model.
    """
    if not texts:
        raise ValueError("finetune_sentence_transformer needs at least one text.")
    results: dict[int, FinetuneResult] = {}
    owns = work_dir is None
    path = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="hf-curve-train-"))
    try:
        finetune_independent(model, list(texts), [len(texts)], config, seed=seed, device=device, work_dir=path,
                             on_point=lambda n, r: results.setdefault(n, r), callbacks=callbacks,
                             show_progress=show_progress)
    finally:
        if owns:
            shutil.rmtree(path, ignore_errors=True)
    return results[len(texts)]
