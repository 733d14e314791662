"""Calibration of the comparison: false-positive rate and power on synthetic runs.

Runs of ``n`` requests are drawn as real runs behave: each run's whole speed off by a
log-normal factor (``run_cv``: the spread between server starts), each request around it
(``cv``: the spread within a run; optionally a share slowed by a busy machine), side B
shifted by a known amount. ``bench compare``'s rule is applied as a user meets it: one run a
side with nothing else (the allowance), one run a side with a noise profile measured on
``profile_runs`` further runs of the same noise, or several runs a side (Welch). The share
called "regressed" is the power; at a 0 % shift, the share called changed either way is the
false-positive rate.

``python -m bench.devtools.calibration`` prints the table kept in docs/statistics.md.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.decide.compare import ALPHA, MIN_EFFECT, Multiplicity, Verdict, adjusted, compare_figure
from bench.decide.noise import NoiseSource, Spread, spreads_of
from bench.devtools.testing.records import record, timings
from bench.figures.throughput import FIGURES
from bench.records import RequestRecord

# Spreads measured on the embedded server (gemma3-270m, 2 CPU threads): 46 runs of the quick
# set, each its own server start (docs/measured/embedded-noise.json; docs/statistics.md).
PP_CV = 0.004  # within a run, per request
TG_CV = 0.019
PP_RUN_CV = 0.027  # between runs: the whole run's speed
TG_RUN_CV = 0.045
SHIFTS = (0.0, 0.03, 0.065, 0.10)
PROFILE_RUNS = 6  # what bench noise runs by default
TG = next(f for f in FIGURES if f.name == "tg_tps")


@dataclass(frozen=True, slots=True)
class Noise:
    cv: float  # within a run
    run_cv: float = 0.0  # between runs
    outlier_share: float = 0.0  # requests slowed by another process on the machine
    outlier_slowdown: float = 0.7


def _lognormal(cv: float, rng: np.random.Generator, size: int | None = None) -> Any:
    sigma = float(np.sqrt(np.log(1 + cv**2)))
    return rng.lognormal(-(sigma**2) / 2, sigma, size)


def synthetic_run(
    n: int, tg_tps: float, noise: Noise, rng: np.random.Generator, run_id: str = "cal"
) -> list[RequestRecord]:
    """One run: its own speed (the run factor), then ``n`` requests around it."""
    speeds = tg_tps * float(_lognormal(noise.run_cv, rng)) * _lognormal(noise.cv, rng, n)
    slowed = rng.random(n) < noise.outlier_share
    speeds[slowed] *= noise.outlier_slowdown
    records = []
    for i, speed in enumerate(speeds):
        predicted_ms = 128 / speed * 1000
        records.append(
            record(
                run_id=run_id,
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


def _side(runs: int, n: int, speed: float, noise: Noise, rng: np.random.Generator, tag: str) -> list[RequestRecord]:
    return [r for k in range(runs) for r in synthetic_run(n, speed, noise, rng, run_id=f"{tag}{k}")]


def detection_rate(
    n: int,
    shift: float,
    noise: Noise,
    *,
    runs: int = 1,
    profile_runs: int = 0,
    trials: int = 500,
    seed: int = 0,
    min_effect: float = MIN_EFFECT,
    allowance: float | None = None,
) -> float:
    """Share of trials in which a drop of ``shift`` in tg t/s is called regressed (either way at 0).

    ``runs`` a side of ``n`` requests each. With one run a side and ``profile_runs`` of 3 or
    more, the spread between runs comes from a profile of that many further runs (measured
    afresh each trial, as a user's would be); with none, the ``allowance`` if one is given (else
    nothing is called: the row stays undecided).
    """
    rng = np.random.default_rng(seed)
    hits = 0
    for trial in range(trials):
        spread = None
        if profile_runs >= 3:
            measured = [synthetic_run(n, 100.0, noise, rng, run_id=f"p{k}") for k in range(profile_runs)]
            spread = next(s for s in spreads_of(measured, (TG,)))
        a = _side(runs, n, 100.0, noise, rng, "a")
        b = _side(runs, n, 100.0 * (1 - shift), noise, rng, "b")
        row = compare_figure(
            "c", TG, a, b, min_effect=min_effect, seed=trial, spread=spread,
            spread_source=NoiseSource.PROFILE, allowance=allowance,
        )  # fmt: skip
        hits += _called(row.verdict, shift)
    return hits / trials


@dataclass(frozen=True, slots=True)
class FamilyRates:
    false_alarm: float  # share of comparisons calling any unchanged figure changed
    found: float  # share of the changed figures called regressed (nan when none changed)


def family_rates(
    tests: int, changed: int, shift: float, n: int, noise: Noise, method: Multiplicity, *, trials: int = 200,
    seed: int = 0, profile_runs: int = 0,
) -> FamilyRates:  # fmt: skip
    """One comparison of ``tests`` figures, ``changed`` of them dropped by ``shift``, decided with ``method``.

    What a user sees: a scenario set compared at once, many cases and figures, the verdicts
    decided at p-values adjusted over all of them. A flag such as ``-fa`` moves many figures
    together, so the changed ones are a block of the family, not one. One run a side: each side's
    run factor is shared by all its figures (one server start serves every case), the requests
    are each figure's own; with ``profile_runs``, the spread comes from that many further runs.
    """
    rng = np.random.default_rng(seed)
    alarms = found = 0
    within = Noise(noise.cv, 0.0, noise.outlier_share, noise.outlier_slowdown)
    for trial in range(trials):
        spreads: list[Spread | None] = [None] * tests
        if profile_runs >= 3:
            factors = [float(_lognormal(noise.run_cv, rng)) for _ in range(profile_runs)]
            spreads = [
                spreads_of([synthetic_run(n, 100.0 * f, within, rng, run_id=f"p{k}") for k, f in enumerate(factors)],
                           (TG,))[0]
                for _ in range(tests)
            ]  # fmt: skip
        run_a, run_b = float(_lognormal(noise.run_cv, rng)), float(_lognormal(noise.run_cv, rng))
        rows = [
            compare_figure(
                "c", TG, synthetic_run(n, 100.0 * run_a, within, rng),
                synthetic_run(n, 100.0 * run_b * (1 - (shift if k < changed else 0.0)), within, rng), seed=trial,
                spread=spreads[k], spread_source=NoiseSource.PROFILE,
            )
            for k in range(tests)
        ]  # fmt: skip
        decided = adjusted(rows, method, alpha=ALPHA, min_effect=MIN_EFFECT)
        alarms += any(row.verdict in (Verdict.REGRESSED, Verdict.IMPROVED) for row in decided[changed:])
        found += sum(row.verdict == Verdict.REGRESSED for row in decided[:changed])
    return FamilyRates(alarms / trials, found / (trials * changed) if changed else float("nan"))


RULES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("one run a side, requests only (the old rule)", {"allowance": 0.0}),
    ("one run a side, no profile, --allowance 15", {"allowance": 0.15}),
    ("one run a side, no profile (the default: undecided)", {}),
    (f"one run a side + profile of {PROFILE_RUNS} runs", {"profile_runs": PROFILE_RUNS}),
    ("2 runs a side", {"runs": 2}),
    ("4 runs a side (bench ab's default blocks)", {"runs": 4}),
)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.devtools.calibration", description=__doc__.split(".")[0])
    parser.add_argument("--trials", type=int, default=1000)
    args = parser.parse_args()
    print("| figure (spread within / between runs) | rule | 0 % (false positives, either way) | 3 % | 6.5 % | 10 % |")
    print("|---|---|---|---|---|---|")
    for name, noise in (
        (f"tg ({TG_CV:.1%} / {TG_RUN_CV:.1%})", Noise(TG_CV, TG_RUN_CV)),
        (f"pp ({PP_CV:.1%} / {PP_RUN_CV:.1%})", Noise(PP_CV, PP_RUN_CV)),
        (f"pp ({PP_CV:.1%} / {PP_RUN_CV:.1%}), 5 % of requests slowed 30 %", Noise(PP_CV, PP_RUN_CV, 0.05)),
    ):
        for rule, options in RULES:
            rates = [detection_rate(5, s, noise, trials=args.trials, seed=17, **options) for s in SHIFTS]
            print(f"| {name} | {rule} | " + " | ".join(f"{r:.1%}" for r in rates) + " |")
    print(
        f"\nMany figures at once: comparisons of 50 figures (5 requests each, tg {TG_CV:.1%} within a run), one "
        f"run a side + profile of {PROFILE_RUNS} runs; runs that agree (a quiet GPU), and runs {TG_RUN_CV:.1%} apart "
        "(each run's drift moves all its figures together):\n"
    )
    print(
        "| runs | adjustment | A/A: comparisons calling anything changed | 10 of 50 figures 6.5 % lower: share found |"
    )
    print("|---|---|---|---|")
    trials = max(args.trials // 5, 50)
    for name, noise in (("agree", Noise(TG_CV)), (f"{TG_RUN_CV:.1%} apart", Noise(TG_CV, TG_RUN_CV))):
        for method in Multiplicity:
            aa = family_rates(50, 0, 0.0, 5, noise, method, trials=trials, seed=29, profile_runs=PROFILE_RUNS)
            broad = family_rates(50, 10, 0.065, 5, noise, method, trials=trials, seed=31, profile_runs=PROFILE_RUNS)
            print(f"| {name} | {method} | {aa.false_alarm:.1%} | {broad.found:.1%} |")


if __name__ == "__main__":
    main()
