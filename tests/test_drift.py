"""A server that slows down as it runs is seen within a case; a steady one is not, over seeded trials."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.figures.drift import DRIFT_ALPHA, trend
from bench.flows.run import RunOptions, run_benchmark
from bench.inputs.scenarios import parse_scenario_set


class CaseFirst:
    """The fake counts its chats from the case's first request on: the preflight's come before it."""

    def __init__(self, fake: FakeLlamaServer) -> None:
        self.fake = fake

    def message(self, text: str) -> None: ...
    def run_started(self, run_dir: Path, cases: object) -> None: ...
    def case_started(self, case: object) -> None:
        self.fake.reset_chats()

    def request_done(self, record: object) -> None: ...
    def case_done(self, case: object, summary: object, outcome: object) -> None: ...


def test_a_steady_server_is_rarely_said_to_drift() -> None:
    # 2,000 seeded cases of 16 requests, 3 % apart, no trend: the note's rate stays near its alpha
    rng = np.random.default_rng(3)
    noted = sum(bool((d := trend("tg", list(200 * rng.lognormal(0, 0.03, 16)))) and d.noted) for _ in range(2000))
    assert noted / 2000 <= DRIFT_ALPHA + 0.01


def test_a_step_down_half_way_is_found_with_its_size() -> None:
    # 12 requests at 200 t/s, then 12 at 160, 2 % noise: Mann-Kendall's tau is about -0.5 (p near 0.001);
    # over 200 seeded cases 197 were noted, every one with the thirds' change at -20 % +- 1 point
    rng = np.random.default_rng(4)
    found = [
        trend("tg", [*(200 * rng.lognormal(0, 0.02, 12)), *(160 * rng.lognormal(0, 0.02, 12))]) for _ in range(200)
    ]
    assert all(d is not None and d.change == pytest.approx(-0.2, abs=0.03) for d in found)
    assert sum(bool(d and d.noted) for d in found) >= 0.95 * len(found)
    assert trend("tg", [200.0] * 5) is None  # too few to say


def test_a_run_against_a_server_that_slows_after_twelve_requests_says_so(tmp_path: Path, fake: FakeLlamaServer) -> None:
    fake.config.jitter_cv, fake.config.slow_after, fake.config.slow_factor = 0.02, 12, 1.3
    scenarios = parse_scenario_set(
        {"scenario": [{"name": "tg", "prompt_tokens": 40, "output_tokens": 16, "repetitions": 24, "warmup": 0}]}, "d"
    )
    result = run_benchmark(RunOptions(scenarios=scenarios, endpoint=fake.url, results_dir=tmp_path), CaseFirst(fake))  # type: ignore[arg-type]
    (case,) = result.summary.cases
    tg = next(d for d in case.drift if d.figure == "tg")
    assert tg.noted and tg.change == pytest.approx(1 / 1.3 - 1, abs=0.03)
    assert any(note.startswith("tg fell") and "drifted" in note for note in case.notes)


def test_auto_warmup_warms_until_two_requests_in_a_row_agree(tmp_path: Path, fake: FakeLlamaServer) -> None:
    # a cold server: its first request at half speed, its second 30 % slow, then steady
    fake.config.cold_factors = (2.0, 1.3)
    scenarios = parse_scenario_set(
        {"scenario": [{"name": "tg", "prompt_tokens": 64, "output_tokens": 32, "repetitions": 3, "warmup": "auto"}]},
        "w",
    )

    options = RunOptions(scenarios=scenarios, endpoint=fake.url, results_dir=tmp_path)
    result = run_benchmark(options, CaseFirst(fake))  # type: ignore[arg-type]
    (case,) = result.summary.cases
    assert case.warmups == 4  # 1 and 2 differ, 2 and 3 differ, 3 and 4 agree
    steady = result.summary.cases[0].tg_tps
    assert steady == pytest.approx(fake.config.tg_tps, rel=0.01)  # no cold request among the measured


def test_warmup_is_a_count_or_auto() -> None:
    from bench.errors import ConfigError
    from bench.inputs.scenarios import AUTO_WARMUP_MAX, load_scenario_set

    quick = load_scenario_set("quick")
    auto = quick.with_warmup("auto")
    assert all(c.warmup == AUTO_WARMUP_MAX and c.warmup_auto for c in auto.cases())
    assert all(c.warmup == 3 and not c.warmup_auto for c in quick.with_warmup(3).cases())
    assert "warmup_auto" not in str(quick.to_dict())  # runs without it read as they always did
    with pytest.raises(ConfigError, match="--warmup must be a count from 0"):
        quick.with_warmup(-1)
