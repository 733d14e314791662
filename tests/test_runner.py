from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.errors import ConfigError, EndpointError
from bench.flows.run import QuietObserver, RunOptions, run_benchmark
from bench.inputs.baselines import load_baselines
from bench.inputs.scenarios import Case, ScenarioSet, parse_scenario_set
from bench.load.server import free_port
from bench.records import RequestRecord
from bench.store.run_dir import load_history, read_records, read_run_meta

SECRET = "sk-test-SECRET-4f9a7c"


def small_set(**overrides: object) -> ScenarioSet:
    scenario = {"name": "pp", "prompt_tokens": [40, 80], "output_tokens": 6, "repetitions": 2, **overrides}
    tg = {"name": "tg", "prompt_tokens": 40, "output_tokens": 12, "repetitions": 2, "stream": False}
    return parse_scenario_set({"scenario": [scenario, tg]}, "test-set")


def options(url: str, tmp_path: Path, **kw: object) -> RunOptions:
    return RunOptions(
        scenarios=kw.pop("scenarios", small_set()),
        endpoint=url,
        results_dir=tmp_path,  # type: ignore[arg-type]
        baselines=load_baselines(None),
        **kw,
    )  # type: ignore[arg-type]


def test_a_run_stores_every_request_and_figures_match_the_server(fake: FakeLlamaServer, tmp_path: Path) -> None:
    fake.config.pp_tps, fake.config.tg_tps = 4000.0, 250.0
    result = run_benchmark(options(fake.url, tmp_path, label="fa-on", server_flags="-fa 1"))
    assert result.status == "complete"
    files = sorted(p.name for p in result.run_dir.iterdir())
    assert files == [
        "requests.jsonl",
        "requests.parquet",
        "run.json",
        "server_metrics.jsonl",
        "server_metrics.parquet",
        "summary.json",
    ]
    metrics = load_history(tmp_path, table="server_metrics")
    assert metrics["llamacpp:tokens_predicted_total"].is_monotonic_increasing
    meta = read_run_meta(result.run_dir)
    assert meta.label == "fa-on" and meta.server_flags == "-fa 1"
    assert meta.endpoint["base_url"] == fake.url and meta.build == "b0000-fake"
    assert meta.scenario_set["name"] == "test-set"
    records = list(read_records(result.run_dir))
    assert len(records) == 3 * (2 + 1)  # three cases, two measured and one warm-up each
    for case in result.summary.cases:
        assert case.pp_tps == pytest.approx(4000.0) and case.tg_tps == pytest.approx(250.0)
        assert case.pp_source == "server_timings" and case.prompt_length_mismatches == 0
    pp, tg, vram = result.summary.baselines
    assert vram.status == "no data"
    assert pp.measured == pytest.approx(4000.0) and pp.status == "other model"
    assert tg.cases == ("tg/p40-o12-c1-d0",)
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["schema_version"] == 1 and summary["requests"] == 6


def test_the_api_key_never_reaches_any_artefact(fake: FakeLlamaServer, tmp_path: Path) -> None:
    fake.config.api_key = SECRET
    result = run_benchmark(options(fake.url, tmp_path, api_key=SECRET))
    assert fake.log.authorization_headers[-1] == f"Bearer {SECRET}"
    for path in result.run_dir.rglob("*"):
        assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in repr(result)


def test_unreachable_endpoint_fails_clearly_and_marks_the_run_failed(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(EndpointError, match=f"cannot reach {url}"):
        run_benchmark(options(url, tmp_path))
    (run_dir,) = tmp_path.iterdir()
    meta = read_run_meta(run_dir)
    assert meta.status == "failed" and "cannot reach" in meta.partial_reason


def test_cases_that_do_not_fit_n_ctx_are_refused_before_any_chat(fake: FakeLlamaServer, tmp_path: Path) -> None:
    fake.config.n_ctx = 64
    with pytest.raises(ConfigError) as info:
        run_benchmark(options(fake.url, tmp_path))
    assert "pp/p80-o6-c1-d0: depth 0 + prompt 80 + output 6 = 86 tokens, 22 over" in str(info.value)
    assert fake.log.chat_bodies == []


class InterruptAfter(QuietObserver):
    def __init__(self, n: int) -> None:
        self.n = n

    def request_done(self, record: RequestRecord) -> None:
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


def test_an_interrupted_run_keeps_what_it_measured_and_is_partial(fake: FakeLlamaServer, tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(options(fake.url, tmp_path), InterruptAfter(4))
    (run_dir,) = tmp_path.iterdir()
    meta = read_run_meta(run_dir)
    assert meta.status == "partial" and meta.partial_reason == "interrupted by the user"
    assert len(list(read_records(run_dir))) == 4
    assert set(load_history(tmp_path)["run_status"]) == {"partial"}
    # and a second run starts cleanly beside it
    assert run_benchmark(options(fake.url, tmp_path)).status == "complete"


class BreakServerOnCase(QuietObserver):
    """Turns the fake server's answers to 500 once the named case starts (after preflight)."""

    def __init__(self, fake: FakeLlamaServer, case_id: str) -> None:
        self.fake, self.case_id = fake, case_id

    def case_started(self, case: Case) -> None:
        if case.case_id == self.case_id:
            self.fake.config.status = 500


def test_server_errors_mid_run_are_recorded_and_the_error_rate_flagged(fake: FakeLlamaServer, tmp_path: Path) -> None:
    result = run_benchmark(options(fake.url, tmp_path, max_error_rate=0.1), BreakServerOnCase(fake, "tg/p40-o12-c1-d0"))
    assert result.status == "complete"
    assert result.summary.failed == 2 and result.summary.requests == 6
    assert result.error_rate_exceeded
    assert "error rate 33.3% is above the limit of 10.0%" in result.notes[0]
    tg = next(c for c in result.summary.cases if c.scenario == "tg")
    assert tg.errors == {"HTTP 500: fake status 500": 2}


def test_gpu_samples_line_up_with_requests_and_feed_the_vram_baseline(
    fake: FakeLlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.telemetry import nvml as nvml_module
    from bench.telemetry.sampler import TelemetryConfig
    from tests.fake_nvml import FakeGpu, make_nvml

    fake.config.itl_s = 0.01  # requests long enough for several 50 ms samples
    fake.config.model = "gpt-oss-120b"
    gib = 1024**3
    monkeypatch.setattr(nvml_module, "_import_pynvml", lambda: make_nvml(FakeGpu(used=[61 * gib])))
    result = run_benchmark(
        options(fake.url, tmp_path, telemetry=TelemetryConfig(interval_s=0.05), active_weight_gib=2.5)
    )
    meta = read_run_meta(result.run_dir)
    assert meta.telemetry["gpu_source"] == "nvml" and meta.telemetry["gpu_samples"] > 0
    gpu = load_history(tmp_path, table="gpu")
    requests = load_history(tmp_path)
    assert len(gpu) == meta.telemetry["gpu_samples"]
    assert gpu["t"].min() < requests["t_end"].max() and gpu["t"].max() > requests["t_sent"].min()
    assert {g.case_id for g in result.summary.gpu} == {c.case_id for c in result.summary.cases}
    assert any(g.samples > 0 for g in result.summary.gpu)
    vram = next(b for b in result.summary.baselines if b.figure == "vram_used_gib")
    assert vram.measured == pytest.approx(61.0) and vram.status == "pass"
    assert result.summary.bandwidth is not None and result.summary.bandwidth.peak_bandwidth_gbs == 3350.0


def test_without_a_gpu_the_run_says_no_gpu_telemetry_and_goes_on(
    fake: FakeLlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.telemetry import nvml as nvml_module
    from tests.fake_nvml import FakeGpu, make_nvml

    monkeypatch.setattr(nvml_module, "_import_pynvml", lambda: make_nvml(FakeGpu(), library_missing=True))
    result = run_benchmark(options(fake.url, tmp_path))
    telemetry = read_run_meta(result.run_dir).telemetry
    assert telemetry["gpu_source"] == "none" and telemetry["gpu_reason"].startswith("no GPU telemetry")
    assert result.status == "complete" and result.summary.gpu == ()
    assert load_history(tmp_path, table="gpu").empty


def test_a_stored_run_gives_the_bandwidth_figure_the_run_gave(fake: FakeLlamaServer, tmp_path: Path) -> None:
    from bench.figures.summary import load_summary

    result = run_benchmark(options(fake.url, tmp_path, active_weight_gib=0.5, peak_bandwidth_gbs=200.0))
    assert result.summary.bandwidth is not None
    assert read_run_meta(result.run_dir).bandwidth_inputs == {"active_weight_gib": 0.5, "peak_bandwidth_gbs": 200.0}
    assert load_summary(result.run_dir).bandwidth == result.summary.bandwidth


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_error_rate", 1.5, "--max-error-rate must be between 0 and 1"),
        ("request_timeout_s", 0.0, "--timeout must be a positive, finite number"),
        ("max_run_s", -1.0, "--max-run-time must be a positive, finite number"),
        ("ready_timeout_s", -1.0, "--ready-timeout must be a finite number of seconds, 0 or more"),
    ],
)
def test_run_options_refuse_what_the_cli_refuses(field: str, value: float, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        options("http://127.0.0.1:9", tmp_path, **{field: value})
