from __future__ import annotations

import pytest

from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.flows.pytest_plugin import LlamaBench


def test_llama_bench_fixture_times_requests_and_reports_server_figures(
    llama_bench: LlamaBench, fake: FakeLlamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCH_ENDPOINT", fake.url)
    fake.config.tg_tps = 180.0
    summary = llama_bench(prompt_tokens=40, output_tokens=8, repetitions=3)
    # with --benchmark-disable (the default test run) pytest-benchmark runs the body once, else a round each
    expected = 1 if llama_bench.benchmark.disabled else 3
    assert summary.ok == summary.requests == expected and summary.failed == 0
    assert summary.tg_tps == pytest.approx(180.0)
    assert llama_bench.benchmark.extra_info["tg_tps"] == pytest.approx(180.0)
    assert len(fake.log.chat_bodies) == summary.requests


@pytest.mark.filterwarnings("ignore:Benchmark fixture was not used")
def test_llama_bench_needs_an_endpoint(llama_bench: LlamaBench, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_ENDPOINT", raising=False)
    with pytest.raises(pytest.fail.Exception, match="BENCH_ENDPOINT"):
        llama_bench(prompt_tokens=40, output_tokens=8)
