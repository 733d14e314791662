"""llama-server-bench: benchmark and regression suite for llama-server and OpenAI-compatible endpoints.

The CLI (``bench``) is a thin layer over this library::

    from bench import RunOptions, load_scenario_set, load_baselines, run_benchmark, load_history, load_summary

The nightly gate is ``bench.flows.nightly.run_nightly``; comparisons ``bench.decide.compare.compare_runs``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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
from bench.version import __version__

if TYPE_CHECKING:
    from bench.figures.summary import RunSummary, load_summary, summarise_run
    from bench.flows.run import RunOptions, RunResult, run_benchmark
    from bench.inputs.baselines import Baselines, load_baselines
    from bench.inputs.scenarios import Case, Scenario, ScenarioSet, load_scenario_set
    from bench.records import RequestRecord, ServerTimings
    from bench.store.run_dir import load_history, load_run

# The rest loads on first use (PEP 562), so that importing one step (``bench.report.render``,
# ``bench.decide.stats``) does not import the runner, the workers and the transport with it.
_LAZY = {
    name: module
    for module, names in {
        "bench.figures.summary": ("RunSummary", "load_summary", "summarise_run"),
        "bench.flows.run": ("RunOptions", "RunResult", "run_benchmark"),
        "bench.inputs.baselines": ("Baselines", "load_baselines"),
        "bench.inputs.scenarios": ("Case", "Scenario", "ScenarioSet", "load_scenario_set"),
        "bench.records": ("RequestRecord", "ServerTimings"),
        "bench.store.run_dir": ("load_history", "load_run"),
    }.items()
    for name in names
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bench' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
