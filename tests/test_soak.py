"""bench soak: one server, the set window after window, and the window where it slowed found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.errors import ConfigError
from bench.flows.run import RunOptions
from bench.flows.soak import SoakPlan, run_soak
from bench.inputs.scenarios import parse_scenario_set

SET = parse_scenario_set(
    {"scenario": [{"name": "tg", "prompt_tokens": 40, "output_tokens": 16, "repetitions": 4, "warmup": 0}]}, "soak"
)


class SlowsFromWindow:
    """Plays a server that gets 25 % slower from its fifth window on (each window is a run)."""

    def __init__(self, fake: FakeLlamaServer) -> None:
        self.fake, self.windows = fake, 0

    def message(self, text: str) -> None: ...
    def run_started(self, run_dir: Path, cases: object) -> None:
        self.windows += 1
        self.fake.config.tg_tps = 200.0 if self.windows < 5 else 150.0

    def case_started(self, case: object) -> None: ...
    def request_done(self, record: object) -> None: ...
    def case_done(self, case: object, summary: object, outcome: object) -> None: ...


def test_a_server_that_slows_as_it_runs_is_found_at_the_window_it_slowed(tmp_path: Path, fake: FakeLlamaServer) -> None:
    fake.config.jitter_cv = 0.01
    plan = SoakPlan(RunOptions(scenarios=SET, endpoint=fake.url, results_dir=tmp_path), 600.0, windows=10)
    said: list[str] = []
    result = run_soak(plan, SlowsFromWindow(fake), said.append)  # type: ignore[arg-type]
    assert len(result.windows) == 10 and len(said) == 10
    (shift,) = [s for s in result.shifts if s.figure == "tg_tps"]
    assert shift.window == 5 and shift.change == pytest.approx(-0.25, abs=0.03)
    assert result.sentence().startswith(f"tg/p40-o16-c1-d0 tg_tps shifted {shift.change:+.1%} at window 5")
    document = json.loads(result.path.read_text())
    assert len(document["windows"]) == 10 and document["shifts"][0]["window"] == 5


def test_a_steady_server_has_no_shift(tmp_path: Path, fake: FakeLlamaServer) -> None:
    # no jitter: every window reads the same, and no permutation of a flat series is a change
    result = run_soak(SoakPlan(RunOptions(scenarios=SET, endpoint=fake.url, results_dir=tmp_path), 600.0, windows=6))
    assert not result.shifts and result.sentence().startswith("steady: no figure shifted across 6 windows")


def test_a_soak_needs_a_series() -> None:
    with pytest.raises(ConfigError, match="--windows must be at least 2"):
        SoakPlan(RunOptions(scenarios=SET), 60.0, windows=1)
