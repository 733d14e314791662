"""llama-server-bench: benchmark and regression suite for llama-server and OpenAI-compatible endpoints.

The CLI (``bench``) is a thin layer over this library::

    from bench import RunOptions, load_scenario_set, load_baselines, run_benchmark, load_history
"""

from __future__ import annotations

__version__ = "0.1.0"

from bench.config import Baselines, Case, Scenario, ScenarioSet, load_baselines, load_scenario_set
from bench.errors import (
    AuthError,
    BenchError,
    ConfigError,
    EndpointError,
    ResultsError,
    ServerError,
    ServerStartError,
)
from bench.records import RequestRecord, ServerTimings
from bench.runner import RunOptions, RunResult, run_benchmark
from bench.store import load_history, load_run
from bench.summary import RunSummary, summarise_run

__all__ = [
    "AuthError",
    "Baselines",
    "BenchError",
    "Case",
    "ConfigError",
    "EndpointError",
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
    "run_benchmark",
    "summarise_run",
]
