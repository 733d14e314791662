"""Self-contained HTML reports: run, comparison and nightly trend pages, and an index."""

from bench.report.render import render_comparison_report, render_run_report, render_trend_report

__all__ = ["render_comparison_report", "render_run_report", "render_trend_report"]
