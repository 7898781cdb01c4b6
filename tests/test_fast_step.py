"""The step without host synchronisation keeps the recipe: the same masks, the same loss, the same weights.

Each speed change is compared with the path it replaces: the per-example collator (re-implemented here as
the reference), the boolean-indexed sparse head, the Trainer's NaN filter, the unfused AdamW, masking in the
main process.
"""

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from transformers import TrainerCallback

from hf_finetune_curve import FinetuneConfig
from hf_finetune_curve.data.sample_data import generate_listings
from hf_finetune_curve.train.finetune import SparseMaskedLM, build_mlm_model, finetune_sentence_transformer, \
    pack_into_chunks
from hf_finetune_curve.train.trainer import ChunkStream, PositionalMaskingCollator, default_optimizer, \
    fused_adamw_available, training_arguments

TEXTS = [row["text"] for row in generate_listings(60, seed=5)]


@pytest.fixture
def tiny_model(tiny_model_dir):
    return SentenceTransformer(str(tiny_model_dir), device="cpu")


def reference_collate(collator: PositionalMaskingCollator, examples):
    """The per-example collator the vectorised one replaced (its code before the change)."""
    tokenizer = collator.tokenizer
    longest = max(len(e["input_ids"]) for e in examples)
    input_ids = torch.full((len(examples), longest), collator.pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), longest), dtype=torch.long)
    labels = torch.full((len(examples), longest), -100, dtype=torch.long)
    for row, example in enumerate(examples):
        ids = torch.tensor(example["input_ids"], dtype=torch.long)
        generator = collator._generator(int(example["chunk"]), int(example["draw"]))
        maskable = ~torch.isin(ids, collator.special_ids)
        chosen = (torch.rand(len(ids), generator=generator) < collator.mlm_probability) & maskable
        draw = torch.rand(len(ids), generator=generator)
        random_tokens = torch.randint(collator.vocab_size, (len(ids),), generator=generator)
        corrupted = ids.clone()
        corrupted[chosen & (draw < 0.8)] = tokenizer.mask_token_id
        swap = chosen & (draw >= 0.8) & (draw < 0.9)
        corrupted[swap] = random_tokens[swap]
        input_ids[row, : len(ids)] = corrupted
        attention[row, : len(ids)] = 1
        labels[row, : len(ids)] = torch.where(chosen, ids, torch.full_like(ids, -100))
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


def _stream(tiny_model, draws=40, chunk_length=32):
    chunks = pack_into_chunks(TEXTS, tiny_model.tokenizer, chunk_length)
    order = np.random.default_rng(3).integers(0, len(chunks), size=draws)
    return ChunkStream(chunks, order, first_draw=5)


def test_vectorised_collator_masks_exactly_like_the_per_example_one(tiny_model):
    collator = PositionalMaskingCollator(tiny_model.tokenizer, 0.2, seed=7)
    stream = _stream(tiny_model)
    for start in range(0, len(stream), 8):
        examples = [stream[i] for i in range(start, min(start + 8, len(stream)))]
        batch, reference = collator(examples), reference_collate(collator, examples)
        for key in ("input_ids", "attention_mask", "labels"):
            assert torch.equal(batch[key], reference[key]), key
        # The fixed-shape positions list exactly the labelled tokens, in row-major order, then padding.
        flat = (reference["labels"] != -100).reshape(-1).nonzero().squeeze(1)
        count = batch["masked_count"]
        assert count == len(flat) > 0 and isinstance(count, int)
        assert torch.equal(batch["masked_positions"][:count], flat)
        assert torch.equal(batch["masked_labels"][:count], reference["labels"].reshape(-1)[flat])
        assert (batch["masked_labels"][count:] == -100).all() and (batch["masked_positions"][count:] == 0).all()
        # Its length depends on the batch's shape only, not on how many tokens were drawn.
        assert len(batch["masked_positions"]) == collator.target_capacity(batch["input_ids"].numel(), 0)


def test_capacity_grows_instead_of_dropping_targets(tiny_model):
    collator = PositionalMaskingCollator(tiny_model.tokenizer, 0.2, seed=0)
    assert collator.target_capacity(16 * 128, 0) >= 16 * 128 * 0.2
    assert collator.target_capacity(16 * 128, 2000) == 2048


def test_masks_do_not_depend_on_dataloader_workers(tiny_model):
    collator = PositionalMaskingCollator(tiny_model.tokenizer, 0.2, seed=11)
    stream = _stream(tiny_model)

    def batches(workers):
        loader = torch.utils.data.DataLoader(stream, batch_size=8, sampler=torch.utils.data.SequentialSampler(stream),
                                             collate_fn=collator, num_workers=workers)
        return list(loader)

    serial, parallel = batches(0), batches(2)
    assert len(serial) == len(parallel) == 5
    for a, b in zip(serial, parallel):
        for key in ("input_ids", "labels", "masked_positions", "masked_labels"):
            assert torch.equal(a[key], b[key]), key
    # ... while another seed masks differently (the comparison above can fail).
    other = PositionalMaskingCollator(tiny_model.tokenizer, 0.2, seed=12)([stream[i] for i in range(8)])
    assert not torch.equal(other["labels"], serial[0]["labels"])


def test_gathered_head_gives_the_boolean_indexed_loss_and_gradients(tiny_model):
    torch.manual_seed(0)
    mlm, _ = build_mlm_model(tiny_model)
    mlm.eval()
    model = SparseMaskedLM(mlm)
    collator = PositionalMaskingCollator(tiny_model.tokenizer, 0.2, seed=1)
    stream = _stream(tiny_model)
    batch = collator([stream[i] for i in range(8)])
    outcomes = []
    for inputs in ({k: batch[k] for k in ("input_ids", "attention_mask", "labels")},  # boolean indexing
                   {k: v for k, v in batch.items() if k != "masked_count"}):           # gathered, fixed shape
        model.zero_grad()
        loss = model(**inputs)["loss"]
        loss.backward()
        outcomes.append((loss.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (loss_a, grads_a), (loss_b, grads_b) = outcomes
    assert loss_b == pytest.approx(loss_a, rel=1e-6)
    assert len(grads_a) == len(grads_b) > 0
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7)


def test_fused_adamw_is_chosen_where_the_device_has_it():
    assert default_optimizer("cpu") == ("adamw_torch_fused" if fused_adamw_available("cpu") else "adamw_torch")
    assert not fused_adamw_available("no-such-device")


def test_no_nan_filter_sync_and_trainer_args_still_override(tmp_path):
    args = training_arguments(FinetuneConfig(), output_dir=tmp_path, seed=0, max_steps=2, device="cpu",
                              learning_rate=1e-4, show_progress=False)
    assert args.logging_nan_inf_filter is False and args.dataloader_num_workers == 0
    args = training_arguments(FinetuneConfig(trainer_kwargs={"optim": "adamw_torch", "dataloader_num_workers": 2}),
                              output_dir=tmp_path, seed=0, max_steps=2, device="cpu", learning_rate=1e-4,
                              show_progress=False)
    assert args.optim.value == "adamw_torch" and args.dataloader_num_workers == 2


class _Losses(TrainerCallback):
    def __init__(self):
        self.losses = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append((state.global_step, float(logs["loss"])))


def _train(tiny_model, trainer_kwargs=None):
    config = FinetuneConfig(epochs=2, batch_size=8, max_seq_length=32, learning_rate=5e-3, head_warmup_steps=3,
                            trainer_kwargs=trainer_kwargs or {})
    losses = _Losses()
    result = finetune_sentence_transformer(tiny_model, TEXTS, config, seed=0, device="cpu", show_progress=False,
                                           callbacks=[losses])
    weights = {k: v.clone() for k, v in result.model[0].auto_model.state_dict().items()}
    return losses.losses, weights, result


def test_fast_step_trains_like_the_old_eager_path(tiny_model, monkeypatch):
    fast_losses, fast_weights, fast = _train(tiny_model)
    # Masking in two workers: bit-identical (the same masks, the same order).
    worker_losses, worker_weights, _ = _train(tiny_model, {"dataloader_num_workers": 2})
    assert worker_losses == fast_losses
    for key, value in fast_weights.items():
        assert torch.equal(worker_weights[key], value), key
    # The old path: boolean-indexed head (no fixed-shape positions), the NaN filter, the unfused AdamW.
    full_call = PositionalMaskingCollator.__call__

    def without_positions(self, examples):
        batch = full_call(self, examples)
        return {k: v for k, v in batch.items() if k not in ("masked_positions", "masked_labels")}

    monkeypatch.setattr(PositionalMaskingCollator, "__call__", without_positions)
    old_losses, old_weights, old = _train(tiny_model, {"logging_nan_inf_filter": True, "optim": "adamw_torch"})
    assert fast.optimizer_steps == old.optimizer_steps > 10
    assert [step for step, _ in fast_losses] == [step for step, _ in old_losses] and len(fast_losses) > 5
    # Tolerance: the gathered head and dropping the NaN filter are bit-identical on their own; the fused AdamW
    # rounds differently (float32), so the losses agree to 1e-6 relative and the weights to 1e-5 absolute, except
    # the attention key biases: softmax ignores them, their gradient is pure rounding noise, and Adam normalises
    # that noise into lr-sized moves (bounded by lr x steps, here about 0.1; measured 1.6e-4).
    np.testing.assert_allclose([loss for _, loss in fast_losses], [loss for _, loss in old_losses], rtol=1e-6)
    for key, value in old_weights.items():
        bound = 1e-3 if key.endswith("attention.self.key.bias") else 1e-5
        assert float((fast_weights[key] - value).abs().max()) < bound, key
    start = tiny_model[0].auto_model.state_dict()
    assert max(float((fast_weights[k] - start[k]).abs().max()) for k in start) > 1e-2  # training did move them
