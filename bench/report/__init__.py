"""Views of results: HTML pages (run, comparison, capacity, trend, index), text tables, exports.

Enters: summaries, comparisons, verdicts and stored runs (``bench.figures``, ``bench.decide``,
``bench.store``). Leaves: self-contained HTML files under ``reports/``, terminal and Markdown rows
(``text``), pytest-benchmark JSON (``export``). Never imports ``bench.flows`` or ``bench.load``.
"""

from pathlib import Path

DEFAULT_REPORTS_DIR = Path("reports")
