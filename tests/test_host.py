"""What else the machine did while a case ran: CPU time by the suite, the server and everything else."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from bench.doors import children
from bench.telemetry.host import HostConditions, HostSampler, ServerPlace, between
from bench.transport.lag import ClientLag

TICK = os.sysconf("SC_CLK_TCK")


def _proc(root: Path, busy: int, idle: int, steal: int, trees: dict[int, tuple[int, int]]) -> None:
    """A /proc with the machine's counters and processes ``pid: (ppid, utime)``, in clock ticks."""
    root.mkdir(exist_ok=True)
    (root / "stat").write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 {steal} 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n")
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
    cores = len(os.sched_getaffinity(0))
    hog = "import time\nend = time.monotonic() + 2.5\nwhile time.monotonic() < end: pass\n"
    # `&` and the shell's exit orphan the hogs: they are not the suite's descendants, as a neighbour is not
    launch = " ".join(f"{sys.executable} -c '{hog}' &" for _ in range(cores))
    sampler = HostSampler(None, ServerPlace.ELSEWHERE)
    process, child = children.spawn(["/bin/sh", "-c", launch])
    try:
        process.wait(10)
        sampler.start()
        time.sleep(1.5)
        conditions = sampler.stop()
    finally:
        children.stop_popen(process, child)
    assert conditions is not None
    assert conditions.others_s >= 0.5 * cores * conditions.wall_s
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
