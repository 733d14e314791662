"""Which side of a regression a commit is on, and where the first bad commit lies (``bench bisect``).

Good and bad are measured first, several runs each: their run figures (the log of the regressed
case's t/s, one value per server start) give the two levels and the spread between runs, the
yardstick. A commit in between then gets runs until a sequential probability ratio test (Wald
1945) between "it is at the good level" and "it is at the bad level", with the yardstick's spread,
crosses a boundary: ``log((1 - beta) / alpha)`` calls it bad, ``log(beta / (1 - alpha))`` good. A
commit that has not crossed either within the run budget is *unclear*, and says how far it got.
The boundaries come from Wald's approximation for a known spread; the spread here is measured from
a few runs, so the test reads it at its upper 80 % confidence bound, widened for the levels' own
uncertainty (``Yardstick.test_spread``), and ``simulate`` measures the error that is left with the
references estimated as bisect estimates them (tests/test_bisection.py pins it).

The search keeps an ordered list of commits, each good, bad, unclear, skipped (it did not build)
or not yet tested, and tests the middle of the open range between the last good and the first bad
commit; an unclear or skipped commit is stepped around, and when nothing is left to test the
answer is the range between the last good and the first bad, one commit where it can be.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from bench.doors import strict_json
from bench.errors import ConfigError
from bench.records import Commit

BISECT_SCHEMA = 1

DEFAULT_ALPHA = 0.01  # chance to call a good commit bad
DEFAULT_BETA = 0.01  # chance to call a bad commit good
DEFAULT_MAX_RUNS = 8  # runs a commit may take before it is unclear
MIN_REFERENCE_RUNS = 3
# runs of good and of bad: with 4, one bisection in eight at 3 spreads apart measured its references too
# close to go on (simulate); with 5, one in ten, and a commit was decided in 2.5 runs on average
DEFAULT_REFERENCE_RUNS = 5
MIN_SEPARATION = 2.0  # the levels must be this many spreads apart for a bisection to mean anything
SPREAD_BOUND = 0.8  # the test reads the spread between runs at this upper confidence bound


class Side(StrEnum):
    GOOD = "good"
    BAD = "bad"
    UNCLEAR = "unclear"  # the run budget was spent between the boundaries
    SKIPPED = "skipped"  # it did not build, or its server did not start: git bisect skip
    UNTESTED = "untested"


@dataclass(frozen=True, slots=True)
class Yardstick:
    """The two levels (mean log figure) and the spread between runs they were measured with."""

    good: float
    bad: float
    spread: float  # pooled standard deviation of the log figure between runs
    runs_good: int
    runs_bad: int

    @classmethod
    def measure(cls, good: Sequence[float], bad: Sequence[float]) -> Yardstick:
        """From the good and bad references' run figures (t/s, higher is better); refuses what cannot bisect."""
        if min(len(good), len(bad)) < MIN_REFERENCE_RUNS:
            raise ConfigError(f"bisect needs at least {MIN_REFERENCE_RUNS} runs of good and of bad to measure them")
        if min(min(good), min(bad)) <= 0:
            raise ConfigError("bisect figures must be positive rates (t/s)")
        g, b = [math.log(v) for v in good], [math.log(v) for v in bad]
        pooled = ((len(g) - 1) * statistics.variance(g) + (len(b) - 1) * statistics.variance(b)) / (len(g) + len(b) - 2)
        stick = cls(statistics.fmean(g), statistics.fmean(b), math.sqrt(pooled), len(g), len(b))
        if stick.separation < MIN_SEPARATION:
            raise ConfigError(
                f"good and bad are {stick.change:+.1%} apart, {stick.separation:.1f} times the spread between "
                f"runs ({stick.spread:.1%}): too close to tell a commit's side (at least {MIN_SEPARATION:g} "
                "times); measure more runs of each, or choose a figure that moved more"
            )
        return stick

    @property
    def change(self) -> float:
        """Bad over good, minus one."""
        return math.exp(self.bad - self.good) - 1

    @property
    def separation(self) -> float:
        """How many spreads apart the two levels are."""
        return abs(self.bad - self.good) / self.spread if self.spread > 0 else math.inf

    @property
    def test_spread(self) -> float:
        """The spread the sequential test uses: the measured one's upper ``SPREAD_BOUND`` bound (chi-square,
        the references' degrees of freedom), widened for the levels' own uncertainty. A spread taken as
        known from a few runs would make the test surer than it is."""
        from scipy.stats import chi2

        df = self.runs_good + self.runs_bad - 2
        upper = math.sqrt(df / chi2.ppf(1 - SPREAD_BOUND, df))
        levels = math.sqrt(1 + 1 / min(self.runs_good, self.runs_bad))
        return self.spread * upper * levels


@dataclass(frozen=True, slots=True)
class Classification:
    side: Side
    runs: int
    llr: float  # log-likelihood ratio, bad over good, of the runs so far
    level: float | None  # the commit's mean log figure, for the plot
    why: str


def classify(
    figures: Sequence[float],
    stick: Yardstick,
    *,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    max_runs: int = DEFAULT_MAX_RUNS,
) -> Classification:
    """A commit's side from its run figures so far: good, bad, or UNTESTED while more runs may decide it."""
    upper, lower = math.log((1 - beta) / alpha), math.log(beta / (1 - alpha))
    logs = [math.log(v) for v in figures if v > 0]
    if not logs:
        return Classification(Side.UNTESTED, 0, 0.0, None, "no run yet")
    spread = max(stick.test_spread, 1e-9)
    llr = sum(((x - stick.good) ** 2 - (x - stick.bad) ** 2) / (2 * spread**2) for x in logs)
    level = statistics.fmean(logs)
    if llr >= upper:
        return Classification(Side.BAD, len(logs), llr, level, f"like bad after {len(logs)} run(s)")
    if llr <= lower:
        return Classification(Side.GOOD, len(logs), llr, level, f"like good after {len(logs)} run(s)")
    if len(logs) >= max_runs:
        leaning = "bad" if llr > 0 else "good"
        return Classification(
            Side.UNCLEAR,
            len(logs),
            llr,
            level,
            f"unclear after {len(logs)} runs: leaning {leaning}, {abs(llr):.1f} of the "
            f"{upper if llr > 0 else -lower:.1f} it takes",
        )
    return Classification(Side.UNTESTED, len(logs), llr, level, "more runs")


@dataclass(frozen=True, slots=True)
class Outcome:
    """Error and cost of ``classify`` at one separation, over seeded trials."""

    wrong: float  # share of trials decided against the truth
    unclear: float
    mean_runs: float


def simulate(
    separation: float,
    *,
    truth: Side,
    reference_runs: int = DEFAULT_REFERENCE_RUNS,
    trials: int = 4000,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    max_runs: int = DEFAULT_MAX_RUNS,
) -> Outcome:
    """A commit of the ``truth`` side classified against references estimated from ``reference_runs`` each.

    Log figures are normal with spread 1, the levels ``separation`` apart: the test depends on
    nothing else. A trial whose references fail ``Yardstick.measure`` (too close by chance) is a
    trial that bisect refuses, counted as unclear.
    """
    import numpy as np  # a devtool's and a test's: kept out of the CLI's start

    rng = np.random.default_rng(seed)
    wrong = unclear = runs = 0
    for _ in range(trials):
        good = np.exp(rng.normal(0.0, 1.0, reference_runs) * 0.03)
        bad = np.exp((rng.normal(0.0, 1.0, reference_runs) - separation) * 0.03)
        try:
            stick = Yardstick.measure(good.tolist(), bad.tolist())
        except ConfigError:
            unclear += 1
            continue
        level = 0.0 if truth is Side.GOOD else -separation
        figures: list[float] = []
        while True:
            figures.append(float(np.exp((rng.normal() + level) * 0.03)))
            result = classify(figures, stick, alpha=alpha, beta=beta, max_runs=max_runs)
            if result.side is not Side.UNTESTED:
                break
        runs += result.runs
        if result.side is Side.UNCLEAR:
            unclear += 1
        elif result.side is not truth:
            wrong += 1
    return Outcome(wrong / trials, unclear / trials, runs / trials)


@dataclass
class Search:
    """The commits from good (first) to bad (last), and what each was found to be."""

    commits: Sequence[str]
    sides: dict[str, Side] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.commits) < 2:
            raise ConfigError("bisect needs a good and a bad commit, in that order")
        self.sides.setdefault(self.commits[0], Side.GOOD)
        self.sides.setdefault(self.commits[-1], Side.BAD)

    def side(self, commit: str) -> Side:
        return self.sides.get(commit, Side.UNTESTED)

    def bounds(self) -> tuple[int, int]:
        """Indices of the last good commit before the first bad one, and of that first bad one."""
        first_bad = next(i for i, c in enumerate(self.commits) if self.side(c) is Side.BAD)
        last_good = max(i for i, c in enumerate(self.commits[:first_bad]) if self.side(c) is Side.GOOD)
        return last_good, first_bad

    def next_commit(self) -> str | None:
        """The untested commit nearest the middle of the open range; None when the range is settled."""
        low, high = self.bounds()
        open_ = [i for i in range(low + 1, high) if self.side(self.commits[i]) is Side.UNTESTED]
        if not open_:
            return None
        middle = (low + high) / 2
        return self.commits[min(open_, key=lambda i: (abs(i - middle), i))]

    def record(self, commit: str, side: Side) -> None:
        if commit not in self.commits:
            raise ValueError(f"{commit} is not in the range")
        self.sides[commit] = side

    def answer(self) -> tuple[str, ...]:
        """The first bad commit, or the commits it may be (those after the last good, up to the first bad)."""
        low, high = self.bounds()
        return tuple(self.commits[low + 1 : high + 1])

    def steps_bound(self) -> int:
        """About how many commits a bisection of this range tests: log2 of the commits between."""
        return max(1, math.ceil(math.log2(max(2, len(self.commits) - 1))))


# ------------------------------------------------------------------ the answer


@dataclass(frozen=True, slots=True)
class Tested:
    commit: Commit
    side: Side
    figures: tuple[float, ...]  # the followed case's figure in each run (t/s)
    runs: tuple[str, ...]
    why: str


@dataclass(frozen=True, slots=True)
class BisectResult:
    answer: tuple[Commit, ...]  # one commit: the culprit; several: it is one of them
    tested: tuple[Tested, ...]
    stick: Yardstick
    case_id: str
    figure: str
    steps: int
    server_s: float
    build_s: float
    confidence: float
    path: Path
    order: tuple[str, ...] = ()  # every commit of the range, good first: the tested ones' places in it

    @property
    def found(self) -> bool:
        return len(self.answer) == 1


def write_result(result: BisectResult, repo: Path, good: str, bad: str) -> None:
    """``bisect-<time>.json``: the answer, the yardstick and every tested commit, written whole or not at all."""
    document: dict[str, Any] = {
        "schema_version": BISECT_SCHEMA,
        "repo": str(repo),
        "good": good,
        "bad": bad,
        "case_id": result.case_id,
        "figure": result.figure,
        "yardstick": {
            **asdict(result.stick),
            "good_tps": math.exp(result.stick.good),
            "bad_tps": math.exp(result.stick.bad),
        },
        "answer": [asdict(c) for c in result.answer],
        "found": result.found,
        "confidence": result.confidence,
        "steps": result.steps,
        "server_s": result.server_s,
        "build_s": result.build_s,
        "tested": [
            {
                **asdict(t.commit),
                "side": str(t.side),
                "figures": list(t.figures),
                "median": statistics.median(t.figures) if t.figures else None,
                "runs": list(t.runs),
                "why": t.why,
            }
            for t in result.tested
        ],
    }
    tmp = result.path.with_name(f".{result.path.name}.{os.getpid()}.tmp")
    tmp.write_text(strict_json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, result.path)


def answer_sentence(result: BisectResult) -> str:
    """'first bad commit: 1a2b3c4d5 server : ... (#12345), 2026-11-02, tg -9.1 %; 95.0 % confident'."""
    how_sure = f"{result.confidence:.1%} confident ({result.steps} steps)"
    if result.found:
        (c,) = result.answer  # its subject names its PR where it has one, as GitHub's squash merges write it
        change = f"{result.figure} {result.stick.change:+.1%}"
        return f"first bad commit: {c.short} {c.subject}, {c.date}; {change}; {how_sure}"
    listed = ", ".join(f"{c.short} {c.subject}" for c in result.answer)
    return (
        f"the first bad commit is one of {len(result.answer)}: {listed} (skipped or unclear commits hide "
        f"the border); {how_sure}"
    )
