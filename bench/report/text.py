"""Comparisons as text: rows for a table, a one-line headline, Markdown for an issue or a PR.

The terminal (``bench.cli.console``), the HTML report and ``--markdown`` all
print the same rows, so a figure reads the same wherever it is shown.
"""

from __future__ import annotations

from bench.compare import Comparison, Verdict


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(ratio: float | None) -> str:
    return "-" if ratio is None else f"{(ratio - 1) * 100:+.1f} %"


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
                _pct(f.ratio),
                interval,
                "-" if f.p_value is None else f"{f.p_value:.3g}",
                f"{f.n_a}/{f.n_b}",
                f.verdict
                + (f" ({f.reason})" if f.reason and f.verdict in (Verdict.NOT_COMPARABLE, Verdict.NOT_TESTED) else ""),
            ]
        )
    return rows


HEADERS = ["case", "figure", "A", "B", "change", "95 % CI", "p", "n A/B", "verdict"]


def headline(comparison: Comparison) -> str:
    regressed = comparison.by_verdict(Verdict.REGRESSED)
    improved = comparison.by_verdict(Verdict.IMPROVED)
    parts = []
    if regressed:
        parts.append(f"{len(regressed)} regressed")
    if improved:
        parts.append(f"{len(improved)} improved")
    if not parts:
        parts.append("no significant change")
    tested = sum(1 for f in comparison.figures if f.verdict in (Verdict.IMPROVED, Verdict.REGRESSED, Verdict.NO_CHANGE))
    rule = f"alpha {comparison.alpha}, min effect {comparison.min_effect:.0%}"
    return f"B vs A: {', '.join(parts)} over {tested} figure(s) ({rule})"


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
