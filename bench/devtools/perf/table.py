"""The comparison as Markdown: errors per level, then one summary row per tool with ratios to this suite."""

from __future__ import annotations

from collections.abc import Sequence

from bench.devtools.perf.compare_tools import DISTORTION_LIMIT_MS, Score

SUITE = "llama-server-bench"


def _ms(value: float | None) -> str:
    return "not reported" if value is None else f"{value:+.2f}"


def accuracy_table(scores: Sequence[Score]) -> str:
    lines = [
        "| streams | tool | TTFT error, median (p99) ms | TTFT error p99, first wave (later) ms "
        "| ITL error per request, median (p99) ms | ITL error per gap, p99 ms | connect p50 (p99) ms | failed "
        "| truth bound p99 ms |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in sorted(scores, key=lambda s: (s.streams, s.tool != SUITE, s.tool)):
        waves = "not split"
        if s.first_wave_ttft_err_p99_ms is not None:
            waves = f"{_ms(s.first_wave_ttft_err_p99_ms)} ({_ms(s.later_ttft_err_p99_ms)})"
        connect = "not reported"
        if s.connect_p50_ms is not None and s.connect_p99_ms is not None:
            connect = f"{s.connect_p50_ms:.2f} ({s.connect_p99_ms:.2f})"
        lines.append(
            f"| {s.streams} | {s.tool} | {_ms(s.ttft_err_median_ms)} ({_ms(s.ttft_err_p99_ms)}) | {waves} "
            f"| {_ms(s.itl_mean_err_median_ms)} ({_ms(s.itl_mean_err_p99_ms)}) | {_ms(s.itl_gap_err_p99_ms)} "
            f"| {connect} | {s.failed} | {s.truth_bound_p99_ms:.3f} |"
        )
    return "\n".join(lines)


def capacity(scores: Sequence[Score]) -> Score | None:
    """The highest level at which the tool's own distortion (TTFT or ITL p99 error) stayed within the limit.

    A level where the truth server itself fell behind (its writes' p99 past the limit: one thread a stream
    on one core) cannot vouch for the limit, whatever the differences of quantiles read there.
    """
    within = [
        s
        for s in scores
        if not s.failed and s.truth_bound_p99_ms <= DISTORTION_LIMIT_MS and s.distortion_ms <= DISTORTION_LIMIT_MS
    ]
    return max(within, key=lambda s: s.streams, default=None)


def _ratio(value: float | None, reference: float | None) -> str:
    if value is None or reference is None or reference <= 0:
        return ""  # no ratio to a zero or a negative (a memory slope inside noise)
    return f" ({value / reference:.1f}x)"


def summary_table(scores: Sequence[Score], at_streams: int) -> str:
    tools = sorted({s.tool for s in scores}, key=lambda t: (t != SUITE, t))
    by_tool = {t: [s for s in scores if s.tool == t] for t in tools}
    rows: dict[str, dict[str, float | None]] = {}
    for tool, mine in by_tool.items():
        cap = capacity(mine)
        at = next((s for s in mine if s.streams == at_streams), None)
        low = min(mine, key=lambda s: s.streams)
        high = max(mine, key=lambda s: s.streams)
        per_stream = None
        if high.streams > low.streams:
            per_stream = (high.peak_rss_mb - low.peak_rss_mb) / (high.streams - low.streams)
        rows[tool] = {
            "capacity": cap.streams if cap else 0,
            "events": cap.events_per_s if cap else None,
            "ttft_p99": abs(at.ttft_err_p99_ms) if at else None,
            "cpu": at.cpu_s if at else None,
            "wall": at.wall_s if at else None,
            "rss": low.peak_rss_mb,
            "per_stream": per_stream,
        }
    ref = rows.get(SUITE, {})
    lines = [
        f"| tool | streams on one core within {DISTORTION_LIMIT_MS:g} ms | token events/s there "
        f"| TTFT p99 error at {at_streams} streams, ms | CPU s for the {at_streams}-stream job "
        f"| wall s for it | memory at 1 stream, MB | MB per extra stream |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for tool, row in rows.items():
        # a tool that reports no per-gap times is judged on its per-request mean ITL, which hides stalls
        judged = "" if any(s.itl_gap_err_p99_ms is not None for s in by_tool[tool]) else " *"
        cells = [tool, f"{row['capacity']:.0f}" + _ratio(row["capacity"], ref.get("capacity")) + judged]
        cells.append("" if row["events"] is None else f"{row['events']:,.0f}")
        for key, fmt in (("ttft_p99", "{:.2f}"), ("cpu", "{:.1f}"), ("wall", "{:.1f}"), ("rss", "{:.0f}"),
                         ("per_stream", "{:.2f}")):  # fmt: skip
            value = row[key]
            cells.append("n/a" if value is None else fmt.format(value) + _ratio(value, ref.get(key)))
        lines.append("| " + " | ".join(cells) + " |")
    if any(not any(s.itl_gap_err_p99_ms is not None for s in mine) for mine in by_tool.values()):
        lines.append("")
        lines.append(
            "\\* reports no per-gap times: judged on TTFT and its per-request mean ITL, which averages stalls away"
        )
    return "\n".join(lines)
