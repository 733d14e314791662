"""Terminal presentation: live progress during a run and the tables after it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.compare import Comparison
from bench.config import Case
from bench.loadgen import CaseOutcome
from bench.preflight import EndpointInfo
from bench.records import RequestRecord
from bench.summary import BaselineCheck, CaseSummary, Distribution, RunSummary


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _p50(dist: Distribution | None) -> str:
    return "-" if dist is None else f"{dist.p50:,.1f}"


class ConsoleObserver:
    """Progress bar over all requests, with the last request's server t/s."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[live]}"),
            console=console,
            transient=False,
            # Each refresh renders the bar while holding the GIL, stalling the event
            # loop that timestamps tokens: 2 Hz is enough for a person, and a log
            # file (cron, CI) gets the per-case lines alone.
            refresh_per_second=2,
            disable=not console.is_terminal,
        )
        self._task: TaskID | None = None
        self._failed = 0

    def message(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def run_started(self, run_dir: Path, cases: Sequence[Case]) -> None:
        total = sum(c.requests + c.warmup for c in cases)
        self.console.print(f"run directory: {run_dir}", markup=False, highlight=False)
        self.progress.start()
        self._task = self.progress.add_task("starting", total=total, live="")

    def case_started(self, case: Case) -> None:
        if self._task is not None:
            self.progress.update(self._task, description=case.case_id)

    def request_done(self, record: RequestRecord) -> None:
        if self._task is None:
            return
        if not record.ok:
            self._failed += 1
        live = ""
        if record.timings is not None:
            t = record.timings
            pp = t.prompt_n / t.prompt_ms * 1000 if t.prompt_ms > 0 else None
            tg = t.predicted_n / t.predicted_ms * 1000 if t.predicted_ms > 0 else None
            live = f"pp {_fmt(pp)} t/s  tg {_fmt(tg)} t/s"
        if self._failed:
            live += f"  [red]{self._failed} failed[/red]"
        self.progress.update(self._task, advance=1, live=live)

    def case_done(self, case: Case, summary: CaseSummary, outcome: CaseOutcome) -> None:
        # One plain line per case, so logs and cron mail show progress too.
        ttft = f"  TTFT p50 {summary.ttft_ms.p50:,.1f} ms" if summary.ttft_ms else ""
        self.console.print(
            f"{case.case_id}: {summary.ok}/{summary.requests} ok  pp {_fmt(summary.pp_tps)} t/s  "
            f"tg {_fmt(summary.tg_tps, 2)} t/s{ttft}",
            markup=False,
            highlight=False,
        )

    def stop(self) -> None:
        self.progress.stop()


def case_table(summary: RunSummary) -> Table:
    table = Table(title="Per case: server t/s from llama.cpp timings (* client estimate), latencies p50 ms")
    for name in ("case", "ok", "pp t/s", "tg t/s", "TTFT", "ITL", "e2e", "out t/s"):
        table.add_column(name, justify="left" if name == "case" else "right", overflow="fold")
    for c in summary.cases:
        estimate = " *" if c.pp_source == "client_estimate" or c.tg_source == "client_estimate" else ""
        table.add_row(
            escape(c.case_id),
            f"{c.ok}/{c.requests}",
            _fmt(c.pp_tps) + estimate,
            _fmt(c.tg_tps, 2) + estimate,
            _p50(c.ttft_ms),
            _p50(c.itl_ms),
            _p50(c.e2e_ms),
            _fmt(c.output_tps),
        )
    return table


def gpu_table(summary: RunSummary) -> Table:
    table = Table(title="GPU per case (VRAM GiB; utilisation % in prompt / generation phases, with sample counts)")
    for name in (
        "case",
        "samples",
        "VRAM peak",
        "VRAM mean",
        "util prompt",
        "util gen",
        "power W",
        "max °C",
        "throttle",
    ):
        table.add_column(name, justify="left" if name in ("case", "throttle") else "right", overflow="fold")
    for g in summary.gpu:
        table.add_row(
            escape(g.case_id),
            str(g.samples),
            _fmt(g.vram_peak_gib, 2),
            _fmt(g.vram_mean_gib, 2),
            f"{_fmt(g.gpu_util_prompt_pct)} ({g.prompt_samples})",
            f"{_fmt(g.gpu_util_generation_pct)} ({g.generation_samples})",
            _fmt(g.power_mean_w),
            _fmt(g.temperature_max_c, 0),
            ", ".join(g.throttle_reasons) or "-",
        )
    return table


def case_notes(summary: RunSummary) -> list[str]:
    lines = [f"{c.case_id}: {note}" for c in summary.cases for note in c.notes]
    for c in summary.cases:
        for error, count in c.errors.items():
            lines.append(f"{c.case_id}: {count} x {error}")
    return lines


def baseline_lines(checks: Sequence[BaselineCheck]) -> list[tuple[str, str]]:
    """One sentence per baseline with the style to print it in."""
    styles = {"pass": "green", "below": "red", "other model": "yellow"}
    lines = []
    for check in checks:
        where = f"scenario {check.scenario}" if check.scenario else "all cases"
        lines.append((f"{check.sentence()}  [{where}]", styles.get(check.status, "yellow")))
    return lines


def endpoint_table(info: EndpointInfo) -> Table:
    table = Table(title=f"Endpoint {info.base_url}", show_header=False)
    table.add_column("what")
    table.add_column("found")
    rows = [
        ("model", info.model or "-"),
        ("models listed", ", ".join(info.models_listed) if info.models_listed is not None else "no /v1/models"),
        ("build", info.build or "-"),
        ("n_ctx per slot", str(info.n_ctx) if info.n_ctx else "unknown (no /props)"),
        ("slots", str(info.total_slots) if info.total_slots else "unknown"),
        ("llama.cpp timings", "yes" if info.has_timings else "no (client-side figures only)"),
        ("usage", "yes" if info.has_usage else "no"),
        ("reasoning_content", "yes" if info.has_reasoning else "no"),
        ("finish_reason", info.finish_reason or "-"),
        ("exact prompt lengths", "yes (/apply-template + /tokenize)" if info.has_tokenize else "no (estimates)"),
        ("streaming", f"{'ok' if info.stream_ok else 'FAILED'}, tokens {info.stream_delivery}"),
    ]
    for what, found in rows:
        table.add_row(what, escape(found))
    return table


def comparison_table(comparison: Comparison) -> Table:
    from bench.compare import HEADERS, IMPROVED, REGRESSED, comparison_rows, headline

    table = Table(title=escape(f"A {comparison.a.run_id} vs B {comparison.b.run_id}"), caption=headline(comparison))
    for name in HEADERS:
        table.add_column(name, justify="left" if name in ("case", "figure", "verdict") else "right", overflow="fold")
    styles = {IMPROVED: "green", REGRESSED: "red"}
    for figure, row in zip(comparison.figures, comparison_rows(comparison), strict=True):
        table.add_row(*(escape(cell) for cell in row), style=styles.get(figure.verdict))
    return table
