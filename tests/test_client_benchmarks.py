"""The client's own cost, as pytest-benchmark benchmarks (``nox -s bench_client``).

In the normal test run benchmarks are disabled and each body runs once, so these
also check that the measurement machinery works. Targets (README, "Performance"):
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

import httpx
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bench.client import ChatClient, Exchange
from bench.sse import SSEParser
from bench.testing.fake_server import fake_server_process

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


def test_client_token_events_per_cpu_second(benchmark: BenchmarkFixture, fast_fake: str) -> None:
    tokens = 4000

    def run() -> float:
        cpu = time.process_time()
        (exchange,) = asyncio.run(_streams(fast_fake, 1, tokens))
        used = time.process_time() - cpu
        assert exchange.ok and len(exchange.token_times) == tokens
        return tokens / used

    events_per_cpu_s = benchmark.pedantic(run, rounds=3, iterations=1)
    benchmark.extra_info["events_per_cpu_s"] = events_per_cpu_s
    print(f"\nclient: {events_per_cpu_s:,.0f} token events per CPU-second")


@pytest.mark.parametrize("n_streams", [1, 64])
def test_added_ttft_against_the_servers_own_send_times(benchmark: BenchmarkFixture, n_streams: int) -> None:
    with fake_server_process("--ttft", "0.05", "--itl", "0.02") as url:

        def run() -> list[Exchange]:
            return asyncio.run(_streams(url, n_streams, 8))

        exchanges = benchmark.pedantic(run, rounds=1, iterations=1)
        truth = json.loads(httpx.get(f"{url}/fake/log", trust_env=False).text)["token_send_times"]
    assert [e.error for e in exchanges if not e.ok] == []
    # match each request to its server log by the order of first-token times
    client_first = sorted(e.token_times[0] for e in exchanges)
    server_first = sorted(times[0] for times in truth[-n_streams:])
    added_ms = [(c - s) * 1000 for c, s in zip(client_first, server_first, strict=True)]
    gaps_client = [(b - a) * 1000 for e in exchanges for a, b in zip(e.token_times, e.token_times[1:], strict=False)]
    gaps_server = [(b - a) * 1000 for t in truth[-n_streams:] for a, b in itertools.pairwise(t)]
    median_added = statistics.median(added_ms)
    benchmark.extra_info.update(
        added_ttft_ms_median=median_added,
        added_ttft_ms_max=max(added_ms),
        itl_ms_median_client=statistics.median(gaps_client),
        itl_ms_median_server=statistics.median(gaps_server),
    )
    print(f"\n{n_streams} streams: added TTFT median {median_added:.3f} ms, max {max(added_ms):.3f} ms")
    assert all(a > -1.0 for a in added_ms)  # a token cannot arrive (much) before it was sent
