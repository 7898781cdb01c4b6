"""Calibration of the curve's verdicts: nominal vs measured false-call rates on simulated nulls.

Prints (docs/verdicts.md has the numbers):
1. the seed-level test at 2 and 3 finetune seeds: this version's ``HierarchicalBootstrap.delta`` against the
   percentile of the seed-bootstrap replicates (what the delta was before), and its power on a clear gain;
2. the back-test: false "OUTSIDE" rate when the curve is right, and how often a 3-sd miss is caught, for the
   paired back-test against the refit's observation band (the previous method, recomputed here);
3. the next-size suggestion on one simulated curve (run it with PYTHONPATH=<an older checkout> for "before").

    python benchmarks/verdict_calibration.py [--reps 1000] [--backtest-reps 300]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def seed_level(reps: int) -> None:
    from test_verdicts import _seed_null_run

    from hf_finetune_curve.curve.uncertainty import hierarchical_bootstrap

    print("seed-level test, nominal 5% (r2_log, 40 rows, 32 resamples)")
    print("seeds  tau   this version  percentile of seed bootstrap (before)")
    for seeds in (2, 3):
        for tau in (0.05, 0.2, 0.5):
            rng = np.random.default_rng(seeds)
            new = old = 0
            for repetition in range(reps):
                y, base, tuned = _seed_null_run(rng, seeds, tau=tau)
                boot = hierarchical_bootstrap(y, {"f0": base, "f1": tuned}, n_resamples=32, seed=repetition)
                new += boot.delta("r2_log", "f0", "f1").better is not None
                deltas = boot.replicates["r2_log"][:, 1] - boot.replicates["r2_log"][:, 0]
                low, high = np.quantile(deltas, [0.025, 0.975])
                old += bool(low > 0 or high < 0)
            print(f"{seeds:>5}  {tau:.2f}  {new / reps:>12.1%}  {old / reps:>10.1%}")
    for gain in (0.3, 0.5):
        rng = np.random.default_rng(7)
        called = 0
        for repetition in range(100):
            y, base, tuned = _seed_null_run(rng, 3, tau=0.05, gain=gain, n_rows=200)
            boot = hierarchical_bootstrap(y, {"f0": base, "f1": tuned}, n_resamples=32, seed=repetition)
            called += boot.delta("r2_log", "f0", "f1").better is True
        print(f"power, 3 seeds, error scale -{gain:.0%}, 200 rows: {called}%")


def backtest(reps: int) -> None:
    from test_verdicts import _simulated_curve

    from hf_finetune_curve.curve.fit import fit_curve

    print("\nback-test, nominal 95% interval (7 sizes, shared sd 0.006 + own 0.002 per point)")
    print("case         paired (this version)  observation band (before)")
    for label, miss in (("curve right", 0.0), ("3-sd miss", -3.0)):
        rng = np.random.default_rng(12)
        new = old = 0
        for _ in range(reps):
            fit = _simulated_curve(rng, miss_sds=miss)
            result = fit.backtest()
            new += not result["within_interval"]
            sizes = np.asarray(fit.sizes)
            keep = sizes < sizes.max()
            sub = fit_curve(sizes[keep], np.asarray(fit.values)[keep], point_resamples=fit._point_resamples[:, keep],
                            n_boot=200, seed=0, offset=fit.offset)
            low, high = sub.predict_interval(sizes.max(), kind="observation")
            old += not (low <= fit.values[-1] <= high)
        print(f"{label:<12} {new / reps:>20.1%}  {old / reps:>10.1%}")


def next_size() -> None:
    from test_verdicts import _simulated_curve

    try:
        from hf_finetune_curve.curve.next_size import suggest_next_size
    except ImportError:  # before the split of fit.py
        from hf_finetune_curve.curve.fit import suggest_next_size
    fit = _simulated_curve(np.random.default_rng(0))
    start = time.perf_counter()
    suggestion = suggest_next_size(fit, max_size=128_000)
    print("\nnext size on one simulated curve (power, n0 = 1,000, sizes 0-32k):")
    print(f"  N for 90%: {fit.answer((0.9,))[0]}")
    print(f"  suggestion: {suggestion['size']}: {suggestion['reason']}")
    print("  candidates (expected high/low):", {k: round(v, 2) if v else v for k, v in suggestion["candidates"].items()})
    print(f"  ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1000)
    parser.add_argument("--backtest-reps", type=int, default=300)
    parser.add_argument("--only", choices=["seeds", "backtest", "next-size"])
    args = parser.parse_args()
    if args.only in (None, "seeds"):
        seed_level(args.reps)
    if args.only in (None, "backtest"):
        backtest(args.backtest_reps)
    if args.only in (None, "next-size"):
        next_size()
