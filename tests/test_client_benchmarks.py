"""The client's own cost, as pytest-benchmark benchmarks (``nox -s bench_client``).

In the normal test run benchmarks are disabled and each body runs once, so these
also check that the measurement machinery works. Targets (docs/own-costs.md):
at least 10,000 SSE token events per second per core of client CPU, and under
1 ms median added TTFT at 1 and 64 concurrent streams.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.devtools.testing.fake_server import fake_server_process
from bench.transport import lanes
from bench.transport.client import ChatClient, Exchange
from bench.transport.sse import SSEParser
from tests.conftest import SuiteFigure

CHUNK = (
    b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":" tok"}}],"created":1761251091,'
    b'"id":"chatcmpl-x","model":"gpt-oss-120b","system_fingerprint":"b6458-40be5115","object":"chat.completion.chunk"}'
    b"\n\n"
)


@pytest.fixture
def fast_fake() -> Iterator[str]:
    with fake_server_process() as url:
        yield url


def test_sse_parser_events_per_second(benchmark: BenchmarkFixture) -> None:
    stream = CHUNK * 10_000

    def parse() -> int:
        parser = SSEParser()
        count = 0
        for start in range(0, len(stream), 4096):  # network-sized reads
            count += len(parser.feed(stream[start : start + 4096]))
        return count

    assert benchmark(parse) == 10_000
    if benchmark.stats:
        benchmark.extra_info["events_per_s"] = 10_000 / benchmark.stats.stats.mean


async def _streams(url: str, n_streams: int, tokens: int) -> list[Exchange]:
    async with ChatClient(url, max_connections=n_streams, timeout_s=60) as client:
        body = client.chat_body([{"role": "user", "content": "hi"}], max_tokens=tokens, stream=True)
        return await asyncio.gather(*(client.chat(body) for _ in range(n_streams)))


def test_client_token_events_per_cpu_second(
    benchmark: BenchmarkFixture, fast_fake: str, suite_figure: SuiteFigure
) -> None:
    tokens = 4000

    def run() -> float:
        cpu = time.process_time()
        (exchange,) = asyncio.run(_streams(fast_fake, 1, tokens))
        used = time.process_time() - cpu
        assert exchange.ok and len(exchange.token_times) == tokens
        return tokens / used

    events_per_cpu_s = benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info["events_per_cpu_s"] = events_per_cpu_s
    suite_figure("client_events_per_cpu_s", events_per_cpu_s)
    print(f"\nclient: {events_per_cpu_s:,.0f} token events per CPU-second")


@pytest.mark.parametrize("lane", ["lean", "httpcore"])
def test_client_cpu_per_streamed_request(
    benchmark: BenchmarkFixture, fast_fake: str, suite_figure: SuiteFigure, lane: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request's turnover on a kept-alive connection: its head out, a 2-token stream in, its fields filled.

    When a closed loop's requests end and start together, every other stream waits this long per
    request. Plain HTTP on Linux takes the lean lane; TLS takes httpcore's, measured here on plain HTTP.
    """
    if lane == "httpcore":
        monkeypatch.setattr(lanes, "STAMPS_AVAILABLE", False)
    requests = 20 if benchmark.disabled else 500

    async def turnovers() -> float:
        async with ChatClient(fast_fake, max_connections=1, timeout_s=60) as client:
            body = client.chat_body([{"role": "user", "content": "hi"}], max_tokens=2, stream=True)
            assert (await client.chat(body)).ok  # the connection is open from here on
            cpu = time.process_time()
            for _ in range(requests):
                exchange = await client.chat(body)
                assert exchange.ok and len(exchange.token_times) == 2
            return (time.process_time() - cpu) / requests * 1e6

    per_request_us = benchmark.pedantic(lambda: asyncio.run(turnovers()), rounds=3, iterations=1)
    benchmark.extra_info["cpu_us_per_request"] = per_request_us
    suite_figure("request_turnover_cpu_us" + ("" if lane == "lean" else "_httpcore"), per_request_us)
    print(f"\nclient, {lane} lane: {per_request_us:,.0f} us of CPU per streamed request")


def _errors(exchanges: list[Exchange], log: dict[str, Any], offset: int, bound_ms: float) -> dict[str, float]:
    """TTFT and ITL errors (ms) of one wave against the server's log, requests matched by content."""
    where = {content: i for i, content in enumerate(log["contents"])}
    ttft_error, itl_error = [], []
    for i, exchange in enumerate(exchanges):
        truth = log["token_send_times"][where[f"request {offset + i}"]]
        assert len(exchange.token_times) == len(truth)
        ttft_error.append((exchange.token_times[0] - truth[0]) * 1000)
        measured = [b - a for a, b in itertools.pairwise(exchange.token_times)]
        actual = [b - a for a, b in itertools.pairwise(truth)]
        itl_error += [abs(m - t) * 1000 for m, t in zip(measured, actual, strict=True)]
    # a token cannot arrive before it was sent, give or take the truth's own bound
    assert min(ttft_error) > -(bound_ms + 1.0)
    return {
        "ttft_error_ms_median": statistics.median(ttft_error),
        "ttft_error_ms_p99": float(np.percentile(ttft_error, 99)),
        "itl_error_ms_median": statistics.median(itl_error),
        "itl_error_ms_p99": float(np.percentile(itl_error, 99)),
    }


@pytest.mark.parametrize("streams", [1, 16, 64, 256])
def test_timing_accuracy_against_the_servers_own_send_times(
    benchmark: BenchmarkFixture, streams: int, suite_figure: SuiteFigure
) -> None:
    """TTFT and ITL as measured here vs the truth the fake server logs as it sends each token.

    The fake runs in its own process, a thread per connection, and logs each token
    event's send time right after the write; the write's own duration is its error
    bound (reported as its p99). Two waves of ``streams`` requests at once: the first
    opens every connection (a cold start), the second reuses them (a closed loop's
    steady state, as llama-server keeps connections alive).
    """
    tokens = 16
    # One pair of waves at 64 streams reads anywhere from 0.2 to 2 ms of median added TTFT on this
    # 2-core machine: when benchmarks run, each figure is the median of five pairs, each on a new client.
    repeats = 1 if benchmark.disabled else 5
    with fake_server_process("--ttft", "0.05", "--itl", "0.02") as url:

        async def two_waves(offset: int) -> tuple[list[Exchange], list[Exchange]]:
            async with ChatClient(url, max_connections=streams, timeout_s=120) as client:

                async def wave(offset: int) -> list[Exchange]:
                    bodies = [
                        client.chat_body([{"role": "user", "content": f"request {offset + i}"}], max_tokens=tokens,
                                         stream=True)
                        for i in range(streams)
                    ]  # fmt: skip
                    return await asyncio.gather(*(client.chat(body) for body in bodies))

                return await wave(offset), await wave(offset + streams)

        def measure() -> list[tuple[list[Exchange], list[Exchange]]]:
            return [asyncio.run(two_waves(2 * streams * rep)) for rep in range(repeats)]

        pairs = benchmark.pedantic(measure, rounds=1, iterations=1)
        log = json.loads(httpx.get(f"{url}/fake/log", trust_env=False).text)
    bound_ms = float(np.max(log["write_bounds"])) * 1000
    each = []
    for rep, (cold, warm) in enumerate(pairs):
        assert [e.error for e in cold + warm if not e.ok] == []
        offset = 2 * streams * rep
        figures = {f"cold_{k}": v for k, v in _errors(cold, log, offset, bound_ms).items()}
        figures |= {f"warm_{k}": v for k, v in _errors(warm, log, offset + streams, bound_ms).items()}
        each.append(figures)
    figures = {key: statistics.median(f[key] for f in each) for key in each[0]}
    figures["truth_bound_ms_p99"] = float(np.percentile(log["write_bounds"], 99)) * 1000
    benchmark.extra_info.update(figures)
    if streams == 1:
        suite_figure("ttft_added_ms_median_1", figures["cold_ttft_error_ms_median"])
    if streams == 64:
        for wave in ("cold", "warm"):
            suite_figure(f"ttft_added_ms_median_64_{wave}", figures[f"{wave}_ttft_error_ms_median"])
            suite_figure(f"ttft_added_ms_p99_64_{wave}", figures[f"{wave}_ttft_error_ms_p99"])
    print(f"\n{streams} streams: " + ", ".join(f"{k} {v:.3f}" for k, v in figures.items()))
