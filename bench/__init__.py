"""llama-server-bench: benchmark and regression suite for llama-server and OpenAI-compatible endpoints.

The CLI (``bench``) is a thin layer over this library::

    from bench import RunOptions, load_scenario_set, load_baselines, run_benchmark, load_history, load_summary

The nightly gate is ``bench.flows.workflows.run_nightly``; comparisons ``bench.decide.compare.compare_runs``.
"""

from __future__ import annotations

from bench.errors import (
    AuthError,
    BenchError,
    ConfigError,
    EndpointError,
    ExitCode,
    ResultsError,
    ServerError,
    ServerStartError,
)
from bench.figures.summary import RunSummary, load_summary, summarise_run
from bench.flows.run import RunOptions, RunResult, run_benchmark
from bench.inputs.baselines import Baselines, load_baselines
from bench.inputs.scenarios import Case, Scenario, ScenarioSet, load_scenario_set
from bench.records import RequestRecord, ServerTimings
from bench.store.run_dir import load_history, load_run
from bench.version import __version__

__all__ = [
    "AuthError",
    "Baselines",
    "BenchError",
    "Case",
    "ConfigError",
    "EndpointError",
    "ExitCode",
    "RequestRecord",
    "ResultsError",
    "RunOptions",
    "RunResult",
    "RunSummary",
    "Scenario",
    "ScenarioSet",
    "ServerError",
    "ServerStartError",
    "ServerTimings",
    "__version__",
    "load_baselines",
    "load_history",
    "load_run",
    "load_scenario_set",
    "load_summary",
    "run_benchmark",
    "summarise_run",
]
