from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ttest_ind

from bench.decide.stats import (
    bh_adjust,
    bootstrap_ratio_of_medians,
    e_divisive,
    holm_adjust,
    mann_whitney_p,
    robust_cv,
    welch_log_ratio,
)


def test_bootstrap_interval_covers_a_known_ratio_and_narrows_with_more_data() -> None:
    rng = np.random.default_rng(1)
    small = bootstrap_ratio_of_medians(rng.normal(100, 3, 5), rng.normal(110, 3, 5))
    big = bootstrap_ratio_of_medians(rng.normal(100, 3, 200), rng.normal(110, 3, 200))
    assert big.low < 1.1 < big.high
    assert (big.high - big.low) < (small.high - small.low)


def test_ratio_of_medians() -> None:
    est = bootstrap_ratio_of_medians([10, 11, 12, 13, 100], [20, 22, 24, 26, 200])
    assert est.ratio == pytest.approx(2.0)
    assert est.confidence == 0.95


def test_mann_whitney_known_answers() -> None:
    # complete separation of 5 vs 5: exact two-sided p = 2 / C(10, 5) = 2/252
    assert mann_whitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(2 / 252)
    assert mann_whitney_p([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    assert mann_whitney_p([5, 5, 5], [5, 5, 5]) == 1.0
    assert mann_whitney_p([], [1.0]) == 1.0


def test_robust_cv_ignores_one_outlier() -> None:
    assert robust_cv([100, 101, 99, 100, 100, 1000]) == pytest.approx(1.4826 * 0.5 / 100)
    assert robust_cv([1.0, 2.0]) is None


def test_e_divisive_finds_a_step_and_nothing_in_noise() -> None:
    rng = np.random.default_rng(7)
    flat = rng.normal(100, 1, 40)
    assert e_divisive(flat) == []
    step = np.concatenate([rng.normal(100, 1, 30), rng.normal(93.5, 1, 15)])
    (change,) = e_divisive(step)
    assert 29 <= change.index <= 31
    assert change.relative_change == pytest.approx(-0.065, abs=0.01)
    assert change.p_value <= 0.05


def test_e_divisive_finds_two_steps() -> None:
    rng = np.random.default_rng(3)
    series = np.concatenate([rng.normal(100, 1, 20), rng.normal(90, 1, 20), rng.normal(100, 1, 20)])
    assert [c.index for c in e_divisive(series)] == [20, 40]


def test_welch_on_block_figures_knows_how_few_blocks_there_are() -> None:
    estimate, p = welch_log_ratio([100.0, 104.0], [110.0, 114.0])
    assert estimate.ratio == pytest.approx(np.sqrt(110 * 114) / np.sqrt(100 * 104))
    assert estimate.low < estimate.ratio < estimate.high
    assert 0.01 < p < 0.2  # two blocks a side: a 10 % step with 4 % spread is suggestive, not proof
    # and exactly Welch's unequal-variance t-test on the logs, as SciPy computes it
    welch = ttest_ind(np.log([110.0, 114.0]), np.log([100.0, 104.0]), equal_var=False)
    assert p == pytest.approx(welch.pvalue, rel=1e-12)
    low, high = welch.confidence_interval(0.95)
    assert (estimate.low, estimate.high) == pytest.approx((np.exp(low), np.exp(high)), rel=1e-12)
    _, p_more = welch_log_ratio([100.0, 104.0, 101.0, 103.0, 102.0], [110.0, 114.0, 111.0, 113.0, 112.0])
    assert p_more < 0.001
    same, p_same = welch_log_ratio([100.0, 100.0], [100.0, 100.0])
    assert (same.ratio, p_same) == (1.0, 1.0)
    with pytest.raises(ValueError, match="two groups"):
        welch_log_ratio([100.0], [100.0, 101.0])


def test_holm_adjustment_on_a_hand_computed_family() -> None:
    # m = 4, sorted p 0.01, 0.02, 0.03, 0.5 -> 0.04, 0.06, 0.06 (monotone: max(0.06, 0.06)), 0.5
    assert holm_adjust([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.06, 0.04, 0.5, 0.06])
    assert holm_adjust([0.4, 0.9]) == pytest.approx([0.8, 0.9])  # capped and monotone
    assert holm_adjust([]) == []


def test_benjamini_hochberg_on_a_hand_computed_family() -> None:
    # m = 4, sorted p 0.01, 0.02, 0.03, 0.5 -> x 4/1, 4/2, 4/3, 4/4 = 0.04, 0.04, 0.04, 0.5 (monotone from the top)
    assert bh_adjust([0.03, 0.01, 0.5, 0.02]) == pytest.approx([0.04, 0.04, 0.5, 0.04])
    assert bh_adjust([0.04, 0.01]) == pytest.approx([0.04, 0.02])
