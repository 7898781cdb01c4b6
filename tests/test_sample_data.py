"""Tests for the embedded synthetic car-auction corpus (hf_finetune_curve.data.sample_data)."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
import statistics
from collections import Counter, defaultdict

import pytest

from hf_finetune_curve.data import sample_data as sd
from hf_finetune_curve.data.sample_data import (
    CORPUS_NAME,
    DEFAULT_NUM_ROWS,
    DEFAULT_SEED,
    expected_log_price,
    generate_listings,
    write_jsonl,
)

SPORTS = {"air_cooled", "exotic", "jdm", "modern_sports"}
TRUCKS = {"truck", "offroad"}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return generate_listings()


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def _residuals(rows: list[dict]) -> list[float]:
    """Log price minus the mean log price of the same make/model (removes model mix)."""
    by_model: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        by_model[f"{r['make']} {r['model']}"].append(math.log(r["price"]))
    means = {k: statistics.fmean(v) for k, v in by_model.items()}
    return [math.log(r["price"]) - means[f"{r['make']} {r['model']}"] for r in rows]


# --- API and determinism ---------------------------------------------------------------------


def test_public_constants():
    assert CORPUS_NAME == "synthetic-car-auctions"
    assert DEFAULT_NUM_ROWS == 2000
    assert DEFAULT_SEED == 0


def test_row_count_and_fields(rows):
    assert len(rows) == DEFAULT_NUM_ROWS
    assert generate_listings(0) == []
    assert len(generate_listings(7, seed=3)) == 7
    required = {"text", "price", "make", "model", "year", "mileage", "condition", "title_status", "modified",
                "provenance", "owners", "service_records", "segment"}
    for r in rows:
        assert required <= set(r)
        assert isinstance(r["text"], str) and r["text"].strip()
        assert isinstance(r["year"], int) and 1955 <= r["year"] <= 2024
        assert isinstance(r["mileage"], int) and r["mileage"] >= 0
        assert isinstance(r["modified"], bool)
        assert r["condition"] in {"concours", "excellent", "good", "fair", "project"}
        assert r["title_status"] in {"clean", "rebuilt", "salvage", "bill of sale"}
    assert len({(r["make"], r["model"]) for r in rows}) >= 30
    assert len({r["make"] for r in rows}) >= 15


def test_negative_rows_rejected():
    with pytest.raises(ValueError):
        generate_listings(-1)


def test_deterministic_same_seed(rows):
    again = generate_listings(300, seed=DEFAULT_SEED)
    assert again == rows[:300]
    assert json.dumps(again) == json.dumps(generate_listings(300, seed=DEFAULT_SEED))


def test_different_seeds_differ():
    a = generate_listings(50, seed=0)
    b = generate_listings(50, seed=1)
    assert a != b
    assert sum(x["text"] == y["text"] for x, y in zip(a, b)) == 0


def test_prefix_stable(rows):
    for k in (1, 17, 250):
        assert generate_listings(k, seed=DEFAULT_SEED) == rows[:k]
    assert generate_listings(40, seed=5) == generate_listings(120, seed=5)[:40]


def test_golden_fingerprint():
    """Guards cross-version/platform stability. If you change the generator on purpose, update it."""
    blob = json.dumps(generate_listings(40, seed=0), sort_keys=True, ensure_ascii=False).encode("utf-8")
    assert hashlib.sha256(blob).hexdigest() == GOLDEN_SHA256


def test_libm_free_math_matches_math_module():
    for x in (-12.3, -1.0, -1e-9, 0.0, 0.5, 1.0, 3.7, 11.2, 20.0):
        assert sd._exp(x) == pytest.approx(math.exp(x), rel=1e-14)
    for x in (1e-6, 0.3, 0.70710678, 1.0, 2.0, 12000.0, 37000.0, 3.5e5):
        assert sd._log(x) == pytest.approx(math.log(x), rel=1e-14, abs=1e-15)


def test_fast():
    import time

    start = time.process_time()
    generate_listings(1000, seed=11)
    assert time.process_time() - start < 1.5  # ~0.1 s normally; generous for loaded CI machines


# --- text -------------------------------------------------------------------------------------


def test_texts_unique(rows):
    texts = [r["text"] for r in rows]
    assert len(set(texts)) == len(texts)


def test_word_counts(rows):
    counts = [len(r["text"].split()) for r in rows]
    median = statistics.median(counts)
    assert 55 <= median <= 85, median
    assert 40 <= median <= 120
    in_range = sum(40 <= c <= 120 for c in counts) / len(counts)
    assert in_range >= 0.9, in_range
    assert min(counts) >= 25 and max(counts) <= 200


def test_opening_variety(rows):
    openings = Counter(" ".join(r["text"].split()[:4]) for r in rows)
    assert len(openings) >= 300
    assert openings.most_common(1)[0][1] < 0.05 * len(rows), openings.most_common(3)
    styles = Counter()
    for r in rows:
        t = r["text"]
        for prefix in ("This ", "Offered here", "Powered by", "Finished in", "Equipped with", "Wearing"):
            if t.startswith(prefix):
                styles[prefix] += 1
                break
        else:
            styles["other"] += 1
    assert len(styles) == 7 and min(styles.values()) >= 20, styles


def test_same_fact_in_many_phrasings(rows):
    mileage_patterns = {
        "shows Nk": r"shows \d+k miles",
        "indicated": r"miles are indicated",
        "odometer reads": r"odometer reads [\d,]+",
        "are shown": r"miles are shown",
        "stands at": r"Mileage stands at",
        "driven roughly": r"driven roughly \d+k",
    }
    found = {name for name, pat in mileage_patterns.items() if any(re.search(pat, r["text"]) for r in rows)}
    assert len(found) >= 5, found

    # One-owner history is phrased in several ways, without a fixed keyword.
    one_owner = [r["text"] for r in rows if r["owners"] == 1]
    phrasings = {
        "purchased new": "purchased new by the seller",
        "ordered new": "ordered the",
        "original owner since new": "care of its original owner",
        "bought new": "bought the",
        "one-owner": "This one-owner",
    }
    used = {k for k, v in phrasings.items() if any(v in t for t in one_owner)}
    assert len(used) >= 4, used

    # Salvage history appears sometimes only as a paraphrase (no word "salvage" at all).
    salvage = [r["text"] for r in rows if r["title_status"] == "salvage"]
    assert salvage
    assert any("salvage" not in t for t in salvage)
    assert any("salvage" in t for t in salvage)


def test_facts_stated_consistently(rows):
    for r in rows[:300]:
        t = r["text"]
        assert str(r["year"]) in t
        assert r["make"] in t
        assert r["engine"] in t
        assert r["exterior_color"] in t or r["exterior_color"].capitalize() in t


def test_filler_sentences_present(rows):
    filler = ("gallery includes photos of the underside", "cold-start video", "tool kit", "Two keys")
    assert sum(any(f in r["text"] for f in filler) for r in rows) >= 50


# --- price ------------------------------------------------------------------------------------


def test_prices_positive_ints_in_range(rows):
    prices = [r["price"] for r in rows]
    assert all(isinstance(p, int) and not isinstance(p, bool) for p in prices)
    assert all(1000 <= p <= 3_000_000 for p in prices)
    assert all(p % 100 == 0 or p % 250 == 0 for p in prices)  # auction increments
    median = statistics.median(prices)
    assert 20_000 <= median <= 50_000, median
    assert _quantile(prices, 0.1) < 16_000
    assert _quantile(prices, 0.9) > 80_000
    assert max(prices) > 250_000  # heavy right tail


def test_mileage_hurts_sports_cars_more_than_trucks(rows):
    res = _residuals(rows)

    def drop(segments: set[str]) -> float:
        low = [e for r, e in zip(rows, res) if r["segment"] in segments and r["mileage_verified"] and r["mileage"] < 40_000]
        high = [e for r, e in zip(rows, res) if r["segment"] in segments and r["mileage_verified"] and r["mileage"] > 100_000]
        assert len(low) >= 20 and len(high) >= 20
        return statistics.fmean(low) - statistics.fmean(high)

    sports, trucks = drop(SPORTS), drop(TRUCKS)
    assert sports > 0.3, sports
    assert sports - trucks > 0.2, (sports, trucks)


def test_branded_title_lowers_price(rows):
    res = _residuals(rows)
    by_title: dict[str, list[float]] = defaultdict(list)
    for r, e in zip(rows, res):
        by_title[r["title_status"]].append(e)
    clean = statistics.fmean(by_title["clean"])
    assert statistics.fmean(by_title["salvage"]) < clean - 0.2
    assert statistics.fmean(by_title["rebuilt"]) < clean - 0.1


def _variant(row: dict, **changes) -> dict:
    out = dict(row)
    out.update(changes)
    return out


def _base(make: str, model: str, rows: list[dict]) -> dict:
    row = next(r for r in rows if r["make"] == make and r["model"] == model)
    return _variant(row, condition="good", modification_level="stock", modified=False, title_status="clean",
                    owners=3, service_records="partial", notable_history=False, matching_numbers=None,
                    mileage_verified=True, mileage=40_000)


def test_price_model_is_not_additive(rows):
    porsche = _base("Porsche", "911 Carrera 3.2", rows)
    truck = _base("Ford", "F-100", rows)
    bronco = _base("Ford", "Bronco", rows)
    ferrari = _base("Ferrari", "360 Modena", rows)
    miata = _base("Mazda", "MX-5 Miata", rows)

    def delta(row: dict, **changes) -> float:
        return expected_log_price(_variant(row, **changes)) - expected_log_price(row)

    # Mileage hurts a collectible sports car far more than a pickup.
    assert delta(porsche, mileage=150_000) < 3 * delta(truck, mileage=150_000) < 0
    # Modifications lower an air-cooled collectible but raise an off-roader.
    assert delta(porsche, modification_level="heavy", modified=True) < -0.2
    assert delta(bronco, modification_level="heavy", modified=True) > 0.1
    # A salvage title costs more (multiplicatively) on an expensive car.
    assert delta(ferrari, title_status="salvage") < delta(miata, title_status="salvage") - 0.1
    assert delta(miata, title_status="salvage") < delta(miata, title_status="rebuilt") < 0
    # Provenance is worth more on a rare model.
    assert delta(ferrari, notable_history=True) > delta(miata, notable_history=True) + 0.05
    # The collectibility curve over model years is not monotone for some models.
    challenger = _base("Dodge", "Challenger", rows)
    by_year = [expected_log_price(_variant(challenger, year=y)) for y in range(1970, 1975)]
    assert by_year[0] > by_year[2]  # 1970 peak, smog-era drop
    e_type = _base("Jaguar", "E-Type", rows)
    curve = [expected_log_price(_variant(e_type, year=y)) for y in range(1962, 1975)]
    assert curve != sorted(curve) and curve != sorted(curve, reverse=True)


def test_noise_is_moderate(rows):
    residuals = [math.log(r["price"]) - expected_log_price(r) for r in rows]
    sd_ = statistics.pstdev(residuals)
    assert 0.15 <= sd_ <= 0.35, sd_
    assert abs(statistics.fmean(residuals)) < 0.05


# --- write_jsonl ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["listings.jsonl", "listings.jsonl.gz"])
def test_write_jsonl_round_trip(tmp_path, name):
    data = generate_listings(25, seed=4)
    path = tmp_path / name
    write_jsonl(data, path)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    assert len(lines) == 25
    assert [json.loads(line) for line in lines] == data
    if name.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    # Byte-identical on rewrite (no timestamp in the gzip header), also for a str path.
    first = path.read_bytes()
    write_jsonl(data, str(path))
    assert path.read_bytes() == first


GOLDEN_SHA256 = "2d7d3317140ef2f5d4bad2b7095856cd8a1f3dacda45a2f9242de4251c354393"
