"""Export a run in pytest-benchmark's JSON format, one benchmark per case and figure.

pytest-benchmark compares *times* (lower is better), so every figure is exported
as seconds per unit of work, one value per request:

- ``pp``: seconds per prompt token (``prompt_ms / prompt_n``), the inverse of pp t/s;
- ``tg``: seconds per generated token (``predicted_ms / predicted_n``);
- ``ttft`` and ``e2e``: seconds.

Then ``pytest-benchmark compare`` and its history tools read our runs, and
``--benchmark-compare-fail=mean:5%`` gates on them. Statistics come from
pytest-benchmark's own ``Stats`` class, so they mean what its tables say.
"""

from __future__ import annotations

import datetime as dt
import math
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.figures.throughput import pp_sample, tg_sample
from bench.records import RequestRecord
from bench.store.run_dir import read_records, read_run_meta
from bench.version import __version__


def _seconds_per_token(sample: tuple[float, float] | None) -> float | None:
    return None if sample is None or sample[0] == 0 else sample[1] / sample[0]


EXPORTED: dict[str, Callable[[RequestRecord], float | None]] = {
    "pp": lambda r: _seconds_per_token(pp_sample(r)),
    "tg": lambda r: _seconds_per_token(tg_sample(r)),
    "ttft": lambda r: r.ttft_ms / 1000 if r.ttft_ms is not None else None,
    "e2e": lambda r: r.e2e_ms / 1000,
}


def to_pytest_benchmark(run_dir: Path) -> dict[str, Any]:
    import pytest_benchmark
    import pytest_benchmark.stats

    # pytest-benchmark is untyped; its Stats class defines the figures its tables show
    stats_class: Any = pytest_benchmark.stats.Stats

    meta = read_run_meta(run_dir)
    records = [r for r in read_records(run_dir) if r.ok and not r.warmup]
    benchmarks = []
    for case_id in sorted({r.case_id for r in records}):
        in_case = [r for r in records if r.case_id == case_id]
        for figure, value in EXPORTED.items():
            values = [v for v in map(value, in_case) if v is not None and math.isfinite(v)]
            if not values:
                continue
            stats = stats_class()
            for v in values:
                stats.update(v)
            benchmarks.append(
                {
                    "group": case_id,
                    "name": f"{case_id}::{figure}",
                    "fullname": f"llama-server-bench::{case_id}::{figure}",
                    "params": {"figure": figure},
                    "param": figure,
                    "extra_info": {
                        "unit": "seconds per token" if figure in ("pp", "tg") else "seconds",
                        "run_id": meta.run_id,
                        "label": meta.label,
                    },
                    "options": {
                        "disable_gc": False,
                        "timer": "perf_counter",
                        "min_rounds": 1,
                        "max_time": 0.0,
                        "min_time": 0.0,
                        "warmup": False,
                    },
                    "stats": {**stats.as_dict(), "iterations": 1, "data": values},
                }
            )
    started = meta.started or 0
    return {
        "machine_info": {
            "node": str(meta.host or ""),
            "processor": platform.processor(),
            "machine": platform.machine(),
            "python_implementation": platform.python_implementation(),
            "python_version": str(meta.python or sys.version.split()[0]),
            "python_compiler": platform.python_compiler(),
            "release": platform.release(),
            "system": platform.system(),
            "cpu": {},
            "llama_server": {
                "build": meta.build,
                "model": meta.model,
                "server_flags": meta.server_flags,
            },
        },
        "commit_info": {
            "id": meta.suite_git_sha,
            "project": "llama-server-bench",
            "dirty": False,
            "branch": None,
            "time": None,
            "author_time": None,
        },
        "benchmarks": benchmarks,
        "datetime": dt.datetime.fromtimestamp(float(started), tz=dt.UTC).isoformat(),
        "version": pytest_benchmark.__version__,
        "llama_server_bench_version": __version__,
    }
