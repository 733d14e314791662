"""How many requests a fresh server needs before a case's figures settle: docs/statistics.md, "Warm and steady".

Reads a results directory of runs by label (``docs/measured/settle/run.sh`` makes them):

- ``cold``: runs with no warm-up, each its own server start, so each case's first request is measured.
  Per case and headline figure (pp where the prompt is long enough to time, tg where the answer is:
  ``bench.inputs.scenarios.headline_figures``), each request's rate by its place in the case, against the run's
  settled level: the median of its requests from ``SETTLED_FROM`` on. The case has settled from the
  first place after which the median over the runs stays within ``AUTO_AGREE`` of the level: a
  request's own spread on a shared VM can pass that at any place, and the table shows the largest too.
- ``auto``: runs with ``--warmup auto``: how many warm-ups each case took before two agreed.

``python -m bench.devtools.settle RESULTS [--write FILE]`` prints the Markdown tables and keeps the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.figures.throughput import pp_sample, tg_sample
from bench.inputs.scenarios import headline_figures
from bench.load.loadgen import AUTO_AGREE
from bench.records import RequestRecord
from bench.store.run_dir import read_records, runs_with_meta

SETTLED_FROM = 4  # a run's level: the median of its requests from the fifth on (places count from 0)


@dataclass(frozen=True, slots=True)
class Settling:
    """One case's figure over the cold runs: each place's deviation from its run's level, and where it settled."""

    case_id: str
    figure: str
    runs: int
    median_deviation: tuple[float, ...]  # at each place, over the runs (signed, relative)
    largest_deviation: tuple[float, ...]  # at each place, the largest in size (signed)
    settled_at: int | None  # requests it took: the first place from which the median stays within AUTO_AGREE


def _rate(record: RequestRecord, figure: str) -> float | None:
    sample = pp_sample(record) if figure == "pp_tps" else tg_sample(record)
    return None if sample is None else sample[0] / sample[1]


def settling(runs: Sequence[Sequence[RequestRecord]]) -> list[Settling]:
    """Each case's settling over the runs (each run's measured requests, any order)."""
    # (case, figure) -> one list per run: the deviation of each place from the run's level
    deviations: dict[tuple[str, str], list[list[float]]] = defaultdict(list)
    for records in runs:
        by_case: dict[str, list[RequestRecord]] = defaultdict(list)
        for record in sorted((r for r in records if not r.warmup and r.ok), key=lambda r: r.t_sent):
            by_case[record.case_id].append(record)
        for case_id, case_records in by_case.items():
            first = case_records[0]
            for figure in headline_figures(first.prompt_tokens_target, first.output_tokens_target):
                rates = [_rate(r, figure) for r in case_records]
                later = [x for x in rates[SETTLED_FROM:] if x is not None]
                if None in rates or not later:
                    continue
                level = statistics.median(later)
                deviations[(case_id, figure)].append([x / level - 1 for x in rates if x is not None])
    found = []
    for (case_id, figure), per_run in sorted(deviations.items()):
        places = min(len(d) for d in per_run)
        at = [[d[i] for d in per_run] for i in range(places)]
        medians = tuple(statistics.median(column) for column in at)
        settled_at = next((i for i in range(places) if all(abs(m) <= AUTO_AGREE for m in medians[i:])), None)
        found.append(
            Settling(case_id, figure, len(per_run), medians, tuple(max(column, key=abs) for column in at), settled_at)
        )
    return found


def warmups_taken(results: Path, label: str = "auto") -> dict[str, list[int]]:
    """Case id -> the warm-ups ``--warmup auto`` sent before each run's measured requests."""
    taken: dict[str, list[int]] = defaultdict(list)
    for path, meta in runs_with_meta(results):
        if meta.label != label:
            continue
        counts: dict[str, int] = defaultdict(int)
        for record in read_records(path):
            counts[record.case_id] += record.warmup
        for case_id, count in counts.items():
            taken[case_id].append(count)
    return dict(sorted(taken.items()))


def _pct(value: float) -> str:
    return f"{value:+.1%}"


def table(found: Sequence[Settling], warmups: dict[str, list[int]]) -> str:
    places = max((len(s.median_deviation) for s in found), default=0)
    shown = min(places, 10)
    lines = [
        "| case | figure | runs | "
        + " | ".join(f"{i + 1}" for i in range(shown))
        + f" | median within {AUTO_AGREE:.0%} |",
        "|---|---|---:|" + "---:|" * shown + "---|",
    ]
    for s in found:
        cells = [
            f"{_pct(s.median_deviation[i])} ({_pct(s.largest_deviation[i])})" if i < len(s.median_deviation) else ""
            for i in range(shown)
        ]
        settled = "not within the requests run" if s.settled_at is None else f"from request {s.settled_at + 1}"
        lines.append(f"| {s.case_id} | {s.figure} | {s.runs} | " + " | ".join(cells) + f" | {settled} |")
    if warmups:
        lines += ["", "| case | warm-ups `--warmup auto` sent, per run |", "|---|---|"]
        lines += [f"| {case_id} | {', '.join(map(str, counts))} |" for case_id, counts in warmups.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.devtools.settle", description=__doc__)
    parser.add_argument("results", type=Path, help="the results directory docs/measured/settle/run.sh filled")
    parser.add_argument("--write", type=Path, metavar="FILE", help="keep the figures as JSON")
    args = parser.parse_args(argv)
    cold = [list(read_records(path)) for path, meta in runs_with_meta(args.results) if meta.label == "cold"]
    found = settling(cold)
    warmups = warmups_taken(args.results)
    print(
        "Each request's rate, by its place in the case (1, 2, ...), against its run's level (the median from "
        f"request {SETTLED_FROM + 1} on): the median over the runs (and the largest)\n"
    )
    print(table(found, warmups))
    if args.write:
        args.write.write_text(
            json.dumps({"settling": [asdict(s) for s in found], "warmups": warmups}, indent=1) + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
