"""Corpus stage: read texts with a numeric target, validate them, and report what was dropped.

Example:
    >>> from hf_finetune_curve.data.corpus import load_corpus
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
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from ..errors import CorpusError
from ..io_utils import HUB_REPO_ID

# How a run records the embedded sample as its corpus source ("embedded:<name>").
EMBEDDED_PREFIX = "embedded:"
DROP_REASONS = (
    "empty_text",
    "non_string_text",
    "non_numeric_target",
    "nan_target",
    "inf_target",
    "negative_target",
    "zero_target",
    "huge_target",
    "duplicate_text",
)
# Above this a target is no price (and its square overflows float64 in R²): a data error.
MAX_TARGET = 1e15
# File endings that make a source a local path (so a missing one is "not found", not a Hub id).
DATA_FILE_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".json", ".json.gz", ".csv", ".csv.gz", ".tsv", ".parquet",
                      ".pq")
# "$12,500", "12,500.00", "12500 USD", "EUR 9.5": a number with a currency sign or code and
# thousands separators. Only commas between groups of three digits are read as separators.
_CURRENCY = re.compile(r"^(?:[$€£¥]|[A-Z]{3})?\s*(?P<number>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
                       r"\s*(?:[$€£¥]|[A-Z]{3})?$")
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
    # The values behind the first dropped rows of each reason (shortened), to show what was wrong.
    dropped_values: dict[str, list[str]] = field(default_factory=dict)
    targets_parsed_from_text: int = 0   # e.g. "$12,500" read as 12500
    fingerprint: str = ""
    target_summary: dict[str, float] = field(default_factory=dict)
    stopped_at_max_rows: bool = False  # the file was read only up to max_rows clean rows
    # Texts longer than the embedding model reads (score.embed.TruncationReport), filled in once the model is
    # loaded: the data stage does not know the model.
    truncation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_lines(self) -> list[str]:
        lines = [f"Corpus {self.source}: read {self.rows_read} rows, kept {self.rows_kept}."]
        for reason in DROP_REASONS:
            count = self.dropped.get(reason, 0)
            if count:
                where = ", ".join(str(i) for i in self.dropped_examples.get(reason, []))
                values = self.dropped_values.get(reason, [])
                shown = f"; values {', '.join(values[:3])}" if values else ""
                lines.append(f"  dropped {count} row(s): {reason.replace('_', ' ')} (e.g. rows {where}{shown})")
        if self.targets_parsed_from_text:
            lines.append(f"  read {self.targets_parsed_from_text} target(s) written with currency signs, codes or "
                         "thousands separators (e.g. '$12,500')")
        if self.stopped_at_max_rows:
            lines.append("  stopped reading at max_rows clean rows")
        if self.truncation and self.truncation.get("truncated"):
            t = self.truncation
            lines.append(f"  {t['truncated']} of {t['texts']} texts exceed the {t['max_length']} tokens the embedding "
                         f"model reads (by {t['over_median']:.0f} tokens at the median, {t['over_p90']:.0f} at p90); "
                         "see --embed-max-length")
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
        source_name = f"{EMBEDDED_PREFIX}{CORPUS_NAME}"
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
    text = str(source)
    looks_local = text.lower().endswith(DATA_FILE_SUFFIXES + (".gz",)) or text.startswith((".", "/", "~")) or "\\" in text
    if looks_local:
        raise CorpusError(f"{source}: no such file or folder (looked in {Path.cwd()}).")
    if HUB_REPO_ID.match(text):
        return _read_hub_dataset(text)
    raise CorpusError(f"{source}: no such file or folder, and it does not look like a Hub dataset id (org/name).")


def _open_binary(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return path.open("rb")


def _decode(raw: bytes, path: Path, line_number: int) -> str:
    try:
        # A UTF-8 byte-order mark (Windows exports) is accepted at the start of the file.
        return raw.decode("utf-8-sig" if line_number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path}, line {line_number}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
            "re-save the file as UTF-8 (e.g. from Latin-1: iconv -f latin1 -t utf-8)."
        ) from None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Decoded lines with 1-based numbers; unreadable bytes or a damaged archive name the line."""
    line_number = 0
    try:
        with _open_binary(path) as handle:
            for line_number, raw in enumerate(handle, start=1):
                yield line_number, _decode(raw, path, line_number)
    except (OSError, EOFError, zlib.error) as exc:
        raise CorpusError(f"{path}: cannot be read after line {line_number} ({type(exc).__name__}: {exc}); "
                          "the file is damaged or truncated.") from None


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    for line_number, line in _lines(path):
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


def _read_json(path: Path) -> Iterator[tuple[int, dict]]:
    text = "\n".join(line.rstrip("\r\n") for _, line in _lines(path))
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
                                dtype=object, keep_default_na=False, encoding="utf-8-sig")
        else:
            frame = pd.read_parquet(path)
    except UnicodeDecodeError:
        # pandas names a byte offset; decoding line by line names the line (and column) to fix.
        for _ in _lines(path):
            pass
        raise CorpusError(f"{path}: not UTF-8; save it as UTF-8 and run again.") from None
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
    parsed_from_text = False
    if isinstance(value, (int, float, np.integer, np.floating)):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            match = _CURRENCY.match(text)
            if not match:
                return None, "non_numeric_target"
            number = float(match.group("number").replace(",", ""))
            parsed_from_text = True
    if math.isnan(number):
        return None, "nan_target"
    if math.isinf(number):
        return None, "inf_target"
    if number < 0:
        return None, "negative_target"
    if number == 0:
        return None, "zero_target"
    if number > MAX_TARGET:
        return None, "huge_target"
    return number, "parsed_from_text" if parsed_from_text else None


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
    drop_values: dict[str, list[str]] = {}
    parsed_from_text = 0
    seen: set[str] = set()
    rows_read = 0
    truncated = False
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
        if text is None or (isinstance(text, str) and not text.strip()):
            reason = "empty_text"
        elif not isinstance(text, str):
            reason = "non_string_text"
        elif not _encodable(text):
            # A lone surrogate ("\ud83d" without its pair in a JSON string): not a character, so the text can be
            # neither hashed nor tokenised. Named here rather than as a UnicodeEncodeError with no line.
            bad = next(ch for ch in text if "\ud800" <= ch <= "\udfff")
            raise CorpusError(f"{source_name}, line {row_number}: column {text_column!r} holds a lone surrogate "
                              f"(\\u{ord(bad):04x}), half of a character; fix that escape in the file (or remove "
                              "the row) and run again.")
        else:
            target, reason = _parse_target(record[target_column])
            if reason == "parsed_from_text":
                reason = None
                parsed_from_text += 1
            if reason is None and text in seen:
                reason = "duplicate_text"
        if reason is not None:
            dropped[reason] += 1
            bucket = examples.setdefault(reason, [])
            if len(bucket) < _EXAMPLES_PER_REASON:
                bucket.append(row_number)
                shown = text if reason in ("empty_text", "non_string_text", "duplicate_text") else \
                    record[target_column]
                drop_values.setdefault(reason, []).append(repr(shown)[:40])
            continue
        if max_rows is not None and len(texts) >= max_rows:
            truncated = True  # stop reading: the rest of the file is not needed
            rows_read -= 1
            break
        seen.add(text)
        texts.append(text)
        targets.append(target)
        digest.update(text.encode("utf-8"))
        digest.update(b"\x00" + repr(target).encode() + b"\x01")
    if rows_read == 0:
        raise CorpusError(f"{source_name}: the corpus is empty (no rows).")
    if not texts:
        shown = "; ".join(f"{reason} {count}x, e.g. line {examples[reason][0]}: {drop_values[reason][0]}"
                          for reason, count in dropped.most_common())
        raise CorpusError(
            f"{source_name}: no usable rows after cleaning ({rows_read} read; dropped {shown}). "
            f"Check --text-column {text_column!r} and --target-column {target_column!r}: the target must be a "
            "positive number (plain, or like '$12,500' / '12500 USD')."
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
        dropped_values=drop_values,
        targets_parsed_from_text=parsed_from_text,
        fingerprint=digest.hexdigest()[:16],
        target_summary={
            "min": float(values.min()),
            "median": float(np.median(values)),
            "mean": float(values.mean()),
            "max": float(values.max()),
        },
        stopped_at_max_rows=bool(truncated),
    )
    return Corpus(texts=texts, targets=values, report=report)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
