"""SLOs per request, attainment and goodput per case: judged, stored, printed and reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.devtools.testing.records import record
from bench.errors import ConfigError
from bench.figures.slo import summarise_slo
from bench.figures.summary import load_summary
from bench.inputs.scenarios import parse_scenario_set
from bench.inputs.slo import Slo


def streamed(first: float, gap: float, tokens: int, sent: float = 0.0, **kw: object) -> object:
    times = tuple(sent + first + gap * i for i in range(tokens))
    return record(t_sent=sent, token_times=times, t_end=times[-1] + 0.001, **kw)


def test_a_request_meets_the_slo_only_when_it_succeeded_and_every_stated_limit_held() -> None:
    slo = Slo(ttft_ms=500, tpot_ms=50, itl_p99_ms=80, e2e_ms=2000)
    assert slo.broken(streamed(0.2, 0.04, 10)) == ()  # type: ignore[arg-type]
    assert slo.broken(streamed(0.6, 0.04, 10)) == ("ttft_ms",)  # type: ignore[arg-type]
    assert slo.broken(streamed(0.2, 0.06, 10)) == ("tpot_ms",)  # type: ignore[arg-type]
    slow_gap = streamed(0.2, 0.01, 10)
    spiky = record(t_sent=0.0, token_times=(*slow_gap.token_times, slow_gap.token_times[-1] + 0.3), t_end=1.0)  # type: ignore[attr-defined]
    assert slo.broken(spiky) == ("itl_p99_ms",)  # one 300 ms gap: the p99 of its own gaps breaks 80 ms
    assert set(slo.broken(streamed(0.6, 0.3, 10))) == {"ttft_ms", "tpot_ms", "itl_p99_ms", "e2e_ms"}  # type: ignore[arg-type]
    assert slo.broken(record(ok=False, error="HTTP 500")) == ("failed",)
    assert Slo(tpot_ms=1).broken(streamed(0.2, 0.5, 1)) == ()  # type: ignore[arg-type]  # one token: no TPOT to break
    assert Slo(ttft_ms=1000).broken(record()) == ("ttft_ms",)  # no first token seen: not met
    assert slo.describe() == "TTFT <= 500 ms, TPOT <= 50 ms, ITL p99 <= 80 ms, e2e <= 2,000 ms"


def test_attainment_and_goodput_count_only_the_requests_that_met_it() -> None:
    records = [streamed(0.1, 0.01, 10, sent=float(i)) for i in range(3)] + [streamed(0.9, 0.01, 10, sent=3.0)]
    summary = summarise_slo(records, Slo(ttft_ms=500))  # type: ignore[arg-type]
    assert (summary.met, summary.judged, summary.attainment) == (3, 4, 0.75)
    assert summary.broken == {"ttft_ms": 1}
    wall = records[-1].t_end - records[0].t_sent  # type: ignore[attr-defined]
    assert summary.goodput_rps == pytest.approx(3 / wall)
    assert summary.goodput_tps == pytest.approx(3 * 10 / wall)  # usage: 10 generated tokens a request


@pytest.mark.parametrize(
    ("slo", "message"),
    [
        ({"ttft": 5}, "field 'slo': must be a table of limits in ms"),
        ({"ttft_ms": 0}, "field 'slo'"),
        ({"ttft_ms": float("inf")}, "field 'slo'"),
        ({"ttft_ms": True}, "field 'slo'"),
        ({}, "field 'slo'"),
        ("fast", "field 'slo'"),
    ],
)
def test_a_bad_slo_is_refused_with_the_field_and_what_it_takes(slo: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_scenario_set({"scenario": [{"name": "a", "prompt_tokens": 10, "output_tokens": 5, "slo": slo}]}, "x")


def test_token_time_limits_need_a_stream_and_scenarios_without_an_slo_read_as_before() -> None:
    unstreamed = {"name": "a", "prompt_tokens": 10, "output_tokens": 5, "stream": False, "slo": {"tpot_ms": 50}}
    with pytest.raises(ConfigError, match="slo limits tpot_ms need stream = true"):
        parse_scenario_set({"scenario": [unstreamed]}, "x")
    e2e_only = {**unstreamed, "slo": {"e2e_ms": 500}}
    assert parse_scenario_set({"scenario": [e2e_only]}, "x").cases()[0].slo == Slo(e2e_ms=500)
    plain = parse_scenario_set({"scenario": [{"name": "a", "prompt_tokens": 10, "output_tokens": 5}]}, "x")
    # no "slo" key at all: runs stored before SLOs existed define the same scenario the same way
    assert "slo" not in plain.to_dict()["scenarios"][0]


def test_a_run_with_slos_prints_stores_and_reports_them(
    fake: FakeLlamaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.config.ttft_s, fake.config.itl_s = 0.02, 0.01  # TPOT about 10 ms a token
    (tmp_path / "set.toml").write_text(
        'name = "s"\n[defaults]\nwarmup = 0\nrepetitions = 3\n'
        '[[scenario]]\nname = "easy"\nprompt_tokens = 40\noutput_tokens = 8\nslo = { tpot_ms = 200, e2e_ms = 60000 }\n'
        '[[scenario]]\nname = "hard"\nprompt_tokens = 40\noutput_tokens = 8\nslo = { tpot_ms = 1 }\n'
        '[[scenario]]\nname = "none"\nprompt_tokens = 40\noutput_tokens = 8\n'
    )
    argv = ["run", "--endpoint", fake.url, "--scenarios", str(tmp_path / "set.toml"),
            "--results-dir", str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "SLO per case" in out and "SLO met 100.0 %" in out and "SLO met 0.0 %" in out
    assert "tpot_ms 3" in out  # the hard case: every request broke the TPOT limit
    (run_dir,) = (tmp_path / "results").iterdir()
    stored = {c["case_id"].split("/")[0]: c["slo"] for c in json.loads((run_dir / "summary.json").read_text())["cases"]}
    assert stored["easy"]["met"] == 3 and stored["hard"]["met"] == 0 and stored["none"] is None
    assert stored["easy"]["goodput_rps"] > 0 and stored["hard"]["goodput_rps"] == 0
    # a stored run's summary judges the SLOs again from run.json, as the run did
    again = {c.scenario: c.slo for c in load_summary(run_dir).cases}
    assert again["easy"] is not None and again["easy"].met == 3 and again["none"] is None
    (report,) = (tmp_path / "reports").glob("run-*.html")
    html = report.read_text()
    assert "SLO attainment and goodput" in html and "TPOT &lt;= 1 ms" in html


def test_a_comparison_shows_goodput_and_attainment_per_run_for_cases_with_an_slo(
    fake: FakeLlamaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.config.ttft_s, fake.config.itl_s = 0.02, 0.002
    (tmp_path / "set.toml").write_text(
        'name = "s"\n[[scenario]]\nname = "chat"\nprompt_tokens = 40\noutput_tokens = 8\nrepetitions = 3\n'
        "warmup = 0\nslo = { tpot_ms = 20 }\n"
    )
    argv = ["run", "--endpoint", fake.url, "--scenarios", str(tmp_path / "set.toml"),
            "--results-dir", str(tmp_path), "--no-report"]  # fmt: skip
    assert main(argv) == 0
    fake.config.itl_s = 0.05  # every token now 50 ms apart: no request meets TPOT <= 20 ms
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["compare", "previous", "latest", "--results-dir", str(tmp_path), "--markdown", "--no-report"]) == 0
    table = capsys.readouterr().out
    goodput = next(line for line in table.splitlines() if "goodput (SLO) (req/s)" in line)
    met = next(line for line in table.splitlines() if "SLO met (%)" in line)
    assert "not tested (one value per run)" in goodput and "| 100.00 | 0.00 |" in met


def test_a_reasoning_model_gets_its_first_content_token_and_reasoning_share(
    fake: FakeLlamaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # gpt-oss with --jinja streams reasoning_content first: 6 of 8 tokens here, 10 ms apart
    fake.config.reasoning_tokens, fake.config.itl_s = 6, 0.01
    (tmp_path / "set.toml").write_text(
        'name = "r"\n[[scenario]]\nname = "think"\nprompt_tokens = 40\noutput_tokens = 8\nrepetitions = 3\n'
        "warmup = 0\nslo = { ttft_ms = 5000, ttfct_ms = 1 }\n"
    )
    argv = ["run", "--endpoint", fake.url, "--scenarios", str(tmp_path / "set.toml"),
            "--results-dir", str(tmp_path / "results"), "--no-report"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "reasoning: 75% of streamed tokens; first content token p50" in out
    (run_dir,) = (tmp_path / "results").iterdir()
    (case,) = load_summary(run_dir).cases
    assert case.reasoning_share == pytest.approx(0.75) and case.ttfct_ms is not None and case.ttft_ms is not None
    # six reasoning tokens come before the answer: its first token is at least 5 gaps after the first one
    assert case.ttfct_ms.p50 >= case.ttft_ms.p50 + 5 * 10 - 1
    assert case.slo is not None and case.slo.broken == {"ttfct_ms": 3}  # TTFT met, the answer came too late


def one_run(results: Path, seconds_per_request: float, seed: int) -> Path:
    """A run of six back-to-back requests that all meet a generous SLO: its goodput is 1 / their time."""
    import random

    from tests.factories import write_run

    rng = random.Random(seed)
    records, t = [], 0.0
    for i in range(6):
        took = seconds_per_request * rng.uniform(0.98, 1.02)
        records.append(streamed(0.05, (took - 0.06) / 9, 10, sent=t, index=i, case_id="s/p100-o10-c1-d0", scenario="s"))
        t += took + 0.001
    scenarios = {"name": "s", "scenarios": [{"name": "s", "prompt_tokens": [100], "slo": {"e2e_ms": 1e6}}]}
    return write_run(results, records, scenarios=scenarios)  # type: ignore[arg-type]


def test_goodput_with_several_runs_a_side_is_tested_run_by_run() -> None:
    import tempfile

    from bench.decide.compare import Verdict, compare_runs

    with tempfile.TemporaryDirectory() as folder:
        results = Path(folder)
        a = [one_run(results, 1.0, seed) for seed in (1, 2, 3)]
        same = [one_run(results, 1.0, seed) for seed in (4, 5, 6)]
        slower = [one_run(results, 1.5, seed) for seed in (7, 8, 9)]

        def goodput(b: list[Path]) -> object:
            return next(f for f in compare_runs(a, b).figures if f.figure == "goodput_rps")

        steady, dropped = goodput(same), goodput(slower)
    assert steady.verdict in (Verdict.SAME, Verdict.UNDECIDED) and steady.basis == "(3 vs 3 runs)"  # type: ignore[attr-defined]
    assert dropped.verdict is Verdict.REGRESSED and dropped.ratio == pytest.approx(1 / 1.5, rel=0.03)  # type: ignore[attr-defined]
