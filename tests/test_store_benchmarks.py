"""Hot paths of the results store and the summary (pytest-benchmark; ``nox -s bench_client``).

Sizes are the real ones when benchmarks are enabled and small in the ordinary
test run, where pytest-benchmark runs each body once as a plain test.
"""

from __future__ import annotations

import time
from pathlib import Path

from pytest_benchmark.fixture import BenchmarkFixture

from bench.figures.summary import summarise_run
from bench.store.run_dir import RunStore, load_history
from tests.conftest import SuiteFigure
from tests.factories import noisy_records


def full_size(benchmark: BenchmarkFixture) -> bool:
    return not benchmark.disabled


def test_record_writing(benchmark: BenchmarkFixture, tmp_path: Path, suite_figure: SuiteFigure) -> None:
    records = noisy_records(10_000 if full_size(benchmark) else 200, pp_tps=650, tg_tps=72, cv=0.02, seed=1)
    store = RunStore.create(tmp_path)

    def write() -> float:
        started = time.perf_counter()
        for record in records:
            store.append(record)
        return (time.perf_counter() - started) / len(records)

    per_record_s = benchmark.pedantic(write, rounds=1, iterations=1)
    store.close()
    benchmark.extra_info["us_per_record"] = per_record_s * 1e6
    suite_figure("record_write_us", per_record_s * 1e6)
    print(f"\nrecord writing: {per_record_s * 1e6:.1f} us per record (128 token times each, flushed)")


# Before the million-record summary: that test leaves a heap whose garbage collections would
# slow this one by a half (3.0 s instead of 2.5 s here), measuring the test order, not the loader.
def test_history_of_a_year_of_nightlies_loads(
    benchmark: BenchmarkFixture, tmp_path: Path, suite_figure: SuiteFigure
) -> None:
    nights = 365 if full_size(benchmark) else 10
    for night in range(nights):
        store = RunStore.create(tmp_path, "nightly")
        store.write_meta(label="nightly", started=float(night))
        for record in noisy_records(45, pp_tps=650, tg_tps=72, cv=0.02, seed=night):
            store.append(record)
        store.finish("complete")

    def load() -> float:
        started = time.perf_counter()
        frame = load_history(tmp_path)
        assert len(frame) == nights * 45
        frame.groupby("run_id")["predicted_ms"].sum()
        return time.perf_counter() - started

    seconds = benchmark.pedantic(load, rounds=1, iterations=1)
    benchmark.extra_info["seconds"] = seconds
    suite_figure("history_365_nights_s", seconds)
    print(f"\nhistory of {nights} nightly runs (45 requests each) loaded and summed: {seconds:.2f} s")


def test_summary_of_many_records(benchmark: BenchmarkFixture, suite_figure: SuiteFigure) -> None:
    n = 1_000_000 if full_size(benchmark) else 2_000
    records = [r for seed in range(n // 1000) for r in noisy_records(1000, pp_tps=650, tg_tps=72, cv=0.02, seed=seed,
                                                                      case_id=f"c{seed % 10}")]  # fmt: skip

    def summarise() -> float:
        started = time.perf_counter()
        summary = summarise_run(records)
        assert summary.requests == n
        return time.perf_counter() - started

    seconds = benchmark.pedantic(summarise, rounds=1, iterations=1)
    benchmark.extra_info["seconds"] = seconds
    suite_figure("summary_1m_records_s", seconds)
    print(f"\nsummary of {n:,} records (10 cases, 128 token times each): {seconds:.2f} s")
