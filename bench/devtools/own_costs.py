"""The suite's own costs: the targets docs/own-costs.md promises, checked and tabled from measured figures.

The benchmarks (``nox -s bench_client``: pytest-benchmark with ``--benchmark-enable``)
record each figure through the ``suite_figure`` test fixture, which checks it
against its target here (with ``SLACK``: a loaded machine is slower, not broken)
and writes it to ``FIGURES_FILE``. ``python -m bench.devtools.own_costs`` then
writes the table of docs/own-costs.md between its markers from that file, so no figure in
the table is typed by hand; ``--check`` fails when the page and the file differ.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FIGURES_FILE = ROOT / "docs" / "measured" / "suite-costs.json"
PAGE = ROOT / "docs" / "own-costs.md"
BEGIN = "<!-- suite-costs: begin (python -m bench.devtools.own_costs writes this table) -->"
END = "<!-- suite-costs: end -->"
SLACK = 1.5  # a target is breached only beyond 1.5 x its bound (or below bound / 1.5)
SCHEMA = 1


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    keys: tuple[str, ...]  # the figures shown, in the order ``shown`` formats them
    shown: str  # e.g. "{0:.2f} ms ({1:.2f} ms)"
    target: str = ""  # as the page states it
    limit: float | None = None  # the bound on the first key
    higher_is_better: bool = False

    def breach(self, figures: dict[str, float]) -> str | None:
        """Why the first figure misses its target even with the slack, else None."""
        if self.limit is None or self.keys[0] not in figures:
            return None
        value = figures[self.keys[0]]
        if self.higher_is_better and value < self.limit / SLACK:
            return f"{self.label}: {value:,.6g} is below {self.limit:,.6g} / {SLACK} (target {self.target})"
        if not self.higher_is_better and value > self.limit * SLACK:
            return f"{self.label}: {value:,.6g} is above {self.limit:,.6g} x {SLACK} (target {self.target})"
        return None


ROWS: tuple[Row, ...] = (
    Row("SSE token events processed per CPU-second by the client, one stream", ("client_events_per_cpu_s",),
        "{0:,.0f}", ">= 10,000", 10_000, higher_is_better=True),
    Row("client CPU per streamed request of 2 tokens on a kept-alive connection (httpcore's lane, for TLS)",
        ("request_turnover_cpu_us", "request_turnover_cpu_us_httpcore"), "{0:.0f} us ({1:.0f} us)"),
    Row("added TTFT (client receipt - server's own send time), median, 1 stream", ("ttft_added_ms_median_1",),
        "{0:.2f} ms", "< 1 ms", 1.0),
    Row("added TTFT, median (p99), 64 streams started at once on new connections",
        ("ttft_added_ms_median_64_cold", "ttft_added_ms_p99_64_cold"), "{0:.2f} ms ({1:.2f} ms)", "< 1 ms", 1.0),
    # Asserted since the lean lane (bench/transport/h1.py) read kernel stamps without a coroutine per
    # event; through httpcore it crossed 1 ms in some runs on one event loop.
    Row("the same, a second wave of 64 at once on kept-alive connections",
        ("ttft_added_ms_median_64_warm", "ttft_added_ms_p99_64_warm"), "{0:.2f} ms ({1:.2f} ms)", "< 1 ms", 1.0),
    Row("telemetry sampler, steady-state CPU at 250 ms (NVML + /metrics)", ("sampler_cpu_pct_250ms",),
        "{0:.2f} % of one core", "< 1 %", 1.0),
    Row("telemetry sampler, steady-state CPU at 50 ms", ("sampler_cpu_pct_50ms",), "{0:.2f} % of one core"),
    Row("median ITL error vs the server's send times, with the sampler at 50 ms minus without",
        ("sampler_itl_error_added_ms", "itl_error_ms_median_without", "itl_error_ms_median_with"),
        "{0:+.3f} ms ({1:.3f} without, {2:.3f} with)", "< 0.1 ms: no difference beyond noise", 0.1),
    Row("writing one request record (128 token times, flushed)", ("record_write_us",), "{0:.0f} us"),
    Row("summary of 1,000,000 requests (10 cases, 128 token times each)", ("summary_1m_records_s",), "{0:.1f} s"),
    Row("history of 365 nightly runs (45 requests each) loaded into pandas and summed", ("history_365_nights_s",),
        "{0:.2f} s", "< 2 s", 2.0),
    Row("trend report over 365 nightly runs (20 panels)", ("trend_report_365_nights_s",), "{0:.2f} s"),
    Row("soak: 10,000 streamed requests at 16 streams against the fake, records lost", ("soak_records_lost",),
        "{0:.0f}", "0", 0.0),
    Row("soak: resident memory growth per request after the first quarter (each record is kept for the summary)",
        ("soak_rss_growth_kib_per_request",), "{0:.2f} KiB", "< 4 KiB: no leak beyond the records", 4.0),
)  # fmt: skip
KEYS = frozenset(key for row in ROWS for key in row.keys)


def read_figures(path: Path = FIGURES_FILE) -> dict[str, Any]:
    if not path.exists():
        return {"schema_version": SCHEMA, "figures": {}}
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def record(key: str, value: float, path: Path = FIGURES_FILE) -> None:
    """Keep one measured figure, with when and where it was measured."""
    if key not in KEYS:
        raise KeyError(f"{key} is not a figure of the own-cost table; add a Row for it")
    document = read_figures(path)
    document["figures"][key] = value
    document["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    document["measured"] = time.strftime("%Y-%m-%d", time.gmtime())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def breaches(figures: dict[str, float]) -> list[str]:
    return [why for row in ROWS if (why := row.breach(figures)) is not None]


def table(document: dict[str, Any]) -> str:
    figures = document.get("figures", {})
    lines = [
        f"Measured {document.get('measured', '-')} on {document.get('machine', '-')} "
        f"(`{FIGURES_FILE.relative_to(ROOT)}`):",
        "",
        "| figure | measured | target |",
        "| --- | --- | --- |",
    ]
    for row in ROWS:
        values = [figures.get(key) for key in row.keys]
        shown = "not measured" if any(v is None for v in values) else row.shown.format(*values)
        lines.append(f"| {row.label} | {shown} | {row.target} |")
    return "\n".join(lines)


def readme_with_table(readme: str, document: dict[str, Any]) -> str:
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{PAGE.name} has no {BEGIN} ... {END} markers")
    return readme[: start + len(BEGIN)] + "\n" + table(document) + "\n" + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.devtools.own_costs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the own-cost table is not the measured one")
    args = parser.parse_args(argv)
    document = read_figures()
    current = PAGE.read_text(encoding="utf-8")
    wanted = readme_with_table(current, document)
    if args.check:
        if wanted != current:
            print(
                f"the own-cost table differs from {FIGURES_FILE}; run python -m bench.devtools.own_costs",
                file=sys.stderr,
            )
            return 1
        return 0
    PAGE.write_text(wanted, encoding="utf-8")
    for why in breaches(document.get("figures", {})):
        print(f"target missed: {why}", file=sys.stderr)
    print(f"wrote the table into {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
