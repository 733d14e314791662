"""A pytest fixture that benchmarks one case of an endpoint inside a test.

For teams whose gate is pytest-benchmark (``pytest --benchmark-autosave`` then
``--benchmark-compare --benchmark-compare-fail=mean:5%``)::

    def test_generation_speed(llama_bench):
        summary = llama_bench(prompt_tokens=512, output_tokens=128, repetitions=5)
        assert summary.tg_tps > 50

Each round is one request; pytest-benchmark times it end to end, and the
server's pp/tg t/s, TTFT and ITL go into the benchmark's ``extra_info``. The
endpoint comes from ``endpoint=`` or ``$BENCH_ENDPOINT``, the key from
``$BENCH_API_KEY``. Registered through the ``pytest11`` entry point.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from bench.figures.summary import CaseSummary, summarise_case
from bench.inputs.scenarios import Case, Pattern
from bench.load.loadgen import to_record
from bench.load.workload import PromptBuilder
from bench.records import RequestRecord
from bench.transport.client import ChatClient


class LlamaBench:
    def __init__(self, benchmark: Any) -> None:
        self.benchmark = benchmark

    def __call__(
        self,
        *,
        prompt_tokens: int,
        output_tokens: int,
        repetitions: int = 5,
        stream: bool = True,
        endpoint: str | None = None,
        model: str | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
    ) -> CaseSummary:
        url = endpoint or os.environ.get("BENCH_ENDPOINT")
        if not url:
            pytest.fail("llama_bench needs an endpoint: pass endpoint= or set BENCH_ENDPOINT")
        case = Case(
            scenario="pytest", prompt_tokens=prompt_tokens, output_tokens=output_tokens, concurrency=1, depth=0,
            requests=repetitions, warmup=0, stream=stream, pattern=Pattern.SEQUENTIAL, rate_rps=None,
            max_duration_s=3600.0, temperature=temperature, top_p=top_p,
        )  # fmt: skip
        loop = asyncio.new_event_loop()
        client = ChatClient(url, api_key=os.environ.get("BENCH_API_KEY", "EMPTY"), model=model)
        records: list[RequestRecord] = []
        try:
            prompts = loop.run_until_complete(PromptBuilder(client).build_case(case)).measured
            queue = list(prompts)

            def one_request() -> None:
                prompt = queue.pop(0) if queue else prompts[-1]
                body = client.chat_body(
                    prompt.messages, max_tokens=output_tokens, stream=stream, temperature=temperature, top_p=top_p
                )
                exchange = loop.run_until_complete(client.chat(body))
                records.append(to_record("pytest", case, len(records), prompt, exchange, warmup=False))

            self.benchmark.pedantic(one_request, rounds=repetitions, iterations=1)
        finally:
            loop.run_until_complete(client.aclose())
            loop.close()
        summary = summarise_case(case.case_id, records)
        self.benchmark.extra_info.update(
            case_id=case.case_id,
            pp_tps=summary.pp_tps,
            tg_tps=summary.tg_tps,
            ttft_ms_p50=summary.ttft_ms.p50 if summary.ttft_ms else None,
            itl_ms_p50=summary.itl_ms.p50 if summary.itl_ms else None,
            failed=summary.failed,
        )
        return summary


@pytest.fixture
def llama_bench(benchmark: Any) -> LlamaBench:
    """Benchmark one case of an OpenAI-compatible endpoint; see the module docstring."""
    return LlamaBench(benchmark)
