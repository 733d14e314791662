"""bench ab --until-decided: looking after every block without inflating the error, and stopping when decided."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

from bench.decide.sequential import DEFAULT_MAX_BLOCKS, SequentialDesign, _null_minima, _tail
from bench.devtools.calibration import TG_RUN_CV
from bench.devtools.sequential import QUICK_FAMILY, simulate
from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.errors import ConfigError
from bench.flows.ab import AbPlan, Variant, run_ab
from bench.flows.run import RunOptions
from bench.inputs.scenarios import load_scenario_set, parse_scenario_set

# 2,000 seeded trials: a share near 5 % has a standard error of 0.5 points; 2 points of slack is 4 of them
SLACK = 0.02


def test_looking_at_alpha_after_every_block_would_call_an_a_a_changed_far_too_often() -> None:
    design = SequentialDesign.for_blocks(DEFAULT_MAX_BLOCKS)
    changes, _ = _null_minima(design.looks)
    # each look's own p at 0.05: the chance that one of 13 looks dips under it, when nothing changed
    assert _tail(changes, 0.05) > 0.15
    # the design's level per look holds the whole sequence at 0.05
    assert _tail(changes, design.change_level(0.05)) == pytest.approx(0.05, abs=0.002)
    assert design.p_change(design.change_level(0.05) / 2) < 0.05 < design.p_change(0.05)


def test_a_budget_that_cannot_decide_is_refused() -> None:
    with pytest.raises(ConfigError, match="--max-blocks must be at least 2"):
        SequentialDesign.for_blocks(1)
    assert SequentialDesign.for_blocks(7).looks == (2, 4, 6, 7)  # the last block is a look too


def test_an_a_a_is_called_changed_at_most_alpha_and_a_real_change_never_the_same() -> None:
    aa = simulate((TG_RUN_CV,), 0.0, trials=2000, seed=1)
    assert aa.changed <= 0.05 + SLACK
    fa = simulate((TG_RUN_CV,), 0.065, trials=2000, seed=2)
    assert fa.same <= 0.05 and fa.decided >= 0.95


def test_the_quick_sets_pp_and_tg_decide_a_fa_sized_change_within_the_default_budget() -> None:
    fa = simulate(QUICK_FAMILY, 0.065, trials=1000, seed=3)
    assert fa.decided >= 0.95 - SLACK and fa.same <= 0.05
    aa = simulate(QUICK_FAMILY, 0.0, trials=1000, seed=4)
    assert aa.changed <= 0.05 + SLACK


def test_each_case_is_decided_on_the_figures_it_is_for_unless_told_otherwise(tmp_path: Path) -> None:
    quick = load_scenario_set("quick")
    variants = (Variant("a", ()), Variant("b", ()))
    plan = AbPlan(RunOptions(scenarios=quick, results_dir=tmp_path), variants, until_decided=True)
    # long prompts answered in 16 tokens are pp cases; 128 tokens after a 128-token prompt, a tg case
    assert sorted(plan.asked) == [
        ("pp/p1024-o16-c1-d0", "pp_tps"),
        ("pp/p256-o16-c1-d0", "pp_tps"),
        ("tg/p128-o128-c1-d0", "tg_tps"),
    ]
    told = AbPlan(RunOptions(scenarios=quick, results_dir=tmp_path), variants, until_decided=True, decide=("tg_tps",))
    assert {figure for _, figure in told.asked} == {"tg_tps"} and len(told.asked) == 3
    short = AbPlan(RunOptions(scenarios=SET, results_dir=tmp_path), variants, until_decided=True)
    assert sorted(short.asked) == [("tg/p40-o8-c1-d0", "pp_tps"), ("tg/p40-o8-c1-d0", "tg_tps")]  # short both ways


SET = parse_scenario_set(
    {"scenario": [{"name": "tg", "prompt_tokens": 40, "output_tokens": 8, "repetitions": 5, "warmup": 0}]}, "seq"
)


class Speeds:
    """Plays two server variants: each run takes its variant's speed, off by a seeded factor per start."""

    def __init__(self, fake: FakeLlamaServer, speeds: dict[str, float], run_cv: float) -> None:
        self.fake, self.speeds, self.run_cv, self.rng = fake, speeds, run_cv, random.Random(5)

    def message(self, text: str) -> None: ...
    def run_started(self, run_dir: Path, cases: object) -> None:
        variant = run_dir.name.rsplit("-", 2)[-2]  # <time>-<ab id>-<variant>-<hex>
        self.fake.config.tg_tps = self.speeds[variant] * self.rng.lognormvariate(0, self.run_cv)

    def case_started(self, case: object) -> None: ...
    def request_done(self, record: object) -> None: ...
    def case_done(self, case: object, summary: object, outcome: object) -> None: ...


@pytest.mark.parametrize(("fast", "verdict"), [(200.0, "same"), (260.0, "improved")])
def test_until_decided_stops_at_the_first_look_that_decides(
    tmp_path: Path, fake: FakeLlamaServer, fast: float, verdict: str
) -> None:
    fake.config.jitter_cv = 0.005
    plan = AbPlan(
        RunOptions(scenarios=SET, endpoint=fake.url, results_dir=tmp_path),
        (Variant("a", ()), Variant("b", ())),
        until_decided=True,
        max_blocks=8,
        decide=("tg_tps",),
    )
    looks: list[int] = []
    observer = Speeds(fake, {"a": 200.0, "b": fast}, run_cv=0.005)
    result = run_ab(plan, observer, lambda blocks, comparisons: looks.append(blocks))  # type: ignore[arg-type]
    (comparison,) = result.comparisons
    tg = next(f for f in comparison.figures if f.figure == "tg_tps")
    assert tg.verdict == verdict
    # runs 0.5 % apart settle either question at the second look: with two runs a side Welch has about
    # one degree of freedom, which nothing short of a huge change gets through; four blocks, ABBA twice
    assert looks == [2, 4] and result.stopped == "decided after 4 blocks"
    assert [name for _, name in result.order] == ["a", "b", "b", "a"] * 2
    document = json.loads(result.path.read_text())
    assert document["until_decided"]["stopped"] == result.stopped and document["until_decided"]["looks"] == [2, 4, 6, 8]
    # the p and interval hold over every look: a look's own p would be smaller
    assert tg.p_value is not None and tg.p_same is not None and tg.same_alpha is not None and tg.same_alpha < 0.05


def test_until_decided_spends_the_budget_and_says_so_when_the_runs_cannot_tell(
    tmp_path: Path, fake: FakeLlamaServer
) -> None:
    # runs 8 % apart and a 4 % change: four blocks a side can neither find it nor rule it out
    plan = AbPlan(
        RunOptions(scenarios=SET, endpoint=fake.url, results_dir=tmp_path),
        (Variant("a", ()), Variant("b", ())),
        until_decided=True,
        max_blocks=4,
        decide=("tg_tps",),
    )
    result = run_ab(plan, Speeds(fake, {"a": 200.0, "b": 208.0}, run_cv=0.08))  # type: ignore[arg-type]
    tg = next(f for f in result.comparisons[0].figures if f.figure == "tg_tps")
    assert result.stopped == "--max-blocks 4 spent: undecided" and len(result.order) == 8
    assert tg.verdict == "undecided" and tg.more_runs is not None and tg.more_runs >= 1


def test_until_decided_refuses_a_figure_it_does_not_know(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--decide takes figures from pp_tps, tg_tps"):
        AbPlan(
            RunOptions(scenarios=SET, endpoint="http://127.0.0.1:9", results_dir=tmp_path),
            (Variant("a", ()), Variant("b", ())),
            until_decided=True,
            decide=("tps",),
        )


def test_a_failed_run_still_ends_its_block_and_the_look_there_happens(tmp_path: Path, fake: FakeLlamaServer) -> None:
    # a's switch command fails the second time it runs: a's run ends block 1 (a b, b a), so the look
    # after block 2 must come without it, and the one after block 4 on three runs of a and four of b
    (tmp_path / "switch.py").write_text(
        "import pathlib, sys\n"
        "count = pathlib.Path(sys.argv[1])\n"
        "calls = int(count.read_text() or 0) + 1 if count.exists() else 1\n"
        "count.write_text(str(calls))\n"
        "sys.exit(3 if calls == int(sys.argv[2]) else 0)\n"  # fail on that call, 0: never
    )
    switch = (sys.executable, str(tmp_path / "switch.py"))
    fake.config.jitter_cv = 0.005
    plan = AbPlan(
        RunOptions(scenarios=SET, endpoint=fake.url, results_dir=tmp_path / "results"),
        (
            Variant("a", (), (*switch, str(tmp_path / "a.count"), "2")),
            Variant("b", (), (*switch, str(tmp_path / "b.count"), "0")),
        ),
        until_decided=True,
        max_blocks=8,
        decide=("tg_tps",),
    )
    looks: list[tuple[int, int]] = []  # (blocks, runs of a) at each look
    observer = Speeds(fake, {"a": 200.0, "b": 200.0}, run_cv=0.005)

    def look(blocks: int, comparisons: object) -> None:
        looks.append((blocks, len(list((tmp_path / "results").glob("*-a-*")))))

    result = run_ab(plan, observer, look)  # type: ignore[arg-type]
    a, b = result.variants
    assert a.failures == ("block 1: switch command for a exited 3: ",)
    assert looks == [(2, 1), (4, 3)] and result.stopped == "decided after 4 blocks"
    assert (len(a.runs), len(b.runs)) == (3, 4)
