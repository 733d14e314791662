"""A power plan: how many runs a side a comparison needs to find a change of a given size.

From the spread between runs of one setup (``bench.decide.noise``: a stored noise profile, a label's
history, or an A/A group named here: ``all:LABEL``, a list or a glob of run ids), each case's
figure per run being the median of its requests' rates, as the run-by-run comparison of
``bench compare`` and ``bench ab`` uses it (server starts, neighbours and clocks are in that
spread; requests of one run cannot show it). The spread splits into a run's own part and its
requests' sampling (``Spread.at_requests``), so the plan also says what four times the
requests a case would save: little where the runs' own part dominates. The power of Welch's test on the logs with ``n``
runs a side (Welch 1947) is simulated with that spread, seeded, with the statistic the
comparison computes; the plan is the smallest ``n`` whose power reaches the target.

Each figure is planned alone at ``alpha``; a comparison adjusted over many figures asks a
smaller p of each, so read the plan as the least a side needs.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.decide.noise import NoiseProfile, measure_profile
from bench.decide.stats import welch_arrays
from bench.errors import ConfigError

MAX_RUNS = 100
TRIALS = 4000  # power to within about 1.5 points
SEED = 20261126
PLANNED = ("pp_tps", "tg_tps")


@dataclass(frozen=True, slots=True)
class FigurePlan:
    case_id: str
    figure: str
    runs_measured: int
    spread: float  # standard deviation of the log run figures (about the CV between runs)
    case_seconds: float  # median wall time of the case in one run
    runs_needed: tuple[tuple[float, int | None], ...]  # (change, runs a side; None: more than MAX_RUNS)
    requests: int = 0  # measured requests a case per run, as the spread was measured
    # the same with four times the requests a case (the runs' own part of the spread stays)
    runs_needed_more_requests: tuple[tuple[float, int | None], ...] = ()


MORE_REQUESTS = 4


def server_minutes(runs_a_side: int, case_seconds: float) -> float:
    """The server time a comparison of this many runs a side takes for one case: both sides."""
    return 2 * runs_a_side * case_seconds / 60


def welch_power(runs: int, spread: float, change: float, alpha: float = 0.05, *, trials: int = TRIALS) -> float:
    """Power of the two-sided Welch test on log run figures, ``runs`` a side, to find ``change``.

    Simulated, seeded, with the very statistic ``bench.decide.stats.welch_log_ratio`` computes (its
    degrees of freedom estimated from the samples, as they are in a comparison): the
    noncentral-t formula with ``2n - 2`` degrees of freedom overstates it by several points
    at 4 runs a side.
    """
    from scipy.stats import t as student_t

    if runs < 2:
        return 0.0
    diff, se, df = _simulated_runs(runs, spread, change, trials)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * student_t.sf(np.abs(diff / se), df)
    return float(np.mean(np.where(se > 0, p < alpha, change != 0)))


def _simulated_runs(runs: int, spread: float, change: float, trials: int) -> tuple[Any, Any, Any]:
    """Welch's difference, standard error and degrees of freedom of ``trials`` seeded comparisons of log run figures."""
    rng = np.random.default_rng(SEED)
    a = rng.normal(0.0, spread, size=(trials, runs))
    b = rng.normal(math.log1p(change), spread, size=(trials, runs))
    return welch_arrays(a, b)


def runs_needed(spread: float, change: float, *, alpha: float = 0.05, power: float = 0.95) -> int | None:
    """The fewest runs a side (2 or more) at which ``welch_power`` reaches ``power``; None beyond MAX_RUNS."""
    for runs in range(2, MAX_RUNS + 1):
        if welch_power(runs, spread, change, alpha) >= power:
            return runs
    return None


DECIDE_TRIALS = 2000  # the share that decides to within about 1 point: enough to count runs by
DECIDE_POWER = 0.8


def decision_power(
    runs: int, spread: float, change: float, *, margin: float, min_effect: float, alpha: float = 0.05,
    trials: int = DECIDE_TRIALS,
) -> float:  # fmt: skip
    """The share of comparisons of ``runs`` a side that decide, when the true change is ``change``.

    Decided is what ``bench.decide.compare.decided`` calls decided: *changed* (Welch p < alpha and
    the change at least ``min_effect``) or *the same within +-margin* (two one-sided tests at
    alpha). Simulated, seeded, with the statistics the comparison computes.
    """
    from scipy.stats import t as student_t

    if runs < 2:
        return 0.0
    diff, se, df = _simulated_runs(runs, spread, change, trials)
    bound = math.log1p(margin)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_change = 2 * student_t.sf(np.abs(diff) / se, df)
        p_same = np.maximum(student_t.sf((diff + bound) / se, df), student_t.cdf((diff - bound) / se, df))
    changed = (p_change < alpha) & (np.abs(np.expm1(diff)) >= min_effect)
    return float(np.mean(changed | (p_same < alpha)))


@functools.lru_cache(maxsize=512)
def runs_to_decide(
    spread: float, change: float, *, margin: float, min_effect: float, alpha: float = 0.05,
    power: float = DECIDE_POWER,
) -> int | None:  # fmt: skip
    """The fewest runs a side at which a comparison decides a true ``change`` with ``power``; None past MAX_RUNS.

    What "undecided, about N more runs a side" is counted by: the change the runs showed taken as
    the truth, the spread between runs as measured. Bisected: the share that decides grows with
    the runs.
    """

    def enough(runs: int) -> bool:
        return decision_power(runs, spread, change, margin=margin, min_effect=min_effect, alpha=alpha) >= power

    if spread <= 0:
        return 2
    if not enough(MAX_RUNS):
        return None
    low, high = 2, MAX_RUNS
    while low < high:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle + 1
    return low


def make_plan(
    source: Sequence[Path] | NoiseProfile, changes: Sequence[float], *, alpha: float = 0.05, power: float = 0.95
) -> list[FigurePlan]:
    """A plan per case and figure (pp and tg) from a noise profile, or an A/A group of at least three runs."""
    if not 0 < alpha < 1 or not 0 < power < 1 or not changes or not all(0 < c < 1 for c in changes):
        raise ConfigError("--alpha and --power are between 0 and 1, and each --change a percentage from 0 to 100")
    profile = source if isinstance(source, NoiseProfile) else measure_profile(list(source))
    plans = []
    for spread in profile.spreads:
        if spread.figure not in PLANNED:
            continue
        more = spread.at_requests(spread.requests * MORE_REQUESTS)
        plans.append(
            FigurePlan(
                case_id=spread.case_id,
                figure=spread.figure,
                runs_measured=spread.runs,
                spread=spread.between,
                case_seconds=spread.case_seconds or 0.0,
                runs_needed=tuple((c, runs_needed(spread.between, c, alpha=alpha, power=power)) for c in changes),
                requests=spread.requests,
                runs_needed_more_requests=tuple((c, runs_needed(more, c, alpha=alpha, power=power)) for c in changes),
            )
        )
    return sorted(plans, key=lambda p: (p.case_id, p.figure))
