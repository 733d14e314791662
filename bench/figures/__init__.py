"""Per-case figures computed from request records: what a run measured.

Enters: the ``RequestRecord`` objects of a case (and its telemetry samples).
Leaves: throughput as ratios of sums (pp, tg), latency distributions, stream delivery, prompt-cache
reuse, draft acceptance, SLO attainment and goodput, gathered per case and against the baselines
into a ``RunSummary``.
"""
