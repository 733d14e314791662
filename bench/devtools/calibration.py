"""Calibration of the comparison: false-positive rate and power on synthetic runs.

Two runs of ``n`` requests each are drawn with per-request t/s spread as
measured on the embedded CPU server (log-normal, coefficient of variation
``cv``; optionally a share of requests slowed by a busy machine), run B shifted
by a known amount. ``bench compare``'s verdict rule (bootstrap CI, Mann-Whitney
U, minimum effect) is applied to each pair; the share of pairs called
"regressed" is the false-positive rate at a 0 % shift and the power otherwise.

``python -m bench.devtools.calibration`` prints the table kept in docs/statistics.md.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import numpy as np

from bench.compare import ALPHA, FIGURES, MIN_EFFECT, Multiplicity, Verdict, adjusted, compare_figure
from bench.devtools.testing.records import record, timings
from bench.records import RequestRecord

# Per-request spread measured on the embedded server (gemma3-270m, 2 CPU threads), quiet machine.
PP_CV = 0.03
TG_CV = 0.015
SHIFTS = (0.0, 0.03, 0.065, 0.10)
# Spread of a whole server start's speed around the variant's: A/A runs of bench ab on the
# embedded server put two starts of the same flags up to 7 % apart in tg.
BLOCK_CV = 0.03


@dataclass(frozen=True, slots=True)
class Noise:
    cv: float
    outlier_share: float = 0.0  # requests slowed by another process on the machine
    outlier_slowdown: float = 0.7


def synthetic_run(n: int, tg_tps: float, noise: Noise, rng: np.random.Generator) -> list[RequestRecord]:
    sigma = float(np.sqrt(np.log(1 + noise.cv**2)))
    speeds = tg_tps * rng.lognormal(-(sigma**2) / 2, sigma, n)
    slowed = rng.random(n) < noise.outlier_share
    speeds[slowed] *= noise.outlier_slowdown
    records = []
    for i, speed in enumerate(speeds):
        predicted_ms = 128 / speed * 1000
        records.append(
            record(
                run_id="cal",
                case_id="c",
                scenario="c",
                index=i,
                stream=False,
                prompt_tokens_target=64,
                output_tokens_target=128,
                timings=timings(64, 100.0, 128, predicted_ms),
                t_end=predicted_ms / 1000,
            )
        )
    return records


def _called(verdict: Verdict, shift: float) -> bool:
    """A hit: at no change, any change called either way (a two-sided test errs both ways); else the drop."""
    if shift == 0:
        return verdict in (Verdict.REGRESSED, Verdict.IMPROVED)
    return verdict == Verdict.REGRESSED


def detection_rate(
    n: int, shift: float, noise: Noise, *, trials: int = 500, seed: int = 0, min_effect: float = 0.02
) -> float:
    """Share of trials in which a drop of ``shift`` in tg t/s is called regressed.

    At ``shift`` 0 this is the false-positive rate: a verdict of either direction counts.
    """
    tg = next(f for f in FIGURES if f.name == "tg_tps")
    rng = np.random.default_rng(seed)
    hits = 0
    for trial in range(trials):
        a = synthetic_run(n, 100.0, noise, rng)
        b = synthetic_run(n, 100.0 * (1 - shift), noise, rng)
        hits += _called(compare_figure("c", tg, a, b, min_effect=min_effect, seed=trial).verdict, shift)
    return hits / trials


def pooled_detection_rate(
    blocks: int, per_block: int, shift: float, block_cv: float, noise: Noise, *, trials: int = 500, seed: int = 0
) -> float:
    """Share of trials in which pooled blocks (as ``bench ab`` runs them) are called regressed (either way at 0).

    Each block is a server start whose whole speed is off by a log-normal factor
    of spread ``block_cv``: the instance-to-instance spread that requests of one
    start cannot show.
    """
    tg = next(f for f in FIGURES if f.name == "tg_tps")
    rng = np.random.default_rng(seed)
    block_sigma = float(np.sqrt(np.log(1 + block_cv**2)))
    hits = 0
    for trial in range(trials):
        sides = []
        for side, speed in (("a", 100.0), ("b", 100.0 * (1 - shift))):
            records = []
            for block in range(blocks):
                factor = float(rng.lognormal(-(block_sigma**2) / 2, block_sigma))
                run = synthetic_run(per_block, speed * factor, noise, rng)
                records += [dataclasses.replace(r, run_id=f"{side}{block}") for r in run]
            sides.append(records)
        hits += _called(compare_figure("c", tg, sides[0], sides[1], seed=trial).verdict, shift)
    return hits / trials


@dataclass(frozen=True, slots=True)
class FamilyRates:
    false_alarm: float  # share of comparisons calling any unchanged figure changed
    found: float  # share of the changed figures called regressed (nan when none changed)


def family_rates(
    tests: int, changed: int, shift: float, n: int, noise: Noise, method: Multiplicity, *, trials: int = 200,
    seed: int = 0,
) -> FamilyRates:  # fmt: skip
    """One comparison of ``tests`` figures, ``changed`` of them dropped by ``shift``, decided with ``method``.

    What a user sees: a scenario set compared at once, many cases and figures, the verdicts
    decided at p-values adjusted over all of them. A flag such as ``-fa`` moves many figures
    together, so the changed ones are a block of the family, not one.
    """
    tg = next(f for f in FIGURES if f.name == "tg_tps")
    rng = np.random.default_rng(seed)
    alarms = found = 0
    for trial in range(trials):
        rows = [
            compare_figure(
                "c", tg, synthetic_run(n, 100.0, noise, rng),
                synthetic_run(n, 100.0 * (1 - (shift if k < changed else 0.0)), noise, rng), seed=trial,
            )
            for k in range(tests)
        ]  # fmt: skip
        decided = adjusted(rows, method, alpha=ALPHA, min_effect=MIN_EFFECT)
        alarms += any(row.verdict in (Verdict.REGRESSED, Verdict.IMPROVED) for row in decided[changed:])
        found += sum(row.verdict == Verdict.REGRESSED for row in decided[:changed])
    return FamilyRates(alarms / trials, found / (trials * changed) if changed else float("nan"))


def requests_for_power(shift: float, noise: Noise, *, power: float = 0.95, trials: int = 300, seed: int = 0) -> int:
    """Smallest n per run (from 4, in steps) whose detection rate reaches ``power``."""
    for n in (4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100):
        if detection_rate(n, shift, noise, trials=trials, seed=seed) >= power:
            return n
    return -1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.devtools.calibration", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1000)
    args = parser.parse_args()
    rows = []
    for name, noise in (
        (f"tg, cv {TG_CV:.1%}", Noise(TG_CV)),
        (f"pp, cv {PP_CV:.1%}", Noise(PP_CV)),
        (f"pp, cv {PP_CV:.1%} + 5 % slowed 30 %", Noise(PP_CV, 0.05)),
    ):
        for n in (5, 10):
            rates = [detection_rate(n, s, noise, trials=args.trials, seed=17) for s in SHIFTS]
            rows.append(f"| {name} | {n} | " + " | ".join(f"{r:.1%}" for r in rates) + " |")
        rows.append(f"| {name} | n for 95 % power at 3 % | {requests_for_power(0.03, noise)} | | | |")
    print("| noise | requests per run | 0 % (false positives, either way) | 3 % | 6.5 % | 10 % |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nPooled blocks (bench ab), 6 requests a block, tg cv {TG_CV:.1%}, server starts {BLOCK_CV:.0%} apart:\n")
    print("| blocks a side | 0 % (false positives, either way) | 6.5 % | 10 % | 20 % |")
    print("|---|---|---|---|---|")
    for blocks in (2, 3, 4):
        rates = [
            pooled_detection_rate(blocks, 6, s, BLOCK_CV, Noise(TG_CV), trials=args.trials, seed=23)
            for s in (0.0, 0.065, 0.10, 0.20)
        ]
        print(f"| {blocks} | " + " | ".join(f"{r:.1%}" for r in rates) + " |")
    print(f"\nMany figures at once: comparisons of 50 figures (5 requests each, tg cv {TG_CV:.1%}):\n")
    print("| adjustment | A/A: comparisons calling anything changed | 10 of 50 figures 6.5 % lower: share found |")
    print("|---|---|---|")
    trials = max(args.trials // 5, 50)
    for method in Multiplicity:
        aa = family_rates(50, 0, 0.0, 5, Noise(TG_CV), method, trials=trials, seed=29)
        broad = family_rates(50, 10, 0.065, 5, Noise(TG_CV), method, trials=trials, seed=31)
        print(f"| {method} | {aa.false_alarm:.1%} | {broad.found:.1%} |")


if __name__ == "__main__":
    main()
