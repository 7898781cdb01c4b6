"""Which curve family does the fit pick, at 5, 7 and 9 sizes? A confusion table on simulated curves.

Three true shapes over finetune sizes 0..4,000: saturating (an exponential approach, 90% of the
gain by ~1,800 texts), linear in log(n) (never saturates) and flat (finetuning does nothing).
Each simulated run adds noise with the structure real runs have: a component every point shares
(the same held-out rows score every checkpoint) and a smaller independent one per point; the
"bootstrap replicates" handed to the fit are fresh draws of that same noise around the observed
points, as the hierarchical bootstrap produces. Every run is fitted twice: with the replicates
(the tool's default: generalised least squares on their covariance, AIC with known noise) and
without them (AICc on the residuals, the previous default).

    python benchmarks/model_choice.py --runs 100

prints, per number of sizes and selection method, the share of runs classified as saturating,
log-linear or flat for each true shape.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hf_finetune_curve.curve.fit import SATURATING, fit_curve

GRIDS = {
    5: [0, 500, 1000, 2000, 4000],
    7: [0, 250, 500, 1000, 2000, 3000, 4000],
    9: [0, 125, 250, 500, 750, 1000, 2000, 3000, 4000],
}
BASE, GAIN = 0.30, 0.08


def truth(shape: str, sizes: np.ndarray) -> np.ndarray:
    if shape == "saturating":
        return BASE + GAIN * (1.0 - np.exp(-sizes / 800.0))
    if shape == "loglinear":  # the same gain by 4,000, still rising at the same pace per doubling
        # On log(1 + n / n0) with n0 the smallest measured size, as the fit's log-linear family.
        n0 = sizes[sizes > 0].min()
        return BASE + GAIN * np.log1p(sizes / n0) / np.log1p(4000 / n0)
    return np.full(sizes.shape, BASE)


def noise(rng: np.random.Generator, shape: tuple[int, ...], shared_sd: float, point_sd: float) -> np.ndarray:
    return rng.normal(0, shared_sd, shape[:-1] + (1,)) + rng.normal(0, point_sd, shape)


def classify(family: str) -> str:
    return "saturating" if family in SATURATING else ("flat" if family == "constant" else "loglinear")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--shared-sd", type=float, default=0.03, help="noise all points share (same test rows)")
    parser.add_argument("--point-sd", type=float, default=0.006, help="independent noise per point")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shapes = ("saturating", "loglinear", "flat")
    print(f"{args.runs} runs per cell; noise: shared sd {args.shared_sd}, per point sd {args.point_sd}; "
          f"true gain {GAIN} from 0 to 4,000")
    print(f"{'sizes':>5}  {'selection':<16} {'truth':<11} {'-> saturating':>13} {'-> loglinear':>12} {'-> flat':>8}")
    started = time.perf_counter()
    for m, grid in GRIDS.items():
        sizes = np.asarray(grid, dtype=float)
        for method in ("known noise AIC", "AICc"):
            for shape in shapes:
                rng = np.random.default_rng([args.seed, m, shapes.index(shape)])
                counts = dict.fromkeys(shapes, 0)
                for _ in range(args.runs):
                    observed = truth(shape, sizes) + noise(rng, sizes.shape, args.shared_sd, args.point_sd)
                    resamples = observed + noise(rng, (400, sizes.size), args.shared_sd, args.point_sd)
                    fit = fit_curve(sizes, observed, point_resamples=resamples if method != "AICc" else None,
                                    n_boot=100, seed=int(rng.integers(1 << 30)))
                    counts[classify(fit.family)] += 1
                shares = [counts[s] / args.runs for s in shapes]
                print(f"{m:>5}  {method:<16} {shape:<11} {shares[0]:>13.2f} {shares[1]:>12.2f} {shares[2]:>8.2f}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
