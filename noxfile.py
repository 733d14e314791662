"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s bench_client`, `nox -s perf`.

Each session installs the project into its own virtualenv; pip's wheel cache
keeps the embedded llama-server from being compiled twice.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The full test suite, integration tests against a real llama-server included."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict over the library."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", "bench", "tests", "noxfile.py")
    session.run("mypy")


@nox.session
def bench_client(session: nox.Session) -> None:
    """The suite's own cost (pytest-benchmark), checked against the README's targets; writes docs/measured/."""
    session.install("-e", ".[test]")
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
    session.install("-e", ".")
    session.run("python", "-m", "bench.devtools.perf", *session.posargs)
