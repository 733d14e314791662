"""How many requests a fresh server needs before a case settles: the table docs/statistics.md keeps."""

from __future__ import annotations

from pathlib import Path

from bench.devtools.settle import settling, table, warmups_taken
from bench.devtools.testing.records import record, timings
from bench.records import RequestRecord
from tests.factories import write_run


def _run(pp_rates: list[float], tg_rates: list[float]) -> list[RequestRecord]:
    """A pp case (512-token prompts) and a tg case (128 generated) at the given rates, request by request."""
    records = []
    for i, rate in enumerate(pp_rates):
        records.append(
            record(case_id="pp/p512-o8-c1-d0", prompt_tokens_target=512, output_tokens_target=8, t_sent=float(i),
                   timings=timings(512, 512 / rate * 1000, 8, 100.0))
        )  # fmt: skip
    for i, rate in enumerate(tg_rates):
        records.append(
            record(case_id="tg/p64-o128-c1-d0", prompt_tokens_target=64, output_tokens_target=128,
                   t_sent=100.0 + i, timings=timings(64, 100.0, 128, 128 / rate * 1000))
        )  # fmt: skip
    return records


def test_a_case_settles_from_the_first_request_after_which_the_runs_agree_at_the_median() -> None:
    # the server's first pp request is a third slow in every run, the second 12 % slow in one; tg is steady
    runs = [
        _run([400, 600, 600, 603, 598, 600, 601, 600], [50, 50, 50.5, 49.8, 50, 50, 50.2, 50]),
        _run([410, 528, 600, 600, 602, 599, 600, 601], [50, 51, 50, 50, 49.9, 50, 50, 50.1]),
    ]
    found = {(s.case_id, s.figure): s for s in settling(runs)}
    pp = found[("pp/p512-o8-c1-d0", "pp_tps")]
    assert pp.settled_at == 2 and pp.runs == 2  # from the third request on
    assert round(pp.largest_deviation[0], 2) == -0.33 and round(pp.largest_deviation[1], 2) == -0.12
    assert found[("tg/p64-o128-c1-d0", "tg_tps")].settled_at == 0
    assert ("pp/p512-o8-c1-d0", "tg_tps") not in found  # an 8-token answer is no tg figure of its own
    assert "from request 3" in table(list(found.values()), {})


def test_a_case_that_never_agrees_says_so() -> None:
    (found,) = [s for s in settling([_run([400, 600, 500, 600, 520, 600, 480, 600], [])]) if s.figure == "pp_tps"]
    assert found.settled_at is None
    assert "not within the requests run" in table([found], {})


def test_the_warm_ups_auto_took_are_counted_per_case_and_run(tmp_path: Path) -> None:
    for count in (2, 3):
        warm = [record(case_id="pp/x", warmup=True, index=-1 - i) for i in range(count)]
        write_run(tmp_path, [*warm, record(case_id="pp/x")], label="auto")
    write_run(tmp_path, [record(case_id="pp/x", warmup=True)], label="cold")
    assert {case: sorted(counts) for case, counts in warmups_taken(tmp_path).items()} == {"pp/x": [2, 3]}
