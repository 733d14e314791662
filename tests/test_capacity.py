"""bench capacity: the bounded search, and the capacity of a server whose service model is known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.errors import ConfigError
from bench.flows.capacity import CapacityOptions, search
from bench.flows.run import RunOptions
from bench.inputs.scenarios import load_scenario_set
from bench.inputs.slo import Slo, parse_slo
from bench.store.capacity import Level


def plan(**kw: object) -> CapacityOptions:
    base = RunOptions(scenarios=load_scenario_set("smoke"))
    return CapacityOptions(base, 64, 16, Slo(ttft_ms=1000), **kw)  # type: ignore[arg-type]


def holding_up_to(limit: int, tried: list[int]):  # type: ignore[no-untyped-def]
    def measure(concurrency: int, options: CapacityOptions, observer: object) -> Level:
        tried.append(concurrency)
        holds = concurrency <= limit
        return Level(concurrency, f"r{concurrency}", 1.0 if holds else 0.5, 0.0, holds,
                     None, None, None, None, None, None, {})  # fmt: skip

    return measure


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 8, 37, 63])
def test_the_search_brackets_by_doubling_then_bisects_to_the_exact_level(limit: int) -> None:
    tried: list[int] = []
    result = search(plan(max_concurrency=64), measure=holding_up_to(limit, tried))
    assert result.capacity == limit and not result.reached_max
    assert len(tried) == len(set(tried))  # no level measured twice
    assert len(tried) <= 2 * (limit.bit_length() + 1)  # about 2 log2(answer) levels
    assert [lv.concurrency for lv in result.levels] == sorted(tried)


def test_the_search_stops_at_its_ceiling_and_says_so_and_looks_below_a_failing_start() -> None:
    everything = search(plan(max_concurrency=16), measure=holding_up_to(100, []))
    assert everything.capacity == 16 and everything.reached_max
    assert everything.sentence().startswith("capacity: at least 16 concurrent users with 99% of requests within")
    tried: list[int] = []
    below = search(plan(start=8, max_concurrency=16), measure=holding_up_to(5, tried))
    assert below.capacity == 5 and tried[0] == 8
    nothing = search(plan(), measure=holding_up_to(0, []))
    assert nothing.capacity == 0 and "not even 1 concurrent user" in nothing.sentence()


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "needs at least one"), ("ttft=5", "is not LIMIT=MS"), ("ttft_ms=-1", "is not LIMIT=MS"),
     ("ttft_ms=nan", "is not LIMIT=MS"), ("ttft_ms", "is not LIMIT=MS")],
)  # fmt: skip
def test_a_bad_slo_or_plan_is_refused_before_any_load(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_slo(text)
    assert parse_slo("ttft_ms=2000, tpot_ms=50") == Slo(ttft_ms=2000, tpot_ms=50)
    with pytest.raises(ConfigError, match="--start and --max-concurrency"):
        plan(start=8, max_concurrency=4)
    with pytest.raises(ConfigError, match="--target"):
        plan(target=0.0)


def test_the_capacity_of_a_server_with_known_slots_is_found_exactly(
    fake: FakeLlamaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # three slots, each request holding one for 40 ms + 3 x 80 ms: up to 3 streams every first token
    # comes after ~40 ms; a 4th stream must wait for a slot (about a third of 280 ms in the steady
    # state), so TTFT <= 100 ms holds for 3 and fails for 4: the capacity is the slot count. The
    # 60 ms between the first token and the limit is what a machine busy with other work may take
    # (at 20 ms against 50 ms, the 30 ms between them was once not enough after the integration tests)
    fake.config.serve_slots, fake.config.ttft_s, fake.config.itl_s = 3, 0.04, 0.08
    fake.config.total_slots = 3  # what /props says: the same three
    argv = [
        "capacity", "--endpoint", fake.url, "--slo", "ttft_ms=100", "--target", "90", "--prompt-tokens", "40",
        "--output-tokens", "4", "--max-concurrency", "16", "--results-dir", str(tmp_path),
        "--reports-dir", str(tmp_path / "reports"),
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "capacity: 3 concurrent users with 90% of requests within TTFT <= 100 ms" in out
    (saved,) = tmp_path.glob("capacity-*.json")
    result = json.loads(saved.read_text())
    assert result["capacity"] == 3 and [lv["concurrency"] for lv in result["levels"]] == [1, 2, 3, 4]
    assert [lv["holds"] for lv in result["levels"]] == [True, True, True, False]
    # the server's own view beside each level: three slots; the fourth stream waits for one
    assert {lv["slots"] for lv in result["levels"]} == {3}
    assert result["levels"][0]["deferred_max"] == 0 and result["levels"][3]["deferred_max"] >= 1
    (report,) = (tmp_path / "reports").glob("capacity-*.html")
    html = report.read_text()
    assert "capacity: 3 concurrent users" in html and 'id="plot-capacity"><svg' in html
    runs = {json.loads((p / "run.json").read_text())["label"] for p in tmp_path.iterdir() if (p / "run.json").exists()}
    assert runs == {"capacity-c1", "capacity-c2", "capacity-c3", "capacity-c4"}  # each level a stored run


def test_two_capacity_searches_compare_level_by_level(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.store.capacity import save_result

    def result_at(limit: int, where: Path, slo: Slo | None = None) -> Path:
        options = CapacityOptions(RunOptions(scenarios=load_scenario_set("smoke")), 64, 16, slo or Slo(ttft_ms=1000))
        return save_result(search(options, measure=holding_up_to(limit, [])), where)

    np4 = result_at(4, tmp_path / "a")
    np8 = result_at(8, tmp_path / "b")
    assert main(["compare", str(np4), str(np8)]) == 0
    out = capsys.readouterr().out
    assert "A: Capacity search" in out and "B: Capacity search" in out
    assert "capacity A 4 -> B 8 concurrent users (+4 levels)" in out
    assert main(["compare", str(np8), str(np4), "--fail-on-regression"]) == 1  # four levels lower
    np7 = result_at(7, tmp_path / "c")
    assert main(["compare", str(np8), str(np7), "--fail-on-regression"]) == 0  # one step: what searches differ by
    assert "within the one step" in capsys.readouterr().out
    other = result_at(4, tmp_path / "d", Slo(ttft_ms=500))
    assert main(["compare", str(np4), str(other)]) == 2
    assert "asked different questions" in capsys.readouterr().err
