import gzip
import json

import numpy as np
import pandas as pd
import pytest

from hf_finetune_curve import CorpusError, load_corpus


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_embedded_default_corpus_loads_clean():
    corpus = load_corpus(None)
    assert len(corpus) == 2000
    assert corpus.report.rows_read == 2000
    assert sum(corpus.report.dropped.values()) == 0
    assert corpus.report.source.startswith("embedded:")
    assert np.all(corpus.targets > 0)


def test_malformed_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "price": 1}\n{"text": "b", "price": 2}\n{"text": "c", price: 3}\n')
    with pytest.raises(CorpusError, match=r"bad\.jsonl, line 3: malformed JSON"):
        load_corpus(path)


def test_missing_columns_lists_existing_ones(tmp_path):
    path = _write_jsonl(tmp_path / "cols.jsonl", [{"description": "x", "sale_price": 3}])
    with pytest.raises(CorpusError) as info:
        load_corpus(path)
    message = str(info.value)
    assert "missing column(s) ['text', 'price']" in message
    assert "'description'" in message and "'sale_price'" in message


def test_custom_columns(tmp_path):
    path = _write_jsonl(tmp_path / "cols.jsonl", [{"description": "x", "sale_price": 3},
                                                  {"description": "y", "sale_price": 4}])
    corpus = load_corpus(path, text_column="description", target_column="sale_price")
    assert corpus.texts == ["x", "y"]
    assert corpus.targets.tolist() == [3.0, 4.0]


def test_bad_rows_are_dropped_and_counted_by_reason(tmp_path):
    rows = [
        {"text": "good one", "price": 10},
        {"text": "   ", "price": 10},
        {"text": None, "price": 10},
        {"text": "non numeric", "price": "ten dollars"},
        {"text": "none price", "price": None},
        {"text": "nan price", "price": float("nan")},
        {"text": "inf price", "price": "inf"},
        {"text": "negative", "price": -5},
        {"text": "zero", "price": 0},
        {"text": "good one", "price": 12},
        {"text": "numeric string", "price": "12.5"},
    ]
    path = tmp_path / "rows.jsonl"
    # json.dumps writes NaN as a bare token, which Python's json reads back.
    _write_jsonl(path, rows)
    corpus = load_corpus(path)
    dropped = corpus.report.dropped
    assert dropped["empty_text"] == 2
    assert dropped["non_numeric_target"] == 2
    assert dropped["nan_target"] == 1
    assert dropped["inf_target"] == 1
    assert dropped["negative_target"] == 1
    assert dropped["zero_target"] == 1
    assert dropped["duplicate_text"] == 1
    assert corpus.texts == ["good one", "numeric string"]
    assert corpus.targets.tolist() == [10.0, 12.5]
    assert corpus.report.dropped_examples["duplicate_text"] == [10]
    assert any("duplicate text" in line for line in corpus.report.summary_lines())


def test_empty_after_cleaning_is_an_error(tmp_path):
    path = _write_jsonl(tmp_path / "empty.jsonl", [{"text": "", "price": 1}, {"text": "x", "price": 0}])
    with pytest.raises(CorpusError, match="no usable rows after cleaning"):
        load_corpus(path)


def test_csv_parquet_json_gz_and_saved_dataset_agree(tmp_path):
    rows = [{"text": f"listing {i}", "price": 100 + i} for i in range(20)]
    frame = pd.DataFrame(rows)
    frame.to_csv(tmp_path / "d.csv", index=False)
    frame.to_parquet(tmp_path / "d.parquet")
    (tmp_path / "d.json").write_text(json.dumps(rows))
    with gzip.open(tmp_path / "d.jsonl.gz", "wt") as handle:
        handle.write("".join(json.dumps(r) + "\n" for r in rows))
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    fingerprints = set()
    for name in ("d.csv", "d.parquet", "d.json", "d.jsonl.gz", "saved"):
        corpus = load_corpus(tmp_path / name)
        assert len(corpus) == 20, name
        assert corpus.targets[3] == 103.0
        fingerprints.add(corpus.fingerprint)
    assert len(fingerprints) == 1


def test_csv_bad_value_row_number_counts_header(tmp_path):
    (tmp_path / "d.csv").write_text("text,price\nfine,3\nbroken,abc\n")
    corpus = load_corpus(tmp_path / "d.csv")
    assert corpus.report.dropped_examples["non_numeric_target"] == [3]


def test_hub_dataset_id_goes_through_load_dataset(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, split=None):
        calls.append((name, split))
        return datasets.Dataset.from_list([{"text": "a", "price": 1.0}, {"text": "b", "price": 2.0}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    corpus = load_corpus("someorg/auctions")
    assert calls == [("someorg/auctions", "train")]
    assert len(corpus) == 2


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusError, match="no such file"):
        load_corpus(tmp_path / "nope.jsonl")


def test_max_rows(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", [{"text": f"t{i}", "price": i + 1} for i in range(30)])
    corpus = load_corpus(path, max_rows=10)
    assert len(corpus) == 10
    assert corpus.report.rows_truncated_by_max_rows == 20
