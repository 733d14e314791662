"""The side-by-side comparison's scoring, tables, parsers and compiled truth server."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest

from bench.devtools.perf.compare_tools import Score, score
from bench.devtools.perf.table import accuracy_table, capacity, summary_table
from bench.devtools.perf.tools import TOOLS, Job, Measured, prepare_offline_assets, tokenizer_snapshot
from bench.devtools.perf.truth import Schedule, TruthRequest, read_log, truth_server
from bench.errors import NothingToScore
from bench.transport.client import ChatClient

USAGE = {"cpu_s": 2.0, "wall_s": 3.0, "peak_rss_mb": 100.0, "exit_code": 0}


def _truth(n_requests: int, ttft_s: float = 0.05, itl_s: float = 0.005, tokens: int = 4) -> list[TruthRequest]:
    requests = []
    for i in range(n_requests):
        arrival = 1000.0 + i
        sends = tuple(arrival + ttft_s + k * itl_s for k in range(tokens))
        requests.append(TruthRequest(arrival, tokens, True, sends, 1e-5))
    return requests


def test_errors_are_the_tools_quantiles_minus_the_servers() -> None:
    truth = _truth(10)
    measured = Measured(ttft_ms=[52.0] * 10, itl_mean_ms=[5.0] * 10, itl_gap_ms=[5.0] * 29 + [9.0])
    result = score("x", Job(streams=1, requests=10, output_tokens=4), measured, truth, USAGE)
    assert result.ttft_err_median_ms == pytest.approx(2.0)
    assert result.ttft_err_p99_ms == pytest.approx(2.0)
    assert result.itl_mean_err_median_ms == pytest.approx(0.0, abs=1e-9)
    # p99 of 30 gaps, linear (type 7): rank 0.99 x 29 = 28.71, so 5 + 0.71 x (9 - 5) = 7.84; the truth's is 5
    assert result.itl_gap_err_p99_ms == pytest.approx(2.84)
    assert result.truth_bound_p99_ms == pytest.approx(0.01)


def test_requests_of_another_shape_are_left_out_of_the_truth() -> None:
    warmup = TruthRequest(999.0, 2, True, (999.5, 999.6), 1e-5)  # a warm-up with a slow first token
    measured = Measured(ttft_ms=[50.0] * 10, itl_mean_ms=[5.0] * 10)
    result = score("x", Job(streams=1, requests=10, output_tokens=4), measured, [warmup, *_truth(10)], USAGE)
    assert result.ttft_err_median_ms == pytest.approx(0.0, abs=1e-6)
    assert result.itl_gap_err_p99_ms is None  # this tool reported no gaps


def test_a_tool_that_measured_nothing_cannot_be_scored() -> None:
    with pytest.raises(NothingToScore, match="nothing to score"):
        score("x", Job(streams=1, requests=4, output_tokens=4), Measured(), _truth(4), USAGE)


def _score(tool: str, streams: int, ttft_p99: float, gap_p99: float | None = 0.1, rss: float = 100.0) -> Score:
    return Score(tool, streams, 10, 0, 0.1, ttft_p99, 0.0, 0.0, gap_p99, 0.01, 1000.0 * streams, 2.0, 3.0, rss, 0)


def test_capacity_is_the_highest_level_within_a_millisecond() -> None:
    scores = [_score("a", 1, 1.2), _score("a", 16, 0.9), _score("a", 64, 3.0), _score("a", 256, 0.5, gap_p99=2.0)]
    best = capacity(scores)
    assert best is not None and best.streams == 16
    assert capacity([_score("a", 1, 1.5)]) is None


def test_a_level_the_truth_server_could_not_keep_up_with_vouches_for_nothing() -> None:
    fine, truth_behind = _score("a", 128, 0.3), _score("a", 256, 0.2)
    truth_behind.truth_bound_p99_ms = 38.0  # its own writes waited: the differences of quantiles read nothing
    assert capacity([fine, truth_behind]) is fine


def test_summary_gives_ratios_to_this_suite() -> None:
    scores = [
        _score("llama-server-bench", 1, 0.2, rss=100.0),
        _score("llama-server-bench", 64, 0.5, rss=164.0),
        _score("peer", 1, 0.4, gap_p99=None, rss=400.0),
        _score("peer", 64, 12.0, gap_p99=None, rss=1036.0),
    ]
    table = summary_table(scores, at_streams=64)
    suite_row, peer_row = table.splitlines()[2:4]
    assert suite_row.startswith("| llama-server-bench | 64 (1.0x) |")
    assert peer_row.startswith("| peer | 1 (0.0x) * |")  # judged without per-gap times
    assert "12.00 (24.0x)" in peer_row  # TTFT p99 error at 64 streams
    assert "10.10 (9.9x)" in peer_row  # MB per extra stream: (1036 - 400) / 63 vs (164 - 100) / 63
    assert "not reported" in accuracy_table(scores)


def test_peer_outputs_are_read_per_request(tmp_path: Path) -> None:
    job = Job(streams=2, requests=2, output_tokens=3)
    (tmp_path / "aiperf").mkdir()
    record = {"metrics": {"time_to_first_token": {"value": 51.0}, "inter_token_latency": {"value": 4.5},
                          "inter_chunk_latency": {"value": [4.0, 5.0]}}}  # fmt: skip
    (tmp_path / "aiperf" / "profile_export.jsonl").write_text(json.dumps(record) + "\n" + json.dumps({"error": "x"}))
    aiperf = TOOLS["aiperf"].parse(job, tmp_path)
    assert (aiperf.ttft_ms, aiperf.itl_gap_ms, aiperf.failed) == ([51.0], [4.0, 5.0], 1)

    requests = {"successful": [{"time_to_first_token_ms": 52.0, "inter_token_latency_ms": 4.6}], "errored": [{}]}
    (tmp_path / "guidellm.json").write_text(json.dumps({"benchmarks": [{"requests": requests}]}))
    guidellm = TOOLS["guidellm"].parse(job, tmp_path)
    assert (guidellm.ttft_ms, guidellm.itl_mean_ms, guidellm.itl_gap_ms, guidellm.failed) == ([52.0], [4.6], None, 1)

    events = [
        {"type": "request_first_token", "request_id": 0, "ttft_s": 0.053},
        {"type": "request_end", "request_id": 0, "total_tokens": 3, "decode_seconds": 0.01, "error": ""},
        {"type": "request_end", "request_id": 1, "total_tokens": 0, "decode_seconds": 0.0, "error": "HTTP 500"},
    ]
    (tmp_path / "progress.jsonl").write_text("\n".join(json.dumps(e) for e in events))
    benchy = TOOLS["llama-benchy"].parse(job, tmp_path)
    assert benchy.ttft_ms == pytest.approx([53.0]) and benchy.itl_mean_ms == pytest.approx([5.0])
    assert benchy.failed == 1


def test_the_offline_tokenizer_counts_one_token_per_word(tmp_path: Path) -> None:
    prepare_offline_assets(tmp_path)
    tokenizer = json.loads((tokenizer_snapshot(tmp_path) / "tokenizer.json").read_text())
    assert tokenizer["pre_tokenizer"] == {"type": "WhitespaceSplit"}
    assert tokenizer["model"]["type"] == "WordLevel"
    config = json.loads((tokenizer_snapshot(tmp_path) / "tokenizer_config.json").read_text())
    assert "unk_token" not in config  # else guidellm's prompts decode to nothing
    corpus = next((tmp_path / "home" / ".cache" / "llama-benchy").glob("*.txt"))
    assert len(corpus.read_text().split()) == 200_000


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="needs a C compiler")
def test_the_truth_server_streams_on_schedule_and_logs_each_send(tmp_path: Path) -> None:
    schedule = Schedule(ttft_ms=30.0, itl_ms=5.0, jitter=0.2)
    log = tmp_path / "truth.jsonl"
    with truth_server(log, schedule) as url:

        async def one() -> list[float]:
            async with ChatClient(url, timeout_s=30) as client:
                body = client.chat_body([{"role": "user", "content": "w1 w2 w3"}], max_tokens=8, stream=True)
                exchange = await client.chat(body)
                assert exchange.ok and exchange.usage is not None and exchange.usage.completion_tokens == 8
                return exchange.token_times

        token_times = asyncio.run(one())
    (request,) = read_log(log)
    assert len(request.sends) == len(token_times) == 8
    # never before its deadline (each delay is at least 80 % of nominal), whatever the machine's load
    for k, sent in enumerate(request.sends):
        assert sent - request.arrival >= (30.0 * 0.8 + 5.0 * 0.8 * k) / 1000 - 1e-4
    # and not wildly late: milliseconds, not seconds (a generous bound for a busy machine)
    assert request.sends[-1] - request.arrival < 2.0
    # both sides stamp with the wall clock, so their times line up (the slack: a server thread
    # preempted between send() and reading the clock on a busy machine)
    assert all(abs(t - s) < 0.05 for t, s in zip(token_times, request.sends, strict=True))


def test_the_first_wave_is_scored_apart_from_the_requests_after_it() -> None:
    """Each stream's first request against the truth's first arrivals; the rest against the truth's rest."""
    truth = _truth(8)  # every request took 50 ms at the server
    # 2 streams: the first two sent read 4 ms late (their connects counted), the other six 0.5 ms
    measured = Measured(
        ttft_ms=[54.0, 54.0] + [50.5] * 6, itl_mean_ms=[5.0] * 8, first_wave_ttft_ms=[54.0, 54.0], connect_ms=[0.2, 0.4]
    )
    result = score("x", Job(streams=2, requests=8, output_tokens=4), measured, truth, USAGE)
    assert result.first_wave_ttft_err_p99_ms == pytest.approx(4.0)
    assert result.later_ttft_err_p99_ms == pytest.approx(0.5)
    assert result.connect_p50_ms == pytest.approx(0.3)
    table = accuracy_table([result])
    assert "+4.00 (+0.50)" in table and "0.30 (0.40)" in table


def test_a_tool_that_does_not_say_when_each_request_went_out_is_not_split() -> None:
    measured = Measured(ttft_ms=[50.0] * 8, itl_mean_ms=[5.0] * 8)
    result = score("x", Job(streams=2, requests=8, output_tokens=4), measured, _truth(8), USAGE)
    assert result.first_wave_ttft_err_p99_ms is None and result.connect_p50_ms is None
    assert "not split" in accuracy_table([result]) and "not reported" in accuracy_table([result])
