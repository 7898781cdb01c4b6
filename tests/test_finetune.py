import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from hf_finetune_curve import CheckpointVerificationError, FinetuneConfig
from hf_finetune_curve.data.sample_data import generate_listings
from hf_finetune_curve.train.checkpoint import save_checkpoint
from hf_finetune_curve.train.finetune import (
    SparseMaskedLM,
    build_mlm_model,
    finetune_sentence_transformer,
    pack_into_chunks,
)

TEXTS = [row["text"] for row in generate_listings(60, seed=5)]


@pytest.fixture
def tiny_model(tiny_model_dir):
    return SentenceTransformer(str(tiny_model_dir), device="cpu")


def test_packing_keeps_every_token(tiny_model):
    tokenizer = tiny_model.tokenizer
    chunks = pack_into_chunks(TEXTS, tokenizer, chunk_length=32)
    stream = [token for ids in tokenizer(TEXTS, add_special_tokens=True)["input_ids"] for token in ids]
    assert [token for chunk in chunks for token in chunk] == stream
    assert all(len(chunk) == 32 for chunk in chunks[:-1])
    assert 1 <= len(chunks[-1]) <= 32
    # Long texts are not truncated: the stream is far longer than one chunk per text.
    assert len(chunks) > len(TEXTS)


def test_sparse_head_loss_equals_full_logits_loss(tiny_model):
    from transformers import DataCollatorForLanguageModeling

    torch.manual_seed(0)
    mlm, shipped = build_mlm_model(tiny_model)
    mlm.eval()
    assert not shipped  # a SentenceTransformer checkpoint has no MLM head
    chunks = pack_into_chunks(TEXTS[:10], tiny_model.tokenizer, chunk_length=32)
    collator = DataCollatorForLanguageModeling(tiny_model.tokenizer, mlm_probability=0.2)
    batch = collator([{"input_ids": chunk} for chunk in chunks[:8]])
    assert (batch["labels"] != -100).sum() > 0
    with torch.no_grad():
        full = mlm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
        sparse = SparseMaskedLM(mlm)(**batch)["loss"]
    assert sparse.item() == pytest.approx(full.item(), rel=1e-5, abs=1e-6)


def test_finetune_changes_weights_and_keeps_module_stack(tiny_model, tmp_path):
    before = tiny_model.encode(TEXTS[:4])
    config = FinetuneConfig(epochs=2, batch_size=8, max_seq_length=32, learning_rate=5e-3)
    result = finetune_sentence_transformer(tiny_model, TEXTS, config, seed=0, device="cpu", show_progress=False)
    finetuned = result.model
    assert [type(m).__name__ for m in finetuned] == [type(m).__name__ for m in tiny_model]
    np.testing.assert_allclose(tiny_model.encode(TEXTS[:4]), before)  # the input model is untouched
    assert np.abs(finetuned.encode(TEXTS[:4]) - before).max() > 1e-3
    # Every text at least twice (epochs=2), in the steps its recipe planned, the rate decayed to 0.
    chunks = pack_into_chunks(TEXTS, tiny_model.tokenizer, 32)
    assert result.num_chunks == len(chunks) and result.subset_epochs >= 2
    assert result.tokens_seen >= 2 * sum(len(c) for c in chunks)
    assert result.optimizer_steps == result.recipe.steps and result.final_loss is not None
    assert result.final_lr == 0.0 and result.lr_integral == pytest.approx(result.recipe.lr_integral())
    save_checkpoint(finetuned, tmp_path / "f60", TEXTS[:8])
    reloaded = SentenceTransformer(str(tmp_path / "f60"), device="cpu")
    assert [type(m).__name__ for m in reloaded] == ["Transformer", "Pooling", "Normalize"]
    np.testing.assert_allclose(reloaded.encode(TEXTS[:8]), finetuned.encode(TEXTS[:8]), atol=1e-5)


def test_lora_learns_and_merges_into_a_plain_checkpoint(tiny_model, tmp_path):
    config = FinetuneConfig(epochs=3, batch_size=8, max_seq_length=32, lora=True, lora_r=4,
                            lora_target_modules=["query", "value"])
    result = finetune_sentence_transformer(tiny_model, TEXTS, config, seed=0, device="cpu", show_progress=False)
    assert np.abs(result.model.encode(TEXTS[:4]) - tiny_model.encode(TEXTS[:4])).max() > 1e-4
    save_checkpoint(result.model, tmp_path / "lora", TEXTS[:8])
    files = {p.name for p in (tmp_path / "lora").iterdir()}
    assert "adapter_config.json" not in files and "modules.json" in files


def test_broken_save_is_caught(tiny_model, tmp_path, monkeypatch):
    original_save = SentenceTransformer.save

    def corrupting_save(self, path, *args, **kwargs):
        original_save(self, path, *args, **kwargs)
        from safetensors.torch import load_file, save_file

        weights_path = next(p for p in __import__("pathlib").Path(path).glob("*.safetensors"))
        weights = load_file(str(weights_path))
        key = next(k for k in weights if "layer.0.output.dense.weight" in k)
        weights[key] = weights[key] + torch.randn_like(weights[key])
        save_file(weights, str(weights_path), metadata={"format": "pt"})

    monkeypatch.setattr(SentenceTransformer, "save", corrupting_save)
    with pytest.raises(CheckpointVerificationError, match="does not embed like the trained model"):
        save_checkpoint(tiny_model, tmp_path / "broken", TEXTS[:8])
    assert not (tmp_path / "broken").exists()


def test_word_embeddings_are_frozen_unless_asked(tiny_model):
    trained = finetune_sentence_transformer(
        tiny_model, TEXTS[:20], FinetuneConfig(batch_size=8, max_seq_length=32, learning_rate=5e-3, min_steps=4,
                                               train_word_embeddings=True), seed=0, device="cpu", show_progress=False)
    before = tiny_model[0].auto_model.get_input_embeddings().weight
    assert (trained.model[0].auto_model.get_input_embeddings().weight - before).abs().max() > 0
    config = FinetuneConfig(batch_size=8, max_seq_length=32, learning_rate=5e-3, min_steps=4)
    assert not config.train_word_embeddings
    result = finetune_sentence_transformer(tiny_model, TEXTS[:20], config, seed=0, device="cpu", show_progress=False)
    before = tiny_model[0].auto_model.get_input_embeddings().weight
    after = result.model[0].auto_model.get_input_embeddings().weight
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    assert np.abs(result.model.encode(TEXTS[:4]) - tiny_model.encode(TEXTS[:4])).max() > 1e-4


@pytest.mark.parametrize("kwargs, pattern", [
    ({"not_a_field": 1}, "--trainer-arg not_a_field is refused: it is not a field --trainer-arg may set"),
    ({"learning_rate": 1e-3}, "--trainer-arg learning_rate is refused: use --learning-rate"),
    ({"lr_scheduler_type": "cosine"}, "lr_scheduler_type is refused: the recipe owns the schedule"),
])
def test_trainer_kwargs_are_validated(kwargs, pattern):
    from hf_finetune_curve import ConfigError

    with pytest.raises(ConfigError, match=pattern):  # when the config is built, before anything trains
        FinetuneConfig(batch_size=8, max_seq_length=32, trainer_kwargs=kwargs)


def test_any_other_training_argument_reaches_the_trainer(tiny_model):
    config = FinetuneConfig(batch_size=8, max_seq_length=32, learning_rate=5e-3, min_steps=3, head_warmup_steps=0)
    damped = FinetuneConfig(**{**config.__dict__, "trainer_kwargs": {"adam_epsilon": 10.0}})
    base = tiny_model.encode(TEXTS[:4])
    moved = {}
    for name, cfg in (("normal", config), ("damped", damped)):
        result = finetune_sentence_transformer(tiny_model, TEXTS[:10], cfg, seed=0, device="cpu", show_progress=False)
        moved[name] = np.abs(result.model.encode(TEXTS[:4]) - base).max()
    # Adam's epsilon far above the gradients' scale shrinks every update: the Trainer got it.
    assert moved["damped"] < moved["normal"] / 10
