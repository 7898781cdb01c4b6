"""Tiny models built in the test session, so the suite needs no download and stays fast."""

from __future__ import annotations

import inspect
import string
from pathlib import Path

# Words of the listing domain (both the synthetic car corpus and generic listing prose), so the
# tiny tokenizer produces real word pieces instead of a stream of [UNK].
_WORDS = """
the a an and or of in on with for to is this was are by at from as it its has have be been
car cars vehicle truck coupe sedan convertible wagon roadster hatchback suv pickup
porsche bmw mercedes benz ferrari toyota ford chevrolet honda land rover jeep datsun audi lotus
mazda nissan volkswagen jaguar alfa romeo dodge plymouth pontiac lexus subaru mini triumph mg
turbo carrera corvette mustang camaro miata bronco defender wrangler supra land cruiser golf
finished black white red blue silver green grey gray yellow orange over leather cloth interior
powered engine liter flat six inline four v8 v12 v6 twin turbocharged supercharged manual
automatic transmission speed gearbox miles mileage shows indicated odometer kilometers owner
owners one two three seller acquired bought purchased service records clean title salvage
rebuilt california texas florida new york history documented restored restoration original
paint repaint rust condition excellent good fair driver project modified modifications stock
wheels tires brakes suspension exhaust offered sale auction bid reserve no with without
listing apartment room bedroom bath kitchen private home house guests stay near downtown walk
minutes park parking wifi beach view city quiet cozy spacious modern studio night price
""".split()


def build_tiny_vocab() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = list(string.ascii_lowercase) + list(string.digits) + list(".,;:!?'\"()-$/&%#+")
    suffixes = ["##" + c for c in string.ascii_lowercase + string.digits]
    words = sorted(dict.fromkeys(_WORDS))
    return specials + pieces + suffixes + words


def build_tiny_sentence_transformer(path: str | Path, seed: int = 0, max_seq_length: int = 64) -> Path:
    """Save a SentenceTransformer with a random 2-layer BERT (hidden 32) to ``path`` and return it."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizer

    path = Path(path)
    hf_dir = path.with_name(path.name + "-hf")
    hf_dir.mkdir(parents=True, exist_ok=True)
    vocab = build_tiny_vocab()
    (hf_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    if "vocab" in inspect.signature(BertTokenizer.__init__).parameters:  # transformers >= 5
        tokenizer = BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True)
    else:
        tokenizer = BertTokenizer(vocab_file=str(hf_dir / "vocab.txt"), do_lower_case=True)
    tokenizer.model_max_length = max_seq_length
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_seq_length,
    )
    BertModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=max_seq_length)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")
    model.save(str(path))
    return path
