"""A power plan: how many runs a side a comparison needs to find a change of a given size.

From several runs of one server with the same flags (an A/A group: ``all:LABEL``, a list or a
glob of run ids), each case's figure per run is the median of its requests' rates, as the
run-by-run comparison of ``bench compare`` and ``bench ab`` uses it. The spread between runs is
the standard deviation of the logs of those run figures (server starts, neighbours and clocks
are in it; requests of one run cannot show it). The power of Welch's test on the logs with ``n``
runs a side (Welch 1947) is simulated with that spread, seeded, with the statistic the
comparison computes; the plan is the smallest ``n`` whose power reaches the target.

Each figure is planned alone at ``alpha``; a comparison adjusted over many figures asks a
smaller p of each, so read the plan as the least a side needs.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.compare import FIGURES, run_figure
from bench.errors import ConfigError
from bench.figures import wall_s
from bench.records import RequestRecord
from bench.store import read_records

MAX_RUNS = 100
TRIALS = 4000  # power to within about 1.5 points
SEED = 20261126
PLANNED = tuple(f for f in FIGURES if f.name in ("pp_tps", "tg_tps"))


@dataclass(frozen=True, slots=True)
class FigurePlan:
    case_id: str
    figure: str
    runs_measured: int
    spread: float  # standard deviation of the log run figures (about the CV between runs)
    case_seconds: float  # median wall time of the case in one run
    runs_needed: tuple[tuple[float, int | None], ...]  # (change, runs a side; None: more than MAX_RUNS)


def welch_power(runs: int, spread: float, change: float, alpha: float = 0.05, *, trials: int = TRIALS) -> float:
    """Power of the two-sided Welch test on log run figures, ``runs`` a side, to find ``change``.

    Simulated, seeded, with the very statistic ``bench.stats.welch_log_ratio`` computes (its
    degrees of freedom estimated from the samples, as they are in a comparison): the
    noncentral-t formula with ``2n - 2`` degrees of freedom overstates it by several points
    at 4 runs a side.
    """
    from scipy.stats import t as student_t

    if runs < 2:
        return 0.0
    rng = np.random.default_rng(SEED)
    a = rng.normal(0.0, spread, size=(trials, runs))
    b = rng.normal(math.log1p(change), spread, size=(trials, runs))
    va, vb = a.var(axis=1, ddof=1) / runs, b.var(axis=1, ddof=1) / runs
    se = np.sqrt(va + vb)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (b.mean(axis=1) - a.mean(axis=1)) / se
        df = (va + vb) ** 2 / (va**2 / (runs - 1) + vb**2 / (runs - 1))
    p = 2 * student_t.sf(np.abs(t), df)
    return float(np.mean(np.where(se > 0, p < alpha, change != 0)))


def runs_needed(spread: float, change: float, *, alpha: float = 0.05, power: float = 0.95) -> int | None:
    """The fewest runs a side (2 or more) at which ``welch_power`` reaches ``power``; None beyond MAX_RUNS."""
    for runs in range(2, MAX_RUNS + 1):
        if welch_power(runs, spread, change, alpha) >= power:
            return runs
    return None


def _run_figures(records: Sequence[RequestRecord]) -> dict[tuple[str, str], tuple[float, float]]:
    """(case, figure) -> (the run's figure, as the comparison takes it; the case's wall seconds)."""
    out = {}
    for case_id in sorted({r.case_id for r in records}):
        in_case = [r for r in records if r.case_id == case_id]
        for figure in PLANNED:
            value = run_figure(in_case, figure)
            if value is not None and value > 0:
                out[(case_id, figure.name)] = (value, wall_s(in_case))
    return out


def make_plan(
    run_dirs: Sequence[Path], changes: Sequence[float], *, alpha: float = 0.05, power: float = 0.95
) -> list[FigurePlan]:
    """A plan per case and figure from an A/A group of at least three runs."""
    if len(run_dirs) < 3:
        raise ConfigError(f"a plan needs at least 3 runs of the same setup to see their spread; got {len(run_dirs)}")
    if not 0 < alpha < 1 or not 0 < power < 1 or not changes or not all(0 < c < 1 for c in changes):
        raise ConfigError("--alpha and --power are between 0 and 1, and each --change a percentage from 0 to 100")
    per_run = [_run_figures(list(read_records(path))) for path in run_dirs]
    plans = []
    for key in sorted(set().union(*per_run)):
        measured = [figures[key] for figures in per_run if key in figures]
        if len(measured) < 3:
            continue
        spread = statistics.stdev(math.log(value) for value, _ in measured)
        plans.append(
            FigurePlan(
                case_id=key[0],
                figure=key[1],
                runs_measured=len(measured),
                spread=spread,
                case_seconds=statistics.median(seconds for _, seconds in measured),
                runs_needed=tuple((c, runs_needed(spread, c, alpha=alpha, power=power)) for c in changes),
            )
        )
    return plans
