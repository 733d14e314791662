"""A long run against the fake server keeps every record and does not grow beyond its records.

With ``--benchmark-enable`` (``nox -s bench_client``) it is 10,000 streamed requests at 16
streams against the fake in its own process, so this process's memory is the suite's alone;
the normal test run does 208. The run keeps each record in memory for its summary, as it
must, so "flat" is measured as the growth per request after the first quarter: a leak
(connections, buffers, tasks, telemetry) would show as far more than a record's size.
"""

from __future__ import annotations

from pathlib import Path

from pytest_benchmark.fixture import BenchmarkFixture

from bench.devtools.testing.fake_server import fake_server_process
from bench.flows.run import QuietObserver, RunOptions, run_benchmark
from bench.inputs.scenarios import parse_scenario_set
from bench.records import RequestRecord
from bench.store.run_dir import read_records
from tests.conftest import SuiteFigure

STREAMS = 16


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


class Checkpoints(QuietObserver):
    """The process's resident memory after each quarter of the requests."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.rss_kib: dict[int, int] = {}

    def request_done(self, record: RequestRecord) -> None:
        self.done += 1
        if self.done % (self.total // 4) == 0:
            self.rss_kib[self.done] = rss_kib()


def test_a_soak_run_keeps_every_record_and_grows_only_by_its_records(
    benchmark: BenchmarkFixture, tmp_path: Path, suite_figure: SuiteFigure
) -> None:
    requests = 13 * STREAMS if benchmark.disabled else 10_000  # whole rounds of the 16 streams
    scenario = {
        "name": "soak", "prompt_tokens": 40, "output_tokens": 8, "concurrency": STREAMS, "pattern": "concurrent",
        "repetitions": requests // STREAMS, "warmup": 0, "max_duration_s": 3600,
    }  # fmt: skip
    with fake_server_process() as url:
        checkpoints = Checkpoints(requests)
        options = RunOptions(
            scenarios=parse_scenario_set({"scenario": [scenario]}, "soak"), endpoint=url, results_dir=tmp_path
        )
        result = benchmark.pedantic(lambda: run_benchmark(options, checkpoints), rounds=1, iterations=1)
    records = list(read_records(result.run_dir))
    lost = requests - len(records)
    assert lost == 0 and result.summary.requests == requests and result.summary.failed == 0
    quarter, whole = checkpoints.rss_kib[requests // 4], checkpoints.rss_kib[requests]
    growth_kib = (whole - quarter) / (requests - requests // 4)
    benchmark.extra_info.update(rss_kib=checkpoints.rss_kib, growth_kib_per_request=growth_kib)
    print(f"\nsoak: {requests:,} requests, {lost} lost, RSS {checkpoints.rss_kib} KiB, {growth_kib:.2f} KiB a request")
    suite_figure("soak_records_lost", float(lost))
    suite_figure("soak_rss_growth_kib_per_request", growth_kib)
