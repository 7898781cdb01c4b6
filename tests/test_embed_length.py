"""Long texts: the long synthetic write-ups, the truncation report, --embed-max-length and the token cache."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from hf_finetune_curve import ConfigError, CurveConfig, load_corpus, run_curve
from hf_finetune_curve.data.sample_data import TextStyle, generate_listings, parse_text_style
from hf_finetune_curve.score.embed import TokenCache, check_max_length, embed_texts, token_length_report


@pytest.fixture(scope="module")
def long_rows():
    return generate_listings(40, seed=3, style="long")


def test_long_style_keeps_every_row_and_price_and_writes_several_hundred_words(long_rows):
    short = generate_listings(40, seed=3)
    assert [r["price"] for r in long_rows] == [r["price"] for r in short]
    assert [r["mileage"] for r in long_rows] == [r["mileage"] for r in short]
    words = sorted(len(r["text"].split()) for r in long_rows)
    assert words[0] >= 200 and words[len(words) // 2] >= 300, words
    assert len({r["text"] for r in long_rows}) == len(long_rows)
    # Deterministic and prefix-stable, like the short style; the short corpus is untouched by the long one.
    assert generate_listings(10, seed=3, style=TextStyle.LONG) == long_rows[:10]
    assert generate_listings(40, seed=3) == short


def test_long_style_spreads_the_price_facts_through_the_text(long_rows):
    """The title comes last, and the mileage sentence lands anywhere: often past the first 256 tokens' worth."""
    positions = []
    for row in long_rows:
        text = row["text"]
        last = text.rsplit("\n\n", 1)[-1]
        assert "title" in last or "bill of sale" in last, last
        mileage = re.search(r"miles|odometer|Mileage", text)  # no price-neutral sentence mentions either
        assert mileage, text
        positions.append(mileage.start() / len(text))
    assert min(positions) < 0.3 and max(positions) > 0.6, positions


def test_text_style_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"one of \['short', 'long'\]; got 'medium'"):
        parse_text_style("medium")


def test_the_module_command_writes_a_long_corpus_that_loads(tmp_path):
    out = tmp_path / "long.jsonl.gz"
    done = subprocess.run([sys.executable, "-m", "hf_finetune_curve.data.sample_data", str(out), "--rows", "12",
                           "--style", "long"], capture_output=True, text=True, check=True)
    assert "Wrote 12 long synthetic listings" in done.stdout
    rows = [json.loads(line) for line in gzip.open(out, "rt", encoding="utf-8")]
    assert [r["price"] for r in rows] == [r["price"] for r in generate_listings(12)]
    corpus = load_corpus(str(out))
    assert len(corpus) == 12 and min(len(t.split()) for t in corpus.texts) >= 200


def test_truncation_report_counts_the_texts_past_the_limit(tiny_model):
    texts = ["car " * 10, "car " * 100, "car " * 200, "red car"]
    report = token_length_report(tiny_model, texts, max_length=64)
    # "car " * n is n tokens plus [CLS] and [SEP].
    assert (report.texts, report.truncated, report.tokens_max) == (4, 2, 202)
    assert report.over_median == pytest.approx((102 - 64 + 202 - 64) / 2)
    assert report.tokens_lost_share == pytest.approx((38 + 138) / (12 + 102 + 202 + 4))
    assert "2 of 4 texts (50.0%) exceed the embedding model's 64 tokens" in report.summary()
    assert token_length_report(tiny_model, texts, max_length=64).to_dict() == report.to_dict()


def test_token_cache_matches_encode_and_tokenises_once(tiny_model, long_rows):
    texts = [r["text"] for r in long_rows[:12]] + ["red car", "a blue coupe with a manual gearbox"]
    expected = tiny_model.encode(texts, batch_size=4, convert_to_numpy=True)
    tokens = TokenCache()
    first = embed_texts(tiny_model, texts, batch_size=4, show_progress=False, tokens=tokens).embeddings
    second = embed_texts(tiny_model, texts, batch_size=4, show_progress=False, tokens=tokens).embeddings
    assert np.abs(first - expected).max() < 1e-5 and np.array_equal(first, second)
    assert tokens.tokenizations == 1
    # Another length (or other texts) is tokenised afresh, and cut where asked.
    shorter = embed_texts(tiny_model, texts, batch_size=4, show_progress=False, tokens=tokens, max_length=16)
    assert tokens.tokenizations == 2 and tiny_model.max_seq_length == 64  # the model is left as it was
    tiny_model.max_seq_length = 16
    try:
        assert np.abs(shorter.embeddings - tiny_model.encode(texts, batch_size=4)).max() < 1e-5
    finally:
        tiny_model.max_seq_length = 64
    assert np.abs(shorter.embeddings[:12] - expected[:12]).max() > 1e-3  # the long ones did change


def test_embed_max_length_beyond_the_encoders_positions_is_refused(tiny_model):
    assert check_max_length(tiny_model, None) == 64
    with pytest.raises(ConfigError, match=r"must be in \[8, 64\] \(the encoder's max_position_embeddings\); got 65"):
        check_max_length(tiny_model, 65)
    with pytest.raises(ConfigError, match=r"embed_max_length must be a whole number >= 8 or none \(set with --embed-max-length\); got 4"):
        CurveConfig(embed_max_length=4)


def test_embed_max_length_is_recorded_reported_and_keyed(tmp_path, tiny_model_dir):
    data = tmp_path / "long.jsonl"
    rows = generate_listings(60, seed=5, style="long")
    data.write_text("".join(json.dumps({"text": r["text"], "price": r["price"]}) + "\n" for r in rows))
    common = dict(data=str(data), model=str(tiny_model_dir), sizes="0", probes="ridge", tfidf_baseline=False,
                  probe_seeds=1, bootstrap_resamples=100)
    default = CurveConfig(**common, output_dir=str(tmp_path / "default"))
    short = CurveConfig(**common, output_dir=str(tmp_path / "short"), embed_max_length=16)
    # Left at None the field keeps the key runs had before it existed (this value is main's before the field);
    # a length changes the key, so a finished run is never reused for another length.
    assert CurveConfig().result_key("abc") == "2a844123fbe2aec2"
    assert default.result_key("x") != short.result_key("x")
    first = run_curve(default, show_progress=False).points[0]
    second = run_curve(short, show_progress=False).points[0]
    assert first.r2_log != second.r2_log  # it read other tokens
    report = json.loads((tmp_path / "short" / "data_report.json").read_text())
    assert report["truncation"]["max_length"] == 16 and report["truncation"]["truncated"] == 60
    assert json.loads((tmp_path / "default" / "data_report.json").read_text())["truncation"]["max_length"] == 64
    config = json.loads((tmp_path / "short" / "config.json").read_text())
    assert config["config"]["embed_max_length"] == 16
    caches = [sorted(p.name for p in (tmp_path / name / "embeddings").rglob("*.npy")) for name in ("default", "short")]
    assert caches[0] and caches[1] and caches[0] != caches[1]
