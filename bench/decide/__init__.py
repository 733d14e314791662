"""Decisions on measured figures: statistics, comparisons, noise, power plans, the nightly gate.

Enters: summaries and request records of runs, baselines, noise profiles.
Leaves: verdicts (changed or not, regressions, change points) and plans: values that a report
prints and that an exit code follows. ``stats`` is pure statistics with citations.
"""
