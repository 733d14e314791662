"""Faults a nightly run meets: each is survived, reported clearly, and loses no measured record."""

from __future__ import annotations

import errno
import io
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.errors import EndpointError, ResultsError, ServerError
from bench.flows.run import QuietObserver, RunOptions, run_benchmark
from bench.inputs.scenarios import ScenarioSet, parse_scenario_set
from bench.records import RequestRecord
from bench.store.run_dir import read_records, read_run_meta
from bench.telemetry.sampler import TelemetryConfig


def one_case(requests: int = 4, output: int = 8) -> ScenarioSet:
    return parse_scenario_set(
        {"scenario": [{"name": "tg", "prompt_tokens": 40, "output_tokens": output, "repetitions": requests,
                       "warmup": 0}]}, "faults"
    )  # fmt: skip


def options(url: str, tmp_path: Path, **kw: Any) -> RunOptions:
    return RunOptions(scenarios=kw.pop("scenarios", one_case()), endpoint=url, results_dir=tmp_path, **kw)


def only_run(tmp_path: Path) -> Path:
    (run,) = [p for p in tmp_path.iterdir() if (p / "run.json").exists()]
    return run


def test_a_name_that_does_not_resolve_is_a_clear_endpoint_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = socket.getaddrinfo

    def resolver(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "gpu-host.example":  # no DNS query leaves this machine
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    assert (
        main(
            [
                "run",
                "--endpoint",
                "http://gpu-host.example",
                "--results-dir",
                str(tmp_path),
                "--scenarios",
                "smoke",
                "--no-report",
            ]
        )
        == 3
    )
    err = capsys.readouterr().err
    assert "cannot reach http://gpu-host.example" in err and "Name or service not known" in err
    assert "Traceback" not in err


def test_tls_to_a_plain_http_port_is_a_clear_endpoint_error(fake: FakeLlamaServer, tmp_path: Path) -> None:
    with pytest.raises(EndpointError, match=r"cannot reach https://127\.0\.0\.1:\d+: ConnectError: .*SSL"):
        run_benchmark(options(fake.url.replace("http://", "https://"), tmp_path))


def test_a_loading_server_is_waited_for(fake: FakeLlamaServer, tmp_path: Path) -> None:
    fake.config.loading_until = time.time() + 1.2
    messages: list[str] = []

    class Listen(QuietObserver):
        def message(self, text: str) -> None:
            messages.append(text)

    result = run_benchmark(options(fake.url, tmp_path), Listen())
    assert result.status == "complete" and result.summary.failed == 0
    assert any("is loading its model (HTTP 503)" in m for m in messages)


def test_a_server_that_never_finishes_loading_fails_after_the_bound(fake: FakeLlamaServer, tmp_path: Path) -> None:
    fake.config.loading_until = time.time() + 60
    started = time.monotonic()
    with pytest.raises(ServerError, match=r"still answers 503 .* after 1 s"):
        run_benchmark(options(fake.url, tmp_path, ready_timeout_s=1.0))
    assert time.monotonic() - started < 5


class StatusFrom(QuietObserver):
    """Switches the fake's answer once measuring starts (after preflight), as a proxy in trouble would."""

    def __init__(self, fake: FakeLlamaServer, **changes: Any) -> None:
        self.fake, self.changes = fake, changes

    def case_started(self, case: Any) -> None:
        for key, value in self.changes.items():
            setattr(self.fake.config, key, value)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_error_statuses_mid_run_are_recorded_and_counted(fake: FakeLlamaServer, tmp_path: Path, status: int) -> None:
    result = run_benchmark(options(fake.url, tmp_path), StatusFrom(fake, status=status))
    records = list(read_records(result.run_dir))
    assert len(records) == 4 and all(r.http_status == status and not r.ok for r in records)
    assert result.summary.failed == 4 and result.error_rate_exceeded


def test_a_hanging_request_times_out_and_the_run_goes_on(fake: FakeLlamaServer, tmp_path: Path) -> None:
    result = run_benchmark(options(fake.url, tmp_path, request_timeout_s=0.4), StatusFrom(fake, hang_s=1.0))
    records = list(read_records(result.run_dir))
    assert len(records) == 4
    assert all(r.error == "request took longer than 0.4 s (--timeout)" for r in records)


def test_a_trickling_stream_is_bounded_as_a_whole(fake: FakeLlamaServer, tmp_path: Path) -> None:
    # each token arrives well within the timeout, the whole answer does not
    result = run_benchmark(options(fake.url, tmp_path, request_timeout_s=0.5), StatusFrom(fake, itl_s=0.15))
    records = list(read_records(result.run_dir))
    assert all("longer than 0.5 s" in (r.error or "") for r in records)
    assert all(1 <= r.token_event_count < 8 for r in records)  # what arrived before the cut is kept


def test_the_whole_run_is_bounded_and_kept_as_partial(fake: FakeLlamaServer, tmp_path: Path) -> None:
    result = run_benchmark(
        options(fake.url, tmp_path, scenarios=one_case(50), max_run_s=2.0), StatusFrom(fake, itl_s=0.02)
    )
    assert result.status == "partial"
    meta = read_run_meta(result.run_dir)
    # the limit covers the preflight too, so 2 s leave about 1.5 s of load: several requests of the 50
    assert meta.status == "partial" and "run time limit of 2 s" in meta.partial_reason
    assert 1 <= len(list(read_records(result.run_dir))) < 50


def test_a_huge_answer_is_measured(fake: FakeLlamaServer, tmp_path: Path) -> None:
    fake.config.huge_chars = 5_000_000
    result = run_benchmark(options(fake.url, tmp_path, scenarios=parse_scenario_set(
        {"scenario": [{"name": "big", "prompt_tokens": 40, "output_tokens": 8, "repetitions": 2, "stream": False}]},
        "big")))  # fmt: skip
    records = [r for r in read_records(result.run_dir) if not r.warmup]
    assert all(r.ok and r.content_chars >= 5_000_000 for r in records)


def test_an_html_answer_is_not_mistaken_for_a_model(fake: FakeLlamaServer, tmp_path: Path) -> None:
    fake.config.html_page = True
    with pytest.raises(ServerError, match="not an OpenAI-compatible answer: the server sent an HTML page"):
        run_benchmark(options(fake.url, tmp_path))


def test_a_full_disk_stops_the_run_with_a_results_error_and_keeps_what_was_written(
    fake: FakeLlamaServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.store import run_dir as store

    written: list[RequestRecord] = []
    original = store.RunStore.append

    class FullDisk(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    def append(self: store.RunStore, record: RequestRecord) -> None:
        if len(written) == 2:
            self._requests.close()
            self._requests = FullDisk()  # the third record meets a full disk
        original(self, record)
        written.append(record)

    monkeypatch.setattr(store.RunStore, "append", append)
    with pytest.raises(ResultsError, match="No space left on device"):
        run_benchmark(options(fake.url, tmp_path))
    run = only_run(tmp_path)
    assert [r.index for r in read_records(run)] == [0, 1]  # nothing measured before the fault is lost
    assert read_run_meta(run).status == "partial"


def test_a_server_gone_for_good_mid_run_ends_it_partial_after_the_bound(fake: FakeLlamaServer, tmp_path: Path) -> None:
    class StopAfterTwo(QuietObserver):
        seen = 0

        def request_done(self, record: RequestRecord) -> None:
            self.seen += 1
            if self.seen == 2:
                fake.stop()

    with pytest.raises(ServerError, match="still cannot be reached after 1 s"):
        run_benchmark(options(fake.url, tmp_path, ready_timeout_s=1.0), StopAfterTwo())
    run = only_run(tmp_path)
    records = list(read_records(run))
    assert len(records) == 3 and [r.ok for r in records] == [True, True, False]
    assert read_run_meta(run).status == "partial"


SECRET = "sk-live-7Hq2-NOT-FOR-FILES"


def _files_holding(root: Path, text: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


class _BreakAfterPreflight(QuietObserver):
    """Turns the fake into one whose 5xx bodies quote the request's headers, once load starts."""

    def __init__(self, fake: FakeLlamaServer) -> None:
        self.fake = fake

    def case_started(self, case: object) -> None:
        self.fake.config.status = 500


def test_a_key_echoed_by_the_server_is_never_stored_or_printed(
    fake: FakeLlamaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.report.render import render_run_report
    from bench.store.run_dir import load_history

    fake.config.api_key = SECRET
    fake.config.echo_auth_in_errors = True
    flags = f"-fa 1 --api-key {SECRET} -c 4096"
    result = run_benchmark(
        options(fake.url, tmp_path / "results", api_key=SECRET, server_flags=flags), _BreakAfterPreflight(fake)
    )
    records = list(read_records(result.run_dir))
    assert records and all(r.error and "Authorization: Bearer ***" in r.error for r in records)
    assert read_run_meta(result.run_dir).server_flags == "-fa 1 --api-key *** -c 4096"
    render_run_report(result.run_dir, tmp_path / "reports")
    assert main(["show", str(result.run_dir)]) == 0
    assert main(["show", str(result.run_dir), "--json"]) == 0
    assert not load_history(tmp_path / "results")["error"].str.contains(SECRET).any()
    # the preflight failing on the same server: the message on stderr and the run's partial reason
    fake.config.status = 500
    argv = ["run", "--endpoint", fake.url, "--results-dir", str(tmp_path / "results"), "--no-report"]
    assert main([*argv, "--api-key", SECRET, "--scenarios", "smoke"]) == 3
    assert main(["check", "--endpoint", fake.url, "--api-key", SECRET, "--json"]) == 3
    printed = capsys.readouterr()
    assert "Bearer ***" in printed.err
    assert SECRET not in printed.out + printed.err
    assert _files_holding(tmp_path, SECRET) == []


@pytest.mark.parametrize("path", ["/props", "/v1/models"])
def test_a_trickling_answer_is_bounded_by_the_timeout_in_check_and_run(
    fake: FakeLlamaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    fake.config.trickle_paths = (path,)  # headers at once, then one byte a second
    started = time.monotonic()
    assert main(["check", "--endpoint", fake.url, "--timeout", "1"]) == 3
    assert time.monotonic() - started < 10
    assert f"{path} took longer than 1 s (--timeout)" in capsys.readouterr().err
    started = time.monotonic()
    argv = ["run", "--endpoint", fake.url, "--timeout", "1", "--max-run-time", "5", "--scenarios", "smoke"]
    assert main([*argv, "--results-dir", str(tmp_path), "--no-report"]) == 3
    assert time.monotonic() - started < 10
    assert read_run_meta(only_run(tmp_path)).status == "failed"


def test_the_run_time_limit_covers_the_preflight(fake: FakeLlamaServer, tmp_path: Path) -> None:
    fake.config.trickle_paths = ("/props",)
    started = time.monotonic()
    with pytest.raises(EndpointError, match=r"run time limit of 1\.5 s \(--max-run-time\) before any load"):
        run_benchmark(options(fake.url, tmp_path, request_timeout_s=600, max_run_s=1.5))
    assert time.monotonic() - started < 6
    meta = read_run_meta(only_run(tmp_path))
    assert meta.status == "failed" and "--max-run-time" in meta.partial_reason


def test_a_trickling_metrics_endpoint_costs_samples_not_the_run(fake: FakeLlamaServer, tmp_path: Path) -> None:
    fake.config.trickle_paths = ("/metrics",)
    started = time.monotonic()
    result = run_benchmark(options(fake.url, tmp_path, telemetry=TelemetryConfig(interval_s=0.1)))
    assert result.status == "complete" and result.summary.failed == 0
    assert time.monotonic() - started < 15
    telemetry = read_run_meta(result.run_dir).telemetry
    assert telemetry["metrics_source"] == "none" and "took longer than 2 s" in telemetry["metrics_reason"]


class _AtLoad(QuietObserver):
    """Changes the fake once load starts (after the preflight, which would refuse the server)."""

    def __init__(self, change: Any) -> None:
        self.change = change

    def case_started(self, case: object) -> None:
        self.change()


def _strict(text: str) -> Any:
    def refuse(token: str) -> Any:
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"prompt_ms": float("nan")}, "timings.prompt_ms is nan, not a duration"),
        ({"predicted_ms": float("inf")}, "timings.predicted_ms is inf, not a duration"),
        ({"predicted_n": 10**30}, "timings.predicted_n is 1000000000000000000000000000000, not a count"),
        ({"prompt_ms": -5.0}, "timings.prompt_ms is -5.0, not a duration"),
    ],
)
def test_unbelievable_timings_fail_their_request_and_every_file_stays_strict_json(
    fake: FakeLlamaServer, tmp_path: Path, override: dict[str, Any], reason: str
) -> None:
    fake.config.timings_override = {"prompt_per_second": float("nan")}  # a derived figure: dropped, not fatal
    result = run_benchmark(options(fake.url, tmp_path), _AtLoad(lambda: fake.config.timings_override.update(override)))
    records = list(read_records(result.run_dir))
    assert len(records) == 4 and all(not r.ok for r in records)
    assert all((r.error or "").startswith(f"unbelievable response: {reason}") for r in records)
    assert result.status == "complete" and result.error_rate_exceeded
    for path in [*result.run_dir.glob("*.json"), *result.run_dir.glob("*.jsonl")]:
        for line in path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]:
            _strict(line)
    assert (result.run_dir / "requests.parquet").exists()


def test_a_derived_figure_that_is_not_finite_is_dropped_not_stored(fake: FakeLlamaServer, tmp_path: Path) -> None:
    fake.config.timings_override = {"prompt_per_second": float("nan"), "predicted_per_token_ms": float("inf")}
    result = run_benchmark(options(fake.url, tmp_path))
    (first, *_) = list(read_records(result.run_dir))
    assert first.ok and first.timings is not None
    assert first.timings.prompt_per_second is None and first.timings.predicted_per_token_ms is None


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip bomb"])
def test_an_answer_over_the_body_limit_fails_its_request_and_the_run_goes_on(
    fake: FakeLlamaServer, tmp_path: Path, gzipped: bool
) -> None:
    # 3 MiB of answer, plain or gzip-compressed to a few KiB: counted as it is decompressed
    grow = lambda: setattr(fake.config, "huge_chars", 3 * 2**20)  # noqa: E731
    fake.config.gzip_bodies = gzipped
    result = run_benchmark(
        options(fake.url, tmp_path, scenarios=one_case_no_stream(), max_body_bytes=2**20), _AtLoad(grow)
    )
    records = list(read_records(result.run_dir))
    assert len(records) == 4 and all(
        r.error == "response too large: a body larger than 1 MiB (--max-body-mib)" for r in records
    )


def test_a_huge_props_is_refused_with_the_limit(fake: FakeLlamaServer, capsys: pytest.CaptureFixture[str]) -> None:
    fake.config.props_padding_bytes = 2 * 2**20
    assert main(["check", "--endpoint", fake.url, "--max-body-mib", "1"]) == 3
    assert "/props answered more than 1 MiB (--max-body-mib)" in capsys.readouterr().err


def one_case_no_stream() -> ScenarioSet:
    return parse_scenario_set(
        {"scenario": [{"name": "tg", "prompt_tokens": 40, "output_tokens": 8, "repetitions": 4, "warmup": 0,
                       "stream": False}]}, "faults"
    )  # fmt: skip


def test_a_tokenizer_answering_another_shape_means_estimated_lengths_not_a_crash(
    fake: FakeLlamaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.config.tokens_as_text = True
    assert main(["check", "--endpoint", fake.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["has_tokenize"] is False


def test_garbage_in_the_request_log_is_left_out_and_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.store.run_dir import load_history
    from tests.factories import noisy_records, write_run

    run = write_run(tmp_path, noisy_records(3, pp_tps=650, tg_tps=72, cv=0.01, seed=1))
    log = run / "requests.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(lines[0] + b"\xff\xfe not a record\n" + b"{garbage\n" + b"".join(lines[1:]))
    (run / "requests.parquet").unlink()  # read from the log, as a killed run is
    assert len(list(read_records(run))) == 3
    assert len(load_history(tmp_path)) == 3
    assert main(["show", str(run)]) == 0
    assert "note: 2 unreadable line(s) in requests.jsonl left out (line 2, 3)" in capsys.readouterr().out


def test_export_to_a_path_it_cannot_write_is_a_results_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.factories import noisy_records, write_run

    run = write_run(tmp_path, noisy_records(3, pp_tps=650, tg_tps=72, cv=0.01, seed=1))
    assert main(["export", str(run), "-o", str(tmp_path / "no" / "such" / "dir" / "x.json")]) == 4
    assert "bench: error: cannot write" in capsys.readouterr().err


def test_runs_with_no_case_in_common_are_not_an_all_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.factories import noisy_records, write_run

    write_run(tmp_path, noisy_records(5, pp_tps=650, tg_tps=72, cv=0.01, seed=1, case_id="x/p1"), label="a")
    write_run(tmp_path, noisy_records(5, pp_tps=650, tg_tps=72, cv=0.01, seed=2, case_id="y/p2"), label="b")
    argv = ["compare", "a", "b", "--results-dir", str(tmp_path), "--fail-on-regression", "--force", "--no-report"]
    assert main(argv) == 2
    assert "no case in common" in capsys.readouterr().err


def _long_run_measuring(fake: FakeLlamaServer, tmp_path: Path, **popen: Any) -> subprocess.Popen[bytes]:
    """``bench run`` in its own process, once its first record is on disk.

    The run cannot end before an interrupt the test sends lands, however late a loaded machine
    delivers it: with the smoke set (13 s) a run could finish first, and the interrupt then met
    its clean-up (ignored: exit 0, complete) or the interpreter's exit. 400 requests of 64
    tokens take 8 minutes.
    """
    fake.config.itl_s = 0.02
    scenarios = tmp_path / "long.toml"
    scenarios.write_text('[[scenario]]\nname = "long"\nprompt_tokens = 64\noutput_tokens = 64\nrepetitions = 400\n')
    results = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--endpoint", fake.url, "--scenarios", str(scenarios),
         "--results-dir", str(results), "--no-report"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **popen,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    # a record on disk (the log is opened before run.json is written)
    while not any(log.stat().st_size for log in results.glob("*/requests.jsonl")):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            _, err = proc.communicate(timeout=30)
            raise AssertionError(f"the run ended before it measured anything: {err.decode()[-2000:]}")
        time.sleep(0.02)
    return proc


def test_a_second_interrupt_during_the_clean_up_still_leaves_the_run_partial(
    fake: FakeLlamaServer, tmp_path: Path
) -> None:
    import signal

    proc = _long_run_measuring(fake, tmp_path)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)  # at once: it lands while the run keeps what it measured
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    meta = read_run_meta(only_run(tmp_path / "results"))
    assert meta.status == "partial" and meta.partial_reason == "interrupted by the user"


def test_a_full_disk_leaves_no_temp_files_and_says_what_may_have_happened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bench.store import run_dir as store

    run = store.RunStore.create(tmp_path)
    run.close()  # only run.json is written here
    run.write_meta(label="x", pid=2**22 + 12345)  # a process that is not running
    real_open = Path.open

    def full(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self.name.endswith(".tmp"):
            handle = real_open(self, *args, **kwargs)
            handle.close()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", full)
    with pytest.raises(OSError, match="No space left"):
        run.write_meta(status="complete")
    monkeypatch.undo()
    assert [p.name for p in run.path.iterdir() if p.name.endswith(".tmp")] == []
    meta = read_run_meta(run.path)
    assert meta.status == "partial" and "a full disk?" in meta.partial_reason


def test_a_run_written_with_nan_timings_still_shows_and_exports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # files from before the strict-JSON writer: a bare NaN inside timings
    from tests.factories import noisy_records, write_run

    run = write_run(tmp_path, noisy_records(4, pp_tps=650, tg_tps=72, cv=0.01, seed=1))
    log = run / "requests.jsonl"
    lines = log.read_text().splitlines()
    broken = json.loads(lines[0])
    broken["timings"]["prompt_ms"] = float("nan")
    log.write_text("\n".join([json.dumps(broken), *lines[1:]]) + "\n")  # json.dumps writes NaN
    (run / "requests.parquet").unlink()
    (first, *_) = read_records(run)
    assert first.timings is None  # not believed, so not counted in pp or tg
    assert main(["show", str(run), "--json"]) == 0
    _strict(capsys.readouterr().out)
    assert main(["export", str(run), "-o", str(tmp_path / "export.json")]) == 0
    _strict((tmp_path / "export.json").read_text())


def test_a_context_of_minus_five_is_unknown_not_a_reason_to_refuse(fake: FakeLlamaServer, tmp_path: Path) -> None:
    from bench.flows.check import run_check

    fake.config.n_ctx = -5
    assert run_check(endpoint=fake.url).n_ctx is None
    result = run_benchmark(options(fake.url, tmp_path))
    assert result.summary.requests == 4 and read_run_meta(result.run_dir).props["n_ctx"] is None


def test_a_tokenizer_that_counts_one_too_many_is_noticed(fake: FakeLlamaServer, tmp_path: Path) -> None:
    fake.config.tokenize_extra = 1  # every prompt comes out one token short of what was asked
    result = run_benchmark(options(fake.url, tmp_path))
    (case,) = result.summary.cases
    assert case.prompt_length_mismatches == 4
    assert any("had a prompt of another length than asked" in note for note in case.notes)


def test_the_run_time_limit_counts_from_the_commands_start_so_loading_is_in_it(
    fake: FakeLlamaServer, tmp_path: Path
) -> None:
    """Reading the set's files took 10 s of a 5 s limit: nothing is sent, and the run says why."""
    began = time.monotonic() - 10
    with pytest.raises(EndpointError, match="stopped at the run time limit of 5 s"):
        run_benchmark(options(fake.url, tmp_path, max_run_s=5.0, began_monotonic=began))
    assert fake.log.chat_bodies == []  # not even the preflight's chat


@pytest.mark.parametrize("ending", ["SIGTERM", "SIGINT"])
def test_a_run_started_with_sigint_ignored_still_ends_on_term_and_int(
    fake: FakeLlamaServer, tmp_path: Path, ending: str
) -> None:
    """A background job of a shell script (`bench run &`, nohup) starts with SIGINT ignored: TERM became
    SIGINT and did nothing, and `timeout` or systemd could not stop the run."""
    import signal

    # as a shell starts a background job
    proc = _long_run_measuring(fake, tmp_path, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    proc.send_signal(getattr(signal, ending))
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert read_run_meta(only_run(tmp_path / "results")).status == "partial"
