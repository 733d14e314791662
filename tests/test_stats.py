from __future__ import annotations

import numpy as np
import pytest

from bench.stats import (
    bootstrap_ratio_of_medians,
    bootstrap_ratio_of_sums,
    e_divisive,
    mann_whitney_p,
    robust_cv,
)


def test_ratio_of_sums_point_estimate_is_the_summary_figure() -> None:
    # A: 400 tokens in 0.35 s; B: 900 tokens in 0.45 s -> 2000 / 1142.86 t/s
    est = bootstrap_ratio_of_sums([100, 300], [50, 300], [300, 600], [150, 300])
    assert est.ratio == pytest.approx((900 / 450) / (400 / 350))
    assert est.low <= est.ratio <= est.high


def test_bootstrap_interval_covers_a_known_ratio_and_narrows_with_more_data() -> None:
    rng = np.random.default_rng(1)

    def run(n: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
        ms = rng.normal(100, 3, n)
        return np.full(n, 100.0 * rate), ms  # tokens, milliseconds

    a_small, b_small = run(5, 1.0), run(5, 1.1)
    a_big, b_big = run(200, 1.0), run(200, 1.1)
    small = bootstrap_ratio_of_sums(a_small[0], a_small[1], b_small[0], b_small[1])
    big = bootstrap_ratio_of_sums(a_big[0], a_big[1], b_big[0], b_big[1])
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
