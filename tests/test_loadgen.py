from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from bench.clock import RunClock
from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.inputs.scenarios import Case, Pattern
from bench.load.loadgen import CaseOutcome, CaseRunner
from bench.load.workload import PromptBuilder
from bench.records import RequestRecord
from bench.transport.client import ChatClient


def case(
    pattern: Pattern = "sequential",
    concurrency: int = 1,
    requests: int = 4,
    *,
    rate: float | None = None,
    max_duration_s: float = 60.0,
    warmup: int = 1,
) -> Case:
    return Case(
        scenario="s",
        prompt_tokens=40,
        output_tokens=4,
        concurrency=concurrency,
        depth=0,
        requests=requests,
        warmup=warmup,
        stream=True,
        pattern=pattern,
        rate_rps=rate,
        max_duration_s=max_duration_s,
        temperature=1.0,
        top_p=1.0,
    )


def run(url: str, c: Case) -> tuple[CaseOutcome, list[RequestRecord]]:
    records: list[RequestRecord] = []

    async def go() -> CaseOutcome:
        async with ChatClient(url, max_connections=c.concurrency + 1) as client:
            prompts = await PromptBuilder(client).build_case(c)
            return await CaseRunner(client, "run1", c, prompts, records.append).run()

    return asyncio.run(go()), records


def overlapping(records: list[RequestRecord]) -> int:
    """Most requests in flight at one time."""
    events = sorted([(r.t_sent, 1) for r in records] + [(r.t_end, -1) for r in records])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def test_sequential_sends_warmup_then_measured_one_at_a_time(fake: FakeLlamaServer) -> None:
    fake.config.itl_s = 0.002
    outcome, records = run(fake.url, case())
    assert [r.warmup for r in records] == [True, False, False, False, False]
    assert [r.index for r in records if not r.warmup] == [0, 1, 2, 3]
    assert overlapping([r for r in records if not r.warmup]) == 1
    assert (outcome.measured, outcome.failed, outcome.stopped_by_deadline) == (4, 0, False)
    assert all(r.prompt_tokens_target == 40 and r.timings and r.timings.prompt_n == 40 for r in records)


def test_closed_loop_keeps_n_streams_busy(fake: FakeLlamaServer) -> None:
    fake.config.itl_s = 0.01
    _, records = run(fake.url, case("concurrent", concurrency=4, requests=8, warmup=0))
    assert len(records) == 8
    assert overlapping(records) == 4


def test_open_loop_is_bounded_by_its_deadline(fake: FakeLlamaServer) -> None:
    outcome, records = run(
        fake.url, case("poisson", concurrency=8, requests=200, rate=20.0, max_duration_s=0.5, warmup=0)
    )
    assert outcome.stopped_by_deadline
    # about 10 arrivals in 0.5 s at 20 req/s; far fewer than the 200 prompts built
    assert 1 <= len(records) < 40


def test_failures_are_recorded_and_the_case_goes_on(fake: FakeLlamaServer) -> None:
    fake.config.status = 500
    outcome, records = run(fake.url, case(warmup=0))
    assert outcome.failed == 4 and len(records) == 4
    assert all(r.http_status == 500 and not r.ok for r in records)


@pytest.mark.parametrize("stream", [True, False])
def test_records_carry_the_case_axes(fake: FakeLlamaServer, stream: bool) -> None:
    from dataclasses import replace

    _, records = run(fake.url, replace(case(warmup=0, requests=1), stream=stream))
    (r,) = records
    assert (r.case_id, r.stream, r.output_tokens_target, r.concurrency, r.run_id) == (
        "s/p40-o4-c1-d0",
        stream,
        4,
        1,
        "run1",
    )


def test_an_open_loop_the_server_cannot_carry_shows_its_queue_from_the_scheduled_arrival(
    fake: FakeLlamaServer,
) -> None:
    # each request takes at least S = 40 ms + 3 x 10 ms = 70 ms; arrivals come 4 times as fast, and
    # the case lets one request out at a time, so a queue must build: request k cannot start before
    # k x S, whatever its scheduled arrival (queueing theory's lower bound, for any arrival draw)
    fake.config.ttft_s, fake.config.itl_s = 0.04, 0.01
    service = 0.04 + 3 * 0.01
    _, records = run(fake.url, case("poisson", concurrency=1, requests=12, rate=4 / service, warmup=0))
    measured = sorted(records, key=lambda r: r.index)
    assert len(measured) == 12 and all(r.t_scheduled is not None for r in measured)
    start = measured[0].t_scheduled
    for k, r in enumerate(measured):
        assert r.t_request - start >= k * service - 0.005  # sent no earlier than the queue allows
        assert (
            r.schedule_delay_ms is not None
            and r.schedule_delay_ms >= (k * service - (r.t_scheduled - start)) * 1000 - 5
        )
    # read from the send, every request looks alike; read from the arrival, the last waited far longer
    from_send = [r.e2e_ms for r in measured]
    from_arrival = [r.e2e_from_schedule_ms for r in measured]
    # the last request's wait is bounded below (11 services less its arrival, about 0.6 s), the typical
    # service time from the send is about 70 ms: the two readings differ several times over
    assert from_arrival[-1] is not None and from_arrival[-1] > 3 * statistics.median(from_send)
    from bench.figures.summary import summarise_case

    summary = summarise_case(measured[0].case_id, measured)
    assert summary.schedule_delay_ms is not None and summary.schedule_delay_ms.p99 > 100
    assert any("after their scheduled arrival" in note for note in summary.notes)


def test_a_closed_loop_has_no_schedule_to_be_late_for(fake: FakeLlamaServer) -> None:
    from bench.figures.summary import summarise_case

    _, records = run(fake.url, case("concurrent", concurrency=2, requests=4, warmup=0))
    assert all(r.t_scheduled is None and r.schedule_delay_ms is None for r in records)
    summary = summarise_case(records[0].case_id, records)
    assert summary.schedule_delay_ms is None and summary.e2e_from_schedule_ms is None


@pytest.mark.skipif(
    time.get_clock_info("perf_counter").implementation != time.get_clock_info("monotonic").implementation,
    reason="exact only where the loop's clock is perf_counter's",
)
def test_a_time_due_on_the_loop_maps_onto_the_run_clock_alike_whenever_the_pair_is_taken() -> None:
    # Two reads, one of each clock, would put a preemption between them into every mapped time: a
    # busy machine shifted one process's open-loop arrivals against another's by microseconds.
    async def map_twice() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        # anchored at 0, not the epoch: at 1.8e9 s a float's step is 0.24 us, coarser than what is compared
        clock = RunClock(wall_start=0.0)
        first = clock.origin(loop)
        time.sleep(0.01)
        second = clock.origin(loop)
        due = loop.time() + 1.0
        return first[0] + (due - first[1]), second[0] + (due - second[1])

    by_first, by_second = asyncio.run(map_twice())
    assert by_first == pytest.approx(by_second, abs=1e-9)
