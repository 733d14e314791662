"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s bench_client`, `nox -s perf`.

Each session installs the project into its own virtualenv; pip's wheel cache
keeps the embedded llama-server from being compiled twice. The first compile is
the lean one README's commands make (docs/install.md); flags of yours in
CMAKE_ARGS (a CUDA build) are kept and added to.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


LEAN_BUILD = Path(__file__).resolve().parent / "packaging" / "llama-cpp-lean.cmake"


def install(session: nox.Session, *args: str) -> None:
    """``pip install`` with the lean llama.cpp build of README's commands, should pip compile it."""
    cmake_args = f"-DCMAKE_PROJECT_INCLUDE={shlex.quote(str(LEAN_BUILD))} {os.environ.get('CMAKE_ARGS', '')}".strip()
    jobs = os.environ.get("LLAMA_CPP_BUILD_JOBS") or str(os.cpu_count() or 1)
    session.install(*args, env={"CMAKE_ARGS": cmake_args, "LLAMA_CPP_BUILD_JOBS": jobs})


@nox.session
def tests(session: nox.Session) -> None:
    """The full test suite, integration tests against a real llama-server included."""
    install(session, "-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict over the library."""
    install(session, "-e", ".[dev]")
    session.run("ruff", "check", "bench", "tests", "noxfile.py")
    session.run("mypy")


@nox.session
def bench_client(session: nox.Session) -> None:
    """The suite's own cost (pytest-benchmark), checked against the README's targets; writes docs/measured/."""
    install(session, "-e", ".[test]")
    session.run(
        "pytest",
        "tests/test_client_benchmarks.py",
        "tests/test_telemetry_benchmarks.py",
        "tests/test_report_benchmarks.py",
        "tests/test_store_benchmarks.py",
        "tests/test_soak_benchmarks.py",
        "--benchmark-enable",
        "-s",
        *session.posargs,
    )


@nox.session
def perf(session: nox.Session) -> None:
    """This suite vs guidellm, AIPerf and llama-benchy against the compiled truth server (docs/performance.md).

    Each peer is pip-installed, pinned, into its own virtualenv under .perf/venvs on
    first use (guidellm needs torch: the CPU build is installed first). Arguments
    go to ``python -m bench.devtools.perf``, e.g. ``nox -s perf -- --streams 1,16``.
    """
    install(session, "-e", ".")
    session.run("python", "-m", "bench.devtools.perf", *session.posargs)
