"""Corpus stage: read texts with a numeric target, validate them, and report what was dropped.

Example:
    >>> from hf_finetune_curve.corpus import load_corpus
    >>> corpus = load_corpus(None)           # the embedded synthetic car-auction sample
    >>> len(corpus.texts) == len(corpus.targets)
    True
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from .errors import CorpusError

DROP_REASONS = (
    "empty_text",
    "non_numeric_target",
    "nan_target",
    "inf_target",
    "negative_target",
    "zero_target",
    "duplicate_text",
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_EXAMPLES_PER_REASON = 5


@dataclass
class DataReport:
    """What was read, what was kept and why rows were dropped (saved as ``data_report.json``)."""

    source: str
    text_column: str
    target_column: str
    rows_read: int
    rows_kept: int
    dropped: dict[str, int]
    # Where the first few dropped rows were (1-based line or row numbers), so users can fix the file.
    dropped_examples: dict[str, list[int]] = field(default_factory=dict)
    fingerprint: str = ""
    target_summary: dict[str, float] = field(default_factory=dict)
    rows_truncated_by_max_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_lines(self) -> list[str]:
        lines = [f"Corpus {self.source}: read {self.rows_read} rows, kept {self.rows_kept}."]
        for reason in DROP_REASONS:
            count = self.dropped.get(reason, 0)
            if count:
                where = ", ".join(str(i) for i in self.dropped_examples.get(reason, []))
                lines.append(f"  dropped {count} row(s): {reason.replace('_', ' ')} (e.g. rows {where})")
        if self.rows_truncated_by_max_rows:
            lines.append(f"  left out {self.rows_truncated_by_max_rows} row(s) beyond max_rows")
        return lines


@dataclass
class Corpus:
    """Clean texts and their targets, in file order."""

    texts: list[str]
    targets: np.ndarray
    report: DataReport

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def fingerprint(self) -> str:
        return self.report.fingerprint


def load_corpus(
    source: str | Path | None,
    text_column: str = "text",
    target_column: str = "price",
    max_rows: int | None = None,
) -> Corpus:
    """Load and validate a corpus.

    Args:
        source: a ``.jsonl``/``.jsonl.gz``, ``.json``, ``.csv``/``.csv.gz`` or ``.parquet`` file, a
            folder written by ``datasets.save_to_disk``, a Hub dataset id (``org/name``), or None
            for the embedded synthetic car-auction sample.
        text_column: column holding the text.
        target_column: column holding the numeric target (e.g. the sale price).
        max_rows: keep only the first ``max_rows`` clean rows.

    Raises:
        CorpusError: unreadable file (naming file and line), missing columns (naming those that
            exist), or no usable rows after cleaning.
    """
    if source is None:
        from .sample_data import CORPUS_NAME, generate_listings

        records = ((i + 1, row) for i, row in enumerate(generate_listings()))
        source_name = f"embedded:{CORPUS_NAME}"
        columns = None
    else:
        source_name = str(source)
        records, columns = _read_records(source)
    return _clean(records, columns, source_name, text_column, target_column, max_rows)


def _read_records(source: str | Path) -> tuple[Iterator[tuple[int, dict]], list[str] | None]:
    path = Path(source)
    if path.is_dir():
        return _read_saved_dataset(path)
    if path.is_file():
        name = path.name.lower()
        if name.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
            return _read_jsonl(path), None
        if name.endswith((".json", ".json.gz")):
            return _read_json(path), None
        if name.endswith((".csv", ".csv.gz", ".tsv")):
            return _read_table(path, "csv")
        if name.endswith((".parquet", ".pq")):
            return _read_table(path, "parquet")
        raise CorpusError(
            f"{path}: unsupported file type; expected .jsonl, .jsonl.gz, .json, .csv, .csv.gz or .parquet."
        )
    if _HUB_ID.match(str(source)) and not str(source).startswith((".", "/")):
        return _read_hub_dataset(str(source))
    raise CorpusError(f"{source}: no such file or folder, and it does not look like a Hub dataset id (org/name).")


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        with _open_text(path) as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CorpusError(f"{path}, line {line_number}: malformed JSON ({exc.msg} at column {exc.colno}).") from None
                if not isinstance(record, dict):
                    raise CorpusError(
                        f"{path}, line {line_number}: expected a JSON object per line, got {type(record).__name__}."
                    )
                yield line_number, record
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise CorpusError(f"{path}: cannot be read as UTF-8 text ({exc}).") from None


def _read_json(path: Path) -> Iterator[tuple[int, dict]]:
    try:
        with _open_text(path) as handle:
            text = handle.read()
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise CorpusError(f"{path}: cannot be read as UTF-8 text ({exc}).") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        # Many ".json" files are really JSON Lines; read them as such so errors name the line.
        if exc.lineno > 1 or text.lstrip().startswith("{"):
            yield from _read_jsonl(path)
            return
        raise CorpusError(f"{path}, line {exc.lineno}: malformed JSON ({exc.msg} at column {exc.colno}).") from None
    if isinstance(payload, dict):
        lists = {key: value for key, value in payload.items() if isinstance(value, list)}
        if "data" in lists:
            payload = lists["data"]
        elif len(lists) == 1:
            payload = next(iter(lists.values()))
        else:
            raise CorpusError(
                f"{path}: expected a list of records (or an object with a 'data' list); got an object "
                f"with keys {sorted(payload)[:10]}."
            )
    if not isinstance(payload, list):
        raise CorpusError(f"{path}: expected a list of records, got {type(payload).__name__}.")
    for index, record in enumerate(payload, start=1):
        if not isinstance(record, dict):
            raise CorpusError(f"{path}, record {index}: expected a JSON object, got {type(record).__name__}.")
        yield index, record


def _read_table(path: Path, kind: str) -> tuple[Iterator[tuple[int, dict]], list[str]]:
    import pandas as pd

    try:
        if kind == "csv":
            frame = pd.read_csv(path, sep="\t" if path.name.lower().endswith(".tsv") else ",",
                                dtype=object, keep_default_na=False)
        else:
            frame = pd.read_parquet(path)
    except Exception as exc:  # pandas raises many types; name the file either way
        raise CorpusError(f"{path}: cannot be read as {kind.upper()} ({exc}).") from None
    columns = [str(c) for c in frame.columns]
    # CSV row numbers count the header line, so "line N" matches what an editor shows.
    offset = 2 if kind == "csv" else 1
    records = ((index + offset, row) for index, row in enumerate(frame.to_dict(orient="records")))
    return records, columns


def _dataset_records(dataset) -> tuple[Iterator[tuple[int, dict]], list[str]]:
    columns = list(dataset.column_names)
    return ((index + 1, row) for index, row in enumerate(dataset)), columns


def _read_saved_dataset(path: Path) -> tuple[Iterator[tuple[int, dict]], list[str]]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:
        raise CorpusError(f"{path}: a folder, but not one written by datasets' save_to_disk ({exc}).") from None
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            raise CorpusError(f"{path}: a DatasetDict without a 'train' split; splits are {sorted(loaded)}.")
        loaded = loaded["train"]
    return _dataset_records(loaded)


def _read_hub_dataset(dataset_id: str) -> tuple[Iterator[tuple[int, dict]], list[str]]:
    import datasets

    try:
        loaded = datasets.load_dataset(dataset_id, split="train")
    except Exception as exc:
        raise CorpusError(f"{dataset_id}: could not load the Hub dataset's 'train' split ({exc}).") from exc
    return _dataset_records(loaded)


def _parse_target(value: Any) -> tuple[float | None, str | None]:
    if isinstance(value, bool) or value is None:
        return None, "non_numeric_target"
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            return None, "non_numeric_target"
    if math.isnan(number):
        return None, "nan_target"
    if math.isinf(number):
        return None, "inf_target"
    if number < 0:
        return None, "negative_target"
    if number == 0:
        return None, "zero_target"
    return number, None


def _clean(
    records: Iterable[tuple[int, dict]],
    columns: list[str] | None,
    source_name: str,
    text_column: str,
    target_column: str,
    max_rows: int | None,
) -> Corpus:
    if columns is not None:
        _require_columns(columns, source_name, text_column, target_column)
    texts: list[str] = []
    targets: list[float] = []
    dropped: Counter[str] = Counter()
    examples: dict[str, list[int]] = {}
    seen: set[str] = set()
    rows_read = 0
    truncated = 0
    digest = hashlib.sha256()
    for row_number, record in records:
        if rows_read == 0 and columns is None:
            _require_columns(list(record), source_name, text_column, target_column, row_number)
        rows_read += 1
        if text_column not in record or target_column not in record:
            missing = [c for c in (text_column, target_column) if c not in record]
            raise CorpusError(
                f"{source_name}, line {row_number}: missing field(s) {missing}; this row has {sorted(record)}."
            )
        text = record[text_column]
        reason = None
        if not isinstance(text, str) or not text.strip():
            reason = "empty_text"
        else:
            target, reason = _parse_target(record[target_column])
            if reason is None and text in seen:
                reason = "duplicate_text"
        if reason is not None:
            dropped[reason] += 1
            bucket = examples.setdefault(reason, [])
            if len(bucket) < _EXAMPLES_PER_REASON:
                bucket.append(row_number)
            continue
        if max_rows is not None and len(texts) >= max_rows:
            truncated += 1
            continue
        seen.add(text)
        texts.append(text)
        targets.append(target)
        digest.update(text.encode("utf-8"))
        digest.update(b"\x00" + repr(target).encode() + b"\x01")
    if rows_read == 0:
        raise CorpusError(f"{source_name}: the corpus is empty (no rows).")
    if not texts:
        raise CorpusError(
            f"{source_name}: no usable rows after cleaning ({rows_read} read; dropped "
            f"{dict(dropped)}). Check --text-column {text_column!r} and --target-column {target_column!r}."
        )
    values = np.asarray(targets, dtype=np.float64)
    report = DataReport(
        source=source_name,
        text_column=text_column,
        target_column=target_column,
        rows_read=rows_read,
        rows_kept=len(texts),
        dropped={reason: dropped.get(reason, 0) for reason in DROP_REASONS},
        dropped_examples=examples,
        fingerprint=digest.hexdigest()[:16],
        target_summary={
            "min": float(values.min()),
            "median": float(np.median(values)),
            "mean": float(values.mean()),
            "max": float(values.max()),
        },
        rows_truncated_by_max_rows=truncated,
    )
    return Corpus(texts=texts, targets=values, report=report)


def _require_columns(
    available: list[str], source_name: str, text_column: str, target_column: str, row_number: int | None = None
) -> None:
    missing = [c for c in (text_column, target_column) if c not in available]
    if missing:
        where = f"{source_name}, line {row_number}" if row_number is not None else source_name
        raise CorpusError(
            f"{where}: missing column(s) {missing}; the columns that exist are {sorted(available)}. "
            "Use --text-column / --target-column to name yours."
        )
