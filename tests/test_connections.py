"""What a request goes out on, and when it left: connections opened ahead of a case's clock or cold when
asked, each connect reported once, and the send timed by the kernel's transmit stamp on the lean lane."""

from __future__ import annotations

import asyncio
import time
import tomllib

import pytest

from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.errors import ConfigError
from bench.figures.summary import summarise_case
from bench.inputs.scenarios import Case, Connections, Pattern, parse_scenario_set
from bench.load.loadgen import CaseRunner
from bench.load.workload import PromptBuilder
from bench.records import RequestRecord, StampSource
from bench.transport import lanes
from bench.transport.bodies import Departure
from bench.transport.client import ChatClient, Exchange, _departed
from bench.transport.stamped import AVAILABLE

MESSAGES = [{"role": "user", "content": "hello there"}]
lean_only = pytest.mark.skipif(not AVAILABLE, reason="the lean lane is Linux's (kernel stamps)")


@pytest.fixture(params=["lean", "httpcore"])
def lane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "httpcore":
        monkeypatch.setattr(lanes, "STAMPS_AVAILABLE", False)
    elif not lanes.STAMPS_AVAILABLE:
        pytest.skip("the lean lane is Linux's")
    return str(request.param)


async def _accepted(fake: FakeLlamaServer, count: int) -> None:
    """Until the server has accepted ``count`` connections (its accept thread runs on its own time)."""
    for _ in range(500):
        if len(fake.log.connections) >= count:
            return
        await asyncio.sleep(0.01)


@lean_only
def test_connections_opened_ahead_carry_the_first_wave_and_each_connect_is_reported_once(
    fake: FakeLlamaServer,
) -> None:
    async def go() -> tuple[int, list[Exchange], list[Exchange]]:
        async with ChatClient(fake.url, timeout_s=10, max_connections=4) as client:
            assert await client.open_connections(4) == 4
            await _accepted(fake, 4)
            body = client.chat_body(MESSAGES, max_tokens=2, stream=True)
            first = await asyncio.gather(*(client.chat(body) for _ in range(4)))
            later = await asyncio.gather(*(client.chat(body) for _ in range(4)))
            return len(fake.log.connections), first, later

    accepted_before, first, later = asyncio.run(go())
    assert accepted_before == 4
    assert len(fake.log.connections) == 4  # both waves went out on the connections opened ahead
    assert max(fake.log.connections) < min(fake.log.arrivals)
    assert all(e.ok and e.connect_ms is not None and e.connect_ms > 0 for e in first)
    assert all(e.ok and e.connect_ms is None for e in later)


@lean_only
@pytest.mark.parametrize("timed", [False, True], ids=["at-once", "at-its-time"])
def test_the_send_is_the_kernels_transmit_time_of_the_requests_last_byte(fake: FakeLlamaServer, timed: bool) -> None:
    async def go() -> tuple[float, list[Exchange]]:
        async with ChatClient(fake.url, timeout_s=10) as client:
            called = client.clock.now()
            done = []
            for _ in range(3):  # one connection: the stamps each request leaves do not read as the server closing it
                at = asyncio.get_running_loop().time() + 0.05 if timed else None
                done.append(await client.chat(client.chat_body(MESSAGES, max_tokens=2, stream=True), at=at))
            return called, done

    called, exchanges = asyncio.run(go())
    assert len(fake.log.connections) == 1
    for exchange, arrival in zip(exchanges, fake.log.arrivals, strict=True):
        assert exchange.ok and exchange.t_written is not None
        assert (exchange.send_clock, exchange.receive_clock) == (StampSource.KERNEL, StampSource.KERNEL)
        assert called <= exchange.t_written <= arrival  # the server read it after it left
        assert exchange.t_sent == exchange.t_written if timed else exchange.t_sent <= exchange.t_written


def test_the_pool_lane_says_its_clocks_are_the_loops(fake: FakeLlamaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lanes, "STAMPS_AVAILABLE", False)

    async def go() -> Exchange:
        async with ChatClient(fake.url, timeout_s=10) as client:
            return await client.chat(client.chat_body(MESSAGES, max_tokens=2, stream=True))

    exchange = asyncio.run(go())
    assert exchange.ok and (exchange.send_clock, exchange.receive_clock) == (StampSource.LOOP, StampSource.LOOP)
    assert exchange.connect_ms is not None  # its first request opened the connection


@pytest.mark.parametrize(
    ("wire", "kept"),
    [(0.0001, True), (-5.0, False), (+5.0, False)],
    ids=["just-after-the-send", "long-before-it", "after-the-answer-began"],
)
def test_a_transmit_stamp_is_taken_only_where_it_can_be(wire: float, kept: bool) -> None:
    now = time.time
    written = time.time()
    exchange = Exchange(t_sent=written - 0.01, t_written=written, t_first_byte=written + 0.05)
    _departed(exchange, Departure(connect_s=0.002, wire_time=written + wire), now, moved=False)
    assert exchange.connect_ms == pytest.approx(2.0)
    assert (exchange.send_clock == StampSource.KERNEL) is kept
    assert (exchange.t_written != written) is kept


def test_cold_requests_open_a_connection_each_inside_their_own_time(fake: FakeLlamaServer, lane: str) -> None:
    async def go() -> list[Exchange]:
        async with ChatClient(fake.url, timeout_s=10) as client:
            body = client.chat_body(MESSAGES, max_tokens=2, stream=True)
            return [await client.chat(body, cold=True) for _ in range(3)]

    exchanges = asyncio.run(go())
    assert len(fake.log.connections) == 3
    for exchange, accepted in zip(exchanges, fake.log.connections, strict=True):
        assert exchange.ok and exchange.connect_ms is not None
        assert exchange.t_written is not None and exchange.t_written <= accepted  # the clock ran before the connect
        assert exchange.send_clock == StampSource.LOOP


def _case(pattern: Pattern, concurrency: int, connections: Connections = Connections.WARM) -> Case:
    return Case(
        scenario="s", prompt_tokens=40, output_tokens=4, concurrency=concurrency, depth=0, requests=2 * concurrency,
        warmup=0, stream=True, pattern=pattern, rate_rps=None, max_duration_s=60.0, temperature=1.0, top_p=1.0,
        connections=connections,
    )  # fmt: skip


def _run_case(
    fake: FakeLlamaServer, case: Case, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[int], list[float], list[RequestRecord]]:
    """The case's records, and each call to open connections ahead: how many, and when (run clock)."""
    records: list[RequestRecord] = []
    opened: list[int] = []
    opened_at: list[float] = []
    original = ChatClient.open_connections

    async def spy(self: ChatClient, count: int) -> int:
        opened.append(count)
        tried = await original(self, count)
        opened_at.append(self.clock.now())
        return tried

    monkeypatch.setattr(ChatClient, "open_connections", spy)

    async def go() -> None:
        async with ChatClient(fake.url, max_connections=case.concurrency + 1) as client:
            prompts = await PromptBuilder(client).build_case(case)
            await CaseRunner(client, "run1", case, prompts, records.append).run()

    asyncio.run(go())
    return opened, opened_at, records


@lean_only
def test_a_closed_loop_opens_its_streams_connections_before_its_clock_starts(
    fake: FakeLlamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened, opened_at, records = _run_case(fake, _case(Pattern.CONCURRENT, 4), monkeypatch)
    assert opened == [4] and opened_at[0] <= min(r.t_sent for r in records)
    first_wave = sorted(records, key=lambda r: r.t_sent)[:4]
    assert all(r.connect_ms is not None for r in first_wave)  # each connection's connect, reported once
    assert sum(r.connect_ms is not None for r in records) == 4
    summary = summarise_case(records[0].case_id, records)
    assert summary.connect_ms is not None and summary.connect_ms.n == 4 and not summary.cold
    assert summary.clocks == {"receive": {"kernel": 8}, "send": {"kernel": 8}}


def test_a_cold_case_opens_nothing_ahead_and_says_its_ttft_includes_the_connect(
    fake: FakeLlamaServer, monkeypatch: pytest.MonkeyPatch, lane: str
) -> None:
    case = _case(Pattern.CONCURRENT, 2, Connections.COLD)
    opened, _, records = _run_case(fake, case, monkeypatch)
    assert opened == [] and case.case_id.endswith("-cold")
    assert len(records) == 4 and all(r.cold and r.connect_ms is not None for r in records)
    summary = summarise_case(case.case_id, records)
    assert summary.cold and summary.connect_ms is not None and summary.connect_ms.n == 4
    assert any("cold connections" in note and "include the connect" in note for note in summary.notes)


def test_an_open_loop_opens_nothing_ahead(fake: FakeLlamaServer, monkeypatch: pytest.MonkeyPatch) -> None:
    case = Case(
        scenario="s", prompt_tokens=40, output_tokens=4, concurrency=4, depth=0, requests=3, warmup=0, stream=True,
        pattern=Pattern.POISSON, rate_rps=50.0, max_duration_s=60.0, temperature=1.0, top_p=1.0,
    )  # fmt: skip
    opened, _, records = _run_case(fake, case, monkeypatch)
    assert opened == [] and len(records) == 3  # its requests open theirs READY_S ahead of their times


def test_a_scenario_asks_for_cold_connections_by_name() -> None:
    text = (
        'schema_version = 1\nname = "t"\n[[scenario]]\nname = "cold"\nprompt_tokens = 8\noutput_tokens = 4\n'
        'connections = "cold"\n'
    )
    (case,) = parse_scenario_set(tomllib.loads(text), "t.toml").cases()
    assert case.cold and case.case_id == "cold/p8-o4-c1-d0-cold"
    with pytest.raises(ConfigError, match="field 'connections': must be \"warm\""):
        parse_scenario_set(tomllib.loads(text.replace('"cold"', '"lukewarm"')), "t.toml")
