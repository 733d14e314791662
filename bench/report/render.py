"""Render run, comparison and trend reports into ``reports/``, and keep ``reports/index.html``.

Every page is one self-contained HTML file (inline CSS, inline SVG plots, a few
lines of inline script to sort tables): it opens offline and can be mailed.
Every string from a server or a user goes through Jinja2's autoescaping.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jinja2

from bench.decide.bisection import BisectResult, answer_sentence
from bench.decide.compare import Comparison, Verdict
from bench.decide.nightly import ENERGY_FIGURE, Night, change_points, nightly_history, read_verdict
from bench.doors import files, strict_json
from bench.errors import ResultsError
from bench.figures.baselines import BaselineStatus, baseline_headline
from bench.figures.summary import Distribution, RunSummary, summarise_stored
from bench.figures.throughput import pp_sample, tg_sample
from bench.inputs.baselines import Baselines
from bench.records import FigureName
from bench.report import plots
from bench.report.text import HEADERS, comparison_rows, headline
from bench.store.capacity import CapacityResult
from bench.store.run_dir import read_gpu_samples, read_records, read_run_meta
from bench.store.soak import SoakResult
from bench.version import __version__

INDEX_SCHEMA = 1
FIGURE_NAMES: dict[str, str] = {
    FigureName.PP_TPS: "prompt processing",
    FigureName.TG_TPS: "generation",
    FigureName.VRAM_USED_GIB: "VRAM",
    FigureName.GOODPUT_RPS: "goodput",
    ENERGY_FIGURE: "energy",
}
TREND_UNITS = {FigureName.GOODPUT_RPS: "req/s", ENERGY_FIGURE: "J per generated token"}


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bench.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(fmt=_fmt, pct=_pct)
    return env


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(dist: Distribution | None, which: str) -> str:
    return "-" if dist is None else f"{getattr(dist, which):,.1f}"


def _date(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return dt.datetime.fromtimestamp(float(epoch), tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _now() -> str:
    return dt.datetime.now(tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def file_name(name: str) -> str:
    """``name`` as one file name in the reports directory: a label such as ``team/gpu1`` or
    ``x/../../y`` becomes ``team-gpu1``, never a path that leaves the directory."""
    stem, dot, suffix = name.rpartition(".")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem if dot else name).strip(".-")[:MAX_NAME_CHARS] or "report"
    return f"{stem}.{suffix}" if dot else stem


MAX_NAME_CHARS = 200  # file systems allow 255 bytes a name


def _write(reports_dir: Path, name: str, html: str) -> Path:
    """Write one report atomically; ``name`` passes ``file_name`` whatever the caller made of it."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    name = file_name(name)
    path = reports_dir / name
    tmp = reports_dir / f".{name}.{os.getpid()}.tmp"
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------ index


def _publish(
    reports_dir: Path,
    name: str,
    html: str,
    *,
    kind: str,
    title: str,
    date: str,
    verdict: str | None,
    label: str | None = None,
    build: str | None = None,
) -> Path:
    """Write a report and list it in the index: every kind of report's entry has the same keys."""
    path = _write(reports_dir, name, html)
    entry = {"file": path.name, "kind": kind, "title": title, "date": date, "label": label, "build": build}
    update_index(reports_dir, {**entry, "verdict": verdict})
    return path


def update_index(reports_dir: Path, entry: dict[str, Any]) -> Path:
    """Add or replace one report in ``index.json`` and render ``index.html`` from it, newest first."""
    manifest = reports_dir / "index.json"
    entries: list[dict[str, Any]] = []
    if manifest.exists():
        try:
            data = files.read_json(manifest, what="reports index", error=ResultsError)
            entries = [e for e in data.get("reports", []) if isinstance(e, dict)]
        except (ResultsError, AttributeError):
            entries = []  # a damaged index is rebuilt from the reports written from now on
    entries = [e for e in entries if e.get("file") != entry["file"]] + [entry]
    entries.sort(key=lambda e: str(e.get("date", "")), reverse=True)
    _write(reports_dir, "index.json", strict_json.dumps({"schema_version": INDEX_SCHEMA, "reports": entries}, indent=2))
    html = (
        _env()
        .get_template("index.html.j2")
        .render(title="llama-server-bench reports", entries=entries, suite_version=__version__, generated=_now())
    )
    return _write(reports_dir, "index.html", html)


# ------------------------------------------------------------------ run report


def _summary_view(summary: RunSummary) -> dict[str, Any]:
    return {
        "baselines": [
            {**asdict(b), "figure_name": FIGURE_NAMES.get(b.figure, b.figure), "sentence": b.sentence()}
            for b in summary.baselines
        ],
        "cases": summary.cases,
        "gpu": summary.gpu,
        "requests": summary.requests,
        "failed": summary.failed,
        "error_rate": summary.error_rate,
        "bandwidth": summary.bandwidth,
        "bandwidth_sentence": summary.bandwidth.sentence() if summary.bandwidth else "",
    }


def render_run_report(run_dir: Path, reports_dir: Path, baselines: Baselines | None = None) -> Path:
    meta = read_run_meta(run_dir)
    records = list(read_records(run_dir))
    samples = read_gpu_samples(run_dir)
    summary = summarise_stored(meta, records, samples, baselines)
    check = {b.figure: b for b in summary.baselines}
    nightly = read_verdict(run_dir)
    errors = sorted(
        ((c.case_id, error, count) for c in summary.cases for error, count in c.errors.items()),
        key=lambda row: -row[2],
    )
    measured_plots = {
        "pp": plots.throughput_by_length(summary.cases, "pp_tps", "prompt", check.get(FigureName.PP_TPS)),
        "tg": plots.throughput_by_length(summary.cases, "tg_tps", "output", check.get(FigureName.TG_TPS)),
        "depth": plots.throughput_by_length(summary.cases, "tg_tps", "depth", check.get(FigureName.TG_TPS)),
        "latency": plots.latency_percentiles(summary.cases),
        "concurrency": plots.throughput_by_concurrency(summary.cases),
        "turns": plots.by_turn(summary.cases),
        "gpu": plots.gpu_timeline(samples, records),
    }
    headline_text = baseline_headline(summary.baselines) or (
        f"{summary.requests} requests in {len(summary.cases)} case(s), {summary.failed} failed; "
        "no baseline figure is computed over these scenarios"
    )
    html = (
        _env()
        .get_template("run.html.j2")
        .render(
            title=f"Run {meta.run_id}",
            meta=meta,
            started=_date(meta.started),
            summary=_summary_view(summary),
            nightly=nightly,
            headline=headline_text,
            telemetry=meta.telemetry or {},
            gpu_name=next((s.name for s in samples if s.name), None),
            plots=measured_plots,
            errors=errors,
            meta_json=strict_json.dumps(meta, indent=2, default=str),
            suite_version=__version__,
            generated=_now(),
        )
    )
    name = f"run-{meta.run_id}.html"
    verdict = nightly.verdict.value if nightly else _baseline_verdict(summary)
    return _publish(
        reports_dir, name, html, kind="run", title=str(meta.run_id), date=_date(meta.started), verdict=verdict,
        label=meta.label, build=meta.build,
    )  # fmt: skip


def _baseline_verdict(summary: RunSummary) -> str:
    statuses = {b.status for b in summary.baselines}
    if statuses & {BaselineStatus.BELOW, BaselineStatus.ABOVE}:
        return "below baseline"
    if BaselineStatus.PASS in statuses:
        return "pass"
    return "errors" if summary.failed else "measured"


# ------------------------------------------------------------------ comparison report


def render_comparison_report(
    comparison: Comparison,
    reports_dir: Path,
    records_a: Sequence[Any] | None = None,
    records_b: Sequence[Any] | None = None,
) -> Path:
    """The comparison page; records default to the two runs' own (bench ab passes pooled ones)."""
    if records_a is None:
        records_a = list(read_records(comparison.a.path))
    if records_b is None:
        records_b = list(read_records(comparison.b.path))
    cases = sorted({f.case_id for f in comparison.figures})

    def rates(records: Sequence[Any], case_id: str, figure: str) -> list[float]:
        sample = pp_sample if figure == "pp" else tg_sample
        ok = [r for r in records if r.case_id == case_id and r.ok and not r.warmup]
        return [tokens / seconds for tokens, seconds in (s for s in map(sample, ok) if s is not None)]

    comparison_plots = {
        "forest": plots.forest(comparison.figures),
        "pp": plots.distributions(
            cases, [rates(records_a, c, "pp") for c in cases], [rates(records_b, c, "pp") for c in cases], "pp t/s"
        ),
        "tg": plots.distributions(
            cases, [rates(records_a, c, "tg") for c in cases], [rates(records_b, c, "tg") for c in cases], "tg t/s"
        ),
    }
    rows = list(zip(comparison_rows(comparison), comparison.figures, strict=True))
    html = (
        _env()
        .get_template("compare.html.j2")
        .render(
            title=f"{comparison.a.run_id} vs {comparison.b.run_id}",
            a=comparison.a,
            b=comparison.b,
            headline=headline(comparison),
            differences=comparison.differences,
            headers=HEADERS,
            rows=rows,
            alpha=comparison.alpha,
            min_effect=comparison.min_effect,
            plots=comparison_plots,
            suite_version=__version__,
            generated=_now(),
        )
    )
    name = f"compare-{comparison.a.run_id}-vs-{comparison.b.run_id}.html".replace(":", "-")
    verdicts = {f.verdict for f in comparison.figures}
    overall = next(
        (v for v in (Verdict.REGRESSED, Verdict.IMPROVED, Verdict.UNDECIDED, Verdict.SAME) if v in verdicts),
        Verdict.NOT_COMPARABLE,
    )
    return _publish(
        reports_dir, name, html, kind="comparison",
        title=f"{comparison.a.label or comparison.a.run_id} vs {comparison.b.label or comparison.b.run_id}",
        date=_date(comparison.b.started), verdict=overall.value, label=comparison.b.label, build=comparison.b.build,
    )  # fmt: skip


# ------------------------------------------------------------------ capacity report


def render_capacity_report(result: CapacityResult, reports_dir: Path, name: str) -> Path:
    """The capacity search: the answer first, the curve, and every level with the run behind it."""
    html = (
        _env()
        .get_template("capacity.html.j2")
        .render(
            title=result.sentence(),
            result=result,
            plot=plots.capacity_curve(result),
            suite_version=__version__,
            generated=_now(),
        )
    )
    return _publish(
        reports_dir, f"{name}.html", html, kind="capacity", title=result.sentence(), date=_now(),
        verdict=f"capacity {result.capacity}",
    )  # fmt: skip


def render_bisect_report(result: BisectResult, alpha: float, reports_dir: Path) -> Path:
    """The bisection: the answer first, the commits in order with the good and bad bands, every step."""
    import math
    import statistics

    position = {sha: i for i, sha in enumerate(result.order)}
    order = sorted(result.tested, key=lambda t: position.get(t.commit.sha, len(position)))
    medians = {t.commit.sha: statistics.median(t.figures) if t.figures else None for t in result.tested}
    answer = {c.sha for c in result.answer}
    plot = plots.bisect_steps(
        [t.commit.short for t in order],
        [medians[t.commit.sha] for t in order],
        [(min(t.figures), max(t.figures)) if t.figures else None for t in order],
        math.exp(result.stick.good),
        math.exp(result.stick.bad),
        result.stick.spread,
        [i for i, t in enumerate(order) if t.commit.sha in answer],
    )
    headline = answer_sentence(result)
    html = (
        _env()
        .get_template("bisect.html.j2")
        .render(
            title=headline,
            headline=headline,
            result=result,
            medians=medians,
            good_tps=math.exp(result.stick.good),
            bad_tps=math.exp(result.stick.bad),
            alpha=alpha,
            plot=plot,
            suite_version=__version__,
            generated=_now(),
        )
    )
    return _publish(
        reports_dir, f"{result.path.stem}.html", html, kind="bisect", title=headline, date=_now(),
        verdict="found" if result.found else "a range",
    )  # fmt: skip


def render_soak_report(result: SoakResult, reports_dir: Path) -> Path:
    """The soak: its sentence first, each case's pp and tg over the windows with the shifts marked, memory."""
    panels = []
    cases = sorted({case for w in result.windows for case in w.figures})
    for case_id in cases:
        for figure in ("pp_tps", "tg_tps"):
            points = [
                (w.started / 60, w.figures[case_id][figure])
                for w in result.windows
                if figure in w.figures.get(case_id, {})
            ]
            if len(points) < 2:
                continue
            marks = [
                (s.window - 1, f"{s.change:+.1%}") for s in result.shifts if (s.case_id, s.figure) == (case_id, figure)
            ]
            title = f"{case_id}: {FIGURE_NAMES.get(figure, figure)} (t/s) by minute"
            svg = plots.series([t for t, _ in points], [v for _, v in points], title, marks)
            panels.append({"title": title, "svg": svg})
    memory = [(w.started / 60, w.rss_mib) for w in result.windows if w.rss_mib is not None]
    if len(memory) >= 2:
        title = "server resident memory (MiB) by minute"
        panels.append({"title": title, "svg": plots.series([m for m, _ in memory], [v for _, v in memory], title, [])})
    html = (
        _env()
        .get_template("soak.html.j2")
        .render(title=result.sentence(), result=result, panels=panels, suite_version=__version__, generated=_now())
    )
    return _publish(
        reports_dir, f"{result.path.stem}.html", html, kind="soak", title=result.sentence(), date=_now(),
        verdict="shifted" if result.shifts else "steady",
    )  # fmt: skip


# ------------------------------------------------------------------ trend report


def _what_changed(before: Night, after: Night) -> str:
    parts = []
    if before.build != after.build:
        parts.append(f"build {before.build} -> {after.build}")
    if before.server_flags != after.server_flags:
        parts.append(f"flags {before.server_flags} -> {after.server_flags}")
    return ", ".join(parts) or "no build or flag change recorded"


def render_trend_report(results_dir: Path, label: str, reports_dir: Path, baselines: Baselines | None = None) -> Path:
    latest_meta = None
    nights: list[Night] = []
    for scenario_set in _scenario_sets(results_dir, label):
        nights = nightly_history(results_dir, label, scenario_set)
        if nights:
            latest_meta = scenario_set
            break
    panels = []
    keys = sorted({key for night in nights for key in night.figures})
    for case_id, figure in keys:
        points = [(n.started, n.figures[(case_id, figure)], n) for n in nights if (case_id, figure) in n.figures]
        if len(points) < 2:
            continue
        values = [v for _, v, _ in points]
        baseline = _baseline_for(baselines, figure, case_id.split("/", 1)[0], points[-1][2].model)
        # the gate's own change points, on the figures it judges: the page marks what the gate judged
        changes = change_points(values) if figure != ENERGY_FIGURE else []
        marks = [(c.index, _what_changed(points[c.index - 1][2], points[c.index][2])) for c in changes]
        unit = TREND_UNITS.get(figure, "t/s")
        title = f"{case_id}: {FIGURE_NAMES.get(figure, figure)} ({unit})"
        panels.append(
            {
                "title": title,
                "svg": plots.trend(
                    [t for t, _, _ in points],
                    values,
                    title,
                    baseline.value if baseline else None,
                    baseline.tolerance_pct if baseline else None,
                    marks,
                ),
                "changes": [
                    f"change point at {_date(points[c.index][0])}: {c.mean_before:,.2f} -> {c.mean_after:,.2f} {unit} "
                    f"({c.relative_change:+.1%}, p = {c.p_value:.2g}); {text}"
                    for c, (_, text) in zip(changes, marks, strict=True)
                ],
            }
        )
    latest = None
    if nights:
        latest = read_verdict(nights[-1].path)
    html = (
        _env()
        .get_template("trend.html.j2")
        .render(
            title=f"Nightly trend: {label}",
            label=label,
            nights=len(nights),
            first=_date(nights[0].started) if nights else "-",
            last=_date(nights[-1].started) if nights else "-",
            latest=latest,
            panels=panels,
            table=[
                {"run_id": n.run_id, "date": _date(n.started), "build": n.build, "verdict": n.verdict}
                for n in reversed(nights)
            ],
            suite_version=__version__,
            generated=_now(),
        )
    )
    name = f"trend-{label}.html"
    return _publish(
        reports_dir, name, html, kind="trend", title=f"{label} over {len(nights)} nights ({latest_meta or '-'})",
        date=_date(nights[-1].started) if nights else _now(), verdict=latest.verdict.value if latest else None,
        label=label, build=nights[-1].build if nights else None,
    )  # fmt: skip


def _scenario_sets(results_dir: Path, label: str) -> list[str]:
    """Scenario sets of this label's runs, the most recent run's first."""
    from bench.store.run_dir import runs_with_meta

    seen: list[tuple[float, str]] = []
    for _, meta in runs_with_meta(results_dir):
        if meta.label == label:
            name = meta.scenario_set.get("name")
            if name:
                seen.append((float(meta.started or 0), str(name)))
    ordered = [name for _, name in sorted(seen, reverse=True)]
    return list(dict.fromkeys(ordered))


def _baseline_for(baselines: Baselines | None, figure: str, scenario: str, model: str | None) -> Any:
    for baseline in baselines.entries if baselines else ():
        if baseline.figure == figure and baseline.scenario in (None, scenario) and baseline.applies_to(model):
            return baseline
    return None
