"""A run in rounds: every case once a round, shuffled with the seed, records and figures intact."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.errors import ConfigError
from bench.figures.throughput import wall_s
from bench.flows.run import RunOptions, run_benchmark
from bench.inputs.baselines import load_baselines
from bench.inputs.scenarios import parse_scenario_set
from bench.load.order import CaseOrder, schedule
from bench.store.run_dir import read_records, read_run_meta
from tests.factories import noisy_records


def three_cases(**extra: object) -> list:  # type: ignore[type-arg]
    data = {
        "scenario": [
            {"name": "pp", "prompt_tokens": [40, 80], "output_tokens": 6, "repetitions": 4, **extra},
            {"name": "c", "prompt_tokens": 40, "output_tokens": 6, "repetitions": 3, "concurrency": 2,
             "pattern": "concurrent"},
        ]
    }  # fmt: skip
    return parse_scenario_set(data, "set").cases()


def test_cases_in_order_is_one_share_a_case() -> None:
    cases = three_cases()
    shares = schedule(cases, [4, 4, 6], CaseOrder.CASES, seed=0)
    assert [(s.case, s.indices, s.first, s.last) for s in shares] == [
        (0, (0, 1, 2, 3), True, True),
        (1, (0, 1, 2, 3), True, True),
        (2, tuple(range(6)), True, True),
    ]


def test_rounds_send_every_prompt_once_each_case_once_a_round_shuffled_by_the_seed() -> None:
    cases = three_cases()
    measured = [4, 4, 6]  # the concurrent case: 3 repetitions x 2 streams
    shares = schedule(cases, measured, CaseOrder.ROUNDS, seed=1)
    rounds = sorted({s.round for s in shares})
    assert rounds == [0, 1, 2]  # the concurrent case keeps 2 requests a share: 6 // 2 rounds at most
    for number in rounds:
        assert sorted(s.case for s in shares if s.round == number) == [0, 1, 2]
    for case, n in enumerate(measured):
        sent = [i for s in shares if s.case == case for i in s.indices]
        assert sent == list(range(n))  # every prompt once, in its order
        mine = [s for s in shares if s.case == case]
        assert mine[0].first and not any(s.first for s in mine[1:]) and mine[-1].last
    assert all(len(s.indices) >= 2 for s in shares if s.case == 2)
    orders = {tuple(s.case for s in schedule(cases, measured, CaseOrder.ROUNDS, seed=seed)) for seed in range(8)}
    assert len(orders) > 1  # the seed shuffles
    assert schedule(cases, measured, CaseOrder.ROUNDS, seed=1) == shares  # and the same seed repeats it


def test_a_case_wall_time_in_rounds_is_the_sum_of_its_stretches() -> None:
    import dataclasses

    records = noisy_records(4, pp_tps=650, tg_tps=72, cv=0.0, seed=0)  # sent 10 s apart, each ~2.6 s long
    one_stretch = wall_s(records)
    split = [dataclasses.replace(r, round=i // 2) for i, r in enumerate(records)]  # rounds 0, 0, 1, 1
    # the gap between the rounds (other cases ran there) is not this case's time
    gap = split[2].t_sent - split[1].t_end
    assert wall_s(split) == pytest.approx(one_stretch - gap)


def test_a_run_in_rounds_against_the_fake_server(fake: FakeLlamaServer, tmp_path: Path) -> None:
    scenarios = parse_scenario_set(
        {"scenario": [
            {"name": "pp", "prompt_tokens": [40, 80], "output_tokens": 6, "repetitions": 3},
            {"name": "d", "prompt_tokens": 40, "output_tokens": 6, "repetitions": 3, "depth": 64},
        ]},
        "set",
    )  # fmt: skip
    options = RunOptions(
        scenarios=scenarios, endpoint=fake.url, results_dir=tmp_path, baselines=load_baselines(None),
        order=CaseOrder.ROUNDS, seed=3,
    )  # fmt: skip
    result = run_benchmark(options)
    assert result.status == "complete"
    meta = read_run_meta(result.run_dir)
    assert meta.case_order == "rounds" and len(meta.schedule) == 9  # 3 rounds x 3 cases, recorded
    records = [r for r in read_records(result.run_dir) if not r.warmup]
    assert sorted({r.round for r in records}) == [0, 1, 2]
    for case in {r.case_id for r in records}:
        assert sorted(r.round for r in records if r.case_id == case) == [0, 1, 2]
    # the depth case's prefix is primed again each round: every measured request reused exactly the depth
    deep = [r for r in records if r.depth_target == 64]
    assert deep and all(r.timings is not None and r.timings.cache_n == 64 for r in deep)
    assert [c.case_id for c in result.summary.cases] == [c.case_id for c in scenarios.cases()]  # the set's order
    assert all(c.ok == 3 for c in result.summary.cases)


def test_an_unknown_order_is_refused() -> None:
    with pytest.raises(ConfigError, match="--case-order must be one of cases, rounds"):
        one = parse_scenario_set({"scenario": [{"name": "p", "prompt_tokens": 40, "output_tokens": 4}]}, "s")
        RunOptions(scenarios=one, order="shuffled")  # type: ignore[arg-type]
