"""The comparison's defaults keep false positives at or under 5 % and find real changes.

Deterministic (seeded) trials on synthetic runs with the spread measured on the
embedded server; the full table is in docs/statistics.md.
"""

from __future__ import annotations

import pytest

from bench.devtools.calibration import PP_CV, TG_CV, Noise, detection_rate


def test_false_positive_rate_at_no_change_is_at_most_5_percent() -> None:
    for noise in (Noise(TG_CV), Noise(PP_CV), Noise(PP_CV, outlier_share=0.05)):
        assert detection_rate(5, 0.0, noise, trials=300, seed=1) <= 0.05
        assert detection_rate(10, 0.0, noise, trials=300, seed=2) <= 0.05


def test_the_fa_sized_change_is_found_with_default_repetitions() -> None:
    # the seed's -fa effect, +6.5 %, seen as a 6.5 % drop, with 5 requests per run (the baseline set)
    assert detection_rate(5, 0.065, Noise(TG_CV), trials=200, seed=3) >= 0.95
    assert detection_rate(10, 0.10, Noise(PP_CV), trials=200, seed=4) >= 0.95


def test_power_grows_with_requests() -> None:
    small = detection_rate(5, 0.03, Noise(PP_CV), trials=200, seed=5)
    large = detection_rate(20, 0.03, Noise(PP_CV), trials=200, seed=5)
    assert large > small


def test_a_false_positive_counts_in_either_direction(monkeypatch: pytest.MonkeyPatch) -> None:
    # A two-sided test errs both ways: at no change, "improved" is as false as "regressed".
    from bench import compare
    from bench.devtools import calibration

    always_improved = compare.FigureComparison(
        "c", "tg_tps", "tg", "t/s", True, 1.0, 1.1, 1.1, 1.05, 1.15, 0.001, 5, 5, compare.Verdict.IMPROVED
    )
    monkeypatch.setattr(calibration, "compare_figure", lambda *a, **k: always_improved)
    assert detection_rate(5, 0.0, Noise(TG_CV), trials=20, seed=0) == 1.0
    assert detection_rate(5, 0.065, Noise(TG_CV), trials=20, seed=0) == 0.0  # a drop called an improvement is a miss


def test_many_figures_at_once_hold_the_false_alarm_and_still_find_a_broad_change() -> None:
    from bench.compare import Multiplicity
    from bench.devtools.calibration import family_rates

    # 50 figures a comparison (10 cases x 5): unadjusted, an A/A calls something changed far more
    # often than 1 in 20; BH (the default) keeps it at or under 5 % and still finds a flag-sized
    # change that moves 10 of the figures; Holm cannot, with 5 requests a side (seeded trials)
    unadjusted = family_rates(50, 0, 0.0, 5, Noise(PP_CV), Multiplicity.NONE, trials=40, seed=7)
    bh = family_rates(50, 0, 0.0, 5, Noise(PP_CV), Multiplicity.BH, trials=40, seed=7)
    assert unadjusted.false_alarm > 0.3 and bh.false_alarm <= 0.05
    broad_bh = family_rates(50, 10, 0.065, 5, Noise(TG_CV), Multiplicity.BH, trials=20, seed=8)
    broad_holm = family_rates(50, 10, 0.065, 5, Noise(TG_CV), Multiplicity.HOLM, trials=20, seed=8)
    assert broad_bh.found >= 0.9 and broad_holm.found < 0.1
