"""Compare two runs, figure by figure and case by case, with statistics a person can trust.

For each case both runs measured and each figure: both run figures (pp/tg as
the summary's ratio of sums, latencies as medians), the change as the ratio of
the per-request medians B / A with a 95 % bootstrap confidence interval
(requests resampled), a two-sided Mann-Whitney U test on the per-request
values, and one of three answers (Pinpoint's: different, same, unknown):

- ``improved`` / ``regressed``: p < alpha, the interval excludes 1, and the
  change is at least ``min_effect`` (so a tiny but certain change is not news);
- ``same``: the same within +-``margin`` by two one-sided tests at alpha, which needs
  the spread between runs (several runs a side, a noise profile or the label's history);
- ``undecided`` otherwise, with about how many more runs a side would decide it;
- ``not comparable``: too few requests on a side, or the case ran only in one.

With one run a side and no spread between runs from anywhere, nothing is decided: two starts
of one server land several percent apart (a two-stream case's pp 37 % apart), which the requests
of one run cannot show.

Runs of different models or different scenario definitions are refused unless
``force`` is given: a different build or server flags is what a comparison is
for, and is shown, not refused.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from bench.decide.noise import MIN_RUNS, NoiseProfile, NoiseSource, Spread, spreads_of
from bench.decide.sequential import SequentialDesign
from bench.decide.stats import (
    RatioEstimate,
    bh_adjust,
    bootstrap_ratio_of_medians,
    detectable_change,
    equivalence_p,
    holm_adjust,
    known_spread_log_ratio,
    mann_whitney_p,
    welch_log_ratio,
    welch_standard_error,
)
from bench.errors import ConfigError
from bench.figures.baselines import baseline_headline
from bench.figures.prompt_cache import summarise_cache, uses_cache
from bench.figures.slo import summarise_slo
from bench.figures.speculative import summarise_drafts
from bench.figures.throughput import FIGURES, GOODPUT, Figure, output_tps, per_request, samples_with_runs
from bench.inputs.baselines import Baselines
from bench.inputs.slo import Slo, slo_from_json
from bench.records import RequestRecord
from bench.store.run_dir import read_gpu_samples, read_records, read_run_meta, scenario_definitions
from bench.telemetry.energy import case_energy
from bench.telemetry.samples import GpuSample

ALPHA = 0.05
MIN_EFFECT = 0.02
MIN_SAMPLES = 3
# "The same within +-E": at the spreads between server starts measured here (tg 4.5 %, pp 2.7 %,
# docs/statistics.md) an identical A/A shows +-5 % in about 14 runs a side for tg and 6 for pp;
# +-3 % would take 39 and 14. --equivalence tightens it where the runs agree better (a quiet GPU).
DEFAULT_EQUIVALENCE = 0.05
DETECTION_POWER = 0.8


class Verdict(StrEnum):
    IMPROVED = "improved"
    REGRESSED = "regressed"
    SAME = "same"  # the same within +-margin (two one-sided tests)
    UNDECIDED = "undecided"  # neither: more runs would tell (FigureComparison.more_runs)
    NOT_COMPARABLE = "not comparable"
    NOT_TESTED = "not tested"  # shown for context (one value per run), no statistics


TESTED = (Verdict.IMPROVED, Verdict.REGRESSED, Verdict.SAME, Verdict.UNDECIDED)
CHANGED = (Verdict.IMPROVED, Verdict.REGRESSED)


class Multiplicity(StrEnum):
    """How a comparison's many tests are held together (bench.decide.stats has the methods and citations)."""

    HOLM = "holm"  # family-wise error: the chance of any false verdict at most alpha
    BH = "bh"  # false discovery rate: at most alpha of the verdicts false, on average
    NONE = "none"  # each test alone: with 50 figures, about 2.5 false verdicts at alpha 0.05


# BH: in an A/A (every figure unchanged) it holds the chance of any false verdict at alpha, as
# Holm does; and a flag that moves many figures at once stays findable with 5 requests a case,
# where Holm needs p < 0.001 from tests whose smallest possible p is 0.008 (docs/statistics.md).
DEFAULT_ADJUSTMENT = Multiplicity.BH


@dataclass(frozen=True, slots=True)
class FigureComparison:
    case_id: str
    figure: str
    label: str
    unit: str
    higher_is_better: bool
    a: float | None
    b: float | None
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n_a: int
    n_b: int
    verdict: Verdict
    reason: str = ""
    # what the change is the ratio of: per-request medians, or the geometric mean of block medians
    a_center: float | None = None
    b_center: float | None = None
    p_adjusted: float | None = None  # for the family of tests in its comparison (Comparison.adjustment)
    basis: str = ""  # "" for requests, "(4 vs 4 runs)" for pooled runs, the profile's spread for one run a side
    noise: NoiseSource = NoiseSource.NONE  # where the spread between runs came from, if anywhere
    min_change: float = 0.0  # the smallest change this row calls: min_effect, or the allowance
    detectable: float | None = None  # the change the test would find with 80 % power, at alpha
    # "the same within +-margin": two one-sided tests' p, raw and adjusted over the family
    margin: float = DEFAULT_EQUIVALENCE
    p_same: float | None = None
    p_same_adjusted: float | None = None
    # the run-level statistics the answer came from (None for requests alone)
    log_se: float | None = None  # standard error of the log ratio
    df: float | None = None
    spread: float | None = None  # standard deviation of one run's log figure: between runs
    runs_a: int = 1
    runs_b: int = 1
    more_runs: int | None = None  # undecided: about this many more runs a side would decide it
    same_alpha: float | None = None  # the one-sided level of the "same" interval, where not alpha (sequential)

    @property
    def change(self) -> float | None:
        return None if self.ratio is None else self.ratio - 1


@dataclass(frozen=True, slots=True)
class RunRef:
    run_id: str
    path: Path
    label: str | None
    model: str | None
    build: str | None
    server_flags: str | None
    started: float | None
    status: str | None
    runs: int = 1  # runs pooled on this side: several make the run the unit of the comparison

    @classmethod
    def load(cls, path: Path) -> RunRef:
        meta = read_run_meta(path)
        return cls(
            run_id=str(meta.run_id),
            path=path,
            label=meta.label,
            model=meta.model,
            build=meta.build,
            server_flags=meta.server_flags,
            started=meta.started,
            status=meta.status,
        )


@dataclass(frozen=True, slots=True)
class Comparison:
    a: RunRef
    b: RunRef
    figures: tuple[FigureComparison, ...]
    differences: tuple[str, ...] = field(default_factory=tuple)  # what changed between A and B
    alpha: float = ALPHA
    min_effect: float = MIN_EFFECT
    adjustment: Multiplicity = DEFAULT_ADJUSTMENT
    noise: NoiseProfile | None = None  # the stored profile or label history the spreads came from
    allowance: float | None = None
    margin: float = DEFAULT_EQUIVALENCE

    @property
    def noise_note(self) -> str:
        """Where the spread between runs came from, in words, for the table's and report's header."""
        sources = {f.noise for f in self.figures if f.verdict in TESTED}
        parts = []
        if NoiseSource.RUNS in sources and min(self.a.runs, self.b.runs) > 1:
            parts.append("several runs a side: tested run by run (Welch)")
        elif NoiseSource.RUNS in sources:
            parts.append("one run on a side, several on the other: tested against the other side's spread between runs")
        if sources & {NoiseSource.PROFILE, NoiseSource.HISTORY} and self.noise is not None:
            parts.append(f"one run on a side: tested against the spread between runs of the {self.noise.describe()}")
        if NoiseSource.NONE in sources:
            which = "some cases" if len(sources) > 1 else "these cases"
            missing = (
                f"the {self.noise.describe()} holds no spread for {which} (defined otherwise, or not measured)"
                if self.noise is not None
                else f"no noise profile or label history for {which}"
            )
            held = (
                f"a change under {self.allowance:.0%} is not called (your --allowance)"
                if self.allowance is not None
                else "they stay undecided"
            )
            parts.append(
                f"one run a side and {missing}: requests alone cannot tell a change from a second server start, "
                f"so {held} (bench noise measures the spread; or compare several runs a side)"
            )
        return "; ".join(parts)

    @property
    def tests(self) -> int:
        """How many figures were tested: the family the adjustment is over."""
        return sum(1 for f in self.figures if f.p_value is not None and f.verdict in TESTED)

    def by_verdict(self, verdict: Verdict) -> list[FigureComparison]:
        return [f for f in self.figures if f.verdict == verdict]

    def to_json(self) -> dict[str, Any]:
        return {
            "a": {**asdict(self.a), "path": str(self.a.path)},
            "b": {**asdict(self.b), "path": str(self.b.path)},
            "alpha": self.alpha,
            "min_effect": self.min_effect,
            "adjustment": self.adjustment,
            "tests": self.tests,
            "allowance": self.allowance,
            "equivalence": self.margin,
            "noise": None if self.noise is None else self.noise.to_json(),
            "noise_note": self.noise_note,
            "differences": list(self.differences),
            "figures": [asdict(f) for f in self.figures],
        }


# ------------------------------------------------------------------ comparing


def check_thresholds(
    alpha: float, min_effect: float, allowance: float | None = None, margin: float = DEFAULT_EQUIVALENCE
) -> None:
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha must be between 0 and 1; got {alpha}")
    for name, value in (("--min-effect", min_effect), ("--allowance", allowance)):
        if value is not None and not 0 <= value < 1:
            raise ConfigError(f"{name} must be a percentage from 0 to 100; got {value * 100:g}")
    if not 0 < margin < 1:
        raise ConfigError(f"--equivalence must be a percentage above 0 and under 100; got {margin * 100:g}")


@dataclass(frozen=True, slots=True)
class CompareSettings:
    """How a comparison decides, as ``bench compare``'s options set it; checked when made."""

    alpha: float = ALPHA
    min_effect: float = MIN_EFFECT  # the smallest change called improved or regressed (a fraction)
    adjustment: Multiplicity = DEFAULT_ADJUSTMENT
    # one run a side and no spread between runs: the user's word for how far runs of their server land
    # apart; a change past it is called from the requests. None (the default): such rows stay undecided
    allowance: float | None = None
    force: bool = False  # compare runs of different models or scenario definitions
    margin: float = DEFAULT_EQUIVALENCE  # "the same within +-margin"
    # bench ab --until-decided: p-values and intervals that hold over every look of the design
    design: SequentialDesign | None = None

    def __post_init__(self) -> None:
        check_thresholds(self.alpha, self.min_effect, self.allowance, self.margin)


def min_mann_whitney_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p-value Mann-Whitney U can give for these sizes: 2 / C(n_a + n_b, n_a)."""
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))


def _sample_size_problem(n_a: int, n_b: int, alpha: float) -> str | None:
    if n_a < MIN_SAMPLES or n_b < MIN_SAMPLES:
        return f"too few samples (A {n_a}, B {n_b}; need {MIN_SAMPLES})"
    floor = min_mann_whitney_p(n_a, n_b)
    if floor >= alpha:
        return f"{n_a} vs {n_b} requests cannot reach p < {alpha} (smallest possible p {floor:.2g}): add repetitions"
    return None


def _comparison(
    case_id: str, figure: Figure, verdict: Verdict, reason: str, n_a: int = 0, n_b: int = 0, **values: float | None
) -> FigureComparison:
    """One row; ``values`` are a, b, ratio, ci_low, ci_high and p_value where the row has them."""
    return FigureComparison(
        case_id=case_id,
        figure=figure.name,
        label=figure.label,
        unit=figure.unit,
        higher_is_better=figure.higher_is_better,
        a=values.get("a"),
        b=values.get("b"),
        ratio=values.get("ratio"),
        ci_low=values.get("ci_low"),
        ci_high=values.get("ci_high"),
        p_value=values.get("p_value"),
        n_a=n_a,
        n_b=n_b,
        verdict=verdict,
        reason=reason,
    )


def _not_comparable(case_id: str, figure: Figure, reason: str, n_a: int = 0, n_b: int = 0) -> FigureComparison:
    return _comparison(case_id, figure, Verdict.NOT_COMPARABLE, reason, n_a, n_b)


def _side_figure(figure: Figure, samples: Sequence[tuple[Any, str]], values: Sequence[float]) -> float:
    """A side's figure: the ratio of sums for a throughput, else the median of its requests.

    The change and its interval are of the per-request medians, which a few requests slowed by a
    busy machine cannot drag (docs/statistics.md shows the ratio of sums losing power there).
    """
    if figure.pairs is None:
        return statistics.median(values)
    pairs = [pair for pair, _ in samples]
    return float(sum(n for n, _ in pairs) / sum(d for _, d in pairs))


def _by_requests(
    values_a: Sequence[float], values_b: Sequence[float], alpha: float, seed: int
) -> tuple[RatioEstimate, float, float | None]:
    """One run a side and no known spread: the requests (bootstrap interval, Mann-Whitney p, what it can see)."""
    estimate = bootstrap_ratio_of_medians(values_a, values_b, seed=seed)
    detectable = None
    if math.isfinite(estimate.low) and math.isfinite(estimate.high) and estimate.low > 0:
        se = (math.log(estimate.high) - math.log(estimate.low)) / (2 * _Z95)
        detectable = detectable_change(se, None, alpha=alpha, power=DETECTION_POWER)
    return estimate, mann_whitney_p(values_a, values_b), detectable


@dataclass(frozen=True, slots=True)
class RunTest:
    """A figure tested with the run as the unit: what every answer about it is computed from."""

    estimate: RatioEstimate
    p_value: float
    basis: str
    log_se: float
    df: float
    spread: float  # the standard deviation of one run's log figure the test assumed
    runs_a: int
    runs_b: int

    def detectable(self, alpha: float) -> float:
        return detectable_change(self.log_se, self.df, alpha=alpha, power=DETECTION_POWER)

    def p_same(self, margin: float) -> float:
        return equivalence_p(math.log(self.estimate.ratio), self.log_se, self.df, margin)


def compare_figure(
    case_id: str,
    figure: Figure,
    a: Sequence[RequestRecord],
    b: Sequence[RequestRecord],
    *,
    alpha: float = ALPHA,
    min_effect: float = MIN_EFFECT,
    seed: int = 0,
    spread: Spread | None = None,
    spread_source: NoiseSource = NoiseSource.PROFILE,
    allowance: float | None = None,
    margin: float = DEFAULT_EQUIVALENCE,
    design: SequentialDesign | None = None,
) -> FigureComparison:
    """One figure of one case, tested with the run as the unit where the data allow.

    Several runs a side: Welch on the runs' medians. One run on a side and a known ``spread``
    between runs (a noise profile or the label's history): a t-test on the two runs' medians
    with that spread. Neither: the requests of the two runs (bootstrap interval, Mann-Whitney),
    which cannot see drift between runs, so the row stays undecided (unless the user gave an
    ``allowance``: then a change past it is called). With a sequential ``design`` only the runs
    decide, with p-values and intervals that hold over all its looks.
    """
    # each sample with the run it came from: pooled runs are compared block by block
    of = figure.pairs if figure.pairs is not None else figure.value
    assert of is not None
    sa, sb = samples_with_runs(a, of), samples_with_runs(b, of)
    n_a, n_b = len(sa), len(sb)
    if n_a == 0 and n_b == 0:
        return _not_comparable(case_id, figure, "no data on either side")
    if n_a == 0 or n_b == 0:
        return _not_comparable(case_id, figure, f"too few samples (A {n_a}, B {n_b})", n_a, n_b)
    groups_a, groups_b = [g for _, g in sa], [g for _, g in sb]
    values_a, values_b = per_request(figure, [s for s, _ in sa]), per_request(figure, [s for s, _ in sb])
    value_a, value_b = _side_figure(figure, sa, values_a), _side_figure(figure, sb, values_b)
    blocks_a, blocks_b = _group_medians(values_a, groups_a), _group_medians(values_b, groups_b)
    positive = min(blocks_a + blocks_b) > 0
    test: RunTest | None = None
    detectable: float | None
    if len(blocks_a) >= 2 and len(blocks_b) >= 2 and positive:
        # Several runs a side: two starts of one server can differ by several percent, so the
        # unit is the run, not the request; a request-level test called an A/A of two runs a
        # side "regressed" about one time in six on this machine.
        test, noise = _by_runs(blocks_a, blocks_b, design, alpha), NoiseSource.RUNS
    elif spread is not None and positive and design is None:
        requests = min(len(values_a) // len(blocks_a), len(values_b) // len(blocks_b))
        test = _against_spread(blocks_a, blocks_b, spread.at_requests(requests), spread, spread_source)
        noise = spread_source
    if test is not None:
        estimate, p_value = test.estimate, test.p_value
        center_a, center_b = _geometric_mean(blocks_a), _geometric_mean(blocks_b)
        basis, detectable, min_change = test.basis, test.detectable(alpha), min_effect
    else:
        if problem := _sample_size_problem(n_a, n_b, alpha):
            return _not_comparable(case_id, figure, problem, n_a, n_b)
        estimate, p_value, detectable = _by_requests(values_a, values_b, alpha, seed)
        center_a, center_b = statistics.median(values_a), statistics.median(values_b)
        basis, noise = "", NoiseSource.NONE
        # requests of one run each cannot show how far two runs land apart: only the user's allowance calls
        min_change = max(min_effect, allowance) if allowance is not None else math.inf

    ratio = estimate.ratio
    if not math.isfinite(ratio) or not math.isfinite(estimate.low) or not math.isfinite(estimate.high):
        return _not_comparable(case_id, figure, "A's values are all zero: no ratio", n_a, n_b)
    row = _comparison(
        case_id, figure, Verdict.UNDECIDED, "", n_a, n_b,
        a=value_a, b=value_b, ratio=ratio, ci_low=estimate.low, ci_high=estimate.high, p_value=p_value,
    )  # fmt: skip
    row = replace(
        row, a_center=center_a, b_center=center_b, basis=basis, noise=noise, min_change=min_change, margin=margin,
        detectable=None if detectable is None else max(detectable, min_effect),
    )  # fmt: skip
    if test is not None:
        row = _with_run_test(row, test, margin, design, alpha)
    return decided(row, row.p_value or 1.0, alpha=alpha, min_effect=min_effect, p_same=row.p_same)


def _with_run_test(
    row: FigureComparison, test: RunTest, margin: float, design: SequentialDesign | None = None, alpha: float = ALPHA
) -> FigureComparison:
    p_same = test.p_same(margin)
    if design is not None:
        # read against every look of the design: a look's own p would inflate the error with each look
        row = replace(row, p_value=design.p_change(test.p_value), same_alpha=design.same_level(alpha))
        p_same = design.p_same(p_same)
    return replace(
        row, p_same=p_same, log_se=test.log_se, df=test.df, spread=test.spread, runs_a=test.runs_a, runs_b=test.runs_b
    )


_Z95 = 1.959963984540054


def _by_runs(
    a: Sequence[float], b: Sequence[float], design: SequentialDesign | None = None, alpha: float = ALPHA
) -> RunTest:
    """Run figures of several runs a side: Welch on their logs (a repeated interval under a ``design``)."""
    confidence = 0.95 if design is None else 1 - design.change_level(alpha)
    estimate, p_value = welch_log_ratio(a, b, confidence=confidence)
    _, se, df = welch_standard_error(a, b)
    # the spread of one run that this standard error implies, as bench plan would count runs with it
    spread = se / math.sqrt(1 / len(a) + 1 / len(b))
    return RunTest(estimate, p_value, f"({len(a)} vs {len(b)} runs)", se, df, spread, len(a), len(b))


def runs_row(
    case_id: str, figure: Figure, a: Sequence[float], b: Sequence[float], *, alpha: float = ALPHA,
    min_effect: float = MIN_EFFECT, margin: float = DEFAULT_EQUIVALENCE, design: SequentialDesign | None = None,
) -> FigureComparison:  # fmt: skip
    """A figure with one value per run (goodput, say), several runs a side, tested run by run."""
    test = _by_runs(a, b, design, alpha)
    return _one_value_row(case_id, figure, a, b, test, alpha=alpha, min_effect=min_effect, margin=margin, design=design)


def _one_value_row(
    case_id: str, figure: Figure, a: Sequence[float], b: Sequence[float], test: RunTest, *, alpha: float,
    min_effect: float, margin: float, source: NoiseSource = NoiseSource.RUNS, design: SequentialDesign | None = None,
) -> FigureComparison:  # fmt: skip
    estimate = test.estimate
    center_a, center_b = _geometric_mean(a), _geometric_mean(b)
    row = _comparison(
        case_id, figure, Verdict.UNDECIDED, "", len(a), len(b),
        a=center_a, b=center_b, ratio=estimate.ratio, ci_low=estimate.low, ci_high=estimate.high,
        p_value=test.p_value,
    )  # fmt: skip
    row = replace(
        row, a_center=center_a, b_center=center_b, noise=source, min_change=min_effect, basis=test.basis,
        detectable=max(test.detectable(alpha), min_effect), margin=margin,
    )  # fmt: skip
    row = _with_run_test(row, test, margin, design, alpha)
    return decided(row, row.p_value or 1.0, alpha=alpha, min_effect=min_effect, p_same=row.p_same)


def _against_spread(
    a: Sequence[float], b: Sequence[float], between: float, spread: Spread, source: NoiseSource
) -> RunTest:
    """Run figures tested against a spread known from other runs."""
    estimate, p_value, se = known_spread_log_ratio(a, b, between, spread.df)
    if source is NoiseSource.RUNS:
        basis = f"(runs {between:.1%} apart over the other side's {spread.runs})"
    else:
        basis = f"(runs {between:.1%} apart, {spread.runs} runs of the {source})"
    return RunTest(estimate, p_value, basis, se, float(spread.df), between, len(a), len(b))


def run_values_row(
    case_id: str, figure: Figure, a: float, b: float, spread: Spread, *, source: NoiseSource, alpha: float = ALPHA,
    min_effect: float = MIN_EFFECT, margin: float = DEFAULT_EQUIVALENCE,
) -> FigureComparison:  # fmt: skip
    """A figure with one value per run (goodput, say), one run a side, tested against a known spread."""
    test = _against_spread([a], [b], spread.between, spread, source)
    return _one_value_row(
        case_id, figure, [a], [b], test, alpha=alpha, min_effect=min_effect, margin=margin, source=source
    )


def decided(
    row: FigureComparison, p: float, *, alpha: float, min_effect: float, p_text: str = "", p_same: float | None = None
) -> FigureComparison:
    """The row's answer at significance ``p`` of a change and ``p_same`` of "the same within +-margin".

    Each p is the row's own, or adjusted over the family it belongs to. Changed comes first: a
    change past ``min_effect`` that the test finds is news even inside the margin.
    """
    assert row.ratio is not None and row.ci_low is not None and row.ci_high is not None
    excludes_one = row.ci_low > 1 or row.ci_high < 1
    threshold = max(min_effect, row.min_change)
    material = abs(row.ratio - 1) >= threshold
    if p < alpha and excludes_one and material:
        better = (row.ratio > 1) == row.higher_is_better
        return replace(row, verdict=Verdict.IMPROVED if better else Verdict.REGRESSED, reason="")
    if p_same is not None and p_same < alpha:
        return replace(row, verdict=Verdict.SAME, reason=f"within ±{row.margin:.0%}: {_same_interval(row, alpha)}")
    if row.noise is NoiseSource.NONE and row.min_change == math.inf:
        reason = (
            f"{row.change:+.1%} in the requests of one run a side, which cannot tell a change from a second "
            "server start: run 2 or more a side, or measure the spread once with bench noise"
        )
    elif p >= alpha:
        reason = (p_text or f"p = {p:.2g}") + (f" {row.basis}" if row.basis else "")
    elif not excludes_one:
        reason = "interval includes no change"
    elif threshold > min_effect:
        reason = f"change below the {threshold:.0%} you allowed for one run a side without a noise profile"
    else:
        reason = f"change below {min_effect:.0%}, not shown within ±{row.margin:.0%}"
    return replace(row, verdict=Verdict.UNDECIDED, reason=reason)


def _same_interval(row: FigureComparison, alpha: float) -> str:
    """The (1 - 2 alpha) interval two one-sided tests at alpha hold inside the margin."""
    from scipy.stats import t as student_t

    if row.log_se is None or row.ratio is None or row.df is None:
        return ""
    level = row.same_alpha if row.same_alpha is not None else alpha
    half = float(student_t.ppf(1 - level, row.df)) * row.log_se
    centre = math.log(row.ratio)
    return f"{1 - 2 * level:.1%} interval {math.expm1(centre - half):+.1%} to {math.expm1(centre + half):+.1%}"


def _adjust(raw: Sequence[float], method: Multiplicity) -> list[float]:
    if method is Multiplicity.HOLM:
        return holm_adjust(raw)
    if method is Multiplicity.BH:
        return bh_adjust(raw)
    return list(raw)


def adjusted(
    rows: Sequence[FigureComparison], method: Multiplicity, *, alpha: float, min_effect: float
) -> list[FigureComparison]:
    """Every tested row decided again at its p-values adjusted over the family of tested rows.

    The p of a change and the p of "the same" are two families of the same tests, each adjusted
    alike: with 50 figures at once, "the same" is as easily claimed by luck as "changed".
    """
    method = Multiplicity(method)
    tested = [i for i, row in enumerate(rows) if row.p_value is not None and row.verdict in TESTED]
    raw = [rows[i].p_value or 0.0 for i in tested]
    family = _adjust(raw, method)
    same_at = [i for i in tested if rows[i].p_same is not None]
    same_family = dict(zip(same_at, _adjust([rows[i].p_same or 0.0 for i in same_at], method), strict=True))
    out = list(rows)
    for i, p_raw, p_adj in zip(tested, raw, family, strict=True):
        text = (
            f"p = {p_raw:.2g}, {method} {p_adj:.2g} over {len(tested)} tests" if method is not Multiplicity.NONE else ""
        )
        row = replace(rows[i], p_adjusted=p_adj, p_same_adjusted=same_family.get(i))
        out[i] = decided(row, p_adj, alpha=alpha, min_effect=min_effect, p_text=text, p_same=same_family.get(i))
    return out


def with_more_runs(rows: Sequence[FigureComparison], *, alpha: float, min_effect: float) -> list[FigureComparison]:
    """Each undecided row with the runs a side that would decide it (``bench.decide.plan.runs_to_decide``).

    The change the runs showed is taken as the truth and the spread between runs as measured; a
    row with no spread between runs has no count (it needs runs, or a profile, first).
    """
    from bench.decide.plan import runs_to_decide

    out = []
    for row in rows:
        if row.verdict is Verdict.UNDECIDED and row.spread is not None and row.ratio and row.ratio > 0:
            needed = runs_to_decide(
                round(row.spread, 4), round(row.ratio - 1, 3), margin=row.margin, min_effect=min_effect, alpha=alpha
            )
            more = None if needed is None else max(1, needed - min(row.runs_a, row.runs_b))
            words = f"about {more} more run(s) a side would decide it" if more else "more than 100 runs a side"
            row = replace(row, more_runs=more, reason=f"{row.reason}; {words}" if row.reason else words)
        out.append(row)
    return out


def _geometric_mean(values: Sequence[float]) -> float:
    return math.exp(statistics.fmean(math.log(v) for v in values))


def _group_medians(values: Sequence[float], groups: Sequence[str]) -> list[float]:
    """The median of each group's values (groups in first-seen order)."""
    members: dict[str, list[float]] = {}
    for value, group in zip(values, groups, strict=True):
        members.setdefault(group, []).append(value)
    return [statistics.median(v) for v in members.values()]


def compare_runs(
    path_a: Path | Sequence[Path],
    path_b: Path | Sequence[Path],
    settings: CompareSettings | None = None,
    *,
    noise: NoiseProfile | None = None,
) -> Comparison:
    """Compare run B against run A (B / A > 1 means B is higher); each side may be several runs.

    With several runs a side, each run is a block: the figures are compared run by run
    (Welch on run medians), so the drift between runs is in the test, as in ``bench ab``.
    With one run on a side, ``noise`` (a stored profile or the label's history) gives the
    spread between runs; without it a change under ``allowance`` is not called.
    """
    settings = settings or CompareSettings()
    side_a = [path_a] if isinstance(path_a, Path) else list(path_a)
    side_b = [path_b] if isinstance(path_b, Path) else list(path_b)
    if both := sorted({p.resolve() for p in side_a} & {p.resolve() for p in side_b}):
        # a run on both sides makes the two sides alike by construction: "no change" would be its echo
        raise ConfigError(
            f"{len(both)} run(s) are on both sides of the comparison ({', '.join(p.name for p in both[:3])}"
            f"{', ...' if len(both) > 3 else ''}): name each run on one side only"
        )
    ref_a, records_a, defs_a = _side(side_a, settings.force)
    ref_b, records_b, defs_b = _side(side_b, settings.force)
    samples_a = [s for path in side_a for s in read_gpu_samples(path)]
    samples_b = [s for path in side_b for s in read_gpu_samples(path)]
    return compare_record_sets(
        ref_a, records_a, defs_a, ref_b, records_b, defs_b, settings, noise=noise, samples_a=samples_a,
        samples_b=samples_b,
    )  # fmt: skip


def _side(paths: Path | Sequence[Path], force: bool) -> tuple[RunRef, list[RequestRecord], dict[str, Any]]:
    group = [paths] if isinstance(paths, Path) else list(paths)
    if not group:
        raise ConfigError("a side of a comparison needs at least one run")
    first = RunRef.load(group[0])
    definitions = scenario_definitions(read_run_meta(group[0]))
    for path in group[1:]:
        other = scenario_definitions(read_run_meta(path))
        changed = sorted(name for name in set(definitions) & set(other) if definitions[name] != other[name])
        if changed and not force:
            raise ConfigError(
                f"runs of one side define scenarios differently ({path.name}: {', '.join(changed)}); "
                "pass --force to pool them anyway"
            )
    # each record counted under the run (directory) it came from: the block of a pooled comparison
    records = [
        record if record.run_id == path.name else replace(record, run_id=path.name)
        for path in group
        for record in read_records(path)
    ]
    if len(group) > 1:
        first = replace(first, run_id=f"{first.run_id} (+{len(group) - 1} more)", runs=len(group))
    return first, records, definitions


def compare_record_sets(
    a: RunRef,
    records_a: Sequence[RequestRecord],
    defs_a: dict[str, Any],
    b: RunRef,
    records_b: Sequence[RequestRecord],
    defs_b: dict[str, Any],
    settings: CompareSettings | None = None,
    *,
    noise: NoiseProfile | None = None,
    samples_a: Sequence[GpuSample] = (),
    samples_b: Sequence[GpuSample] = (),
) -> Comparison:
    """Compare B's records with A's, case by case; A and B may each pool several runs (bench ab).

    ``samples_a``/``samples_b``: each side's GPU samples, for the energy a generated token took.

    Every case and figure is a test: the verdicts are decided at p-values adjusted over all
    of them (``adjustment``), so 10 cases x 5 figures do not make 2.5 false verdicts at 0.05.
    """
    settings = settings or CompareSettings()
    alpha, min_effect, allowance, force = settings.alpha, settings.min_effect, settings.allowance, settings.force
    adjustment, margin, design = settings.adjustment, settings.margin, settings.design
    if noise is not None and noise.model and a.model and noise.model != a.model:
        raise ConfigError(
            f"the noise profile {noise.where} is of {noise.model}, the runs of {a.model}: measure one for this model"
        )
    if a.model and b.model and a.model != b.model and not force:
        raise ConfigError(f"runs are of different models ({a.model} vs {b.model}); pass --force to compare anyway")
    changed = sorted(name for name in set(defs_a) & set(defs_b) if defs_a[name] != defs_b[name])
    if changed and not force:
        raise ConfigError(
            f"scenario definitions differ between the runs ({', '.join(changed)}); pass --force to compare anyway"
        )
    cases_a = {r.case_id for r in records_a}
    cases_b = {r.case_id for r in records_b}
    if cases_a and cases_b and not cases_a & cases_b:
        # nothing would be tested: a pass of --fail-on-regression here would be a false all-clear
        raise ConfigError(
            f"{a.run_id} and {b.run_id} have no case in common ({len(cases_a)} vs {len(cases_b)} cases): "
            "nothing to compare; were they run with different scenario sets?"
        )
    differences = [
        f"{what}: {getattr(a, attr)!s} -> {getattr(b, attr)!s}"
        for what, attr in (("build", "build"), ("server flags", "server_flags"), ("label", "label"), ("model", "model"))
        if getattr(a, attr) != getattr(b, attr)
    ]
    results: list[FigureComparison] = []
    for case_id in sorted(cases_a | cases_b):
        in_a = [r for r in records_a if r.case_id == case_id]
        in_b = [r for r in records_b if r.case_id == case_id]
        for figure in FIGURES:
            if not in_a or not in_b:
                side = "A" if in_a else "B"
                reason = f"case ran only in {side}"
                results.append(_not_comparable(case_id, figure, reason, len(in_a), len(in_b)))
                continue
            scenario = in_a[0].scenario
            spread, source = None, NoiseSource.NONE
            if noise is not None and noise.applies_to(scenario, defs_a.get(scenario)):
                spread, source = noise.spread(case_id, figure.name), noise.source
            if spread is None:
                # one run on one side, three or more on the other: that side is an A/A group of its own
                spread = own_spread(in_a, in_b, figure)
                source = NoiseSource.RUNS
            comparison = compare_figure(
                case_id, figure, in_a, in_b, alpha=alpha, min_effect=min_effect,
                spread=spread, spread_source=source, allowance=allowance, margin=margin, design=design,
            )  # fmt: skip
            if comparison.n_a or comparison.n_b:
                results.append(comparison)
        if in_a and in_b:
            results.append(_throughput_row(case_id, in_a, in_b))
            if (slo := slo_from_json((defs_a.get(in_a[0].scenario) or {}).get("slo"))) is not None:
                results.extend(
                    _slo_rows(
                        case_id, slo, in_a, in_b, alpha=alpha, min_effect=min_effect, margin=margin, design=design
                    )
                )
            if uses_cache(in_a) and uses_cache(in_b):
                results.append(_cache_row(case_id, in_a, in_b))
            if (drafts := _draft_row(case_id, in_a, in_b)) is not None:
                results.append(drafts)
            if samples_a and samples_b:
                energy = _energy_row(case_id, in_a, in_b, samples_a, samples_b, alpha, min_effect, margin, design)
                if energy is not None:
                    results.append(energy)
    results = adjusted(results, adjustment, alpha=alpha, min_effect=min_effect)
    results = with_more_runs(results, alpha=alpha, min_effect=min_effect)
    return Comparison(a, b, tuple(results), tuple(differences), alpha, min_effect, adjustment, noise, allowance, margin)


def own_spread(a: Sequence[RequestRecord], b: Sequence[RequestRecord], figure: Figure) -> Spread | None:
    """The spread between the runs of the side with three or more, where the other side has one."""
    runs_a, runs_b = len({r.run_id for r in a}), len({r.run_id for r in b})
    if min(runs_a, runs_b) != 1 or max(runs_a, runs_b) < MIN_RUNS:
        return None
    found = spreads_of(_runs_of(a if runs_a > runs_b else b), (figure,))
    return found[0] if found else None


THROUGHPUT = Figure("output_tps", "out t/s (wall)", "t/s", True)


def _runs_of(records: Sequence[RequestRecord]) -> list[list[RequestRecord]]:
    """The records of each run on a side (one for a single run), in first-seen order."""
    runs: dict[str, list[RequestRecord]] = {}
    for record in records:
        runs.setdefault(record.run_id, []).append(record)
    return list(runs.values())


def _per_run_row(
    case_id: str, figure: Figure, va: Sequence[float | None], vb: Sequence[float | None], missing: str
) -> FigureComparison:
    """A figure with one value per run (the median over pooled runs): shown, not tested."""
    a, b = [v for v in va if v is not None], [v for v in vb if v is not None]
    if not a or not b:
        return _not_comparable(case_id, figure, missing, len(a), len(b))
    value_a, value_b = statistics.median(a), statistics.median(b)
    return _comparison(
        case_id, figure, Verdict.NOT_TESTED, "one value per run", len(a), len(b),
        a=value_a, b=value_b, ratio=value_b / value_a if value_a else None,
    )  # fmt: skip


def _per_run_tested_row(
    case_id: str, figure: Figure, va: Sequence[float | None], vb: Sequence[float | None], missing: str, *,
    alpha: float, min_effect: float, margin: float, design: SequentialDesign | None,
) -> FigureComparison:  # fmt: skip
    """A figure with one value per run: tested run by run like pp and tg where each side has two or more runs,
    every one with a value (a run without one has nothing to take a log of); else shown, not tested."""
    tested_a, tested_b = [v for v in va if v], [v for v in vb if v]
    if len(tested_a) == len(va) >= 2 and len(tested_b) == len(vb) >= 2:
        return runs_row(
            case_id, figure, tested_a, tested_b, alpha=alpha, min_effect=min_effect, margin=margin, design=design
        )
    return _per_run_row(case_id, figure, va, vb, missing)


def _throughput_row(case_id: str, a: Sequence[RequestRecord], b: Sequence[RequestRecord]) -> FigureComparison:
    """Aggregate output t/s: one value per run, shown but not tested."""
    va, vb = ([output_tps(run) for run in _runs_of(side)] for side in (a, b))
    return _per_run_row(case_id, THROUGHPUT, va, vb, "no generated tokens on a side")


ATTAINMENT = Figure("slo_attainment", "SLO met", "%", True)


def _slo_rows(
    case_id: str, slo: Slo, a: Sequence[RequestRecord], b: Sequence[RequestRecord], *, alpha: float,
    min_effect: float, margin: float, design: SequentialDesign | None = None,
) -> list[FigureComparison]:  # fmt: skip
    """Goodput and SLO attainment per run, where the case states an SLO.

    Goodput is tested where each side has several runs, all with goodput (a run in which no
    request met the SLO has none to take a log of); otherwise both are shown, not tested.
    """
    sa, sb = ([summarise_slo(run, slo) for run in _runs_of(side)] for side in (a, b))

    def percent(share: float | None) -> float | None:
        return None if share is None else share * 100

    missing = "no measured requests on a side"
    return [
        _per_run_tested_row(
            case_id,
            GOODPUT,
            [s.goodput_rps for s in sa],
            [s.goodput_rps for s in sb],
            missing,
            alpha=alpha,
            min_effect=min_effect,
            margin=margin,
            design=design,
        ),
        _per_run_row(
            case_id, ATTAINMENT, [percent(s.attainment) for s in sa], [percent(s.attainment) for s in sb], missing
        ),
    ]


ENERGY = Figure("j_per_output_token", "J / generated token", "J", False)


def _energy_row(
    case_id: str, a: Sequence[RequestRecord], b: Sequence[RequestRecord], samples_a: Sequence[GpuSample],
    samples_b: Sequence[GpuSample], alpha: float, min_effect: float, margin: float, design: SequentialDesign | None,
) -> FigureComparison | None:  # fmt: skip
    """Joules a generated token took over the whole case, one value per run (GPU samples on both sides)."""

    def per_run(side: Sequence[RequestRecord], samples: Sequence[GpuSample]) -> list[float | None]:
        values: list[float | None] = []
        for run in _runs_of(side):
            energy = case_energy(run, samples)
            values.append(1 / energy.output_tokens_per_j if energy and energy.output_tokens_per_j else None)
        return values

    va, vb = per_run(a, samples_a), per_run(b, samples_b)
    if not any(va) or not any(vb):
        return None
    return _per_run_tested_row(
        case_id, ENERGY, va, vb, "no energy on a side", alpha=alpha, min_effect=min_effect, margin=margin,
        design=design,
    )  # fmt: skip


CACHE_HITS = Figure("cache_hit_rate", "prompt cache hits", "%", True)


def _cache_row(case_id: str, a: Sequence[RequestRecord], b: Sequence[RequestRecord]) -> FigureComparison:
    """The share of requests that reused what they meant from the prompt cache, per run: shown, not tested."""

    def hit_rates(side: Sequence[RequestRecord]) -> list[float | None]:
        summaries = [summarise_cache(run) for run in _runs_of(side)]
        return [None if c is None or c.hit_rate is None else c.hit_rate * 100 for c in summaries]

    return _per_run_row(case_id, CACHE_HITS, hit_rates(a), hit_rates(b), "no request meant to reuse the cache")


DRAFT_ACCEPTANCE = Figure("draft_acceptance", "draft tokens accepted", "%", True)


def _draft_row(case_id: str, a: Sequence[RequestRecord], b: Sequence[RequestRecord]) -> FigureComparison | None:
    """Speculative decoding's acceptance per run where a side drafted (a draft-model A/B): shown, not tested.

    None where neither side drafted.
    """

    def acceptance(side: Sequence[RequestRecord]) -> list[float | None]:
        found = [summarise_drafts(run) for run in _runs_of(side)]
        return [None if d is None or d.acceptance is None else d.acceptance * 100 for d in found]

    va, vb = acceptance(a), acceptance(b)
    if all(v is None for v in (*va, *vb)):
        return None
    if all(v is None for v in va) or all(v is None for v in vb):
        # a draft-model A/B: one side drafts, the other does not; its acceptance is still worth a row
        known = [v for v in (*va, *vb) if v is not None]
        value = statistics.median(known) if known else None
        drafted_a = any(v is not None for v in va)
        return _comparison(
            case_id, DRAFT_ACCEPTANCE, Verdict.NOT_TESTED, "one side drafted no tokens", len(va), len(vb),
            a=value if drafted_a else None, b=None if drafted_a else value,
        )  # fmt: skip
    return _per_run_row(case_id, DRAFT_ACCEPTANCE, va, vb, "no draft tokens on a side")


def sides_against_baselines(comparison: Comparison, baselines: Baselines) -> dict[str, str]:
    """Each side's headline against the baselines ('' where none applies).

    A baseline is held against one run's figures: for a side of several runs, its first run, and
    the line says so.
    """
    from bench.figures.summary import load_summary

    against = {}
    for side, ref in (("A", comparison.a), ("B", comparison.b)):
        text = baseline_headline(load_summary(ref.path, baselines).baselines)
        against[side] = f"{text} (its first run, {ref.path.name})" if text and ref.runs > 1 else text
    return against
