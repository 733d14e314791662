"""The power plan: the spread between runs, and the runs a side a change needs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.decide.plan import make_plan, runs_needed, welch_power
from bench.decide.stats import welch_log_ratio
from bench.errors import ConfigError
from tests.factories import noisy_records, write_run


def test_the_simulated_power_is_the_rejection_rate_of_the_test_the_comparison_runs() -> None:
    # the same question asked of bench.decide.stats.welch_log_ratio itself, seeded draws
    rng = np.random.default_rng(5)
    trials = 1500
    hits = sum(
        welch_log_ratio(list(np.exp(rng.normal(0, 0.03, 4))), list(np.exp(rng.normal(np.log(1.065), 0.03, 4))))[1]
        < 0.05
        for _ in range(trials)
    )
    assert welch_power(4, 0.03, 0.065) == pytest.approx(hits / trials, abs=0.04)  # both ~0.64, MC error ~0.013
    assert welch_power(4, 0.03, 0.0) <= 0.06  # at no change, the false-positive rate
    assert welch_power(20, 0.01, 0.065) == 1.0


def test_more_spread_or_a_smaller_change_needs_more_runs() -> None:
    assert runs_needed(0.03, 0.065) < runs_needed(0.03, 0.03)  # type: ignore[operator]
    assert runs_needed(0.01, 0.065) < runs_needed(0.03, 0.065)  # type: ignore[operator]
    assert runs_needed(0.5, 0.01) is None  # beyond what a plan offers


def test_a_plan_from_runs_that_differ_by_a_known_spread(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    factors = [1.0, 1.04, 0.97, 1.02, 0.99]  # each run's tg off by this much: sd of logs ~0.027
    for number, factor in enumerate(factors):
        records = noisy_records(6, pp_tps=650, tg_tps=72 * factor, cv=0.005, seed=number)
        write_run(tmp_path, [dataclasses.replace(r, t_sent=float(i), t_end=i + 0.5) for i, r in enumerate(records)],
                  label="aa", started=float(number))  # fmt: skip
    (pp, tg) = make_plan(sorted(tmp_path.iterdir()), [0.03, 0.065])
    assert tg.figure == "tg_tps" and tg.runs_measured == 5
    assert tg.spread == pytest.approx(float(np.std(np.log(factors), ddof=1)), rel=0.2)
    assert pp.spread < tg.spread  # pp did not move between runs
    (_, for_3), (_, for_6) = tg.runs_needed
    assert for_3 is not None and for_6 is not None and for_6 < for_3
    assert tg.case_seconds == pytest.approx(5.5)
    assert main(["plan", "all:aa", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "runs a side for 6.5 %" in out and f"{for_6} (" in out
    with pytest.raises(ConfigError, match="at least 3 runs"):
        make_plan(sorted(tmp_path.iterdir())[:2], [0.03])


def test_a_plan_from_a_profile_or_a_history_and_what_more_requests_would_save(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.decide.noise import measure_profile, save_profile

    factors = [1.0, 1.04, 0.97, 1.02, 0.99]
    paths = [
        write_run(tmp_path, noisy_records(6, pp_tps=650, tg_tps=72 * f, cv=0.04, seed=n), label="aa", started=float(n))
        for n, f in enumerate(factors)
    ]
    profile = measure_profile(paths)
    by_profile = make_plan(profile, [0.065])
    assert by_profile == make_plan(paths, [0.065])  # the runs, or the profile of them: the same plan
    tg = next(p for p in by_profile if p.figure == "tg_tps")
    (_, now), (_, more) = tg.runs_needed[0], tg.runs_needed_more_requests[0]
    assert now is not None and more is not None and more <= now  # requests shrink only their own part
    save_profile(profile, tmp_path / "noise.json")
    assert main(["plan", "--noise", str(tmp_path / "noise.json")]) == 0
    assert "with 4x requests, 6.5 %" in capsys.readouterr().out
    assert main(["plan", "--history", "aa", "--results-dir", str(tmp_path)]) == 0
    assert main(["plan", "--history", "nope", "--results-dir", str(tmp_path)]) == 4
    assert main(["plan", "all:aa", "--history", "aa", "--results-dir", str(tmp_path)]) == 2
    assert "one source of the spread" in capsys.readouterr().err
