"""Pure statistics for comparisons and the nightly gate. No I/O.

Methods and where they come from:

- Percentile bootstrap confidence interval of a ratio of two medians, the
  requests of each run resampled independently (Efron & Tibshirani, *An
  Introduction to the Bootstrap*, 1993, ch. 13). Medians of per-request values,
  so a few requests disturbed by the machine cannot drag the interval.
- Pooled runs (blocks of ``bench ab``): Welch's t-test and t-interval on the
  log of each block's median (Welch, 1947), blocks as the experimental unit,
  since requests served by one server instance are not independent of each other.
- One run a side with the spread between runs known from elsewhere (a stored
  noise profile, or the label's history): Student's t on the difference of the
  logs of the run figures, with that spread and its degrees of freedom (as a
  prediction interval: the runs it was measured on are not the runs compared).
- Minimum detectable change: (t[1 - alpha/2] + t[power]) x the standard error,
  the textbook size of effect a two-sided test finds with that power (Cohen,
  *Statistical Power Analysis for the Behavioral Sciences*, 1988, ch. 2).
- Mann-Whitney U test, two-sided (Mann & Whitney, 1947), through
  ``scipy.stats.mannwhitneyu``: no normality assumption, robust to the long
  right tails of latency data.
- Robust spread: the median absolute deviation scaled by 1.4826, a consistent
  estimator of the standard deviation for normal data (Rousseeuw & Croux, 1993).
- E-divisive means change-point detection (Matteson & James, "A Nonparametric
  Approach for Multiple Change Point Analysis of Multivariate Data", JASA 2014),
  as Apache Otava / Hunter use it on nightly series (Fleming et al., ICPE 2023):
  binary segmentation on the energy divergence between the series before and
  after a candidate point, each split kept only if a permutation test finds it
  significant.
- Many tests at once: Holm's step-down adjustment, which holds the family-wise
  error rate (Holm, "A Simple Sequentially Rejective Multiple Test Procedure",
  Scand. J. Statist. 1979), and Benjamini-Hochberg's step-up adjustment, which
  holds the false discovery rate (Benjamini & Hochberg, JRSS B 1995). Both give
  adjusted p-values, compared with alpha as a single test's would be.
- "The same within +-E": two one-sided tests on the log ratio (Schuirmann, "A comparison of the
  two one-sided tests procedure and the power approach for assessing the equivalence of average
  bioavailability", J. Pharmacokinet. Biopharm. 1987).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

MAD_TO_SD = 1.4826


@dataclass(frozen=True, slots=True)
class RatioEstimate:
    ratio: float  # statistic of B / statistic of A
    low: float
    high: float
    confidence: float


Array = NDArray[np.float64]


def _as_array(values: Sequence[float] | Array) -> Array:
    return np.asarray(values, dtype=float)


def bootstrap_ratio_of_medians(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> RatioEstimate:
    """CI of median(b) / median(a), e.g. B's TTFT over A's, each side's values resampled on their own."""
    xa, xb = _as_array(a), _as_array(b)
    if len(xa) == 0 or len(xb) == 0:
        raise ValueError("both samples need at least one value")
    rng = np.random.default_rng(seed)
    med_a = np.median(xa[rng.integers(0, len(xa), size=(resamples, len(xa)))], axis=1)
    med_b = np.median(xb[rng.integers(0, len(xb), size=(resamples, len(xb)))], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = med_b / med_a
        point = float(np.median(xb) / np.median(xa))  # nan or inf when A's median is 0
    return _interval(point, ratios, confidence)


def _interval(point: float, replicates: Array, confidence: float) -> RatioEstimate:
    finite = replicates[np.isfinite(replicates)]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail]) if len(finite) else (np.nan, np.nan)
    return RatioEstimate(point, float(low), float(high), confidence)


def welch_log_ratio(a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95) -> tuple[RatioEstimate, float]:
    """Ratio of geometric means of B's over A's group figures, its Welch t-interval and two-sided p.

    For comparisons whose unit is a group (one block, one server start) rather
    than a request: with two or three groups a side the interval is wide and the
    test cautious, as it should be when two starts of the same server can differ
    by several percent.
    """
    from scipy.stats import t as student_t

    diff, se, df = welch_standard_error(a, b)
    if se == 0:  # every group identical within its side: no spread to test against
        return RatioEstimate(float(np.exp(diff)), float(np.exp(diff)), float(np.exp(diff)), confidence), 1.0
    p = float(2 * student_t.sf(abs(diff) / se, df))
    half = float(student_t.ppf(1 - (1 - confidence) / 2, df)) * se
    return RatioEstimate(float(np.exp(diff)), float(np.exp(diff - half)), float(np.exp(diff + half)), confidence), p


def welch_standard_error(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """(difference of the mean logs B - A, its standard error, Welch-Satterthwaite degrees of freedom)."""
    la, lb = np.log(_as_array(a)), np.log(_as_array(b))
    if len(la) < 2 or len(lb) < 2:
        raise ValueError("Welch's test needs at least two groups a side")
    diff, se, df = welch_arrays(la, lb)
    if se == 0:
        return float(diff), 0.0, float(len(la) + len(lb) - 2)
    return float(diff), float(se), float(df)


def welch_arrays(a: Array, b: Array) -> tuple[Array, Array, Array]:
    """Welch's difference B - A, standard error and degrees of freedom over the last axis, for many at once.

    What ``welch_standard_error`` computes for one comparison, for the simulations that calibrate
    and plan comparisons (``bench.decide.plan``, ``bench.decide.sequential``); ``df`` is nan where
    both sides have no spread.
    """
    n_a, n_b = a.shape[-1], b.shape[-1]
    va, vb = a.var(axis=-1, ddof=1) / n_a, b.var(axis=-1, ddof=1) / n_b
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    return b.mean(axis=-1) - a.mean(axis=-1), np.sqrt(va + vb), df


def known_spread_log_ratio(
    a: Sequence[float], b: Sequence[float], spread: float, df: int, *, confidence: float = 0.95
) -> tuple[RatioEstimate, float, float]:
    """Ratio of geometric means of B's over A's run figures when the spread between runs is known.

    ``spread`` is the standard deviation of the log of one run's figure, measured on other runs of
    the same setup with ``df`` degrees of freedom (a noise profile or the label's history), so one
    run a side can be tested. Returns the estimate with its t-interval, the two-sided p, and the
    standard error of the log ratio (for the change the test could have found).
    """
    from scipy.stats import t as student_t

    la, lb = np.log(_as_array(a)), np.log(_as_array(b))
    if len(la) < 1 or len(lb) < 1 or df < 1 or not spread >= 0:
        raise ValueError("a run a side, a spread of 0 or more and at least one degree of freedom are needed")
    diff = float(lb.mean() - la.mean())
    se = spread * float(np.sqrt(1 / len(la) + 1 / len(lb)))
    if se == 0:
        point = float(np.exp(diff))
        return RatioEstimate(point, point, point, confidence), (1.0 if diff == 0 else 0.0), 0.0
    p = float(2 * student_t.sf(abs(diff) / se, df))
    half = float(student_t.ppf(1 - (1 - confidence) / 2, df)) * se
    return RatioEstimate(float(np.exp(diff)), float(np.exp(diff - half)), float(np.exp(diff + half)), confidence), p, se


def detectable_change(se: float, df: float | None, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest relative change a two-sided test of standard error ``se`` (in logs) finds with ``power``.

    ``df`` None: the normal approximation (for a bootstrap interval's width). The answer is the
    larger of the up and down changes, as a positive fraction (0.05: 5 %).
    """
    from scipy.stats import norm
    from scipy.stats import t as student_t

    if df is None:
        k = float(norm.ppf(1 - alpha / 2) + norm.ppf(power))
    else:
        k = float(student_t.ppf(1 - alpha / 2, df) + student_t.ppf(power, df))
    return float(np.expm1(k * se))


def equivalence_p(diff: float, se: float, df: float | None, margin: float) -> float:
    """p of "the same within +-margin": two one-sided tests on a log ratio (Schuirmann 1987).

    ``diff`` is the log ratio B / A with standard error ``se`` (``df`` None: normal). The margin is
    symmetric in logs, ``+-log(1 + margin)``, so "within 5 %" reads the same from either side.
    The answer is the larger of the two one-sided p-values: below alpha, the (1 - 2 alpha)
    interval lies inside the margin.
    """
    from scipy.stats import norm
    from scipy.stats import t as student_t

    bound = math.log1p(margin)
    if se == 0:
        return 0.0 if abs(diff) < bound else 1.0
    dist = norm if df is None else student_t(df)
    below = float(dist.sf((diff + bound) / se))  # H0: B / A at or under 1 / (1 + margin)
    above = float(dist.cdf((diff - bound) / se))  # H0: B / A at or over 1 + margin
    return max(below, above)


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value; 1.0 when either side is empty or all values are equal."""
    from scipy.stats import mannwhitneyu

    xa, xb = _as_array(a), _as_array(b)
    if len(xa) == 0 or len(xb) == 0 or np.all(np.concatenate([xa, xb]) == xa[0]):
        return 1.0
    return float(mannwhitneyu(xa, xb, alternative="two-sided").pvalue)


def robust_cv(values: Sequence[float]) -> float | None:
    """Spread relative to the centre: 1.4826 x MAD / median; None for fewer than 3 values."""
    x = _as_array(values)
    if len(x) < 3:
        return None
    centre = float(np.median(x))
    if centre == 0:
        return None
    return MAD_TO_SD * float(np.median(np.abs(x - centre))) / abs(centre)


# ------------------------------------------------------------- change points


@dataclass(frozen=True, slots=True)
class ChangePoint:
    index: int  # first position of the new segment
    p_value: float
    mean_before: float
    mean_after: float

    @property
    def relative_change(self) -> float:
        return self.mean_after / self.mean_before - 1 if self.mean_before else float("nan")


def _energy_statistics(distances: Array, min_size: int) -> Array:
    """Scaled energy divergence for every split point tau (segment [0, tau) vs [tau, n)).

    With cumulative row sums of the pairwise |x_i - x_j| matrix (full rows and the
    part before the diagonal), every tau costs O(1) after an O(n^2) pass.
    """
    n = len(distances)
    scores = np.full(n, -np.inf)
    taus = np.arange(min_size, n - min_size + 1)
    if len(taus) == 0:
        return scores
    rows = np.concatenate([[0.0], distances.sum(axis=1).cumsum()])  # sum of rows [0, tau)
    lower = np.concatenate([[0.0], np.tril(distances, -1).sum(axis=1).cumsum()])
    within_a = 2 * lower[taus]  # sum over [0, tau)^2
    between = rows[taus] - within_a  # [0, tau) x [tau, n)
    within_b = rows[n] - 2 * rows[taus] + within_a  # [tau, n)^2
    m, k = taus.astype(float), (n - taus).astype(float)
    scores[taus] = (m * k / n) * (2 * between / (m * k) - within_a / (m * m) - within_b / (k * k))
    return scores


def e_divisive(
    series: Sequence[float],
    *,
    min_size: int = 3,
    alpha: float = 0.05,
    permutations: int = 199,
    seed: int = 0,
) -> list[ChangePoint]:
    """Change points of a series by E-divisive means; sorted by position.

    Each candidate split is tested against ``permutations`` shuffles of its
    segment (p = (1 + #shuffles scoring at least as high) / (permutations + 1)).
    """
    x = _as_array(series)
    rng = np.random.default_rng(seed)
    found: list[ChangePoint] = []
    segments = [(0, len(x))]
    while segments:
        start, end = segments.pop()
        segment = x[start:end]
        if len(segment) < 2 * min_size:
            continue
        scores = _energy_statistics(np.abs(segment[:, None] - segment[None, :]), min_size)
        tau = int(np.argmax(scores))
        observed = scores[tau]
        if not np.isfinite(observed) or observed <= 0:
            continue
        exceed = 0
        for _ in range(permutations):
            shuffled = rng.permutation(segment)
            distances = np.abs(shuffled[:, None] - shuffled[None, :])
            if np.max(_energy_statistics(distances, min_size)) >= observed:
                exceed += 1
        p_value = (1 + exceed) / (permutations + 1)
        if p_value >= alpha:
            continue
        found.append(ChangePoint(start + tau, p_value, float(segment[:tau].mean()), float(segment[tau:].mean())))
        segments += [(start, start + tau), (start + tau, end)]
    return sorted(found, key=lambda c: c.index)


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values, in the order given: p_(i) x (m - i + 1), made monotone, capped at 1."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def bh_adjust(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg-adjusted p-values (q-values), in the order given: p_(i) x m / i, monotone from the top."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    adjusted = [0.0] * m
    running = 1.0
    for position, index in enumerate(order):
        rank = m - position  # 1-based rank from the smallest p
        running = min(running, p_values[index] * m / rank)
        adjusted[index] = min(1.0, running)
    return adjusted
