from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest

from bench.cli import main
from bench.decide.nightly import apply_retention, nightly_lock
from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.errors import ConfigError, ExitCode, ResultsError
from bench.store.run_dir import read_run_meta, run_dirs

SET = """
name = "gate"
[[scenario]]
name = "tg"
prompt_tokens = 40
output_tokens = 8
repetitions = 6
warmup = 0
"""
BASELINES = """
[[baseline]]
figure = "tg_tps"
value = 200
scenario = "tg"
model = "fake-model"
tolerance_pct = 20
"""


@pytest.fixture
def setup(tmp_path: Path, fake: FakeLlamaServer) -> tuple[Path, list[str]]:
    (tmp_path / "set.toml").write_text(SET)
    (tmp_path / "baselines.toml").write_text(BASELINES)
    fake.config.jitter_cv = 0.01
    argv = [
        "nightly", "--endpoint", fake.url, "--scenarios", str(tmp_path / "set.toml"),
        "--baselines", str(tmp_path / "baselines.toml"), "--results-dir", str(tmp_path / "results"),
    ]  # fmt: skip
    return tmp_path / "results", argv


def night(fake: FakeLlamaServer, argv: list[str], tg_tps: float, seed: int) -> int:
    fake.config.tg_tps = tg_tps
    fake.config.seed = seed
    return main(argv)


def verdict_of_latest(results: Path) -> dict[str, object]:
    nights = [p for p in run_dirs(results) if read_run_meta(p).label == "nightly"]  # not its confirmation runs
    latest = max(nights, key=lambda p: read_run_meta(p).started)
    data: dict[str, object] = json.loads((latest / "nightly.json").read_text())
    return data


def test_steady_nights_pass_and_a_large_drop_pages(
    fake: FakeLlamaServer, setup: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    results, argv = setup
    assert night(fake, argv, 200.0, 1) == 0
    first = capsys.readouterr().out
    assert "OK (exit 0)" in first and "no earlier good night" in first
    assert night(fake, argv, 200.0, 2) == 0
    out = capsys.readouterr().out
    # what the gate decided and why: the largest drop it saw and the threshold that drop stayed under;
    # before five nights there is no spread between nights, and the headline says so
    decided = r"\((largest drop tg/\S+ tg -\d+\.\d %, p = [\d.e-]+, under its 15\.0 % threshold|no figure lower)\)"
    assert re.search(r"generation 100 % of 200 t/s, no regression vs last good night " + decided, out)
    assert "night-to-night spread not known yet (1 of 5 nights)" in out
    for seed in (3, 4, 5, 6):
        assert night(fake, argv, 200.0, seed) == 0
    out = capsys.readouterr().out
    assert "night-to-night spread not known yet" not in out.splitlines()[-1]
    assert night(fake, argv, 180.0, 7) == 1  # -10 %: at least twice the 3 % threshold
    out = capsys.readouterr().out
    assert "REGRESSION (exit 1)" in out
    assert re.search(r"REGRESSION: tg/\S+ tg -\d+\.\d % \(last_good\)", out)  # the headline names the figure
    assert "[regression] tg/p40-o8-c1-d0-" not in out  # the case id is printed whole
    assert "tg/p40-o8-c1-d0 tg_tps:" in out and "95 % CI" in out and "large" in out
    verdict = verdict_of_latest(results)
    assert verdict["verdict"] == "regression" and verdict["compared_with"] is not None


def test_one_moderate_drop_is_watched_and_a_second_one_pages(
    fake: FakeLlamaServer, setup: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    results, argv = setup
    for seed in range(1, 6):  # five nights: the spread between nights is known
        assert night(fake, argv, 200.0, seed) == 0
    capsys.readouterr()
    alone = [*argv, "--confirm-runs", "0"]  # nothing re-measured: a second night is the confirmation
    assert night(fake, alone, 191.0, 6) == 0  # -4.5 %: above 3 %, below 6 %
    assert "[suspect]" in capsys.readouterr().out
    assert verdict_of_latest(results)["verdict"] == "suspect"
    assert night(fake, alone, 191.0, 7) == 1  # the same drop again, against the last good night
    assert "second night in a row" in capsys.readouterr().out


def test_a_moderate_drop_that_holds_on_fresh_runs_pages_the_same_night(
    fake: FakeLlamaServer, setup: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    results, argv = setup
    for seed in range(1, 6):
        assert night(fake, argv, 200.0, seed) == 0
    capsys.readouterr()
    assert night(fake, argv, 191.0, 6) == 1  # -4.5 %, measured again on two fresh runs: it holds
    out = capsys.readouterr().out
    assert "held on 2 fresh run(s)" in out and "judged again on 2 fresh run(s)" in out
    verdict = verdict_of_latest(results)
    assert verdict["verdict"] == "regression" and len(verdict["confirmed_with"]) == 2  # type: ignore[arg-type]
    assert float(verdict["confirm_seconds"]) > 0  # type: ignore[arg-type]


def test_baseline_miss_is_a_regression(
    fake: FakeLlamaServer, setup: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, argv = setup
    assert night(fake, argv, 150.0, 1) == 1  # 75 % of the 200 t/s baseline, tolerance 20 %
    out = capsys.readouterr().out
    assert re.search(r"\[regression\] tg_tps: generation 1[45]\d\.\d\d t/s = 7\d\.\d % of 200 t/s: below", out)


def test_a_failed_run_exits_with_the_code_of_its_failure_as_every_command_does(
    setup: tuple[Path, list[str]], fake: FakeLlamaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    results, argv = setup
    down = [a if a != fake.url else "http://127.0.0.1:9" for a in argv]
    assert main(down) == ExitCode.ENDPOINT == 3  # as `bench run` exits for an endpoint that is down
    assert "RUN FAILED (exit 3)" in capsys.readouterr().out
    assert main([*argv, "--keep-runs", "0"]) == ExitCode.CONFIG == 2  # bad configuration: 2, for every command
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with nightly_lock(results):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    try:
        assert main(argv) == ExitCode.RESULTS == 4  # the results directory is held by another nightly
    finally:
        release.set()
        holder.join()
    assert "RUN FAILED (exit 4): another nightly holds" in capsys.readouterr().out


def test_retention_keeps_the_newest_and_never_protected_runs(tmp_path: Path) -> None:
    from tests.factories import noisy_records, write_run

    day = 86400.0
    records = noisy_records(1, pp_tps=1, tg_tps=1, cv=0, seed=0)
    paths = [write_run(tmp_path, records, label="nightly", started=d * day) for d in range(6)]
    other = write_run(tmp_path, records, label="fa-on", started=0)
    now = 5.5 * day
    removed = apply_retention(tmp_path, "nightly", keep_runs=2, keep_days=None, protect={paths[0].name}, now=now)
    assert sorted(removed) == sorted(paths[1:4])
    assert all(p.exists() for p in (paths[0], paths[4], paths[5], other))
    removed = apply_retention(tmp_path, "nightly", keep_runs=None, keep_days=1, protect=set(), now=now)
    assert sorted(removed) == sorted([paths[0], paths[4]])
    assert paths[5].exists() and other.exists()


def test_a_slow_drift_is_caught_by_the_change_point_in_history(tmp_path: Path) -> None:
    from bench.decide.nightly import Night, gather, judge
    from bench.figures.summary import summarise_run
    from bench.store.run_dir import read_records
    from tests.factories import noisy_records, write_run

    case = "s/p100-o10-c1-d0"
    # 20 steady nights at 72 t/s, then a drift of about -2 % a night: never 3 % below the night before
    values = [72.0 * (1 + 0.002 * ((i * 7) % 5 - 2)) for i in range(20)] + [70.6, 69.2, 67.8]
    history = [
        Night(tmp_path / f"n{i}", f"n{i}", float(i), "ok", {(case, "tg_tps"): v}, ()) for i, v in enumerate(values)
    ]
    tonight = write_run(tmp_path, noisy_records(6, pp_tps=650, tg_tps=66.5, cv=0.005, seed=1), label="nightly")
    summary = summarise_run(list(read_records(tonight)))
    verdict = judge(gather(tonight, summary, history))
    points = [f for f in verdict.findings if f.kind == "change_point" and f.figure == "tg_tps"]
    assert points and points[0].severity == "regression"
    assert "E-divisive change point" in points[0].detail
    assert verdict.verdict == "regression"


def test_a_nightly_runs_from_python_without_the_cli(tmp_path: Path, fake: FakeLlamaServer) -> None:
    import tomllib

    from bench.flows.nightly import NightlyOptions, NightlyOutcome, run_nightly
    from bench.flows.run import RunOptions
    from bench.inputs.baselines import parse_baselines
    from bench.inputs.scenarios import parse_scenario_set

    run = RunOptions(
        parse_scenario_set(tomllib.loads(SET), "set"),
        endpoint=fake.url,
        baselines=parse_baselines(tomllib.loads(BASELINES), "baselines"),
        results_dir=tmp_path / "results",
        label="nightly",
    )
    outcomes: list[NightlyOutcome] = []
    for _ in range(2):
        outcomes.append(run_nightly(NightlyOptions(run, keep_runs=1, reports_dir=tmp_path / "reports")))
    first, second = outcomes
    assert first.verdict is not None and first.verdict.verdict == "ok" and first.exit_code == ExitCode.OK
    assert second.verdict is not None and second.verdict.compared_with == first.run.run_id
    assert (second.run.run_dir / "nightly.json").exists()
    assert [p.name for p in second.reports] == [f"run-{second.run.run_id}.html", "trend-nightly.html"]
    # retention keeps one run of the label, and never the last good night it was just compared with
    assert second.removed == () and first.run.run_dir.exists()
    with pytest.raises(ConfigError, match="--keep-runs must be at least 1"):
        NightlyOptions(run, keep_runs=0)


def test_the_headline_says_what_the_gate_decided_and_why() -> None:
    from bench.decide.nightly import Finding, FindingKind, GateCheck, NightState, Severity, headline_text
    from bench.figures.summary import summarise_run

    summary = summarise_run([])
    checks = [GateCheck("c1", "tg_tps", -0.012, 0.03, 0.41), GateCheck("c2", "pp_tps", -0.02, 0.08, 0.019)]
    # c2's p is the smallest, but its drop is further under its threshold: c1 is the one nearest to paging
    ok = headline_text(summary, checks, [], NightState.OK, compared=True)
    assert ok == "no regression vs last good night (largest drop c1 tg -1.2 %, p = 0.41, under its 3.0 % threshold)"
    drop = Finding(FindingKind.LAST_GOOD, Severity.REGRESSION, "tg_tps", "c1", -0.1, "...")
    bad = headline_text(summary, checks, [drop, drop], NightState.REGRESSION, compared=True)
    assert bad == "REGRESSION: c1 tg -10.0 % (last_good), and 1 more"
    assert (
        headline_text(summary, [], [], NightState.OK, compared=False)
        == "no regression (no earlier good night to compare with)"
    )


def test_a_drop_past_its_threshold_is_never_called_under_it() -> None:
    # Seen on eight identical nights: "tg -9.2 %, p = 0.46, under its 4.8 % threshold". A drop past
    # the threshold the spread cannot tell from noise is undecided, and the night says so.
    from bench.decide.compare import Verdict
    from bench.decide.nightly import GateCheck, NightState, _gate, _state, headline_text
    from bench.figures.summary import summarise_run
    from tests.test_compare import _row

    undecided = _row(0.46, ratio=0.908)  # -9.2 %, not significant
    finding = _gate(undecided, 0.048, was_suspect=True, last_good=None)
    assert finding is not None and finding.severity == "undecided" and "past the 4.8% threshold" in finding.detail
    assert _state([finding]) is NightState.INSUFFICIENT
    summary = summarise_run([])
    text = headline_text(summary, [], [finding], NightState.INSUFFICIENT, compared=True)
    assert text == "UNDECIDED (the night's spread cannot tell a drop from noise): c tg -9.2 % (last_good)"
    assert "under" not in text
    # a drop past the threshold that is nonetheless the same within the margin says that, not "under"
    same = GateCheck("c", "tg_tps", -0.035, 0.03, 0.6, Verdict.SAME, 0.05)
    ok = headline_text(summary, [same], [], NightState.OK, compared=True)
    assert ok.endswith("tg -3.5 %, p = 0.6, past its 3.0 % threshold but the same within ±5%)")
    # under the threshold, it is under: the words hold
    small = _gate(_row(0.46, ratio=0.98), 0.048, was_suspect=False, last_good=None)
    assert small is None


def test_a_goodput_drop_under_the_slo_pages_like_a_tg_drop(
    fake: FakeLlamaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "set.toml").write_text(SET + "slo = { ttft_ms = 150 }\n")
    (tmp_path / "baselines.toml").write_text(BASELINES)
    argv = [
        "nightly", "--endpoint", fake.url, "--scenarios", str(tmp_path / "set.toml"),
        "--baselines", str(tmp_path / "baselines.toml"), "--results-dir", str(tmp_path / "results"), "--no-report",
    ]  # fmt: skip
    fake.config.jitter_cv, fake.config.ttft_s = 0.01, 0.01
    for seed in range(1, 6):
        assert night(fake, argv, 200.0, seed) == 0
    capsys.readouterr()
    # the server's own speed is unchanged, but every first token now comes after 300 ms: no request
    # meets the SLO, and the goodput it carried is gone
    fake.config.ttft_s = 0.3
    assert night(fake, argv, 200.0, 6) == 1
    out = capsys.readouterr().out
    assert "REGRESSION: tg/p40-o8-c1-d0 goodput -100.0 % (last_good)" in out
    verdict = verdict_of_latest(tmp_path / "results")
    figures = {f["figure"] for f in verdict["findings"]}  # type: ignore[union-attr]
    assert "goodput_rps" in figures and "tg_tps" not in figures


TRAFFIC = """
name = "traffic-gate"
[[scenario]]
name = "chat"
prompt_tokens = 40
output_tokens = 8
turns = 3
concurrency = 2
pattern = "concurrent"
repetitions = 2
warmup = 0
[[scenario]]
name = "replay"
pattern = "trace"
trace = "sample"
speed = 50
warmup = 0
"""


def test_conversations_and_a_trace_are_gated_night_by_night_like_any_case(
    tmp_path: Path, fake: FakeLlamaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.config.cache_slots, fake.config.jitter_cv = 32, 0.01
    (tmp_path / "set.toml").write_text(TRAFFIC)
    argv = [
        "nightly", "--endpoint", fake.url, "--scenarios", str(tmp_path / "set.toml"),
        "--results-dir", str(tmp_path / "results"), "--no-report",
    ]  # fmt: skip
    for seed in (1, 2):
        assert night(fake, argv, 200.0, seed) == 0
    capsys.readouterr()
    # -20 %: past the 15 % allowance of the first nights, in every case. With no spread between
    # nights yet and nothing re-measured, the gate cannot tell it from a second server start: undecided
    assert night(fake, [*argv, "--confirm-runs", "0"], 160.0, 3) == 6
    out = capsys.readouterr().out
    assert "INSUFFICIENT (exit 6)" in out and "UNDECIDED (the night's spread cannot tell a drop from noise)" in out
    assert "[undecided] chat/p40-o8-c2-d0-t3 tg_tps" in out and "[undecided] replay/trace-sample-x50-c8 tg_tps" in out
    # re-measured on two fresh runs, the drop holds against their own spread: paged at once
    assert night(fake, argv, 160.0, 4) == 1
    out = capsys.readouterr().out
    assert "REGRESSION (exit 1)" in out and "judged again on 2 fresh run(s)" in out
    assert "held on 2 fresh run(s)" in out


def test_a_night_s_findings_are_read_back_as_findings_and_a_damaged_one_is_left_out() -> None:
    from dataclasses import asdict

    from bench.decide.nightly import Finding, FindingKind, Severity

    finding = Finding(FindingKind.LAST_GOOD, Severity.SUSPECT, "tg_tps", "tg/p128-o128-c1-d0", -0.04, "a drop")
    assert Finding.from_json(json.loads(json.dumps(asdict(finding)))) == finding
    assert Finding.from_json({"kind": "no such kind", "severity": "suspect", "figure": "tg_tps"}) is None
    assert Finding.from_json(["not", "an", "object"]) is None


def test_a_night_whose_verdict_file_is_damaged_is_not_taken_for_a_good_night(tmp_path: Path) -> None:
    from bench.decide.nightly import nightly_history, read_verdict
    from bench.figures.summary import summarise_run
    from bench.store.run_dir import read_records
    from tests.factories import noisy_records, write_run

    runs = []
    for i, verdict in enumerate(['{"verdict": "ok", "headline": "", "findings": []}', '{"verdict": "fine?"}']):
        records = noisy_records(4, pp_tps=650, tg_tps=70, cv=0.002, seed=i)
        runs.append(run := write_run(tmp_path, records, label="nightly", started=86400.0 * (i + 1)))
        summary = summarise_run(list(read_records(run)))
        (run / "summary.json").write_text(json.dumps({"schema_version": 1, **summary.to_json()}))
        (run / "nightly.json").write_text(verdict)
    first, damaged = runs
    assert read_verdict(first) is not None
    with pytest.raises(ResultsError, match="not a night's verdict"):
        read_verdict(damaged)
    (night,) = nightly_history(tmp_path, "nightly", "s")
    assert night.path == first


def test_a_regression_between_two_builds_names_the_bisect_command_that_finds_its_commit() -> None:
    from bench.decide.nightly import (
        Finding,
        FindingKind,
        NightlyVerdict,
        NightState,
        Severity,
        bisect_command,
        plain_summary,
    )

    drop = Finding(FindingKind.LAST_GOOD, Severity.REGRESSION, "tg_tps", "tg/p128-o128-c1-d0", -0.09, "...")
    command = bisect_command("b6458-abc1234", "b6500-def5678", drop, "quick")
    assert command == (
        "bench bisect --repo LLAMA_CPP_CHECKOUT --good abc1234 --bad def5678 --case tg/p128-o128-c1-d0 "
        "--figure tg_tps --scenarios quick --model-file MODEL.gguf"
    )
    assert bisect_command("b6458-abc1234", "b6458-abc1234", drop, "quick") is None  # the same build: not a commit
    assert bisect_command(None, "b6500-def5678", drop, None) is None
    assert bisect_command("my-server-1.2", "b6500-def5678", drop, None) is None  # a build that names no commit
    verdict = NightlyVerdict("r", NightState.REGRESSION, (drop,), "g", headline="REGRESSION", bisect=command)
    assert plain_summary(verdict).endswith(f"to find the commit: {command}")
    assert NightlyVerdict.from_json(verdict.to_json()) == verdict


def test_a_night_nothing_could_be_compared_in_says_so_not_no_figure_lower() -> None:
    # seen: four nights of a 3-request set headlined "no figure lower" while tg had fallen 4.5 %, because
    # 3 vs 3 requests could not be tested at all and no night-to-night spread was known yet
    from bench.decide.compare import Verdict
    from bench.decide.nightly import GateCheck, NightState, headline_text
    from bench.figures.summary import summarise_run

    why = "3 vs 3 requests cannot reach p < 0.05 (smallest possible p 0.1): add repetitions"
    unseen = [GateCheck("c1", "tg_tps", None, 0.15, None, Verdict.NOT_COMPARABLE, 0.05, why)]
    text = headline_text(summarise_run([]), unseen, [], NightState.OK, compared=True, nights=1)
    assert text.startswith(f"no regression; not compared with the last good night ({why})")
    assert "no figure lower" not in text
    partly = [*unseen, GateCheck("c2", "pp_tps", 0.01, 0.15, 0.5)]
    assert "(no figure lower, 1 not compared)" in headline_text(summarise_run([]), partly, [], NightState.OK, True)


def test_a_night_that_recovered_from_a_paged_shift_is_not_paged_for_it_again(tmp_path: Path) -> None:
    # seen: two nights slowed by a flag (-25 % pp, both paged), then a normal night, paged by the change
    # point those two made: tonight must itself sit on the low side to be news
    from bench.decide.nightly import Night, gather, judge
    from bench.figures.summary import summarise_run
    from bench.store.run_dir import read_records
    from tests.factories import noisy_records, write_run

    case = "s/p100-o10-c1-d0"
    values = [72.0 * (1 + 0.002 * ((i * 7) % 5 - 2)) for i in range(12)]
    history = [
        *(Night(tmp_path / f"n{i}", f"n{i}", float(i), "ok", {(case, "tg_tps"): v}, ()) for i, v in enumerate(values)),
        *(Night(tmp_path / f"s{i}", f"s{i}", 20.0 + i, "regression", {(case, "tg_tps"): 54.0}, ()) for i in range(2)),
    ]
    tonight = write_run(tmp_path, noisy_records(6, pp_tps=650, tg_tps=72.0, cv=0.005, seed=1), label="nightly")
    verdict = judge(gather(tonight, summarise_run(list(read_records(tonight))), history))
    assert not [f for f in verdict.findings if f.kind == "change_point"]
