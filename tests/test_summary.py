from __future__ import annotations

import pytest

from bench.figures.delivery import stream_delivery
from bench.figures.summary import Distribution, summarise_case, summarise_run
from bench.figures.throughput import client_pp_tps, client_tg_tps, server_pp_tps, server_tg_tps
from bench.inputs.baselines import Baseline, Baselines
from tests.factories import record, timings


def test_pp_is_total_tokens_over_total_time_not_a_mean_of_rates() -> None:
    # 100 tokens in 50 ms (2000 t/s) and 300 tokens in 300 ms (1000 t/s):
    # 400 tokens in 0.35 s is 1142.9 t/s; the mean of the two rates would say 1500.
    records = [record(timings=timings(100, 50.0, 10, 100.0)), record(timings=timings(300, 300.0, 10, 100.0))]
    assert server_pp_tps(records) == pytest.approx(400 / 0.35)
    assert server_pp_tps(records) != pytest.approx((2000 + 1000) / 2)


def test_tg_is_total_predicted_over_total_predicted_time() -> None:
    records = [record(timings=timings(10, 10.0, 128, 1000.0)), record(timings=timings(10, 10.0, 512, 2000.0))]
    assert server_tg_tps(records) == pytest.approx(640 / 3.0)


def test_requests_served_from_the_cache_are_kept_out_of_pp() -> None:
    fresh = record(timings=timings(100, 100.0, 10, 100.0))
    cached = record(timings=timings(4, 1.0, 10, 100.0, cache_n=96))
    assert server_pp_tps([fresh, cached]) == pytest.approx(1000.0)
    summary = summarise_case("c", [fresh, cached])
    assert summary.cache_excluded == 1
    assert any("kept out of pp" in n for n in summary.notes)


def test_at_depth_the_cached_prefix_is_expected() -> None:
    at_depth = record(depth_target=512, timings=timings(100, 100.0, 10, 100.0, cache_n=512))
    short = record(depth_target=512, timings=timings(571, 500.0, 10, 100.0, cache_n=59))
    summary = summarise_case("c", [at_depth, short])
    assert summary.pp_tps == pytest.approx(1000.0)
    assert any("depth not reached" in n and "59 of 512" in n for n in summary.notes)


def test_client_latencies_from_hand_computed_times() -> None:
    r = record(
        t_sent=10.0,
        t_first_byte=10.05,
        token_times=(10.1, 10.12, 10.15, 10.19),
        t_end=10.2,
        timings=timings(100, 80.0, 4, 90.0),
    )
    assert r.ttft_ms == pytest.approx(100.0)
    assert r.ttfb_ms == pytest.approx(50.0)
    assert r.itl_ms == pytest.approx([20.0, 30.0, 40.0])
    assert r.tpot_ms == pytest.approx(90.0 / 3)  # (10.19 - 10.1) / (4 - 1)
    assert r.e2e_ms == pytest.approx(200.0)


def test_tpot_uses_the_server_token_count_when_chunks_carry_several_tokens() -> None:
    r = record(t_sent=0.0, token_times=(1.0, 2.0), timings=timings(10, 1.0, 11, 1000.0))
    assert r.tpot_ms == pytest.approx(1000.0 / 10)


def test_distribution_percentiles_are_linear_interpolation() -> None:
    d = Distribution.of([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    assert d is not None
    assert (d.p50, d.p90, d.p99, d.mean, d.min, d.max) == pytest.approx((5.5, 9.1, 9.91, 5.5, 1.0, 10.0))
    assert Distribution.of([]) is None


def test_aggregate_output_throughput_is_tokens_over_wall_time() -> None:
    # two overlapping requests of 100 tokens each, from t=0 to t=2 s in all
    a = record(t_sent=0.0, t_end=1.5, timings=timings(10, 1.0, 100, 1000.0))
    b = record(t_sent=0.5, t_end=2.0, timings=timings(10, 1.0, 100, 1000.0), index=1)
    summary = summarise_case("c", [a, b])
    assert summary.wall_s == pytest.approx(2.0)
    assert summary.output_tps == pytest.approx(100.0)
    assert summary.request_rps == pytest.approx(1.0)


def test_warmup_and_failed_requests_do_not_count_in_figures() -> None:
    warm = record(warmup=True, timings=timings(100, 1000.0, 10, 1000.0))
    failed = record(ok=False, error="HTTP 500: boom", http_status=500)
    good = record(timings=timings(100, 100.0, 10, 100.0))
    summary = summarise_case("c", [warm, failed, good])
    assert (summary.requests, summary.ok, summary.failed) == (2, 1, 1)
    assert summary.pp_tps == pytest.approx(1000.0)
    assert summary.errors == {"HTTP 500: boom": 1}


def test_without_timings_figures_are_client_estimates_and_say_so() -> None:
    r = record(t_sent=0.0, token_times=(0.5, 0.6, 0.7), t_end=0.8, usage=None, prompt_tokens_target=100)
    assert client_pp_tps([r]) == pytest.approx(200.0)  # 100 tokens / 0.5 s TTFT
    assert client_tg_tps([r]) == pytest.approx(10.0)  # 2 tokens / 0.2 s
    summary = summarise_case("c", [r])
    assert (summary.pp_source, summary.tg_source) == ("client_estimate", "client_estimate")
    assert any("client-side estimates" in n for n in summary.notes)


def test_output_length_mismatch_is_counted() -> None:
    r = record(output_tokens_target=128, timings=timings(10, 1.0, 40, 100.0))
    assert summarise_case("c", [r]).output_length_mismatches == 1


def test_buffered_stream_is_detected_from_token_span_vs_server_time() -> None:
    server = timings(10, 1.0, 20, 200.0)  # 20 tokens over 200 ms on the server
    burst = tuple(1.0 + i * 0.00001 for i in range(20))  # all within 0.2 ms at the client
    paced = tuple(1.0 + i * 0.01 for i in range(20))
    assert stream_delivery([(burst, server)]) == "buffered"
    # a proxy releasing a 4 KB buffer at a time: five tokens at once, then a pause
    chunks = tuple(1.0 + (i // 5) * 0.05 + (i % 5) * 0.00001 for i in range(20))
    assert stream_delivery([(chunks, server)]) == "buffered"
    assert stream_delivery([(paced, server)]) == "incremental"
    assert stream_delivery([((1.0, 1.1), server)]) == "n/a"


def test_baseline_checks_judge_only_the_named_scenario_and_model() -> None:
    pp = record(scenario="pp", case_id="pp/x", model="gpt-oss-120b", timings=timings(4000, 1000.0, 10, 100.0))
    tg = record(scenario="tg", case_id="tg/x", model="gpt-oss-120b", timings=timings(10, 1.0, 200, 1000.0))
    baselines = Baselines(
        "b",
        (
            Baseline("pp_tps", 5000.0, "t/s", scenario="pp", model="gpt-oss-120b", tolerance_pct=5),
            Baseline("tg_tps", 200.0, "t/s", scenario="tg", model="gpt-oss-120b", tolerance_pct=5),
            Baseline("tg_tps", 200.0, "t/s", scenario="tg", model="other-model"),
            Baseline("vram_used_gib", 59.02, "GiB"),
        ),
    )
    checks = summarise_run([pp, tg], baselines).baselines
    assert [(c.measured, c.status) for c in checks] == [
        (pytest.approx(4000.0), "below"),
        (pytest.approx(200.0), "pass"),
        (pytest.approx(200.0), "other model"),
        (None, "no data"),
    ]
    assert checks[0].ratio == pytest.approx(0.8)
    assert checks[0].cases == ("pp/x",)
    assert checks[1].sentence() == "generation 200.00 t/s = 100.0 % of 200 t/s: pass"


def test_one_generated_token_says_nothing_about_tg() -> None:
    # llama-server reports ~0 ms of generation for a single token (it comes from the prompt's logits)
    single = record(timings=timings(512, 780.0, 1, 0.001))
    assert server_tg_tps([single]) is None
    assert server_pp_tps([single]) == pytest.approx(512 / 0.78)
    assert summarise_case("c", [single]).tg_tps_per_request is None
