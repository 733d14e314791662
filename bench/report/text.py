"""Comparisons as text: rows for a table, a one-line headline, Markdown for an issue or a PR.

The terminal (``bench.cli.console``), the HTML report and ``--markdown`` all
print the same rows, so a figure reads the same wherever it is shown.
"""

from __future__ import annotations

from collections.abc import Sequence

from bench.decide.compare import CHANGED, TESTED, Comparison, FigureComparison, Multiplicity, Verdict


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{(ratio - 1) * 100:+.1f} %"


def _change(f: FigureComparison) -> str:
    """The change, and the two figures it is the ratio of (medians), so A, B and the change agree."""
    if f.a_center is None or f.b_center is None:
        return _pct(f.ratio)
    digits = 2 if max(abs(f.a_center), abs(f.b_center)) < 1000 else 0
    return f"{_pct(f.ratio)} ({_fmt(f.a_center, digits)} -> {_fmt(f.b_center, digits)})"


def _p(f: FigureComparison) -> str:
    if f.p_value is None:
        return "-"
    return f"{f.p_value:.3g}" if f.p_adjusted is None else f"{f.p_value:.3g} ({f.p_adjusted:.3g})"


def comparison_rows(comparison: Comparison) -> list[list[str]]:
    rows = []
    for f in comparison.figures:
        interval = "-" if f.ci_low is None else f"[{_pct(f.ci_low)}, {_pct(f.ci_high)}]"
        rows.append(
            [
                f.case_id,
                f"{f.label} ({f.unit})",
                _fmt(f.a),
                _fmt(f.b),
                _change(f),
                interval,
                _p(f),
                f"{f.n_a}/{f.n_b}",
                _verdict(f),
            ]
        )
    return rows


def _verdict(f: FigureComparison) -> str:
    if f.reason and f.verdict in (Verdict.NOT_COMPARABLE, Verdict.NOT_TESTED):
        return f"{f.verdict} ({f.reason})"
    if f.verdict is Verdict.SAME:
        return f"same within ±{f.margin:.0%}"
    if f.verdict is Verdict.UNDECIDED:
        # what it would take: more runs (counted as bench plan counts them), or a spread between runs first
        if f.more_runs is not None:
            return f"undecided (about {f.more_runs} more run{'s' if f.more_runs > 1 else ''} a side)"
        if f.spread is None:
            return "undecided (needs runs a side or a noise profile)"
        return "undecided (more than 100 runs a side)"
    return str(f.verdict)


# A and B: the run figures (pp and tg as ratios of sums); the change: of the per-request medians
# (of block medians for pooled runs), which it shows in brackets; p: raw (adjusted for the family).
HEADERS = ["case", "figure", "A", "B", "change (medians)", "95 % CI", "p (adjusted)", "n A/B", "verdict"]
FAMILIES = {"pp_tps": "pp", "tg_tps": "tg", "ttft_ms": "latency", "itl_ms": "latency", "e2e_ms": "latency"}


def headline(comparison: Comparison) -> str:
    """Per figure family over the whole scenario set, and the rule that held the family together."""
    parts = []
    for family in dict.fromkeys(FAMILIES.values()):
        rows = [f for f in comparison.figures if FAMILIES.get(f.figure) == family and f.verdict in TESTED]
        if rows:
            parts.append(f"{family} {family_answer(rows)}")
    if not parts:
        parts.append("nothing tested")
    adjustment = {
        Multiplicity.HOLM: "Holm-adjusted (family-wise error)",
        Multiplicity.BH: "Benjamini-Hochberg-adjusted (false discovery rate)",
        Multiplicity.NONE: "unadjusted",
    }[comparison.adjustment]
    rule = (
        f"{adjustment} over {comparison.tests} tests, alpha {comparison.alpha}, min effect {comparison.min_effect:.0%}"
    )
    text = f"B vs A: {'; '.join(parts)} ({rule})"
    # the requests of one run share its server start, clocks and neighbours: where the spread
    # between runs came from (several runs, a profile, the label's history) or that it is missing
    if note := comparison.noise_note:
        text += f"; {note}"
    return text


def family_answer(rows: Sequence[FigureComparison]) -> str:
    """A family's answer: 'regressed -7.1 % (-9.0 to -5.2 %)', 'the same within ±5 %', 'undecided, about 6 more ...'.

    One figure is answered in full; several as counts, with the largest change and the most runs
    any undecided one needs.
    """
    changed = [f for f in rows if f.verdict in CHANGED]
    same = [f for f in rows if f.verdict is Verdict.SAME]
    undecided = [f for f in rows if f.verdict is Verdict.UNDECIDED]
    of = f" of {len(rows)}" if len(rows) > 1 else ""
    words = []
    for verdict in CHANGED:
        hits = [f for f in changed if f.verdict is verdict]
        if hits:
            largest = max(hits, key=lambda f: abs((f.ratio or 1) - 1))
            interval = f"{_pct(largest.ci_low)} to {_pct(largest.ci_high)}".replace(" %", "")
            count = f"{len(hits)}{of} {verdict}, largest" if len(rows) > 1 else str(verdict)
            words.append(f"{count} {_pct(largest.ratio)} ({interval} %)")
    if same:
        count = f"{len(same)}{of} " if len(rows) > 1 else ""
        words.append(f"{count}the same within ±{max(f.margin for f in same):.0%}")
    if undecided:
        count = f"{len(undecided)}{of} " if len(rows) > 1 else ""
        needs = [f.more_runs for f in undecided]
        if any(f.spread is None for f in undecided):
            more = ""  # no spread between runs to count runs with: the comparison's note says what to do
        elif None in needs:
            more = ", more than 100 runs a side"
        else:
            more = f", about {max(n for n in needs if n is not None)} more runs a side"
        words.append(f"{count}undecided{more}")
    return "; ".join(words) if len(words) == 1 else ", ".join(words)


def to_markdown(comparison: Comparison) -> str:
    lines = [
        f"**A** `{comparison.a.run_id}` ({comparison.a.label or 'no label'}) vs "
        f"**B** `{comparison.b.run_id}` ({comparison.b.label or 'no label'})",
        "",
    ]
    lines += [f"- {d}" for d in comparison.differences]
    lines += ["", headline(comparison), "", "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in comparison_rows(comparison):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines) + "\n"
