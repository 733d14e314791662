"""Load workers as Ray actors, on a real Ray cluster on 127.0.0.1: a head and two worker nodes.

The run goes through the command line with --ray, as a user's would, against the fake server in
a process of its own, and is held against the same scenarios run by --workers 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray.cluster_utils import Cluster

from bench.devtools.testing.fake_server import fake_server_process
from bench.figures.summary import load_summary
from bench.store.run_dir import read_records, run_dirs

pytestmark = pytest.mark.integration

SCENARIOS = """
schema_version = 1
name = "ray"
[[scenario]]
name = "closed"
prompt_tokens = 32
output_tokens = 16
concurrency = 4
pattern = "concurrent"
repetitions = 3
warmup = 1
[[scenario]]
name = "open"
prompt_tokens = 32
output_tokens = 8
concurrency = 4
pattern = "poisson"
rate_rps = 20.0
repetitions = 8
warmup = 0
[[scenario]]
name = "chat"
prompt_tokens = 24
output_tokens = 6
concurrency = 2
pattern = "concurrent"
turns = 3
repetitions = 2
warmup = 0
"""

# The cluster keeps to loopback when told (Ray would swap 127.0.0.1 for the machine's outward address)
# and sends no usage report home. The suite is not told: it keeps to loopback by itself for a
# loopback address, which these runs check.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def suite_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    saved = {name: os.environ.get(name) for name in RAY_ENV}
    os.environ.update(RAY_ENV)
    loopback = {"node_ip_address": "127.0.0.1"}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False, **loopback})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1, **loopback)
        yield cluster.address
    finally:
        cluster.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def bench_run(url: str, results: Path, *flags: str) -> subprocess.Popen[str]:
    scenarios = results.parent / "ray.toml"
    results.parent.mkdir(parents=True, exist_ok=True)
    scenarios.write_text(SCENARIOS)
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--endpoint", url, "--scenarios", str(scenarios),
         "--results-dir", str(results), "--reports-dir", str(results.parent / "reports"), *flags],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=suite_env(),
    )  # fmt: skip


def finished(process: subprocess.Popen[str]) -> str:
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 0, output
    return output


def the_run(results: Path) -> Path:
    (run_dir,) = run_dirs(results)
    return run_dir


def test_a_run_on_ray_is_the_run_two_worker_processes_give(ray_cluster: str, tmp_path: Path) -> None:
    with fake_server_process("--ttft", "0.02", "--itl", "0.01") as url:
        on_ray = finished(bench_run(url, tmp_path / "ray" / "results", "--ray", ray_cluster))
        local = finished(bench_run(url, tmp_path / "local" / "results", "--workers", "2"))
    assert "2 Ray workers share its 4 streams" in on_ray and "2 worker processes share its 4 streams" in local

    def shape(results: Path) -> list[tuple[object, ...]]:
        records = list(read_records(the_run(results)))
        # exact lengths: a conversation's later turns count only their new tokens when its history is reused
        assert all(r.timings and r.timings.prompt_n == r.prompt_tokens_target for r in records if not r.turn)
        return sorted((r.case_id, r.index, r.warmup, r.ok, r.prompt_tokens_target, r.turn) for r in records)

    # the same requests, each sent once, all answered: 1 warm-up and 12 closed, 8 open arrivals, and
    # 2 users x 2 conversations x 3 turns, each conversation's later turns built in its worker
    assert shape(tmp_path / "ray" / "results") == shape(tmp_path / "local" / "results")
    assert len(shape(tmp_path / "ray" / "results")) == 33 and all(row[3] for row in shape(tmp_path / "ray" / "results"))
    summaries = [json.loads((the_run(tmp_path / d / "results") / "summary.json").read_text()) for d in ("ray", "local")]
    assert [[(c["case_id"], c["requests"]) for c in s["cases"]] for s in summaries] == [
        [(c["case_id"], c["requests"]) for c in summaries[1]["cases"]]
    ] * 2
    assert [sorted(c) for c in summaries[0]["cases"]] == [sorted(c) for c in summaries[1]["cases"]]
    for d in ("ray", "local"):  # and a report each
        assert len(list((tmp_path / d / "reports").rglob("*.html"))) >= 1

    meta = json.loads((the_run(tmp_path / "ray" / "results") / "run.json").read_text())
    placements = [p for case in meta["workers"].values() for p in case["placements"]]
    assert len(placements) == 6 and {p["backend"] for p in placements} == {"ray"}
    for p in placements:
        assert p["node"] == "127.0.0.1" and p["pid"] != os.getpid()
        # one machine, one clock: a measured offset is zero to within the half round trip it states
        for end in ("clock_at_start", "clock_at_end"):
            assert abs(p[end]["offset_ms"]) <= p[end]["uncertainty_ms"] + 1e-6


def test_a_ray_worker_killed_mid_run_loses_only_its_in_flight_requests(ray_cluster: str, tmp_path: Path) -> None:
    results = tmp_path / "results"
    with fake_server_process("--ttft", "0.02", "--itl", "0.05") as url:
        process = closed_case_on_ray(url, ray_cluster, tmp_path, results)
        victim = wait_for_a_record_of_worker(results, worker=1, deadline=time.monotonic() + 120)
        os.kill(victim, signal.SIGKILL)
        output = finished(process)
    records = [r for r in read_records(the_run(results)) if not r.warmup]
    survivor = sorted(r.index for r in records if r.index % 2 == 0)
    lost_one = sorted(r.index for r in records if r.index % 2 == 1)
    assert survivor == list(range(0, 16, 2)) and all(r.ok for r in records)  # the other worker finished its share
    assert 1 <= len(lost_one) < 8  # what the killed one finished is kept; what it had in flight is not
    assert f"worker 1 (Ray, node 127.0.0.1, pid {victim}) died before its end" in output
    meta = json.loads((the_run(results) / "run.json").read_text())
    (case,) = meta["workers"].values()
    assert any(f"pid {victim}" in note for note in case["notes"])
    # and the case's notes say it too, in summary.json and so in the report, as the stored run reads back
    (summarised,) = json.loads((the_run(results) / "summary.json").read_text())["cases"]
    assert any(f"pid {victim}" in note for note in summarised["notes"])
    (stored,) = load_summary(the_run(results)).cases
    assert any(f"pid {victim}" in note for note in stored.notes)


def test_a_stopped_ray_worker_is_ended_after_its_silence_and_named(ray_cluster: str, tmp_path: Path) -> None:
    """SIGSTOP is what a call that never returns looks like from outside: no beat, no record, no end."""
    from bench.load.messages import SILENCE_S

    results = tmp_path / "results"
    with fake_server_process("--ttft", "0.02", "--itl", "0.05") as url:
        process = closed_case_on_ray(url, ray_cluster, tmp_path, results)
        victim = wait_for_a_record_of_worker(results, worker=1, deadline=time.monotonic() + 120)
        os.kill(victim, signal.SIGSTOP)
        try:
            output = finished(process)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
    records = [r for r in read_records(the_run(results)) if not r.warmup]
    assert sorted(r.index for r in records if r.index % 2 == 0) == list(range(0, 16, 2))
    assert f"worker 1 (Ray, node 127.0.0.1, pid {victim}) sent nothing for {SILENCE_S:g} s" in output


def closed_case_on_ray(url: str, ray_cluster: str, tmp_path: Path, results: Path) -> subprocess.Popen[str]:
    """``bench run --ray`` of one closed case: 2 streams a worker, 4 requests each, about 1 s a request."""
    (tmp_path / "ray.toml").write_text(SCENARIOS.split("[[scenario]]\nname = \"open\"")[0].replace(
        "output_tokens = 16", "output_tokens = 20").replace("repetitions = 3", "repetitions = 4"))  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--endpoint", url, "--scenarios", str(tmp_path / "ray.toml"),
         "--results-dir", str(results), "--ray", ray_cluster, "--no-report"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=suite_env(),
    )  # fmt: skip


def wait_for_a_record_of_worker(results: Path, worker: int, deadline: float) -> int:
    """The pid of the given worker, once a measured request of its share is stored (worker k sends k, k+2, ...)."""
    while time.monotonic() < deadline:
        for run_dir in run_dirs(results) if results.exists() else []:
            meta = json.loads((run_dir / "run.json").read_text())
            stored = [r for r in read_records(run_dir) if not r.warmup and r.index % 2 == worker]
            for case in (meta.get("workers") or {}).values():
                if stored:
                    return int(case["placements"][worker]["pid"])
        time.sleep(0.05)
    raise AssertionError("no request of the worker was stored in time")
