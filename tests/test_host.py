"""What else the machine did while a case ran: CPU time by the suite, the server and everything else."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.doors import children
from bench.flows.run import RunOptions, run_benchmark
from bench.inputs.scenarios import parse_scenario_set
from bench.store.run_dir import read_records, read_run_meta
from bench.telemetry.host import HostConditions, HostSampler, ServerPlace, between, contention_phrase, wait_for_quiet
from bench.transport.lag import ClientLag

TICK = os.sysconf("SC_CLK_TCK")


def _proc(root: Path, busy: int, idle: int, steal: int, trees: dict[int, tuple[int, int]]) -> None:
    """A /proc with the machine's counters and processes ``pid: (ppid, utime)``, in clock ticks."""
    root.mkdir(exist_ok=True)
    (root / "stat").write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 {steal} 0 0\nintr 0\n")  # no per-CPU lines: the sum
    (root / "loadavg").write_text("2.50 1.00 0.50 3/200 999\n")
    for pid, (ppid, utime) in trees.items():
        (root / str(pid)).mkdir(exist_ok=True)
        # a name with a space and parentheses, as a command may give itself
        (root / str(pid) / "stat").write_text(
            f"{pid} (we (ird) name) S {ppid} {pid} {pid} 0 -1 0 0 0 0 0 {utime} 0 0 0 20"
        )


def test_busy_time_is_split_between_the_suite_the_server_and_the_others(tmp_path: Path) -> None:
    me, server, worker, other = os.getpid(), 900_001, 900_002, 900_003
    proc, now = tmp_path / "proc", iter([100.0, 110.0])
    sampler = HostSampler(server, ServerPlace.STARTED, proc=proc, clock=lambda: next(now))
    _proc(proc, busy=0, idle=0, steal=0, trees={me: (1, 0), worker: (me, 0), server: (me, 0), other: (1, 0)})
    begin = sampler.snapshot()
    # over 10 s of 2 cores: the suite 1 s (itself and its worker), the server 12 s, another process 5 s
    _proc(proc, busy=18 * TICK, idle=2 * TICK, steal=0, trees={me: (1, TICK // 2), worker: (me, TICK // 2),
          server: (me, 12 * TICK), other: (1, 5 * TICK)})  # fmt: skip
    end = sampler.snapshot()
    assert begin is not None and end is not None
    conditions = between(begin, end, cores=2)
    assert (conditions.suite_s, conditions.server_s, conditions.others_s) == pytest.approx((1.0, 12.0, 5.0))
    assert conditions.cores_of(conditions.others_s) == pytest.approx(0.5)
    assert conditions.disturbed  # half a core taken by others, 0.2 idle
    assert "other processes took 0.50 of this machine's 2 cores" in conditions.sentence()
    assert "the server 1.20" in conditions.sentence()


def _conditions(others: float, idle: float, suite: float = 0.1, **kw: object) -> HostConditions:
    return HostConditions(wall_s=10.0, cores=2, suite_s=suite * 10, server_s=15.0, others_s=others * 10,
                          steal_s=0.0, idle_s=idle * 10, **kw)  # type: ignore[arg-type]  # fmt: skip


def test_the_rule_notes_what_others_took_from_a_full_machine_only() -> None:
    assert _conditions(others=0.3, idle=0.2).disturbed
    assert not _conditions(others=0.3, idle=1.0).disturbed  # cores to spare: recorded, not noted
    assert not _conditions(others=0.1, idle=0.0).disturbed  # a tenth of a core is the machine's own hum
    assert not _conditions(others=1.5, idle=0.0, server_place=ServerPlace.UNSEEN).disturbed  # the server is in there
    stolen = HostConditions(10.0, 2, 1.0, 15.0, 0.0, steal_s=4.0, idle_s=0.0)
    assert stolen.disturbed and "the hypervisor stole 0.40" in stolen.sentence()


def test_shares_of_a_case_add_up_and_survive_json() -> None:
    one, two = _conditions(0.3, 0.2, load_average=1.5, throttle_events=None), _conditions(0.0, 2.0, load_average=3.0)
    merged = one.merged(two)
    assert merged.wall_s == 20.0 and merged.others_s == pytest.approx(3.0) and merged.load_average == 3.0
    assert not merged.disturbed  # averaged over the whole case: 0.15 cores
    assert HostConditions.from_json(merged.to_json()) == merged
    assert HostConditions.from_json({"wall_s": "x"}) is None


def test_a_starved_client_is_told_to_leave_itself_a_core_not_to_add_workers() -> None:
    lag = ClientLag(probes=100, p50_ms=0.2, p99_ms=1.9, max_ms=3.0, token_events_per_s=8.0)
    starved = _conditions(others=0.0, idle=0.1, suite=0.05)
    assert starved.client_starved
    assert "leave it a core" in lag.sentence(starved=True) and "--workers" not in lag.sentence(starved=True)
    assert "--workers N" in lag.sentence()


def test_a_machine_without_proc_has_no_conditions(tmp_path: Path) -> None:
    sampler = HostSampler(None, ServerPlace.ELSEWHERE, proc=tmp_path / "nothing")
    sampler.start()
    assert not sampler.available and sampler.stop() is None


def _busy_for(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_a_cpu_hog_beside_the_suite_is_counted_as_others_and_noted() -> None:
    sampler = HostSampler(None, ServerPlace.ELSEWHERE)
    with _hogs(5):
        sampler.start()
        time.sleep(1.5)
        conditions = sampler.stop()
    assert conditions is not None
    assert conditions.others_s >= 0.5 * conditions.cores * conditions.wall_s
    assert conditions.disturbed and "measured under contention" in conditions.sentence()


def test_the_suites_own_work_is_the_suites_not_the_others() -> None:
    sampler = HostSampler(None, ServerPlace.ELSEWHERE)
    sampler.start()
    _busy_for(1.0)
    conditions = sampler.stop()
    assert conditions is not None
    assert conditions.suite_s >= 0.8
    assert conditions.others_s < 0.5 * conditions.suite_s
    assert not conditions.disturbed


def test_waiting_for_quiet_waits_while_others_hold_the_cpu_and_gives_up_at_its_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("bench.telemetry.host.QUIET_WINDOW_S", 0.01)

    class Neighbour(HostSampler):
        """Others take a whole core for ``busy`` windows, then nothing."""

        def __init__(self, busy: int) -> None:
            super().__init__(None, ServerPlace.ELSEWHERE)
            self.busy = busy

        def start(self) -> None: ...
        def stop(self) -> HostConditions | None:
            self.busy -= 1
            return _conditions(others=1.0 if self.busy >= 0 else 0.0, idle=1.0)

    said: list[str] = []
    waited, quiet = asyncio.run(wait_for_quiet(Neighbour(3), 10.0, said.append))
    assert quiet and waited >= 0.03 - 0.005
    assert len(said) == 1 and said[0].startswith("waiting for a quiet machine: others take 1.00 of 2 cores")
    waited, quiet = asyncio.run(wait_for_quiet(Neighbour(10_000), 0.05, said.append))
    assert not quiet and waited >= 0.05


def _stand_in_server(tmp_path: Path) -> tuple[Path, Path]:
    """A llama-server the suite starts: the fake server behind a script, so its CPU time is the server's."""
    script = tmp_path / "llama-server"
    script.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -m bench.devtools.testing.fake_server --as-llama-server "$@"\n'
    )
    script.chmod(0o755)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    return script, gguf


@contextlib.contextmanager
def _hogs(seconds: float, after: float = 0.0) -> Iterator[None]:
    """A busy loop on every core this process may use, ``after`` seconds from now, orphaned: a neighbour,
    not the suite's own child."""
    cores = len(os.sched_getaffinity(0))
    hog = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"
    one = f"(sleep {after}; exec {sys.executable} -c '{hog}') &"
    process, child = children.spawn(["/bin/sh", "-c", " ".join([one] * cores)])
    try:
        process.wait(10)
        yield
    finally:
        children.stop_popen(process, child)


@pytest.mark.parametrize("hog", [True, False], ids=["beside a CPU hog", "alone"])
def test_a_run_beside_a_cpu_hog_says_so_and_one_alone_does_not(tmp_path: Path, hog: bool) -> None:
    binary, gguf = _stand_in_server(tmp_path)
    scenarios = parse_scenario_set(
        {"scenario": [{"name": "tg", "prompt_tokens": 40, "output_tokens": 40, "repetitions": 2, "warmup": 0}]}, "hog"
    )
    options = RunOptions(
        scenarios=scenarios,
        server_binary=binary,
        model_file=gguf,
        server_args=("--itl", "0.05"),  # 2 s a request: the case is long enough to see who took the CPU
        results_dir=tmp_path / "results",
    )
    with _hogs(30) if hog else contextlib.nullcontext():
        result = run_benchmark(options)
    (case,) = result.summary.cases
    assert case.conditions is not None and case.conditions.server_place is ServerPlace.STARTED
    assert case.conditions.disturbed is hog
    assert any("measured under contention" in note for note in case.notes) is hog
    stored = read_run_meta(result.run_dir).conditions
    assert stored is not None and stored[case.case_id]["disturbed"] is hog


def test_the_nightly_headline_and_an_ab_block_say_they_were_measured_under_contention() -> None:
    from bench.decide.nightly import NightState, headline_text
    from bench.figures.summary import summarise_run
    from tests.factories import noisy_records

    records = noisy_records(5, pp_tps=500.0, tg_tps=50.0, cv=0.01, seed=1)
    busy = _conditions(others=0.9, idle=0.0)
    summary = summarise_run(records, conditions={records[0].case_id: busy})
    headline = headline_text(summary, [], [], NightState.REGRESSION, compared=False)
    assert headline.startswith("measured under contention in 1 of 1 case (others took up to 0.90 of 2 cores)")
    quiet = summarise_run(records, conditions={records[0].case_id: _conditions(others=0.0, idle=0.0)})
    assert "contention" not in headline_text(quiet, [], [], NightState.OK, compared=False)
    assert contention_phrase([None, busy, _conditions(0.0, 1.0)]) == (
        "measured under contention in 1 of 2 cases (others took up to 0.90 of 2 cores)"
    )


def test_only_the_cpus_this_process_may_use_count(tmp_path: Path) -> None:
    # a container pinned to CPU 1 of a busy host: CPU 0's time is not the server's to have
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text(
        f"cpu  {200 * TICK} 0 0 {100 * TICK} 0 0 0 0 0 0\n"
        f"cpu0 {190 * TICK} 0 0 {10 * TICK} 0 0 0 0 0 0\n"
        f"cpu1 {10 * TICK} 0 0 {90 * TICK} 0 0 0 0 0 0\n"
    )
    sampler = HostSampler(None, ServerPlace.ELSEWHERE, proc=proc)
    sampler.usable, sampler.cores = frozenset({1}), 1
    snapshot = sampler.snapshot()
    assert snapshot is not None and (snapshot.busy_s, snapshot.idle_s) == pytest.approx((10.0, 90.0))


def test_require_quiet_measures_a_disturbed_case_again_and_keeps_the_first_attempt_out_of_the_figures(
    tmp_path: Path,
) -> None:
    binary, gguf = _stand_in_server(tmp_path)
    scenarios = parse_scenario_set(
        {"scenario": [{"name": "tg", "prompt_tokens": 40, "output_tokens": 40, "repetitions": 2, "warmup": 0}]}, "q"
    )
    options = RunOptions(
        scenarios=scenarios, server_binary=binary, model_file=gguf, server_args=("--itl", "0.05"),
        results_dir=tmp_path / "results", require_quiet_s=60.0,
    )  # fmt: skip
    said: list[str] = []

    class HogDuringTheFirstAttempt:
        """A neighbour from a second after the case starts (past the first quiet look) for 5 s: over the
        first attempt, and into the wait before the second."""

        def __init__(self) -> None:
            self.hog: contextlib.ExitStack | None = None

        def message(self, text: str) -> None:
            said.append(text)

        def run_started(self, run_dir: Path, cases: object) -> None: ...
        def case_started(self, case: object) -> None:
            self.hog = contextlib.ExitStack()
            self.hog.enter_context(_hogs(5, after=1.2))

        def request_done(self, record: object) -> None: ...
        def case_done(self, case: object, summary: object, outcome: object) -> None:
            if self.hog is not None:
                self.hog.close()

    result = run_benchmark(options, HogDuringTheFirstAttempt())  # type: ignore[arg-type]
    (case,) = result.summary.cases
    meta = read_run_meta(result.run_dir)
    assert meta.superseded is not None and len(meta.superseded) == 1
    assert meta.superseded[0]["case_id"] == case.case_id
    assert any("measuring it again once the machine is quiet" in text for text in said)
    assert case.conditions is not None and not case.conditions.disturbed and case.conditions.waited_s > 0
    stored = list(read_records(result.run_dir))
    assert len(stored) == 2  # the first attempt's two requests stay in the log, out of the figures
    assert all("contention" not in note for note in case.notes)
