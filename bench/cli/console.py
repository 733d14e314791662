"""Terminal presentation: live progress during a run and the tables after it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.decide.compare import Comparison, Verdict
from bench.decide.noise import NoiseProfile
from bench.figures.baselines import BaselineCheck, BaselineStatus
from bench.figures.summary import CaseSummary, Distribution, RunSummary
from bench.inputs.scenarios import Case
from bench.load.loadgen import CaseOutcome
from bench.load.preflight import EndpointInfo, PromptCache
from bench.records import FigureSource, RequestRecord
from bench.report.text import HEADERS, comparison_rows, headline
from bench.store.capacity import CapacityResult


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
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def run_started(self, run_dir: Path, cases: Sequence[Case]) -> None:
        total = sum(c.measured_requests + c.warmup for c in cases)
        self.console.print(f"run directory: {run_dir}", markup=False, highlight=False, soft_wrap=True)
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
        cold = " (connect included: cold)" if summary.cold else ""
        ttft = f"  TTFT p50 {summary.ttft_ms.p50:,.1f} ms{cold}" if summary.ttft_ms else ""
        attainment = summary.slo.attainment if summary.slo is not None else None
        slo = f"  SLO met {attainment * 100:.1f} %" if attainment is not None else ""
        self.console.print(
            f"{case.case_id}: {summary.ok}/{summary.requests} ok  pp {_fmt(summary.pp_tps)} t/s  "
            f"tg {_fmt(summary.tg_tps, 2)} t/s{ttft}{slo}",
            markup=False,
            highlight=False,
            soft_wrap=True,  # one line in a log, however long
        )

    def stop(self) -> None:
        self.progress.stop()

    # ``with ConsoleObserver(console) as observer:`` stops the progress display however the work ends
    def __enter__(self) -> ConsoleObserver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass(frozen=True, slots=True)
class Tabular:
    """A table as data: printed by rich on a terminal, as plain aligned lines elsewhere."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    left: frozenset[str] = frozenset({"case"})  # columns aligned left; the rest right
    caption: str = ""
    row_styles: tuple[str | None, ...] = ()
    show_header: bool = True


def show(console: Console, table: Tabular) -> None:
    """Print a table: rich on a terminal; in a pipe, a file, a cron mail or a CI log one row a line.

    rich folds cells to fit 80 columns when it cannot see a terminal, which breaks
    every cell into one-word lines; plain lines are padded to the widest cell
    instead and never wrap.
    """
    if console.is_terminal:
        console.print(_rich(table))
        return
    for line in plain_lines(table):
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def plain_lines(table: Tabular) -> list[str]:
    rows = [table.headers, *table.rows] if table.show_header else list(table.rows)
    widths = [max(len(row[i]) for row in rows) for i in range(len(table.headers))]

    def line(row: Sequence[str]) -> str:
        cells = [
            cell.ljust(width) if name in table.left else cell.rjust(width)
            for name, cell, width in zip(table.headers, row, widths, strict=True)
        ]
        return "  ".join(cells).rstrip()

    lines = [table.title] if table.title else []
    lines += [line(row) for row in rows]
    if table.caption:
        lines.append(table.caption)
    return lines


def _rich(table: Tabular) -> Table:
    rich_table = Table(
        title=escape(table.title) if table.title else None,
        caption=escape(table.caption) if table.caption else None,
        show_header=table.show_header,
    )
    for name in table.headers:
        rich_table.add_column(name, justify="left" if name in table.left else "right", overflow="fold")
    styles = table.row_styles or (None,) * len(table.rows)
    for row, style in zip(table.rows, styles, strict=True):
        rich_table.add_row(*(escape(cell) for cell in row), style=style)
    return rich_table


def case_table(summary: RunSummary) -> Tabular:
    rows = []
    for c in summary.cases:
        estimate = " *" if FigureSource.CLIENT in (c.pp_source, c.tg_source) else ""
        rows.append(
            (
                c.case_id,
                f"{c.ok}/{c.requests}",
                _fmt(c.pp_tps) + estimate,
                _fmt(c.tg_tps, 2) + estimate,
                _p50(c.ttft_ms),
                _p50(c.itl_ms),
                _p50(c.e2e_ms),
                _fmt(c.output_tps),
            )
        )
    return Tabular(
        "Per case: server t/s from llama.cpp timings (* client estimate), latencies p50 ms",
        ("case", "ok", "pp t/s", "tg t/s", "TTFT", "ITL", "e2e", "out t/s"),
        tuple(rows),
    )


def slo_table(summary: RunSummary) -> Tabular:
    """Per case with an SLO: how many requests met it, which limits the others broke, and goodput."""
    rows = []
    for c in summary.cases:
        if c.slo is None:
            continue
        attainment = c.slo.attainment
        rows.append(
            (
                c.case_id,
                c.slo.slo.describe(),
                f"{c.slo.met}/{c.slo.judged}",
                "-" if attainment is None else f"{attainment * 100:.1f} %",
                ", ".join(f"{limit} {n}" for limit, n in sorted(c.slo.broken.items())) or "-",
                _fmt(c.slo.goodput_rps, 2),
                _fmt(c.slo.goodput_tps),
            )
        )
    return Tabular(
        "SLO per case: requests that met every limit; goodput counts only those (over the case's wall time)",
        ("case", "SLO", "met", "attainment", "broke", "goodput req/s", "goodput t/s"),
        tuple(rows),
        left=frozenset({"case", "SLO", "broke"}),
    )


def _share(value: float | None) -> str:
    """A share as a percentage, to a tenth where it is not whole (99.6 % must not print as 100 %)."""
    if value is None:
        return "-"
    percent = value * 100
    return f"{percent:.0f} %" if percent == round(percent) else f"{percent:.1f} %"


def cache_table(summary: RunSummary) -> Tabular:
    """Per case that means to reuse the prompt cache: how often it did, and what that saved in TTFT."""
    rows = []
    for c in summary.cases:
        if (cache := c.cache) is None:
            continue
        rows.append(
            (
                c.case_id,
                f"{cache.hits}/{cache.meant}",
                _share(cache.hit_rate),
                _share(cache.reused_share),
                _fmt(cache.cold_ttft_p50_ms),
                _fmt(cache.hit_ttft_p50_ms),
                ", ".join(f"{miss.replace('_', ' ')} {n}" for miss, n in sorted(cache.misses.items())) or "-",
            )
        )
    return Tabular(
        "Prompt cache per case: requests that reused exactly the tokens they meant (cache_n); "
        "TTFT p50 ms of requests with nothing to reuse (cold) and of hits",
        ("case", "hits", "hit rate", "tokens reused", "TTFT cold", "TTFT hit", "misses"),
        tuple(rows),
        left=frozenset({"case", "misses"}),
    )


def turn_table(summary: RunSummary) -> Tabular:
    """Conversations turn by turn: the history the server reused grows, the wait for an answer should not."""
    rows = []
    for c in summary.cases:
        if c.cache is None or not c.cache.turns:
            continue
        for t in c.cache.turns:
            rows.append(
                (
                    c.case_id,
                    str(t.turn),
                    str(t.requests),
                    f"{t.meant_tokens:,.0f}",
                    f"{t.reused_tokens:,.0f}",
                    _share(t.hit_rate),
                    _fmt(t.pp_tps),
                    _fmt(t.ttft_p50_ms),
                    _fmt(t.e2e_p50_ms),
                )
            )
    return Tabular(
        "Conversations by turn: history tokens meant and reused (means), pp t/s over the new tokens, p50 ms",
        ("case", "turn", "ok", "history", "reused", "hit rate", "pp t/s", "TTFT", "e2e"),
        tuple(rows),
    )


def gpu_table(summary: RunSummary) -> Tabular:
    rows = tuple(
        (
            g.case_id,
            str(g.samples),
            _fmt(g.vram_peak_gib, 2),
            _fmt(g.vram_mean_gib, 2),
            f"{_fmt(g.gpu_util_prompt_pct)} ({g.prompt_samples})",
            f"{_fmt(g.gpu_util_generation_pct)} ({g.generation_samples})",
            _fmt(g.power_mean_w),
            _fmt(g.energy.j_per_prompt_token if g.energy else None, 4),
            _fmt(g.energy.j_per_output_token if g.energy else None, 3),
            _fmt(g.energy.output_tokens_per_j if g.energy else None, 2),
            _fmt(g.temperature_max_c, 0),
            ", ".join(g.throttle_reasons) or "-",
        )
        for g in summary.gpu
    )
    return Tabular(
        "GPU per case (VRAM GiB; utilisation % in prompt / generation phases, with sample counts; joules a "
        "prompt and a generated token in one-stream cases, generated tokens per joule of the whole case)",
        (
            "case",
            "samples",
            "VRAM peak",
            "VRAM mean",
            "util prompt",
            "util gen",
            "power W",
            "J/prompt tok",
            "J/gen tok",
            "gen tok/J",
            "max °C",
            "throttle",
        ),
        rows,
        left=frozenset({"case", "throttle"}),
    )


def case_notes(summary: RunSummary) -> list[str]:
    lines = [f"{c.case_id}: {note}" for c in summary.cases for note in c.notes]
    lines += [f"{g.case_id}: {note}" for g in summary.gpu for note in g.notes()]
    for c in summary.cases:
        for error, count in c.errors.items():
            lines.append(f"{c.case_id}: {count} x {error}")
    return lines


def baseline_lines(checks: Sequence[BaselineCheck]) -> list[tuple[str, str]]:
    """One sentence per baseline with the style to print it in."""
    styles = {BaselineStatus.PASS: "green", BaselineStatus.BELOW: "red", BaselineStatus.ABOVE: "red"}
    lines = []
    for check in checks:
        where = f"scenario {check.scenario}" if check.scenario else "all cases"
        lines.append((f"{check.sentence()}  [{where}]", styles.get(check.status, "yellow")))
    return lines


_CACHE_SUPPORT = {
    PromptCache.HONOURED: "honoured (a prompt sent twice reused its tokens)",
    PromptCache.IGNORED: "IGNORED (a prompt sent twice with cache_prompt reused nothing)",
    PromptCache.UNKNOWN: "unknown (no timings to tell)",
}


def endpoint_table(info: EndpointInfo) -> Tabular:
    rows = (
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
        ("prompt cache", _CACHE_SUPPORT[info.prompt_cache]),
    )
    return Tabular(
        f"Endpoint {info.base_url}", ("what", "found"), rows, left=frozenset({"what", "found"}), show_header=False
    )


def comparison_table(comparison: Comparison) -> Tabular:
    styles = {Verdict.IMPROVED: "green", Verdict.REGRESSED: "red"}
    return Tabular(
        f"A {comparison.a.run_id} vs B {comparison.b.run_id}",
        tuple(HEADERS),
        tuple(tuple(row) for row in comparison_rows(comparison)),
        left=frozenset({"case", "figure", "verdict"}),
        caption=headline(comparison),
        row_styles=tuple(styles.get(f.verdict) for f in comparison.figures),
    )


def noise_table(profile: NoiseProfile) -> Tabular:
    """Per case and figure: how far runs land apart, how far requests of one run, and what a run adds."""
    rows = tuple(
        (
            s.case_id,
            s.figure,
            str(s.runs),
            f"{s.between * 100:.1f} %",
            "-" if s.within is None else f"{s.within * 100:.1f} %",
            str(s.requests),
            f"{s.run_part * 100:.1f} %",
        )
        for s in profile.spreads
    )
    return Tabular(
        f"Noise profile: {len(profile.run_ids)} runs of {profile.model or '?'}",
        ("case", "figure", "runs", "between runs", "within a run", "requests", "a run's own part"),
        rows,
        left=frozenset({"case", "figure"}),
        caption="between runs: SD of the log run figures (each run's median request); within: robust CV of one "
        "run's requests; a run's own part: what is left of the between-run spread beyond its requests' sampling "
        "(more requests cannot shrink it; more runs can)",
    )


def capacity_table(result: CapacityResult) -> Tabular:
    """The latency-throughput curve of a capacity search, level by level."""
    rows = tuple(
        (
            str(level.concurrency),
            "-" if level.attainment is None else f"{level.attainment * 100:.1f} %",
            "holds" if level.holds else "fails",
            _fmt(level.goodput_rps, 2),
            _fmt(level.output_tps),
            _fmt(level.ttft_p50_ms),
            _fmt(level.ttft_p99_ms),
            _fmt(level.tpot_p50_ms),
            _fmt(level.e2e_p99_ms),
            f"{level.error_rate * 100:.1f} %",
            ", ".join(f"{k} {n}" for k, n in sorted(level.broken.items())) or "-",
            "-" if level.slots is None else str(level.slots),
            _fmt(level.busy_slots_mean),
            _fmt(level.deferred_max, 0),
        )
        for level in result.levels
    )
    return Tabular(
        f"Capacity search: {result.slo.describe()}, target {result.target:.0%} (latencies in ms; slots, mean busy "
        "slots per decode and most requests deferred, from llama-server's /metrics)",
        ("streams", "SLO met", "", "goodput req/s", "out t/s", "TTFT p50", "TTFT p99", "TPOT p50", "e2e p99",
         "errors", "broke", "slots", "busy", "deferred"),
        rows,
        left=frozenset({"", "broke"}),
    )  # fmt: skip
