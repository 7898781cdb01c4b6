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
    # Reading stops there: the other 20 rows are never read.
    assert corpus.report.stopped_at_max_rows and corpus.report.rows_read == 10


def test_damaged_gzip_names_the_file_and_the_last_good_line(tmp_path):
    rows = "".join(json.dumps({"text": f"listing number {i} " * 20, "price": i + 1}) + "\n" for i in range(3000))
    data = gzip.compress(rows.encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])  # a download cut off half way
    with pytest.raises(CorpusError, match=r"cut\.jsonl\.gz: cannot be read after line \d+ .*damaged or truncated"):
        load_corpus(path)
    # Bytes damaged in the middle: whatever breaks first is named with its line.
    middle = len(data) // 2
    path.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64]) + data[middle + 64:])
    with pytest.raises(CorpusError, match=r"cut\.jsonl\.gz(, line \d+: malformed JSON|: cannot be read after line)"):
        load_corpus(path)


def test_latin1_file_names_the_line_and_byte(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"text": "plain", "price": 1}\n{"text": "caf\xe9 racer", "price": 2}\n')
    with pytest.raises(CorpusError, match=r"latin\.jsonl, line 2: not UTF-8 \(byte 0xe9 at column 14\)"):
        load_corpus(path)


def test_utf8_bom_is_accepted_in_jsonl_json_and_csv(tmp_path):
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + b'{"text": "a", "price": 1}\n{"text": "b", "price": 2}\n')
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + b'[{"text": "a", "price": 1}, {"text": "b", "price": 2}]')
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbftext,price\na,1\nb,2\n")
    for name in ("bom.jsonl", "bom.json", "bom.csv"):
        assert load_corpus(tmp_path / name).texts == ["a", "b"], name


def test_currency_prices_are_read_and_bad_values_are_shown(tmp_path):
    rows = [{"text": "a", "price": "$12,500"}, {"text": "b", "price": "12,500.00"},
            {"text": "c", "price": "12500 USD"}, {"text": "d", "price": "call for price"}]
    corpus = load_corpus(_write_jsonl(tmp_path / "money.jsonl", rows))
    assert corpus.targets.tolist() == [12500.0, 12500.0, 12500.0]
    assert corpus.report.targets_parsed_from_text == 3
    assert corpus.report.dropped_values["non_numeric_target"] == ["'call for price'"]
    only_bad = _write_jsonl(tmp_path / "bad.jsonl", [{"text": "a", "price": "TBD"}, {"text": "b", "price": "n/a"}])
    with pytest.raises(CorpusError, match=r"non_numeric_target 2x, e.g. line 1: 'TBD'"):
        load_corpus(only_bad)


def test_non_string_texts_and_huge_prices_have_their_own_reasons(tmp_path):
    rows = [{"text": 12345, "price": 1}, {"text": ["a", "list"], "price": 1}, {"text": "", "price": 1},
            {"text": "overflow", "price": 1e308}, {"text": "fine", "price": 3}]
    report = load_corpus(_write_jsonl(tmp_path / "odd.jsonl", rows)).report
    assert report.dropped["non_string_text"] == 2 and report.dropped["empty_text"] == 1
    assert report.dropped["huge_target"] == 1 and report.rows_kept == 1


def test_a_missing_local_file_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CorpusError, match=r"data/nope\.jsonl: no such file or folder \(looked in"):
        load_corpus("data/nope.jsonl")


def test_latin1_csv_names_the_line_not_a_byte_offset(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,price\ncafé au lait,3\n".encode("utf-8") + "crème brûlée,4\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin1.csv, line 3: not UTF-8"):
        load_corpus(str(path))


@pytest.mark.parametrize("name", ["lone.jsonl", "lone.json"])
def test_a_lone_surrogate_names_the_line(tmp_path, name):
    path = tmp_path / name
    lines = ['{"text": "fine", "price": 1}', '{"text": "broken \\ud83d emoji", "price": 2}']
    path.write_text("\n".join(lines) + "\n" if name.endswith("l") else "[" + ",\n".join(lines) + "]\n")
    with pytest.raises(CorpusError, match=rf"{name}, line 2: column 'text' holds a lone surrogate \(\\ud83d\)"):
        load_corpus(str(path))
