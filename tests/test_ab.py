from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.errors import ConfigError
from bench.flows.ab import AbPlan, Variant, block_order, parse_variant, run_ab
from bench.flows.run import RunOptions
from bench.inputs.scenarios import parse_scenario_set

SET = parse_scenario_set(
    {"scenario": [{"name": "tg", "prompt_tokens": 40, "output_tokens": 8, "repetitions": 5, "warmup": 0}]}, "ab-test"
)


def test_variants_parse_into_argument_lists() -> None:
    assert parse_variant('fa_on=-fa on -ub "512"') == ("fa_on", ("-fa", "on", "-ub", "512"))
    with pytest.raises(ConfigError, match="NAME=FLAGS"):
        parse_variant("-fa on")


def test_blocks_interleave_variants() -> None:
    assert block_order(["a", "b"], 3, "alternate", 0) == [(0, "a"), (0, "b"), (1, "b"), (1, "a"), (2, "a"), (2, "b")]
    randomised = block_order(["a", "b", "c"], 4, "random", 7)
    assert [name for _, name in randomised].count("a") == 4
    assert randomised == block_order(["a", "b", "c"], 4, "random", 7)  # seeded: the order is reproducible


def test_plans_that_cannot_work_are_refused(tmp_path: Path) -> None:
    base = RunOptions(scenarios=SET, results_dir=tmp_path)
    with pytest.raises(ConfigError, match="at least two"):
        AbPlan(base, (Variant("a", ()),)).validate()
    with pytest.raises(ConfigError, match="unique"):
        AbPlan(base, (Variant("a", ()), Variant("a", ()))).validate()
    with pytest.raises(ConfigError, match="remote --endpoint"):
        AbPlan(base, (Variant("a", (), ("true",)), Variant("b", ()))).validate()


def test_remote_mode_switches_waits_and_compares_pooled_blocks(tmp_path: Path, fake: FakeLlamaServer) -> None:
    state = tmp_path / "live"
    (tmp_path / "switch.py").write_text("import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])\n")
    switch = [sys.executable, str(tmp_path / "switch.py"), str(state)]

    plan = AbPlan(
        RunOptions(scenarios=SET, endpoint=fake.url, results_dir=tmp_path / "results"),
        (Variant("slow", ("-fa", "off"), (*switch, "slow")), Variant("fast", ("-fa", "on"), (*switch, "fast"))),
        blocks=2,
    )
    # "fast" generates 30 % faster: with 2 blocks a side, enough to stand the adjustment over the 5 tests
    speeds = {"slow": 200.0, "fast": 260.0}

    class Observer:
        """Plays the remote server: at each run's start it takes the speed of the variant switched to."""

        def message(self, text: str) -> None: ...
        def run_started(self, run_dir: Path, cases: object) -> None:
            fake.config.tg_tps = speeds[state.read_text()]

        def case_started(self, case: object) -> None: ...
        def request_done(self, record: object) -> None: ...
        def case_done(self, case: object, summary: object, outcome: object) -> None: ...

    fake.config.jitter_cv = 0.01
    result = run_ab(plan, Observer())  # type: ignore[arg-type]
    assert [name for _, name in result.order] == ["slow", "fast", "fast", "slow"]
    assert all(len(v.runs) == 2 and not v.failures for v in result.variants)
    (comparison,) = result.comparisons
    tg = next(f for f in comparison.figures if f.figure == "tg_tps")
    assert tg.verdict == "improved" and tg.n_a == tg.n_b == 10
    assert tg.p_value is not None and tg.p_adjusted is not None
    assert tg.p_value <= tg.p_adjusted <= comparison.tests * tg.p_value  # adjusted over the comparison's tests
    assert tg.ratio == pytest.approx(1.3, abs=0.03)
    document = json.loads(result.path.read_text())
    assert document["outputs_differ"] is False
    assert [v["name"] for v in document["variants"]] == ["slow", "fast"]
    assert "server flags: -fa off -> -fa on" in comparison.differences
    assert (comparison.a.runs, comparison.b.runs) == (2, 2)  # each side pools its blocks: the run is the unit
    assert comparison.noise_note.startswith("several runs a side")


def test_a_variant_that_never_gets_healthy_is_reported_and_the_other_kept(
    tmp_path: Path, fake: FakeLlamaServer
) -> None:
    plan = AbPlan(
        RunOptions(scenarios=SET, endpoint=fake.url, results_dir=tmp_path / "results"),
        (Variant("good", ()), Variant("broken", (), (sys.executable, "-c", "import sys; sys.exit(3)"))),
        blocks=1,
    )
    result = run_ab(plan)
    good, broken = result.variants
    assert len(good.runs) == 1 and broken.runs == ()
    assert broken.failures == ("block 0: switch command for broken exited 3: ",)
    assert result.comparisons == ()


def test_cli_exits_3_when_a_variant_has_no_data(
    tmp_path: Path, fake: FakeLlamaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "set.toml").write_text(
        '[[scenario]]\nname = "tg"\nprompt_tokens = 40\noutput_tokens = 8\nrepetitions = 4\n'
    )
    code = main(
        [
            "ab",
            "--endpoint",
            fake.url,
            "--scenarios",
            str(tmp_path / "set.toml"),
            "--results-dir",
            str(tmp_path / "r"),
            "--variant",
            "a=-t 1",
            "--variant",
            "b=-t 2",
            "--switch",
            f"b={sys.executable} -c 'raise SystemExit(4)'",
            "--blocks",
            "1",
        ]
    )
    assert code == 3
    assert "FAILED block 0: switch command for b exited 4" in capsys.readouterr().out


def test_every_block_failing_into_a_missing_results_folder_still_keeps_the_failures(
    tmp_path: Path, fake: FakeLlamaServer
) -> None:
    fail = (sys.executable, "-c", "import sys; sys.exit(3)")
    plan = AbPlan(
        RunOptions(scenarios=SET, endpoint=fake.url, results_dir=tmp_path / "not" / "yet"),
        (Variant("a", (), fail), Variant("b", (), fail)),
        blocks=1,
    )
    result = run_ab(plan)
    document = json.loads(result.path.read_text())
    assert [v["failures"] for v in document["variants"]] == [
        [f"block 0: switch command for {n} exited 3: "] for n in "ab"
    ]


@pytest.mark.parametrize("name", ["../up", "a/b", "", "a b"])
def test_a_variant_name_that_is_not_a_plain_word_is_refused_before_any_block(name: str) -> None:
    with pytest.raises(ConfigError, match="a variant name is letters, digits"):
        AbPlan(RunOptions(scenarios=SET, endpoint="http://127.0.0.1:9"), (Variant(name, ()), Variant("b", ())))
