"""The suite's own accuracy and cost, side by side with the tools users would pick instead.

``python -m bench.devtools.perf`` (or ``nox -s perf``) compiles the truth server, installs
the peers in their own virtualenvs, runs every tool on the same jobs and writes
the tables that docs/performance.md quotes.
"""
