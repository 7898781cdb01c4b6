"""Embedded default corpus: SYNTHETIC car-auction listings with a sale price.

**The data is synthetic.** Every row is generated here from a seeded random number generator;
none of it describes a real auction, car, seller or sale. It is a stand-in for the corpus the
package was built around (~120k Bring a Trailer auction descriptions with their sale prices),
so that ``hf-curve run`` with no corpus argument works offline, in tests and in demos. Prose
style imitates Bring a Trailer listings; the numbers only follow plausible patterns.

How a row is made
-----------------
1. A model is drawn from :data:`CATALOG` (53 make/model entries from 25 makes, with realistic
   model years, body styles, engines, transmissions and a *segment* such as ``air_cooled``,
   ``muscle``, ``truck`` or ``exotic``), then year, body, engine, transmission, colours, mileage,
   condition, modifications, ownership history, records, title status and location.
2. The price is ``exp(log_value + 0.25 * z)`` with ``z`` approximately standard normal
   (multiplicative lognormal noise), rounded to an auction increment ($100 below $10k, $250
   below $50k, $500 below $250k, $1,000 above). ``log_value`` (see :func:`expected_log_price`)
   is a sum of terms *that interact*, so the price is not additive in the listed facts:

   * base value of the model + a per-model, non-monotone collectibility curve over model
     years (e.g. 1970 muscle cars peak, smog-era cars fall; early and late air-cooled 911s
     carry premiums) + body-style adjustments;
   * mileage: ``-sensitivity(segment) * log((miles + 2000) / 37000)``; the sensitivity is
     ~0.3 for exotics, air-cooled Porsches and Japanese collectibles but ~0.03 for work
     trucks, and is halved for project cars; unknown true mileage costs a fixed amount;
   * condition (concours ... project), scaled by segment;
   * modifications: a penalty for vintage, air-cooled and exotic cars, a premium for trucks
     and off-roaders, and a premium for heavy "restomod" work on muscle cars only;
   * a manual-transmission premium that is large for sports cars and zero for trucks;
   * provenance (owner count, service records, notable history, matching numbers) summed
     and then *multiplied by the model's rarity*;
   * title status: a rebuilt or salvage brand subtracts more for expensive models
     (``0.30 + 0.14 * log(base / 15000)`` for salvage, 60% of that for rebuilt).

   Prices come out heavy-tailed: about $2k-$650k, p10 ~$13k, median ~$36k, p90 ~$105k.
3. The text (median ~70 words, most 40-120) is assembled from an opening sentence, a shuffled
   middle (mileage, ownership, condition, service, modifications, equipment, provenance,
   filler about photos or tool kits; how many optional sentences appear depends on a per-row
   verbosity) and a closing sentence about records and title. Every fact
   has several phrasings; some facts (owner count, condition, salvage history) appear only
   through paraphrase ("acquired from its original owner", "does not currently run").

Determinism
-----------
Row ``i`` is built from its own ``random.Random(f"synthetic-car-auctions:{seed}:{i}")``
(string seeds are hashed with SHA-512 by :mod:`random`, so they are stable across platforms
and runs, unlike ``hash()``). Only integer and basic floating-point arithmetic is used for
values that reach the output: the exponential, logarithm and normal noise are computed here with
``+ - * /`` (IEEE 754 correctly rounded) instead of the platform's libm, so the same
``(num_rows, seed)`` gives byte-identical output on any platform and Python >= 3.10, and
``generate_listings(n, s)[:k] == generate_listings(k, s)`` (checked identical on CPython
3.10-3.13; ``tests/test_sample_data.py`` pins a fingerprint).

Uniqueness: if a generated text equals an earlier row's text, that row keeps drawing from its own
generator (re-generating the whole row) until the text is new; after 50 failed attempts (never
observed) a sentence with a row-specific chassis suffix is appended. Because a row only depends
on earlier rows, this keeps the prefix property.

Example:
    >>> rows = generate_listings(3)
    >>> sorted(rows[0])[:4]
    ['body_style', 'condition', 'engine', 'exterior_color']
    >>> all(isinstance(r["price"], int) and r["price"] > 0 for r in rows)
    True
"""

from __future__ import annotations

import argparse
import bisect
import enum
import gzip
import json
import math
import os
import random
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = [
    "CATALOG",
    "CORPUS_NAME",
    "DEFAULT_NUM_ROWS",
    "DEFAULT_SEED",
    "ModelSpec",
    "Segment",
    "SEGMENTS",
    "TextStyle",
    "expected_log_price",
    "generate_listings",
    "parse_text_style",
    "write_jsonl",
]

CORPUS_NAME = "synthetic-car-auctions"
DEFAULT_NUM_ROWS = 2000
DEFAULT_SEED = 0

#: The listings are written as if sold in this year (ages, acquisition years).
LISTING_YEAR = 2024
NOISE_SIGMA = 0.25
_MAX_ATTEMPTS = 50


# --------------------------------------------------------------------------------------------
# Deterministic numerics (no libm: only IEEE-754 correctly rounded + - * / and exact frexp/ldexp)
# --------------------------------------------------------------------------------------------

_LN2 = 0.6931471805599453


def _exp(x: float) -> float:
    """``e**x`` from basic arithmetic only (relative error ~1e-16), identical on every platform."""
    n = int(round(x / _LN2))
    r = x - n * _LN2  # |r| <= ~0.35
    term = 1.0
    total = 1.0
    for k in range(1, 22):
        term = term * r / k
        total += term
    return math.ldexp(total, n)


def _log(x: float) -> float:
    """Natural logarithm of ``x > 0`` from basic arithmetic only (atanh series)."""
    if x <= 0:
        raise ValueError("log of a non-positive number")
    m, e = math.frexp(x)  # exact: x = m * 2**e, 0.5 <= m < 1
    if m < 0.7071067811865476:
        m *= 2.0
        e -= 1
    s = (m - 1.0) / (m + 1.0)  # |s| <= 0.172
    s2 = s * s
    term = s
    total = 0.0
    for k in range(1, 40, 2):
        total += term / k
        term *= s2
    return 2.0 * total + e * _LN2


def _normal(rng: random.Random) -> float:
    """Approximately standard normal (Irwin-Hall: sum of 12 uniforms minus 6)."""
    u = rng.random
    return (u() + u() + u() + u() + u() + u() + u() + u() + u() + u() + u() + u()) - 6.0


# --------------------------------------------------------------------------------------------
# Catalog
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """How a market segment values mileage, condition, modifications and gearboxes."""

    name: str
    mileage_sensitivity: float  # log-price change per unit log-mileage (sign applied in code)
    annual_miles: float  # typical miles per year of age
    condition_scale: float  # multiplies the condition effect
    mod_mild: float  # log-price effect of mild modifications
    mod_heavy: float  # log-price effect of heavy modifications / restomod
    manual_premium: float  # log-price premium for a manual gearbox
    mod_kind: str  # which modification vocabulary applies
    noun: str  # "car", "truck", ...
    has_matching_numbers: bool  # whether "numbers matching" is a meaningful claim


SEGMENTS: dict[str, Segment] = {
    s.name: s
    for s in (
        Segment("air_cooled", 0.28, 4500, 1.1, -0.12, -0.40, 0.15, "perf", "car", True),
        Segment("exotic", 0.30, 1800, 1.2, -0.15, -0.45, 0.30, "perf", "car", False),
        Segment("jdm", 0.28, 5000, 1.0, -0.05, -0.25, 0.35, "perf", "car", False),
        Segment("modern_sports", 0.24, 6000, 0.8, -0.05, -0.20, 0.15, "perf", "car", False),
        Segment("vintage_sports", 0.10, 2200, 1.2, -0.06, -0.30, 0.05, "vintage", "car", True),
        Segment("euro_classic", 0.08, 3500, 1.0, -0.05, -0.20, 0.03, "vintage", "car", True),
        Segment("classic_american", 0.06, 2500, 1.0, -0.05, -0.15, 0.0, "vintage", "car", True),
        Segment("muscle", 0.08, 2200, 1.1, -0.05, 0.15, 0.08, "muscle", "car", True),
        Segment("truck", 0.03, 8000, 0.7, 0.08, 0.25, 0.0, "truck", "truck", False),
        Segment("offroad", 0.05, 6500, 0.8, 0.10, 0.22, 0.02, "truck", "truck", False),
    )
}


@dataclass(frozen=True)
class ModelSpec:
    """One make/model line of the catalog."""

    make: str
    model: str
    segment: str
    years: tuple[int, int]
    base_price: float  # typical clean-title, good-condition, ~37k-mile value at the curve's 0 point
    rarity: float  # multiplies the provenance effect
    weight: float  # relative sampling frequency
    curve: tuple[tuple[int, float], ...]  # (year, log adjustment) knots, linearly interpolated
    bodies: tuple[tuple[str, float], ...]  # (body style, log adjustment)
    engines: tuple[tuple[str, int, int], ...]  # (engine, first year, last year)
    transmissions: tuple[tuple[str, bool], ...]  # (transmission, is_manual)
    palette: str = "generic"
    noun: str | None = None
    doc: str | None = None  # a make-specific document ("a Marti Report")

    @property
    def name(self) -> str:
        return f"{self.make} {self.model}"


def _e(name: str, y0: int = 0, y1: int = 9999) -> tuple[str, int, int]:
    return (name, y0, y1)


_M5 = ("five-speed manual transmission", True)
_M4 = ("four-speed manual transmission", True)
_M6 = ("six-speed manual transmission", True)
_A3 = ("three-speed automatic transmission", False)
_A4 = ("four-speed automatic transmission", False)

CATALOG: tuple[ModelSpec, ...] = (
    # --- air-cooled Porsche ---
    ModelSpec("Porsche", "912", "air_cooled", (1965, 1969), 42000, 1.0, 1.0,
              ((1965, 0.15), (1967, 0.0), (1969, 0.05)), (("Coupe", 0.0), ("Targa", 0.05)),
              (_e("1.6L flat-four"),), (("five-speed manual transaxle", True), ("four-speed manual transaxle", True)),
              "porsche", doc="a Porsche Certificate of Authenticity"),
    ModelSpec("Porsche", "911S", "air_cooled", (1967, 1977), 110000, 1.4, 1.0,
              ((1967, 0.35), (1972, 0.3), (1973, 0.4), (1974, -0.25), (1977, -0.35)),
              (("Coupe", 0.0), ("Targa", -0.05)),
              (_e("2.0L flat-six", 1967, 1969), _e("2.2L flat-six", 1970, 1971), _e("2.4L flat-six", 1972, 1973),
               _e("2.7L flat-six", 1974, 1977)),
              (("five-speed manual transaxle", True), ("four-speed manual transaxle", True),
               ("four-speed Sportomatic transaxle", False)), "porsche",
              doc="a Porsche Certificate of Authenticity"),
    ModelSpec("Porsche", "911 Carrera 3.2", "air_cooled", (1984, 1989), 62000, 1.0, 2.0,
              ((1984, 0.0), (1986, -0.05), (1987, 0.12), (1989, 0.18)),
              (("Coupe", 0.0), ("Targa", -0.08), ("Cabriolet", -0.12)), (_e("3.2L flat-six"),),
              (("five-speed manual transaxle", True), ("five-speed G50 manual transaxle", True)), "porsche",
              doc="a Porsche Certificate of Authenticity"),
    ModelSpec("Porsche", "911 Carrera (964)", "air_cooled", (1989, 1994), 85000, 1.1, 1.5,
              ((1989, 0.0), (1992, -0.06), (1994, 0.1)),
              (("Coupe", 0.0), ("Targa", -0.05), ("Cabriolet", -0.15)), (_e("3.6L flat-six"),),
              (("five-speed manual transaxle", True), ("four-speed Tiptronic automatic transaxle", False)), "porsche",
              doc="a Porsche Certificate of Authenticity"),
    ModelSpec("Porsche", "911 Carrera (993)", "air_cooled", (1995, 1998), 110000, 1.1, 1.5,
              ((1995, 0.0), (1997, 0.05), (1998, 0.12)),
              (("Coupe", 0.0), ("Targa", -0.08), ("Cabriolet", -0.15)), (_e("3.6L flat-six"),),
              (("six-speed manual transaxle", True), ("four-speed Tiptronic S automatic transaxle", False)), "porsche",
              doc="a Porsche Certificate of Authenticity"),
    ModelSpec("Porsche", "911 Turbo (993)", "air_cooled", (1996, 1998), 190000, 1.5, 0.6,
              ((1996, 0.0), (1998, 0.1)), (("Coupe", 0.0),), (_e("twin-turbocharged 3.6L flat-six"),),
              (("six-speed manual transaxle", True),), "porsche", doc="a Porsche Certificate of Authenticity"),
    # --- modern sports ---
    ModelSpec("Porsche", "Boxster (986)", "modern_sports", (1997, 2004), 13000, 0.6, 1.2,
              ((1997, 0.05), (2001, -0.12), (2004, 0.1)), (("Roadster", 0.0),),
              (_e("2.5L flat-six", 1997, 1999), _e("2.7L flat-six", 2000, 2004), _e("3.2L flat-six", 2000, 2004)),
              (("five-speed manual transaxle", True), ("six-speed manual transaxle", True),
               ("five-speed Tiptronic automatic transaxle", False)), "porsche"),
    ModelSpec("Porsche", "911 Carrera (996)", "modern_sports", (1999, 2004), 30000, 0.7, 1.0,
              ((1999, 0.0), (2001, -0.05), (2004, 0.12)),
              (("Coupe", 0.0), ("Cabriolet", -0.12), ("Targa", -0.05)), (_e("3.4L flat-six", 1999, 2001),
                                                                          _e("3.6L flat-six", 2002, 2004)),
              (("six-speed manual transaxle", True), ("five-speed Tiptronic automatic transaxle", False)), "porsche"),
    ModelSpec("BMW", "M3 (E46)", "modern_sports", (2001, 2006), 30000, 0.8, 1.5,
              ((2001, 0.0), (2003, -0.05), (2006, 0.15)), (("Coupe", 0.0), ("Convertible", -0.2)),
              (_e("3.2L S54 inline-six"),), (_M6, ("six-speed SMG II automated manual transmission", False)), "bmw"),
    ModelSpec("BMW", "M5 (E39)", "modern_sports", (2000, 2003), 32000, 0.8, 0.8,
              ((2000, 0.0), (2003, 0.08)), (("Sedan", 0.0),), (_e("4.9L S62 V8"),), (_M6,), "bmw"),
    ModelSpec("Mazda", "MX-5 Miata", "modern_sports", (1990, 1997), 9000, 0.6, 1.5,
              ((1990, 0.1), (1993, -0.05), (1997, 0.0)), (("Roadster", 0.0),),
              (_e("1.6L inline-four", 1990, 1993), _e("1.8L inline-four", 1994, 1997)), (_M5, _A4)),
    ModelSpec("Chevrolet", "Corvette (C5)", "modern_sports", (1997, 2004), 17000, 0.6, 1.2,
              ((1997, 0.0), (2000, -0.1), (2004, 0.05)), (("Coupe", 0.0), ("Convertible", 0.02), ("Z06 Hardtop", 0.45)),
              (_e("5.7L LS1 V8"),), (_M6, _A4)),
    ModelSpec("Lotus", "Elise", "modern_sports", (2005, 2011), 42000, 1.0, 0.6,
              ((2005, 0.0), (2008, -0.05), (2011, 0.1)), (("Roadster", 0.0),),
              (_e("1.8L Toyota inline-four"),), (_M6,)),
    # --- exotics ---
    ModelSpec("Ferrari", "308 GTS", "exotic", (1977, 1985), 72000, 1.1, 1.0,
              ((1977, 0.1), (1980, -0.12), (1983, 0.02), (1985, 0.08)), (("Targa", 0.0),),
              (_e("3.0L V8"),), (("five-speed manual transaxle", True),), "ferrari"),
    ModelSpec("Ferrari", "360 Modena", "exotic", (1999, 2005), 95000, 1.0, 0.8,
              ((1999, 0.0), (2002, -0.05), (2005, 0.05)), (("Coupe", 0.0), ("Spider", 0.05)),
              (_e("3.6L V8"),), (("six-speed manual transaxle", True), ("six-speed F1 automated manual transaxle", False)),
              "ferrari"),
    ModelSpec("Lamborghini", "Gallardo", "exotic", (2004, 2013), 115000, 1.0, 0.7,
              ((2004, 0.0), (2008, -0.05), (2013, 0.2)), (("Coupe", 0.0), ("Spyder", -0.03)),
              (_e("5.0L V10", 2004, 2008), _e("5.2L V10", 2009, 2013)),
              (("six-speed manual transaxle", True), ("six-speed e-gear automated manual transaxle", False)), "ferrari"),
    ModelSpec("Acura", "NSX", "exotic", (1991, 2005), 85000, 1.2, 0.9,
              ((1991, 0.0), (1996, -0.05), (2002, 0.3), (2005, 0.45)), (("Coupe", 0.0), ("NSX-T Targa", -0.03)),
              (_e("3.0L V6", 1991, 1996), _e("3.2L V6", 1997, 2005)), (_M5, _A4), "japan"),
    # --- Japanese collectibles ---
    ModelSpec("Toyota", "Supra Turbo", "jdm", (1993, 1998), 65000, 1.3, 1.0,
              ((1993, 0.05), (1995, -0.05), (1998, 0.15)), (("Targa", 0.0), ("Hardtop", 0.05)),
              (_e("twin-turbocharged 3.0L 2JZ-GTE inline-six"),), (_M6, _A4), "japan"),
    ModelSpec("Mazda", "RX-7 (FD)", "jdm", (1993, 1995), 38000, 1.1, 0.9,
              ((1993, 0.05), (1995, 0.0)), (("Coupe", 0.0),),
              (_e("twin-turbocharged 1.3L 13B-REW rotary"),), (_M5, _A4), "japan"),
    ModelSpec("Nissan", "Skyline GT-R (R32)", "jdm", (1989, 1994), 52000, 1.2, 0.8,
              ((1989, 0.0), (1992, -0.05), (1994, 0.08)), (("Coupe", 0.0),),
              (_e("twin-turbocharged 2.6L RB26DETT inline-six"),), (_M5,), "japan"),
    ModelSpec("Datsun", "240Z", "vintage_sports", (1970, 1973), 36000, 1.0, 1.0,
              ((1970, 0.15), (1972, 0.0), (1973, -0.1)), (("Coupe", 0.0),),
              (_e("2.4L inline-six"),), (_M4, _A3), "japan"),
    ModelSpec("Datsun", "280Z", "vintage_sports", (1975, 1978), 21000, 0.8, 0.9,
              ((1975, 0.05), (1977, -0.05), (1978, 0.0)), (("Coupe", 0.0), ("2+2", -0.25)),
              (_e("2.8L inline-six"),), (_M5, _M4, _A3), "japan"),
    # --- vintage sports / British and Italian ---
    ModelSpec("Jaguar", "E-Type", "vintage_sports", (1962, 1974), 95000, 1.4, 1.0,
              ((1962, 0.35), (1964, 0.2), (1967, 0.15), (1968, -0.1), (1970, -0.25), (1972, -0.15), (1974, -0.05)),
              (("Roadster", 0.15), ("Fixed Head Coupe", 0.0), ("2+2 Coupe", -0.3)),
              (_e("3.8L inline-six", 1962, 1964), _e("4.2L inline-six", 1965, 1971), _e("5.3L V12", 1971, 1974)),
              (_M4, ("three-speed Borg-Warner automatic transmission", False)), "british",
              doc="a Jaguar Heritage Certificate"),
    ModelSpec("Austin-Healey", "3000", "vintage_sports", (1959, 1967), 58000, 1.2, 0.8,
              ((1959, 0.0), (1962, -0.05), (1967, 0.15)), (("BJ8 Roadster", 0.05), ("BT7 Roadster", 0.0)),
              (_e("2.9L inline-six"),), (("four-speed manual transmission with overdrive", True),), "british",
              doc="a British Motor Industry Heritage Trust certificate"),
    ModelSpec("Triumph", "TR6", "vintage_sports", (1969, 1976), 21000, 0.7, 1.2,
              ((1969, 0.1), (1972, 0.0), (1974, -0.12), (1976, -0.08)), (("Roadster", 0.0),),
              (_e("2.5L inline-six"),), (_M4, ("four-speed manual transmission with overdrive", True)), "british",
              doc="a British Motor Industry Heritage Trust certificate"),
    ModelSpec("MG", "MGB", "vintage_sports", (1963, 1980), 12500, 0.6, 1.2,
              ((1963, 0.15), (1967, 0.05), (1974, -0.15), (1980, -0.2)), (("Roadster", 0.0), ("GT", -0.15)),
              (_e("1.8L inline-four"),), (_M4, ("four-speed manual transmission with overdrive", True)), "british",
              doc="a British Motor Industry Heritage Trust certificate"),
    ModelSpec("Alfa Romeo", "Spider", "vintage_sports", (1966, 1993), 17000, 0.8, 1.0,
              ((1966, 0.55), (1969, 0.15), (1975, -0.15), (1985, -0.25), (1993, 0.05)), (("Spider", 0.0),),
              (_e("1.6L inline-four", 1966, 1968), _e("1.8L inline-four", 1969, 1971), _e("2.0L inline-four", 1972, 1993)),
              (_M5, _A3)),
    ModelSpec("Chevrolet", "Corvette (C2)", "muscle", (1963, 1967), 72000, 1.2, 1.0,
              ((1963, 0.2), (1964, -0.05), (1966, 0.0), (1967, 0.15)),
              (("Coupe", 0.0), ("Convertible", 0.05)),
              (_e("327ci V8"), _e("427ci V8", 1966, 1967)), (_M4, ("two-speed Powerglide automatic transmission", False)),
              doc="a Protect-O-Plate and build sheet"),
    # --- muscle ---
    ModelSpec("Ford", "Mustang", "muscle", (1965, 1970), 30000, 0.8, 2.5,
              ((1965, 0.05), (1967, 0.0), (1969, 0.12), (1970, 0.05)),
              (("Coupe", -0.3), ("Fastback", 0.25), ("Convertible", 0.1)),
              (_e("289ci V8", 1965, 1968), _e("302ci V8", 1968, 1970), _e("390ci V8", 1967, 1969),
               _e("200ci inline-six", 1965, 1970)),
              (_M4, ("three-speed Cruise-O-Matic automatic transmission", False)), doc="a Marti Report"),
    ModelSpec("Chevrolet", "Camaro", "muscle", (1967, 1969), 45000, 1.0, 1.5,
              ((1967, 0.05), (1968, -0.05), (1969, 0.1)), (("Coupe", 0.0), ("Convertible", 0.05)),
              (_e("327ci V8"), _e("350ci V8"), _e("396ci V8")),
              (_M4, ("two-speed Powerglide automatic transmission", False), ("three-speed Turbo Hydramatic automatic transmission", False)),
              doc="a Protect-O-Plate and build sheet"),
    ModelSpec("Chevrolet", "Chevelle SS", "muscle", (1966, 1972), 46000, 1.0, 1.2,
              ((1966, -0.05), (1968, -0.05), (1970, 0.3), (1972, -0.15)), (("Hardtop", 0.0), ("Convertible", 0.15)),
              (_e("396ci V8"), _e("454ci V8", 1970, 1972)),
              (_M4, ("three-speed Turbo Hydramatic automatic transmission", False)),
              doc="a Protect-O-Plate and build sheet"),
    ModelSpec("Dodge", "Challenger", "muscle", (1970, 1974), 48000, 1.2, 1.0,
              ((1970, 0.25), (1971, 0.1), (1972, -0.35), (1974, -0.4)), (("Hardtop", 0.0), ("Convertible", 0.3)),
              (_e("318ci V8"), _e("340ci V8"), _e("383ci V8", 1970, 1971), _e("440ci V8", 1970, 1971)),
              (_M4, ("three-speed TorqueFlite automatic transmission", False)), doc="a broadcast sheet"),
    ModelSpec("Pontiac", "GTO", "muscle", (1964, 1972), 42000, 1.0, 1.0,
              ((1964, 0.1), (1966, 0.0), (1969, 0.12), (1971, -0.1), (1972, -0.25)),
              (("Hardtop", 0.0), ("Convertible", 0.15), ("Post Coupe", -0.05)),
              (_e("389ci V8", 1964, 1966), _e("400ci V8", 1967, 1972), _e("455ci V8", 1970, 1972)),
              (_M4, ("three-speed Turbo Hydramatic automatic transmission", False)), doc="a PHS documentation package"),
    # --- classic American and European ---
    ModelSpec("Ford", "Thunderbird", "classic_american", (1955, 1957), 38000, 0.9, 1.0,
              ((1955, 0.05), (1956, 0.0), (1957, 0.1)), (("Convertible", 0.0),),
              (_e("292ci V8"), _e("312ci V8", 1956, 1957)), (("three-speed Fordomatic automatic transmission", False), (
                  "three-speed manual transmission with overdrive", True))),
    ModelSpec("Cadillac", "Eldorado", "classic_american", (1959, 1976), 24000, 0.9, 0.8,
              ((1959, 0.9), (1962, 0.3), (1967, 0.1), (1971, -0.2), (1976, 0.0)),
              (("Convertible", 0.2), ("Coupe", -0.2)), (_e("390ci V8", 1959, 1964), _e("429ci V8", 1964, 1967),
                                                       _e("472ci V8", 1968, 1969), _e("500ci V8", 1970, 1976)),
              (_A3,)),
    ModelSpec("Mercedes-Benz", "280SL", "euro_classic", (1968, 1971), 105000, 1.2, 1.0,
              ((1968, 0.0), (1971, 0.05)), (("Roadster", 0.0),), (_e("2.8L inline-six"),),
              (("four-speed automatic transmission", False), _M4, ("five-speed ZF manual transmission", True)),
              "mercedes"),
    ModelSpec("Mercedes-Benz", "300D Wagon", "euro_classic", (1979, 1985), 12000, 0.6, 0.8,
              ((1979, 0.0), (1985, 0.05)), (("Wagon", 0.0),), (_e("3.0L turbodiesel inline-five"),), (_A4,),
              "mercedes", noun="wagon"),
    ModelSpec("BMW", "2002", "euro_classic", (1968, 1976), 24000, 0.8, 1.0,
              ((1968, 0.1), (1972, 0.1), (1974, -0.12), (1976, -0.15)), (("Sedan", 0.0), ("tii Sedan", 0.35)),
              (_e("2.0L inline-four"),), (_M4, _A3), "bmw"),
    ModelSpec("Volkswagen", "Beetle", "euro_classic", (1958, 1979), 12000, 0.6, 1.2,
              ((1958, 0.25), (1967, 0.15), (1971, -0.1), (1979, 0.15)), (("Sedan", 0.0), ("Convertible", 0.25)),
              (_e("1.2L flat-four", 1958, 1965), _e("1.5L flat-four", 1966, 1970), _e("1.6L flat-four", 1970, 1979)),
              (_M4,)),
    ModelSpec("Volkswagen", "Type 2 Bus", "euro_classic", (1958, 1979), 30000, 1.0, 1.0,
              ((1958, 0.8), (1967, 0.6), (1968, -0.15), (1979, -0.1)),
              (("Deluxe", 0.1), ("Panel Van", -0.2), ("Westfalia Camper", 0.15)),
              (_e("1.5L flat-four", 1958, 1971), _e("1.7L flat-four", 1972, 1973), _e("2.0L flat-four", 1974, 1979)),
              (_M4,), noun="bus"),
    # --- trucks ---
    ModelSpec("Ford", "F-100", "truck", (1957, 1979), 19000, 0.6, 1.5,
              ((1957, 0.3), (1961, -0.05), (1967, 0.0), (1972, 0.1), (1979, 0.0)),
              (("Pickup", 0.0), ("Ranger Pickup", 0.12)),
              (_e("292ci V8", 1957, 1964), _e("300ci inline-six", 1965, 1979), _e("360ci V8", 1968, 1976),
               _e("351ci V8", 1977, 1979)), (_M4, _A3)),
    ModelSpec("Chevrolet", "C10", "truck", (1960, 1987), 21000, 0.6, 1.5,
              ((1960, 0.05), (1966, 0.0), (1969, 0.25), (1972, 0.2), (1973, -0.25), (1987, -0.05)),
              (("Pickup", 0.0), ("Cheyenne Pickup", 0.12)),
              (_e("250ci inline-six", 1966, 1984), _e("283ci V8", 1960, 1967), _e("350ci V8", 1968, 1987)),
              (_M4, _A3)),
    ModelSpec("Toyota", "Pickup 4x4", "truck", (1979, 1995), 13000, 0.6, 1.2,
              ((1979, 0.1), (1984, 0.15), (1989, -0.05), (1995, 0.0)), (("Pickup", 0.0), ("Xtracab Pickup", 0.05)),
              (_e("2.4L 22R inline-four"), _e("3.0L V6", 1988, 1995)), (_M5, _A4), "japan"),
    ModelSpec("Ford", "F-250 Power Stroke", "truck", (1999, 2003), 24000, 0.5, 1.0,
              ((1999, 0.0), (2003, -0.1)), (("SuperCab Pickup", 0.0), ("Crew Cab Pickup", 0.05)),
              (_e("7.3L Power Stroke turbodiesel V8"),), (_M6, _A4)),
    ModelSpec("Dodge", "Ram 2500 Cummins", "truck", (1994, 2002), 22000, 0.5, 1.0,
              ((1994, 0.0), (1998, 0.05), (2002, 0.0)), (("Club Cab Pickup", 0.0), ("Quad Cab Pickup", 0.05)),
              (_e("5.9L Cummins turbodiesel inline-six"),), (_M5, _A4)),
    # --- off-road ---
    ModelSpec("Ford", "Bronco", "offroad", (1966, 1977), 58000, 0.9, 1.5,
              ((1966, 0.1), (1968, 0.0), (1973, 0.0), (1976, 0.08)), (("Wagon", 0.0), ("Half-Cab", 0.05)),
              (_e("170ci inline-six", 1966, 1972), _e("289ci V8", 1966, 1968), _e("302ci V8", 1969, 1977)),
              (("three-speed manual transmission", True), _A3), noun="Bronco"),
    ModelSpec("Toyota", "Land Cruiser FJ40", "offroad", (1963, 1984), 45000, 1.0, 1.5,
              ((1963, 0.2), (1970, -0.05), (1975, 0.0), (1984, 0.1)), (("Hardtop", 0.0), ("Soft Top", -0.05)),
              (_e("3.9L F inline-six", 1963, 1974), _e("4.2L 2F inline-six", 1975, 1984)),
              (("three-speed manual transmission", True), _M4), "japan", noun="Land Cruiser"),
    ModelSpec("Toyota", "Land Cruiser (FJ80)", "offroad", (1991, 1997), 24000, 0.7, 1.0,
              ((1991, 0.0), (1994, 0.05), (1997, 0.15)), (("Wagon", 0.0),),
              (_e("4.0L 3F-E inline-six", 1991, 1992), _e("4.5L 1FZ-FE inline-six", 1993, 1997)), (_A4,), "japan",
              noun="Land Cruiser"),
    ModelSpec("Jeep", "CJ-7", "offroad", (1976, 1986), 20000, 0.7, 1.0,
              ((1976, 0.05), (1981, -0.05), (1986, 0.1)), (("Soft Top", 0.0), ("Hardtop", 0.02), ("Renegade", 0.1)),
              (_e("258ci inline-six"), _e("304ci V8", 1976, 1981), _e("2.5L inline-four", 1980, 1986)),
              (_M4, ("three-speed manual transmission", True), _A3), noun="Jeep"),
    ModelSpec("Jeep", "Wrangler", "offroad", (1987, 2006), 13500, 0.6, 1.2,
              ((1987, 0.0), (1995, -0.15), (1997, -0.05), (2006, 0.25)), (("Sahara", 0.05), ("Sport", 0.0), ("Rubicon", 0.3)),
              (_e("4.2L inline-six", 1987, 1990), _e("4.0L inline-six", 1991, 2006), _e("2.5L inline-four", 1987, 2002)),
              (_M5, _M6, _A3), noun="Jeep"),
    ModelSpec("Land Rover", "Defender 90", "offroad", (1994, 1997), 62000, 1.1, 0.8,
              ((1994, 0.05), (1995, -0.05), (1997, 0.1)), (("Soft Top", 0.0), ("Station Wagon", 0.1)),
              (_e("3.9L V8", 1994, 1995), _e("4.0L V8", 1997, 1997)), (_M5, _A4), "british"),
    ModelSpec("International", "Scout II", "offroad", (1971, 1980), 30000, 0.8, 1.0,
              ((1971, 0.0), (1975, -0.05), (1980, 0.05)), (("Soft Top", 0.0), ("Traveler", 0.05)),
              (_e("345ci V8"), _e("304ci V8"), _e("196ci inline-four")), (_M4, _A3), noun="Scout"),
    ModelSpec("Mercedes-Benz", "G500", "offroad", (2002, 2011), 40000, 0.8, 0.8,
              ((2002, -0.05), (2006, -0.05), (2011, 0.2)), (("Wagon", 0.0),),
              (_e("5.0L V8", 2002, 2008), _e("5.5L V8", 2009, 2011)), (("five-speed automatic transmission", False),
                                                                        ("seven-speed automatic transmission", False)),
              "mercedes", noun="G-Wagen"),
)

# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------

_PALETTES: dict[str, tuple[str, ...]] = {
    "generic": ("black", "white", "silver", "red", "dark green", "navy blue", "light blue metallic", "yellow",
                "burgundy", "tan", "gold metallic", "orange", "gray", "Wimbledon White", "Candy Apple Red",
                "Highland Green", "Marina Blue", "Bright Red", "Champagne", "two-tone blue and white", "maroon",
                "Sherwood Green", "Ermine White", "Grabber Blue", "Plum Crazy purple", "Hugger Orange"),
    "porsche": ("Guards Red", "Grand Prix White", "black", "Slate Gray", "Polar Silver", "Arena Red", "Irish Green",
                "Signal Orange", "Riviera Blue", "Midnight Blue Metallic", "Arctic Silver", "Speed Yellow",
                "Bahama Yellow", "Forest Green Metallic", "Amethyst Metallic", "Zenith Blue"),
    "ferrari": ("Rosso Corsa", "Giallo Modena", "Nero", "Argento Nürburgring", "Blu Tour de France", "Rosso Scuderia",
                "Grigio Titanio", "Bianco Avus", "Giallo Midas", "Verde Ithaca"),
    "bmw": ("Alpine White", "Jet Black", "Imola Red", "Laguna Seca Blue", "Silver Gray Metallic", "Phoenix Yellow",
            "Steel Gray Metallic", "Inka Orange", "Chamonix White", "Malaga red", "Fjord Blue"),
    "japan": ("Super White", "Renaissance Red", "Competition Yellow", "Black Pearl", "Quicksilver", "Vintage Red",
              "Montego Blue", "Gun Gray", "Sebring Silver", "Formula Red", "Sky Blue", "Freeze Blue"),
    "british": ("British Racing Green", "Old English White", "Signal Red", "Carmen Red", "Primrose Yellow",
                "Opalescent Silver Blue", "Mimosa Yellow", "Damask Red", "Pageant Blue", "Coniston Green"),
    "mercedes": ("Papyrus White", "Signal Red", "Tobacco Brown", "Astral Silver", "Light Ivory", "Dark Olive",
                 "Horizon Blue", "Obsidian Black", "Anthracite Gray", "Classic White"),
}

_INTERIORS_CAR = ("black leather", "tan leather", "red leather", "black vinyl", "parchment vinyl", "saddle leather",
                  "gray cloth", "houndstooth cloth", "blue vinyl", "burgundy leather", "cream leather",
                  "tweed cloth", "black leatherette", "beige leather", "two-tone leather", "cognac leather")
_INTERIORS_TRUCK = ("tan vinyl", "red vinyl", "saddle cloth", "gray cloth", "black vinyl", "blue vinyl",
                    "brown vinyl", "plaid cloth", "black cloth", "parchment vinyl")

_STATES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("California", ("Los Angeles", "San Diego", "Sacramento", "San Jose", "Orange County")),
    ("Texas", ("Austin", "Houston", "Dallas", "San Antonio")),
    ("Florida", ("Miami", "Tampa", "Orlando", "Naples")),
    ("Arizona", ("Phoenix", "Scottsdale", "Tucson")),
    ("Colorado", ("Denver", "Boulder", "Colorado Springs")),
    ("Washington", ("Seattle", "Spokane", "Tacoma")),
    ("Oregon", ("Portland", "Bend", "Eugene")),
    ("New York", ("Brooklyn", "Rochester", "Long Island", "Buffalo")),
    ("New Jersey", ("Princeton", "Morristown", "Cherry Hill")),
    ("Pennsylvania", ("Philadelphia", "Pittsburgh", "Lancaster")),
    ("Massachusetts", ("Boston", "Worcester", "Cape Cod")),
    ("Connecticut", ("Greenwich", "Hartford", "New Haven")),
    ("Illinois", ("Chicago", "Naperville", "Peoria")),
    ("Michigan", ("Detroit", "Grand Rapids", "Ann Arbor")),
    ("Ohio", ("Columbus", "Cleveland", "Cincinnati")),
    ("Georgia", ("Atlanta", "Savannah", "Athens")),
    ("North Carolina", ("Charlotte", "Raleigh", "Asheville")),
    ("Tennessee", ("Nashville", "Knoxville", "Memphis")),
    ("Utah", ("Salt Lake City", "Park City")),
    ("Nevada", ("Las Vegas", "Reno")),
    ("Virginia", ("Richmond", "Alexandria", "Charlottesville")),
    ("Minnesota", ("Minneapolis", "Duluth")),
    ("Montana", ("Bozeman", "Missoula")),
    ("Idaho", ("Boise", "Coeur d'Alene")),
    ("Wisconsin", ("Milwaukee", "Madison")),
    ("Vermont", ("Burlington", "Stowe")),
)

_FEATURES: dict[str, tuple[str, ...]] = {
    "perf": ("air conditioning", "power windows", "a limited-slip differential", "heated seats", "sport seats",
             "cruise control", "a power sunroof", "xenon headlights", "a rear wing", "a Bose audio system",
             "a Blaupunkt cassette stereo", "power-adjustable seats", "a leather-wrapped steering wheel",
             "fog lights", "a navigation system", "a rear wiper", "staggered-width wheels", "a short shifter"),
    "vintage": ("wire wheels", "a wood-rimmed steering wheel", "chrome bumpers", "a soft top and tonneau cover",
                "a Becker Mexico radio", "fog lights", "a luggage rack", "a heater", "whitewall tires",
                "Smiths gauges", "a removable hardtop", "a folding rear seat", "a clock", "an AM radio",
                "Rostyle wheels", "a Webasto sunroof"),
    "muscle": ("power steering", "power front disc brakes", "a Rallye gauge cluster", "a hood-mounted tachometer",
               "bucket seats", "a center console", "an AM radio", "a Positraction rear end", "Magnum 500 wheels",
               "a Cowl Induction hood", "dual exhaust", "Rally wheels", "a vinyl top", "tinted glass",
               "a deluxe interior", "an eight-track tape player"),
    "truck": ("four-wheel drive", "a bench seat", "a sliding rear window", "a tow package", "dual fuel tanks",
              "a bed liner", "power steering", "air conditioning", "a tachometer", "chrome bumpers",
              "a two-speed transfer case", "locking hubs", "a rear-mounted spare", "a removable hardtop",
              "a trailer hitch", "skid plates", "running boards", "a limited-slip rear differential"),
}

_MODS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # (mild, heavy)
    "perf": (("an aftermarket exhaust", "lowering springs", "aftermarket wheels", "a short-shift kit",
              "an aftermarket stereo", "a cold-air intake", "tinted windows", "upgraded brake pads"),
             ("coilover suspension", "an aftermarket ECU tune", "a roll bar", "a wide-body kit",
              "an upgraded turbocharger", "racing seats with harnesses", "a big-brake kit",
              "a straight-pipe exhaust", "a lightweight flywheel")),
    "vintage": (("electronic ignition", "a modern stereo", "an aluminum radiator", "a spin-on oil filter adapter",
                 "radial tires", "an electric cooling fan"),
                ("a five-speed manual conversion", "a later-model engine", "a custom interior",
                 "a modern fuel-injection system", "a non-original color change", "disc brake conversion",
                 "a lowered suspension", "aftermarket alloy wheels")),
    "muscle": (("an aftermarket intake manifold", "Flowmaster mufflers", "aftermarket wheels",
                "an electronic ignition", "a Hurst shifter", "an aluminum radiator"),
               ("a Tremec five-speed manual conversion", "a fuel-injected crate engine", "Vintage Air climate control",
                "Wilwood disc brakes", "coilover suspension", "a four-link rear suspension",
                "a custom leather interior", "a Detroit Speed suspension")),
    "truck": (("a 2\" suspension lift", "33\" BFGoodrich All-Terrain tires", "LED headlights", "a Warn winch",
               "an aftermarket front bumper", "a roof rack", "a bed cover"),
              ("a 4\" suspension lift", "35\" mud-terrain tires", "front and rear locking differentials",
               "a fuel-injected crate engine", "a roll cage", "Fox shocks", "a full-length roof rack",
               "a Warn winch", "steel rock sliders", "upgraded axles")),
}

_ACCIDENTS = ("a front-end collision", "flood damage", "a hail storm", "a theft recovery", "a rear-end collision",
              "a side impact", "a garage fire")
_NOTABLE = (
    "The car is said to have been owned by a well-known Hollywood actor in the 1980s",
    "The {noun} was raced in period at Sebring and Watkins Glen, according to the seller",
    "The {noun} was featured in a {fy} issue of Road & Track",
    "The {noun} was displayed at the {fy} New York Auto Show, according to the seller",
    "The car was originally delivered to a professional racing driver",
    "The {noun} was used as a press car by the manufacturer",
    "The car won its class at a regional concours in {fy}",
    "The {noun} appeared in a {fy} feature film, and a copy of the studio's letter is included",
    "The car was previously part of a well-known private museum collection",
)


# --------------------------------------------------------------------------------------------
# Price model
# --------------------------------------------------------------------------------------------

_CONDITION_EFFECT = {"concours": 0.30, "excellent": 0.12, "good": 0.0, "fair": -0.25, "project": -0.80}
_RECORDS_EFFECT = {"extensive": 0.12, "partial": 0.03, "none": -0.08}
_SPEC_BY_NAME: dict[str, ModelSpec] = {s.name: s for s in CATALOG}


def _interp(knots: Sequence[tuple[int, float]], year: int) -> float:
    if year <= knots[0][0]:
        return knots[0][1]
    for (y0, v0), (y1, v1) in zip(knots, knots[1:]):
        if year <= y1:
            return v0 + (v1 - v0) * (year - y0) / (y1 - y0)
    return knots[-1][1]


def expected_log_price(row: dict[str, Any]) -> float:
    """Noise-free natural-log price of a row from its structured fields (the generator's "truth").

    The sale price is ``exp(expected_log_price(row) + 0.25 * z)`` rounded to an increment; this is
    exposed so tests and diagnostics can see how the fields interact (see the module docstring).
    """
    spec = _SPEC_BY_NAME[f"{row['make']} {row['model']}"]
    seg = SEGMENTS[spec.segment]
    base = float(spec.base_price)
    lp = _log(base) + _interp(spec.curve, row["year"])
    lp += dict(spec.bodies).get(row["body_style"], 0.0)
    if row["manual"]:
        lp += seg.manual_premium
    # Mileage: strongly valued for collectible sports cars, barely for work trucks.
    sens = seg.mileage_sensitivity * (0.5 if row["condition"] == "project" else 1.0)
    if row["mileage_verified"]:
        lp -= sens * _log((row["mileage"] + 2000.0) / 37000.0)
    else:
        lp -= sens * 0.6
    lp += _CONDITION_EFFECT[row["condition"]] * seg.condition_scale
    level = row["modification_level"]
    if level == "mild":
        lp += seg.mod_mild
    elif level == "heavy":
        lp += seg.mod_heavy
    # Provenance: summed, then scaled by the model's rarity.
    owners = row["owners"]
    prov = 0.12 if owners == 1 else 0.05 if owners == 2 else -0.03 * max(0, owners - 3)
    prov += _RECORDS_EFFECT[row["service_records"]]
    if row["notable_history"]:
        prov += 0.35
    if row["matching_numbers"] is True:
        prov += 0.12
    elif row["matching_numbers"] is False:
        prov -= 0.10
    lp += spec.rarity * prov
    # Branded titles cost more on expensive cars.
    title = row["title_status"]
    if title in ("salvage", "rebuilt"):
        hit = 0.30 + 0.14 * max(0.0, _log(base / 15000.0))
        lp -= hit if title == "salvage" else 0.6 * hit
    elif title == "bill of sale":
        lp -= 0.08
    return lp


def _round_price(value: float) -> int:
    inc = 100 if value < 10000 else 250 if value < 50000 else 500 if value < 250000 else 1000
    return max(inc, int(round(value / inc)) * inc)


# --------------------------------------------------------------------------------------------
# Row generation
# --------------------------------------------------------------------------------------------


def _wchoice(rng: random.Random, items: Sequence[Any], weights: Sequence[float]) -> Any:
    """Weighted choice with one ``rng.random()`` draw (stable across Python versions)."""
    total = 0.0
    for w in weights:
        total += w
    x = rng.random() * total
    acc = 0.0
    for item, w in zip(items, weights):
        acc += w
        if x < acc:
            return item
    return items[-1]


def _cumulative(weights: Sequence[float]) -> tuple[float, ...]:
    out, acc = [], 0.0
    for w in weights:
        acc += w
        out.append(acc)
    return tuple(out)


_CATALOG_CUM = _cumulative([s.weight for s in CATALOG])


def _pick_model(rng: random.Random) -> ModelSpec:
    i = bisect.bisect_right(_CATALOG_CUM, rng.random() * _CATALOG_CUM[-1])
    return CATALOG[min(i, len(CATALOG) - 1)]


def _article(phrase: str) -> str:
    first = phrase.split()[0].lower()
    vowel = first[0] in "aeiou" or first.startswith(("8", "11", "18"))
    return ("an " if vowel else "a ") + phrase


def _join(items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    if len(items) == 2:
        return f"{items[0]} and {items[1]}"
    return ", ".join(items[:-1]) + f", and {items[-1]}"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _draw_fields(rng: random.Random) -> dict[str, Any]:
    spec = _pick_model(rng)
    seg = SEGMENTS[spec.segment]
    year = rng.randint(spec.years[0], spec.years[1])
    body = rng.choice(spec.bodies)[0]
    engines = [e[0] for e in spec.engines if e[1] <= year <= e[2]] or [spec.engines[0][0]]
    engine = rng.choice(engines)
    trans, manual = rng.choice(spec.transmissions)
    age = LISTING_YEAR - year

    # Condition, then mileage (project cars and concours cars skew differently).
    cond = _wchoice(rng, ("concours", "excellent", "good", "fair", "project"),
                    (0.06, 0.30, 0.42, 0.15, 0.07 if age > 25 else 0.03))
    per_year = seg.annual_miles * _exp(0.6 * _normal(rng))
    if cond == "concours":
        per_year *= 0.5
    miles = int(max(age, 1) ** 0.8 * per_year)  # old cars spend years in storage
    if rng.random() < 0.04 and age <= 30 and cond in ("concours", "excellent"):
        miles = rng.randint(40, 4000)  # time-capsule / delivery-mileage car
    if miles > 240000:  # soft cap: very few collector cars show more
        miles = 240000 + miles % 60000
    miles = max(12, miles)
    five_digit = year < 1985 and spec.segment not in ("exotic",)
    verified = True
    if five_digit and miles >= 100000:
        miles = miles % 100000 + rng.randint(0, 9) * 100  # the odometer rolled over
        verified = False
    elif five_digit and rng.random() < 0.15:
        verified = False

    level = _wchoice(rng, ("stock", "mild", "heavy"),
                     (0.55, 0.30, 0.15) if seg.mod_kind in ("truck", "muscle") else (0.70, 0.22, 0.08))
    mods: list[str] = []
    if level != "stock":
        mild_pool, heavy_pool = list(_MODS[seg.mod_kind][0]), list(_MODS[seg.mod_kind][1])
        rng.shuffle(mild_pool)
        rng.shuffle(heavy_pool)
        if level == "mild":
            mods = mild_pool[: rng.randint(1, 2)]
        else:  # at least two heavy items, sometimes a mild one too
            mods = heavy_pool[: rng.randint(2, 3)] + mild_pool[: rng.randint(0, 1)]
            mods = list(dict.fromkeys(mods))  # a few items appear in both lists

    owners = _wchoice(rng, (1, 2, 3, 4, 5, 6), (0.10 if age > 20 else 0.25, 0.25, 0.25, 0.18, 0.12, 0.05))
    records = _wchoice(rng, ("extensive", "partial", "none"), (0.30, 0.45, 0.25))
    notable = rng.random() < 0.03
    matching = None
    if seg.has_matching_numbers and level != "heavy":
        matching = _wchoice(rng, (True, False, None), (0.45, 0.15, 0.40))
    title = _wchoice(rng, ("clean", "rebuilt", "salvage", "bill of sale"),
                     (0.91, 0.04, 0.03, 0.02 if age > 40 else 0.0))
    loc_state, cities = rng.choice(_STATES)
    title_state = loc_state if rng.random() < 0.8 else rng.choice(_STATES)[0]
    if title == "bill of sale":
        title_state = "Vermont" if rng.random() < 0.5 else title_state

    if notable:
        provenance = "notable"
    elif records == "extensive" and owners <= 2:
        provenance = "well-documented"
    elif records != "none":
        provenance = "documented"
    else:
        provenance = "undocumented"

    palette = _PALETTES[spec.palette]
    color = rng.choice(palette)
    interior = rng.choice(_INTERIORS_TRUCK if seg.noun == "truck" and rng.random() < 0.7 else _INTERIORS_CAR)
    features = list(_FEATURES["perf" if seg.mod_kind == "perf" else seg.mod_kind])
    rng.shuffle(features)
    n_feat = rng.randint(2, 3)

    return {
        "make": spec.make,
        "model": spec.model,
        "year": year,
        "segment": spec.segment,
        "body_style": body,
        "engine": engine,
        "transmission": trans,
        "manual": manual,
        "exterior_color": color,
        "interior": interior,
        "mileage": miles,
        "mileage_verified": verified,
        "condition": cond,
        "modified": level != "stock",
        "modification_level": level,
        "modifications": mods,
        "owners": owners,
        "service_records": records,
        "notable_history": notable,
        "matching_numbers": matching,
        "provenance": provenance,
        "title_status": title,
        "title_state": title_state,
        "location_state": loc_state,
        "location_city": rng.choice(cities),
        "features": features[:n_feat],
    }


# --- prose -------------------------------------------------------------------------------


def _miles_phrases(f: dict[str, Any], noun: str, rng: random.Random) -> str:
    m = f["mileage"]
    exact = f"{m:,}"
    k = f"{(m + 500) // 1000}k"
    approx = f"{((m + 500) // 1000) * 1000:,}"
    if not f["mileage_verified"]:
        return rng.choice((
            f"The five-digit odometer shows {k} miles, and total mileage is unknown.",
            f"The odometer reads {exact} miles; true mileage is unknown.",
            f"{exact} miles are indicated, though the odometer is believed to have rolled over.",
            f"The {noun} shows {k} miles, and total mileage is unknown.",
            f"The speedometer was replaced at some point, and the {approx} miles shown do not reflect true mileage.",
        ))
    if m < 1000:
        return rng.choice((
            f"The odometer shows just {exact} miles.",
            f"Only {exact} miles are indicated.",
            f"The {noun} has covered {exact} miles from new.",
        ))
    return rng.choice((
        f"The {noun} shows {k} miles.",
        f"{approx} miles are indicated.",
        f"The odometer reads {exact}.",
        f"The odometer indicates {exact} miles.",
        f"Approximately {approx} miles are shown.",
        f"{_cap(k)} miles are shown on the odometer.",
        f"The {noun} has been driven roughly {k} miles.",
        f"The digital odometer shows {exact} miles." if f["year"] >= 1996 else f"The odometer shows {k} miles.",
        f"Mileage stands at {exact}.",
        f"The {noun} currently shows {exact} miles.",
    ))


def _ownership(f: dict[str, Any], noun: str, rng: random.Random) -> str | None:
    year, owners = f["year"], f["owners"]
    acq = rng.randint(min(year + 1, LISTING_YEAR - 1), LISTING_YEAR - 1) if owners > 1 else year
    if owners == 1:
        return rng.choice((
            f"The {noun} was purchased new by the seller in {year + rng.randint(0, 1)} and has remained with them since.",
            f"The selling owner ordered the {noun} new from a dealer in {f['location_state']}.",
            f"This {noun} has been in the care of its original owner since new.",
            f"The seller bought the {noun} new and has kept it for the past {LISTING_YEAR - year} years.",
        ))
    if owners == 2:
        return rng.choice((
            f"The seller acquired the {noun} from its original owner in {acq}.",
            f"The {noun} remained with its first owner until {acq}, when it was purchased by the seller.",
            f"The current owner purchased the {noun} in {acq} from the original buyer's family.",
            f"The seller is the {noun}'s second owner and acquired it in {acq}.",
        ))
    if rng.random() < 0.3:
        return None
    return rng.choice((
        f"The seller acquired the {noun} in {acq}.",
        f"The {noun} was purchased by the seller in {acq} from a dealer in {rng.choice(_STATES)[0]}.",
        f"The {noun} is said to have had {('three', 'four', 'five', 'six')[min(owners, 6) - 3]} owners.",
        f"The {noun} was acquired by the selling dealer in {LISTING_YEAR - rng.randint(0, 1)}.",
        f"The seller purchased the {noun} in {acq}, and it has seen {('occasional', 'regular', 'limited')[rng.randint(0, 2)]} use since.",
        f"The {noun} spent its early life in {rng.choice(_STATES)[0]} before being acquired by the seller in {acq}.",
    ))


def _condition(f: dict[str, Any], noun: str, rng: random.Random) -> str:
    c = f["condition"]
    ry = rng.randint(min(f["year"] + 15, LISTING_YEAR - 1), LISTING_YEAR - 1)
    if c == "concours":
        return rng.choice((
            f"A comprehensive restoration was completed in {ry}, and the {noun} has since been shown at regional concours events.",
            f"The {noun} was the subject of a rotisserie restoration completed in {ry} and presents in exceptional condition.",
            f"The paint and brightwork present in excellent condition following a nut-and-bolt restoration in {ry}.",
            f"Following a {ry} restoration, the {noun} received a first-place award at a marque club concours.",
        ))
    if c == "excellent":
        return rng.choice((
            "The paint is said to be original and shows only minor blemishes.",
            f"The {noun} was refinished in its original color in {ry}, and the interior shows minimal wear.",
            "The seller notes that the paint presents well, with a few small chips noted in the gallery.",
            f"The {noun} is said to run and drive well, and the body is described as rust-free.",
            "The interior upholstery is in good order, with light creasing on the driver's seat bolster.",
        ))
    if c == "good":
        return rng.choice((
            "Chips, scratches, and minor scuffs are noted on the exterior.",
            "The seller notes a small dent on the passenger door and paint chips on the nose.",
            "Wear on the driver's seat bolster and cracking of the dash pad are shown in the photos.",
            f"The {noun} was repainted in {ry}, and blemishes are visible on the hood and rear quarter panels.",
            "Cosmetic imperfections are shown in the gallery, including scratches on the bumpers.",
        ))
    if c == "fair":
        return rng.choice((
            "Flaws include paint bubbling on the lower doors, cracks in the dashboard, and surface rust.",
            "The paint shows fading and crazing, and rust perforation is noted in the floors.",
            f"The {noun} is described as a driver-quality example with notable cosmetic wear throughout.",
            "Rust is visible on the rocker panels, and the upholstery is torn in places.",
            "The seller notes an oil leak, a cracked windshield, and worn upholstery.",
        ))
    return rng.choice((
        f"The {noun} does not currently run and is offered as a project.",
        "The engine turns over but has not been started in several years, according to the seller.",
        f"The {noun} has been in storage since {ry} and will require mechanical work before road use.",
        "Significant rust is present in the floors and rockers, and the interior is partially disassembled.",
        f"The {noun} is sold as-is and is not currently roadworthy.",
    ))


_SERVICE_ITEMS = ("a new water pump", "belts and hoses", "a fuel pump", "spark plugs and ignition wires",
                  "new brake pads and rotors", "a battery", "an oil change", "a clutch replacement",
                  "a valve adjustment", "new tires", "a timing belt", "a rebuilt carburetor",
                  "new shock absorbers", "a new radiator", "front wheel bearings", "a coolant flush")


def _service(f: dict[str, Any], noun: str, rng: random.Random) -> str:
    items = list(_SERVICE_ITEMS)
    rng.shuffle(items)
    items = items[: rng.randint(2, 3)]
    sy = LISTING_YEAR - rng.randint(0, 3)
    return rng.choice((
        f"Recent service included {_join(items)}.",
        f"Work in {sy} consisted of {_join(items)}.",
        f"Service performed under current ownership included {_join(items)}.",
        f"In preparation for the sale, the {noun} received {_join(items)}.",
        f"Maintenance in {sy} included {_join(items)}.",
    ))


def _mods(f: dict[str, Any], noun: str, rng: random.Random) -> str | None:
    if f["modification_level"] == "stock":
        return rng.choice((
            f"The {noun} is said to be unmodified.",
            f"The {noun} remains in stock configuration.",
            None, None, None, None, None, None,
        ))
    mods = _join(f["modifications"])
    if f["modification_level"] == "mild":
        return rng.choice((
            f"Modifications include {mods}.",
            f"The {noun} has been fitted with {mods}.",
            f"Departures from stock include {mods}.",
            f"The seller added {mods}.",
        ))
    return rng.choice((
        f"The {noun} has been extensively modified with {mods}.",
        f"A build completed in {LISTING_YEAR - rng.randint(1, 8)} added {mods}.",
        f"Upgrades under previous ownership included {mods}.",
        f"The {noun} was built as a restomod and features {mods}.",
    ))


def _equipment(f: dict[str, Any], noun: str, rng: random.Random) -> str:
    feats = _join(f["features"])
    return rng.choice((
        f"Equipment includes {feats}.",
        f"Features include {feats}.",
        f"Factory options include {feats}.",
        f"Additional equipment consists of {feats}.",
        f"The {noun} is equipped with {feats}.",
    ))


def _matching(f: dict[str, Any], noun: str, rng: random.Random) -> str | None:
    m = f["matching_numbers"]
    if m is True:
        return rng.choice((
            f"The {noun} is said to retain its numbers-matching engine.",
            "The engine and transmission are said to be original to the car." if noun == "car"
            else f"The engine and transmission are said to be original to the {noun}.",
            "The engine serial number matches the one recorded at the factory, per the seller.",
        ))
    if m is False:
        return rng.choice((
            "The engine is a period-correct replacement unit.",
            f"The original engine was replaced at an unknown point in the {noun}'s history.",
            "The current engine is not original to the car, according to the seller.",
        ))
    return None


def _notable(f: dict[str, Any], noun: str, rng: random.Random) -> str | None:
    if not f["notable_history"]:
        return None
    fy = rng.randint(min(f["year"] + 1, LISTING_YEAR - 1), LISTING_YEAR - 1)
    return rng.choice(_NOTABLE).format(noun=noun, fy=fy) + "."


def _title_story(f: dict[str, Any], noun: str, rng: random.Random) -> str | None:
    t = f["title_status"]
    if t not in ("salvage", "rebuilt"):
        return None
    ay = rng.randint(min(f["year"] + 1, LISTING_YEAR - 1), LISTING_YEAR - 1)
    cause = rng.choice(_ACCIDENTS)
    if t == "salvage":
        return rng.choice((
            f"The {noun} was declared a total loss by an insurance company following {cause} in {ay}.",
            f"Following {cause} in {ay}, the {noun} was purchased by the seller at an insurance auction.",
        ))
    return rng.choice((
        f"The {noun} was repaired following {cause} in {ay}.",
        f"Following {cause} in {ay}, the {noun} was repaired and subsequently retitled.",
    ))


def _filler(f: dict[str, Any], noun: str, rng: random.Random) -> str:
    return rng.choice((
        "A tool kit, spare tire, and owner's manuals accompany the car." if noun == "car"
        else f"Owner's manuals and a spare key accompany the {noun}.",
        "The gallery includes photos of the underside.",
        "A cold-start video is provided below.",
        "A walkaround video is provided in the gallery.",
        f"The {noun} is located in {f['location_city']}, {f['location_state']}.",
        "Additional photos are available upon request.",
        f"Two keys are included with the {noun}.",
        "A car cover and a battery tender are included in the sale.",
        "Photos of the stamped engine number are provided in the gallery.",
        f"Detailed photos of the {'trunk' if noun == 'car' else 'cargo area'} and engine bay are provided.",
        f"The {noun} has been stored in a climate-controlled garage.",
        "A recent paint-meter reading is shown in the gallery.",
    ))


def _title_phrase(f: dict[str, Any], rng: random.Random) -> str:
    t, s = f["title_status"], f["title_state"]
    if t == "clean":
        return rng.choice((f"a clean {s} title", f"a clean {s} title in the seller's name", "a clean title",
                           f"a clean {s} title"))
    if t == "rebuilt":
        return rng.choice((f"a rebuilt {s} title", f"a {s} title branded rebuilt", f"a {s} reconstructed title"))
    if t == "salvage":
        return rng.choice((f"a {s} salvage title", f"a salvage-branded {s} title", f"a branded {s} title"))
    return rng.choice(("a bill of sale", f"a {s} registration and bill of sale", "a bill of sale in lieu of a title"))


def _docs(f: dict[str, Any], spec: ModelSpec, rng: random.Random) -> str | None:
    r = f["service_records"]
    if r == "extensive":
        options = ["a binder of service records", f"service records dating to {f['year'] + rng.randint(1, 20)}",
                   "the original window sticker and service records", "extensive maintenance documentation"]
        if spec.doc:
            options.append(f"{spec.doc} and a binder of records")
        return rng.choice(options)
    if r == "partial":
        return rng.choice(("recent service records", "some maintenance records", "recent receipts",
                           "a partial service history", spec.doc or "recent records"))
    return rng.choice((None, None, "owner's manuals", "a spare key"))


def _opening(f: dict[str, Any], spec: ModelSpec, noun: str, rng: random.Random) -> tuple[str, bool]:
    """Return (sentence, includes_powertrain)."""
    year, color, interior = f["year"], f["exterior_color"], f["interior"]
    body = f["body_style"]
    full = f"{year} {spec.make} {spec.model}"
    if rng.random() < 0.6 and body not in ("Pickup",):
        full = f"{full} {body}"
    eng, trans = _article(f["engine"]), _article(f["transmission"])
    lead = rng.choice(("Offered here is", "This auction features", "On offer is", "Up for auction is",
                       "Available here is", "Presented here is"))
    with_pt = (
        f"This {full} is finished in {color} over {interior} and is powered by {eng} paired with {trans}.",
        f"This {full} is powered by {eng} linked to {trans} and is finished in {color} with {interior} upholstery.",
        f"Powered by {eng} mated to {trans}, this {full} wears {color} paint over {interior}.",
        f"This {color} {full} is powered by {eng} and {trans}, and it features {interior} upholstery.",
        f"{lead} a {full} finished in {color} over {interior} and powered by {eng} with {trans}.",
        f"Equipped with {eng} and {trans}, this {full} is finished in {color} over {interior}.",
    )
    without_pt = (
        f"This {full} is finished in {color} over {interior}.",
        f"Finished in {color} over {interior}, this {full} is offered on behalf of its owner.",
        f"{lead} a {color} {full} with {interior} upholstery.",
        f"This {full} is painted {color} and has {_article(interior)} interior.",
        f"{_cap(color)} paint is paired with {interior} upholstery on this {full}.",
        f"Wearing {color} paint over {interior}, this {full} is being sold by its owner in {f['location_state']}.",
    )
    if f["owners"] == 1 and rng.random() < 0.3:
        return (f"This one-owner {full} is finished in {color} over {interior} and is powered by {eng}"
                f" paired with {trans}."), True
    if rng.random() < 0.6:
        return rng.choice(with_pt), True
    return rng.choice(without_pt), False


def _powertrain(f: dict[str, Any], noun: str, rng: random.Random) -> str:
    eng, trans = _article(f["engine"]), _article(f["transmission"])
    return rng.choice((
        f"Power comes from {eng} paired with {trans}.",
        f"Power is provided by {eng} mated to {trans}.",
        f"The {noun} is powered by {eng}, and power is sent to the "
        f"{'rear wheels' if noun == 'car' else 'drivetrain'} through {trans}.",
        f"{_cap(eng)} is paired with {trans}.",
        f"Motivation comes from {eng} connected to {trans}.",
    ))


def _closing(f: dict[str, Any], spec: ModelSpec, noun: str, rng: random.Random) -> str:
    title = _title_phrase(f, rng)
    docs = _docs(f, spec, rng)
    short = spec.model.split(" (")[0] if rng.random() < 0.5 else noun
    if f["title_status"] == "bill of sale":
        if docs:
            return rng.choice((f"This {short} is offered with {docs} and {title}.",
                               f"The sale includes {docs} and {title}."))
        return f"This {short} is offered on {title}."
    if docs:
        return rng.choice((
            f"This {short} is offered with {docs} and {title}.",
            f"The sale includes {docs} along with {title}.",
            f"The {noun} comes with {docs} and is offered with {title}.",
            f"This {short} is being sold with {docs} and {title}.",
        ))
    return rng.choice((
        f"This {short} is offered with {title}.",
        f"The {noun} is offered with {title}.",
        f"The sale includes {title}.",
    ))


def _compose(f: dict[str, Any], rng: random.Random) -> str:
    """Opening + shuffled middle + closing. Optional sentences are scaled by a per-row verbosity."""
    spec = _SPEC_BY_NAME[f"{f['make']} {f['model']}"]
    noun = spec.noun or SEGMENTS[spec.segment].noun
    verbosity = _wchoice(rng, (0.3, 1.0, 1.6), (0.35, 0.45, 0.2))
    opening, has_pt = _opening(f, spec, noun, rng)
    middle: list[str | None] = [_miles_phrases(f, noun, rng)]
    if rng.random() < 0.7:
        middle.append(_ownership(f, noun, rng))
    if not has_pt:
        middle.append(_powertrain(f, noun, rng))
    if rng.random() < 0.4 * verbosity or f["condition"] in ("concours", "project"):
        middle.append(_condition(f, noun, rng))
    if rng.random() < 0.15 * verbosity:
        middle.append(_service(f, noun, rng))
    middle.append(_mods(f, noun, rng))
    if rng.random() < 0.15 * verbosity:
        middle.append(_equipment(f, noun, rng))
    if rng.random() < 0.3 * verbosity:
        middle.append(_matching(f, noun, rng))
    middle.append(_notable(f, noun, rng))
    if rng.random() < 0.7:
        middle.append(_title_story(f, noun, rng))
    if rng.random() < 0.25 * verbosity:
        middle.append(_filler(f, noun, rng))
    sentences = [s for s in middle if s]
    rng.shuffle(sentences)
    return " ".join([opening, *sentences, _closing(f, spec, noun, rng)])


# --- long write-ups ------------------------------------------------------------------------
# Real auction write-ups run to several hundred words: a paragraph each on the exterior, the
# interior, the mechanicals and the history, most of it price-neutral colour, with the facts that
# set the price (mileage, condition, modifications, ownership, title) scattered through it and the
# title usually last. The long style keeps every fact and price of the short row and wraps them in
# that structure, so a model that reads only the first 256 tokens misses the facts placed later.

_LONG_EXTERIOR = (
    "The {color} finish is complemented by chrome bumpers, door handles, and mirror housings.",
    "Exterior details include a {color} body with matching door jambs and a painted engine-bay surround.",
    "The body lines are shown from every angle in the gallery, along with close-ups of the panel gaps.",
    "Lighting consists of round headlights, amber front turn signals, and red tail lamps.",
    "The windshield and side glass are said to be free of chips, and the weatherstripping is pliable.",
    "Close-up photos of the wheel arches, rocker panels, and lower valances are provided.",
    "Badging on the fenders and rear panel identifies the model.",
    "The {noun} rides on {wheel} wheels wrapped in {tire} tires.",
    "A spare wheel is stowed beneath the {cargo} floor.",
    "The paint was machine polished ahead of the photo shoot.",
    "Trim pieces around the windows and drip rails are shown in the photo gallery.",
    "Exterior mirrors are mounted on both doors.",
)
_LONG_INTERIOR = (
    "The cabin features {interior} upholstery on the seats and door panels.",
    "Carpeting in a complementary shade covers the floors, and matching mats are included.",
    "The dashboard houses a speedometer, a tachometer, and auxiliary gauges for oil pressure, coolant temperature, and fuel level.",
    "{radio} sits in the center of the dash.",
    "The steering wheel is a {wheelstyle} design with a center horn button.",
    "The headliner and sun visors are shown in the gallery.",
    "Seat belts are fitted at both outboard positions.",
    "The glovebox houses the owner's literature and a flashlight.",
    "The door panels carry armrests and window cranks.",
    "Photos of the seat bolsters, the dash top, and the carpets are provided in the gallery.",
    "The {cargo} is lined with carpet and houses the jack.",
    "The instrument cluster illuminates at night, per the seller.",
)
_LONG_MECHANICAL = (
    "Power is sent to the wheels through a conventional driveline with an open rear differential.",
    "The suspension uses coil springs and telescopic dampers, with an anti-roll bar at the front.",
    "Braking is handled by discs at the front and drums at the rear.",
    "The engine bay is shown in the gallery, along with the underside of the {noun}.",
    "A cold-start video and a driving video are provided below.",
    "The exhaust system exits through a single pipe at the rear.",
    "The cooling system uses a belt-driven fan and an expansion tank.",
    "Fuel is stored in a steel tank mounted ahead of the rear axle.",
    "The battery is located in the engine compartment.",
    "Underside photos show the floors, the frame rails, and the exhaust routing.",
    "The seller reports that the {noun} starts readily and idles smoothly when warm.",
    "Fluids were checked ahead of the sale.",
)
_LONG_HISTORY = (
    "The {noun} was sold new in {state} according to the accompanying paperwork.",
    "The seller has used the {noun} for weekend drives and local club events.",
    "A vehicle history report is included in the listing.",
    "The {noun} has been stored indoors under a cover when not in use.",
    "The history of the {noun} prior to the current ownership is partly documented.",
    "Photos of the paperwork and manuals are provided in the gallery.",
    "The seller notes that the {noun} has been driven regularly in fair weather.",
    "This example was photographed at the seller's home in {city}.",
)
_LONG_WHEELS = ("steel", "alloy", "painted steel", "polished alloy", "wire-spoke", "five-spoke alloy", "chrome")
_LONG_TIRES = ("whitewall", "blackwall", "raised-letter", "performance", "all-season", "bias-ply-style radial")
_LONG_RADIOS = ("period AM radio", "Becker AM/FM radio", "Blaupunkt cassette stereo", "aftermarket stereo",
                "factory AM/FM cassette unit", "Bluetooth-enabled head unit")
_LONG_STEERING = ("three-spoke", "four-spoke", "two-spoke", "wood-rimmed", "leather-wrapped")


def _long_colour(f: dict[str, Any], noun: str, rng: random.Random) -> dict[str, str]:
    return {"color": f["exterior_color"], "interior": f["interior"], "noun": noun,
            "cargo": "trunk" if noun == "car" else "cargo area", "wheel": rng.choice(_LONG_WHEELS),
            "tire": rng.choice(_LONG_TIRES), "radio": _cap(_article(rng.choice(_LONG_RADIOS))),
            "wheelstyle": rng.choice(_LONG_STEERING), "state": f["location_state"], "city": f["location_city"]}


def _compose_long(f: dict[str, Any], rng: random.Random) -> str:
    """A write-up of several hundred words: opening, four topic paragraphs of mostly price-neutral
    sentences with the price facts dealt among them at random positions, and the title last."""
    spec = _SPEC_BY_NAME[f"{f['make']} {f['model']}"]
    noun = spec.noun or SEGMENTS[spec.segment].noun
    fill = _long_colour(f, noun, rng)
    opening, has_pt = _opening(f, spec, noun, rng)
    facts: list[str | None] = [_miles_phrases(f, noun, rng), _ownership(f, noun, rng), _condition(f, noun, rng),
                               _mods(f, noun, rng), _notable(f, noun, rng), _title_story(f, noun, rng),
                               _matching(f, noun, rng), _equipment(f, noun, rng), _service(f, noun, rng)]
    if not has_pt:
        facts.append(_powertrain(f, noun, rng))
    facts = [s for s in facts if s]
    rng.shuffle(facts)
    paragraphs = []
    for pool in (_LONG_EXTERIOR, _LONG_INTERIOR, _LONG_MECHANICAL, _LONG_HISTORY):
        chosen = list(pool)
        rng.shuffle(chosen)
        paragraphs.append([s.format(**fill) for s in chosen[: rng.randint(2, len(pool) - 1)]])
    for fact in facts:  # each fact lands in a random paragraph at a random place
        paragraph = paragraphs[rng.randrange(len(paragraphs))]
        paragraph.insert(rng.randint(0, len(paragraph)), fact)
    body = [" ".join(p) for p in paragraphs]
    return "\n\n".join([opening, *body, _closing(f, spec, noun, rng)])


def _make_row(rng: random.Random) -> dict[str, Any]:
    fields = _draw_fields(rng)
    text = _compose(fields, rng)
    price = _round_price(_exp(expected_log_price(fields) + NOISE_SIGMA * _normal(rng)))
    return {"text": text, "price": price, **fields}


def _row_rng(seed: int, index: int) -> random.Random:
    # A str seed is hashed with SHA-512 by ``random`` (version 2 seeding): stable everywhere.
    return random.Random(f"{CORPUS_NAME}:{seed}:{index}")


class TextStyle(str, enum.Enum):
    """How long a listing's text is: ``short`` (the default corpus, median ~70 words) or ``long`` (auction
    write-ups of several hundred words, ~400-900 tokens, with the price facts spread through them)."""

    SHORT = "short"
    LONG = "long"


def parse_text_style(value: "str | TextStyle") -> TextStyle:
    """``"long"`` -> :attr:`TextStyle.LONG`; anything else is refused, naming the choices."""
    try:
        return TextStyle(getattr(value, "value", value))
    except ValueError:
        raise ValueError(f"text style must be one of {[s.value for s in TextStyle]}; got {value!r}") from None


def generate_listings(num_rows: int = DEFAULT_NUM_ROWS, seed: int = DEFAULT_SEED,
                      style: "str | TextStyle" = TextStyle.SHORT) -> list[dict]:
    """Generate ``num_rows`` synthetic car-auction listings.

    Each row is a dict with ``"text"`` (the listing description), ``"price"`` (int, USD, > 0)
    and the structured fields it was generated from: ``make``, ``model``, ``year``, ``segment``,
    ``body_style``, ``engine``, ``transmission``, ``manual``, ``exterior_color``, ``interior``,
    ``mileage``, ``mileage_verified``, ``condition``, ``modified``, ``modification_level``,
    ``modifications``, ``owners``, ``service_records``, ``notable_history``,
    ``matching_numbers``, ``provenance``, ``title_status``, ``title_state``,
    ``location_state``, ``location_city`` and ``features``.

    Deterministic: the same ``(num_rows, seed)`` gives identical rows everywhere, and the output is
    prefix-stable (``generate_listings(n, s)[:k] == generate_listings(k, s)``). Texts are unique.

    ``style="long"`` gives the same rows (every field and price equal to the short style's) with the text
    written as a long auction write-up (:func:`_compose_long`), from a generator of its own per row, so
    the short corpus is unchanged and the two differ only in how much text carries the same facts.
    """
    if num_rows < 0:
        raise ValueError(f"num_rows must be >= 0, got {num_rows}")
    style = parse_text_style(style)
    rows: list[dict] = []
    seen: set[str] = set()  # membership only; never iterated
    for i in range(num_rows):
        rng = _row_rng(seed, i)
        for _ in range(_MAX_ATTEMPTS):
            row = _make_row(rng)
            if row["text"] not in seen:
                break
        else:  # pragma: no cover - not observed in practice
            row["text"] += f" The chassis number ends in {i:06d}."
        seen.add(row["text"])
        rows.append(row)
    if style is TextStyle.LONG:
        long_seen: set[str] = set()
        for i, row in enumerate(rows):
            rng = random.Random(f"{CORPUS_NAME}:long:{seed}:{i}")
            for _ in range(_MAX_ATTEMPTS):
                text = _compose_long(row, rng)
                if text not in long_seen:
                    break
            long_seen.add(text)
            row["text"] = text
    return rows


def write_jsonl(rows: list[dict], path: str | os.PathLike) -> None:
    """Write ``rows`` as JSON Lines (UTF-8, one object per line); gzip when ``path`` ends with ``.gz``.

    The gzip header carries no file name or timestamp, so equal rows give byte-identical files.
    """
    data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    target = os.fspath(path)
    with open(target, "wb") as handle:
        if target.endswith(".gz"):
            with gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0) as gz:
                gz.write(data)
        else:
            handle.write(data)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hf_finetune_curve.data.sample_data OUT.jsonl.gz --rows 2000 --style long``: write a
    synthetic corpus (the file ``hf-curve run --data`` reads)."""
    parser = argparse.ArgumentParser(prog="python -m hf_finetune_curve.data.sample_data",
                                     description="Write a synthetic car-auction corpus as JSON Lines.")
    parser.add_argument("output", help="the file to write (.jsonl, or .jsonl.gz to compress)")
    parser.add_argument("--rows", type=int, default=DEFAULT_NUM_ROWS, help=f"rows (default {DEFAULT_NUM_ROWS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"generator seed (default {DEFAULT_SEED})")
    parser.add_argument("--style", default=TextStyle.SHORT.value, choices=[s.value for s in TextStyle],
                        help="short: the default corpus's ~70-word texts; long: write-ups of several hundred "
                             "words with the price facts spread through them (default short)")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error(f"--rows must be >= 1; got {args.rows}")
    rows = generate_listings(args.rows, args.seed, args.style)
    write_jsonl([{"text": row["text"], "price": row["price"]} for row in rows], args.output)
    words = sorted(len(row["text"].split()) for row in rows)
    print(f"Wrote {len(rows)} {args.style} synthetic listings to {args.output} "
          f"(median {words[len(words) // 2]} words, max {words[-1]}).")
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through the module's command line in the tests
    raise SystemExit(main())
