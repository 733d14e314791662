"""What a user hands the suite, parsed into typed, frozen objects.

Enters: scenario sets (TOML; the built-in ones in ``scenarios/``), baselines (``baselines.toml``),
traces (JSON Lines; the built-in ``traces/sample.jsonl``), corpora, length distributions and SLO
definitions, each read through ``bench.doors.files``.
Leaves: ``ScenarioSet`` and its ``Case`` objects, ``Baselines``, ``Trace``, ``Slo``; every error a
``ConfigError`` naming the file, line and field.
"""
