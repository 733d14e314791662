"""Comparisons as text: rows for a table, a one-line headline, Markdown for an issue or a PR.

The terminal (``bench.cli.console``), the HTML report and ``--markdown`` all
print the same rows, so a figure reads the same wherever it is shown.
"""

from __future__ import annotations

from bench.decide.compare import TESTED, Comparison, FigureComparison, Multiplicity, Verdict


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
    if f.verdict == Verdict.NO_CHANGE and f.detectable is not None:
        # what "no change" is worth: the change these data would have found (80 % power, at alpha)
        return f"{f.verdict} (could find {f.detectable * 100:.1f} %)"
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
        if not rows:
            continue
        counts = [
            f"{n} {verdict}"
            for verdict in (Verdict.REGRESSED, Verdict.IMPROVED)
            if (n := sum(f.verdict == verdict for f in rows))
        ]
        parts.append(f"{family} {', '.join(counts) if counts else 'no significant change'} of {len(rows)}")
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
