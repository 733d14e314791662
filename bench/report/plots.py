"""Plots for the HTML reports: matplotlib figures rendered to inline SVG text.

SVG keeps the reports self-contained (no image files, no network) and sharp when
printed. Text stays text (``svg.fonttype = none``), so plots are small and
searchable. Every function returns one ``<svg>`` string or None when there is
nothing to draw, so a report shows a short note instead of an empty frame.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display, ever
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bench.decide.compare import FigureComparison, Verdict
from bench.figures.baselines import BaselineCheck, BaselineStatus
from bench.figures.summary import CaseSummary
from bench.records import RequestRecord
from bench.store.capacity import CapacityResult
from bench.telemetry.samples import GpuSample

matplotlib.rcParams.update(
    {
        "svg.fonttype": "none",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "figure.dpi": 100,
    }
)
BLUE, ORANGE, GREEN, RED, GREY = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#7f7f7f"
GIB = 1024**3


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prologue: it is inlined in HTML


def _baseline_line(ax: Any, check: BaselineCheck | None) -> None:
    """Draw a baseline only where it belongs to this run's model (else its scale would flatten the data)."""
    if check is None or check.status is BaselineStatus.OTHER_MODEL:
        return
    ax.axhline(check.baseline, color=RED, linestyle="--", linewidth=1, label=f"baseline {check.baseline:,g}")
    low = check.baseline * (1 - check.tolerance_pct / 100)
    ax.axhspan(low, check.baseline, color=RED, alpha=0.06, label=f"tolerance {check.tolerance_pct:g} %")


def throughput_by_length(
    cases: Sequence[CaseSummary], figure: str, axis: str, baseline: BaselineCheck | None
) -> str | None:
    """pp t/s vs prompt length, or tg t/s vs output length or depth: one line per scenario."""
    points: dict[str, list[tuple[int, float]]] = {}
    for case in cases:
        value = getattr(case, figure)
        if value is None or case.concurrency != 1:
            continue
        x = {"prompt": case.prompt_tokens, "output": case.output_tokens, "depth": case.depth}[axis]
        if axis != "depth" and case.depth != 0:
            continue
        points.setdefault(case.scenario, []).append((x, value))
    points = {k: sorted(v) for k, v in points.items()}
    if axis == "depth":
        points = {k: v for k, v in points.items() if any(x > 0 for x, _ in v)}
    # a scenario that varies this axis tells the story; single points only where none does
    varying = {k: v for k, v in points.items() if len({x for x, _ in v}) > 1}
    points = varying or points
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.2, 3.2))
    for (scenario, xy), colour in zip(points.items(), (BLUE, ORANGE, GREEN, GREY) * 4, strict=False):
        ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o", color=colour, label=scenario)
    _baseline_line(ax, baseline)
    label = {"prompt": "prompt tokens", "output": "generated tokens", "depth": "context depth (cached tokens)"}
    ax.set_xlabel(label[axis])
    ax.set_ylabel(f"{'pp' if figure == 'pp_tps' else 'tg'} t/s (server timings)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="best", fontsize=8)
    return _svg(fig)


def latency_percentiles(cases: Sequence[CaseSummary]) -> str | None:
    """TTFT, ITL and e2e p50 / p90 / p99 per case, one panel each (their scales differ)."""
    rows = [c for c in cases if c.e2e_ms is not None]
    if not rows:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(9.6, max(2.2, 0.32 * len(rows) + 1)), sharey=True)
    names = [c.case_id for c in rows]
    positions = range(len(rows))
    for ax, (metric, title) in zip(
        axes, (("ttft_ms", "TTFT"), ("itl_ms", "ITL"), ("e2e_ms", "e2e latency")), strict=True
    ):
        for offset, (pct, colour) in enumerate((("p50", BLUE), ("p90", ORANGE), ("p99", RED))):
            values = [getattr(getattr(c, metric), pct) if getattr(c, metric) else float("nan") for c in rows]
            ax.barh([p + (offset - 1) * 0.27 for p in positions], values, height=0.27, color=colour, label=pct)
        ax.set_title(f"{title} (ms)")
        ax.grid(axis="y", visible=False)
    axes[0].set_yticks(list(positions), names, fontsize=7)
    axes[0].invert_yaxis()
    axes[2].legend(fontsize=7, loc="lower right")
    return _svg(fig)


def by_turn(cases: Sequence[CaseSummary]) -> str | None:
    """Conversations turn by turn: TTFT p50 and pp over the new tokens (the history the cache saves grows)."""
    rows = [c for c in cases if c.cache is not None and len(c.cache.turns) > 1]
    if not rows:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.6, 3.2))
    for case in rows:
        assert case.cache is not None
        turns = [t.turn for t in case.cache.turns]
        left.plot(turns, [t.ttft_p50_ms or float("nan") for t in case.cache.turns], marker="o", label=case.case_id)
        right.plot(turns, [t.pp_tps or float("nan") for t in case.cache.turns], marker="o", label=case.case_id)
    left.set_title("TTFT p50 (ms)")
    right.set_title("pp t/s over the new tokens (cache hits)")
    for ax in (left, right):
        ax.set_xlabel("turn")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(bottom=0)
    right.legend(fontsize=7)
    return _svg(fig)


def throughput_by_concurrency(cases: Sequence[CaseSummary]) -> str | None:
    """Aggregate output t/s (tokens over wall time) and per-request tg vs concurrency."""
    groups: dict[tuple[str, int, int], list[CaseSummary]] = {}
    for case in cases:
        groups.setdefault((case.scenario, case.prompt_tokens, case.output_tokens), []).append(case)
    series = {
        k: sorted(v, key=lambda c: c.concurrency) for k, v in groups.items() if len({c.concurrency for c in v}) > 1
    }
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6.2, 3.2))
    for (scenario, prompt, output), rows in series.items():
        ax.plot(
            [c.concurrency for c in rows],
            [c.output_tps or 0 for c in rows],
            marker="o",
            label=f"{scenario} p{prompt} o{output}: aggregate",
        )
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("output t/s (all streams, wall time)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    return _svg(fig)


def gpu_timeline(samples: Sequence[GpuSample], records: Sequence[RequestRecord]) -> str | None:
    """VRAM, utilisation and power over the run, prompt phases shaded orange, generation blue."""
    if not samples:
        return None
    start = min(s.t for s in samples)
    fig, axes = plt.subplots(3, 1, figsize=(9.6, 5.2), sharex=True)
    t = [s.t - start for s in samples]
    series = (
        (
            "VRAM used (GiB)",
            [s.memory_used_bytes / GIB if s.memory_used_bytes is not None else float("nan") for s in samples],
        ),
        ("GPU utilisation (%)", [s.gpu_util_pct if s.gpu_util_pct is not None else float("nan") for s in samples]),
        ("power (W)", [s.power_w if s.power_w is not None else float("nan") for s in samples]),
    )
    for ax, (label, values) in zip(axes, series, strict=True):
        for r in records:
            if r.warmup or not r.ok:
                continue
            split = r.t_first_token if r.t_first_token is not None else r.t_sent
            ax.axvspan(r.t_sent - start, split - start, color=ORANGE, alpha=0.15, linewidth=0)
            ax.axvspan(split - start, r.t_end - start, color=BLUE, alpha=0.08, linewidth=0)
        ax.plot(t, values, color="black", linewidth=1)
        ax.set_ylabel(label, fontsize=8)
    axes[-1].set_xlabel("seconds since the first sample (orange: prompt phases, blue: generation)")
    return _svg(fig)


def forest(figures: Sequence[FigureComparison]) -> str | None:
    """Change B/A - 1 with its 95 % interval, one row per case and figure, coloured by verdict."""
    rows = [f for f in figures if f.ratio is not None and f.ci_low is not None and f.ci_high is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(8.0, max(2.0, 0.28 * len(rows) + 0.8)))
    for y, f in enumerate(rows):
        assert f.ratio is not None and f.ci_low is not None and f.ci_high is not None
        colour = {Verdict.IMPROVED: GREEN, Verdict.REGRESSED: RED}.get(f.verdict, GREY)
        change = (f.ratio - 1) * 100
        ax.plot([(f.ci_low - 1) * 100, (f.ci_high - 1) * 100], [y, y], color=colour, linewidth=2)
        ax.plot([change], [y], "o", color=colour)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)), [f"{f.case_id}  {f.label}" for f in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("change B vs A (%), 95 % CI; green improved, red regressed, grey same or undecided")
    ax.grid(axis="y", visible=False)
    return _svg(fig)


def distributions(
    case_ids: Sequence[str], values_a: Sequence[Sequence[float]], values_b: Sequence[Sequence[float]], ylabel: str
) -> str | None:
    """Per-request values of A and B side by side for each case: boxes plus every point."""
    keep = [i for i, (a, b) in enumerate(zip(values_a, values_b, strict=True)) if a and b]
    if not keep:
        return None
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(keep) + 1.5), 3.2))
    for slot, i in enumerate(keep):
        for side, (data, colour) in enumerate(((values_a[i], BLUE), (values_b[i], ORANGE))):
            x = slot * 3 + side
            ax.boxplot(
                [data],
                positions=[x],
                widths=0.7,
                patch_artist=True,
                boxprops={"facecolor": colour, "alpha": 0.3},
                medianprops={"color": colour},
                showfliers=False,
            )
            ax.plot([x] * len(data), data, ".", color=colour, alpha=0.7)
    ax.set_xticks([slot * 3 + 0.5 for slot in range(len(keep))], [case_ids[i] for i in keep], fontsize=7, rotation=20)
    ax.set_ylabel(ylabel)
    ax.plot([], [], "s", color=BLUE, label="A")
    ax.plot([], [], "s", color=ORANGE, label="B")
    ax.legend(fontsize=7)
    return _svg(fig)


def trend(
    dates: Sequence[float],
    values: Sequence[float],
    title: str,
    baseline: float | None,
    tolerance_pct: float | None,
    change_points: Sequence[tuple[int, str]],
) -> str:
    """One figure over the nightly runs, with baseline, tolerance band and change points marked."""
    # matplotlib's date axis counts days since 1970-01-01
    when = [d / 86400.0 for d in dates]
    fig, ax = plt.subplots(figsize=(8.0, 2.6))
    ax.plot(when, values, marker=".", color=BLUE, linewidth=1)
    if baseline is not None:
        ax.axhline(baseline, color=RED, linestyle="--", linewidth=1, label=f"baseline {baseline:,g}")
        if tolerance_pct:
            ax.axhspan(baseline * (1 - tolerance_pct / 100), baseline, color=RED, alpha=0.06)
    for index, text in change_points:
        ax.axvline(when[index], color=ORANGE, linewidth=1.2)
        ax.annotate(text, (when[index], max(values)), fontsize=7, color=ORANGE, rotation=90, va="top", ha="right")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(bottom=0)
    ax.xaxis_date()
    fig.autofmt_xdate()
    if baseline is not None:
        ax.legend(fontsize=7, loc="lower left")
    return _svg(fig)


def capacity_curve(result: CapacityResult) -> str | None:
    """Goodput and output t/s, and TTFT / TPOT against their SLO limits, by concurrency; the answer marked."""
    levels = result.levels
    if not levels:
        return None
    x = [level.concurrency for level in levels]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 5.2), sharex=True)
    top.plot(x, [lv.output_tps or 0 for lv in levels], marker="o", color=BLUE, label="output t/s (all requests)")
    ax2 = top.twinx()
    ax2.plot(x, [lv.goodput_rps or 0 for lv in levels], marker="s", color=GREEN, label="goodput req/s (met the SLO)")
    ax2.set_ylabel("goodput req/s")
    ax2.set_ylim(bottom=0)
    top.set_ylabel("output t/s")
    top.set_ylim(bottom=0)
    lines = top.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    top.legend(lines, [str(line.get_label()) for line in lines], fontsize=7, loc="lower left")
    # TTFT (seconds of queueing) and TPOT (tens of ms) live on different scales: one axis each
    tpot_axis = bottom.twinx()
    for axis, name, values, limit, color in (
        (bottom, "TTFT p99", [lv.ttft_p99_ms for lv in levels], result.slo.ttft_ms, ORANGE),
        (tpot_axis, "TPOT p50", [lv.tpot_p50_ms for lv in levels], result.slo.tpot_ms, RED),
    ):
        if any(v is not None for v in values):
            axis.plot(x, [v if v is not None else float("nan") for v in values], marker="o", color=color, label=name)
            if limit is not None:
                axis.axhline(limit, color=color, linestyle="--", linewidth=1, label=f"{name.split()[0]} limit")
        axis.set_ylim(bottom=0)
        axis.set_ylabel(f"{name.split()[0]} ms")
    for level in levels:
        if not level.holds:
            bottom.axvspan(level.concurrency - 0.4, level.concurrency + 0.4, color=RED, alpha=0.08)
    if result.capacity:
        for ax in (top, bottom):
            ax.axvline(result.capacity, color=GREY, linestyle=":", linewidth=1.2)
        top.text(result.capacity, top.get_ylim()[1] * 0.92, f" capacity {result.capacity}", fontsize=8, color=GREY)
    bottom.set_xlabel("concurrent streams (shaded: the SLO failed)")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles = bottom.get_legend_handles_labels()[0] + tpot_axis.get_legend_handles_labels()[0]
    bottom.legend(handles, [str(h.get_label()) for h in handles], fontsize=7, loc="upper left")
    return _svg(fig)


def bisect_steps(
    labels: Sequence[str], medians: Sequence[float | None], spreads: Sequence[tuple[float, float] | None],
    good: float, bad: float, band: float, culprit: Sequence[int],
) -> str | None:  # fmt: skip
    """Commits in order, the figure's median at each tested one with its runs' range, good and bad bands."""
    tested = [i for i, m in enumerate(medians) if m is not None]
    if not tested:
        return None
    fig, ax = plt.subplots(figsize=(max(6.4, 0.35 * len(labels)), 3.2))
    for level, colour, name in ((good, GREEN, "good"), (bad, RED, "bad")):
        ax.axhspan(level * (1 - band), level * (1 + band), color=colour, alpha=0.12, label=f"{name} ± spread")
        ax.axhline(level, color=colour, linewidth=0.8)
    for i in tested:
        low_high = spreads[i]
        value = medians[i]
        assert value is not None
        ax.plot([i], [value], marker="o", color=BLUE)
        if low_high is not None:
            ax.vlines(i, low_high[0], low_high[1], color=BLUE, linewidth=1)
    for i in culprit:
        ax.axvline(i, color=ORANGE, linewidth=1.2, linestyle="--")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("t/s (runs' median, range)")
    ax.legend(fontsize=7, loc="best")
    return _svg(fig)


def series(x: Sequence[float], y: Sequence[float], title: str, marks: Sequence[tuple[int, str]]) -> str:
    """One figure over time (minutes), with shifts marked at the point where each begins."""
    fig, ax = plt.subplots(figsize=(8.0, 2.6))
    ax.plot(x, y, marker=".", color=BLUE, linewidth=1)
    for index, text in marks:
        if 0 <= index < len(x):
            ax.axvline(x[index], color=ORANGE, linewidth=1.2)
            ax.annotate(text, (x[index], max(y)), fontsize=7, color=ORANGE, rotation=90, va="top", ha="right")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("minutes")
    ax.set_ylim(bottom=0)
    return _svg(fig)
