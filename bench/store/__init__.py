"""The run directory and the history of runs: every file the suite writes, and their names.

Enters: records, samples, metadata and summaries from a run as it goes.
Leaves: ``results/<run-id>/`` written so that a crash loses nothing (JSON Lines, Parquet,
versioned JSON), and the same read back: one run, a label's history, telemetry tables.
"""
