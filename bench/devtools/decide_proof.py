"""The embedded-server proof of decisions that measure until they know: what docs/statistics.md reports.

Reads what ``docs/measured/decide/run.sh RESULTS`` left:

- ``RESULTS/ab``: ``bench ab --until-decided`` comparisons. One whose variants share their flags
  is an A/A; the others are real changes. For each: the blocks it ran, why it stopped, the server
  minutes from its first run's start to its last run's end (server starts included), and the
  verdict of every figure it was asked to decide. The A/As are counted: how many called any of
  those figures changed, with a 95 % Wilson interval.
- ``RESULTS/nightly``: ``bench nightly`` runs of one label, in the order they ran, with the gate's
  state, what it compared with, the runs that confirmed a flagged drop and their server time.

``python -m bench.devtools.decide_proof RESULTS --write docs/measured/decide/proof.json`` prints
the Markdown tables and keeps the figures.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.decide.compare import CHANGED, Verdict
from bench.decide.nightly import read_verdict
from bench.decide.noise import measure_profile
from bench.devtools.aa_proof import wilson
from bench.doors import files, strict_json
from bench.errors import ResultsError
from bench.report.text import FAMILIES
from bench.store.run_dir import read_run_meta, runs_with_meta
from bench.telemetry.host import HostConditions

AB_MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class FigureAnswer:
    case_id: str
    figure: str
    verdict: str
    change: float | None  # B over A, minus one
    low: float | None
    high: float | None


@dataclass(frozen=True, slots=True)
class Sequential:
    """One ``bench ab --until-decided`` comparison, as its ``ab.json`` and runs tell it."""

    name: str  # "A/A" or "A -> B" with the flags
    same_setup: bool
    blocks: int
    stopped: str
    server_minutes: float
    answers: tuple[FigureAnswer, ...]  # the figures it was asked to decide
    disturbed_runs: int = 0  # runs with a case measured under contention (HostConditions.disturbed)
    runs: tuple[Path, ...] = ()  # its run directories

    @property
    def called_changed(self) -> bool:
        return any(Verdict(a.verdict) in CHANGED for a in self.answers)


def _minutes(results: Path, run_ids: Sequence[str]) -> tuple[float, int]:
    """First run's start to last run's end (the server time, starts included), and the runs disturbed."""
    starts, ends, disturbed = [], [], 0
    for run_id in run_ids:
        meta = read_run_meta(results / run_id)
        if meta.started is not None and meta.ended is not None:
            starts.append(meta.started)
            ends.append(meta.ended)
        conditions = [HostConditions.from_json(raw) for raw in (meta.conditions or {}).values()]
        disturbed += any(c is not None and c.disturbed for c in conditions)
    return ((max(ends) - min(starts)) / 60 if starts else 0.0), disturbed


def read_sequential(path: Path) -> Sequential:
    doc = files.read_json(path, what="bench ab's record (ab.json)", max_bytes=AB_MAX_BYTES, error=ResultsError)
    until = doc.get("until_decided")
    if not until:
        raise ResultsError(f"{path}: not a --until-decided comparison")
    variants = doc["variants"]
    flags = [v["flags"] for v in variants]
    same = len(set(flags)) == 1
    name = "A/A" if same else " -> ".join(f"`{f}`" if f else "default" for f in flags)
    decide = set(until["decide"])
    answers = []
    for comparison in doc["comparisons"]:
        for f in comparison["figures"]:
            if f"{f['case_id']} {f['figure']}" in decide and f["verdict"] != Verdict.NOT_TESTED:
                ratio, low, high = f.get("ratio"), f.get("ci_low"), f.get("ci_high")
                answers.append(
                    FigureAnswer(
                        f["case_id"],
                        f["figure"],
                        f["verdict"],
                        None if ratio is None else ratio - 1,
                        None if low is None else low - 1,
                        None if high is None else high - 1,
                    )
                )
    run_ids = [r for v in variants for r in v["runs"]]
    blocks = 1 + max((o["block"] for o in doc["order"]), default=-1)
    minutes, disturbed = _minutes(path.parent, run_ids)
    runs = tuple(path.parent / r for r in run_ids)
    return Sequential(name, same, blocks, until["stopped"], minutes, tuple(answers), disturbed, runs)


def sequentials(results: Path) -> list[Sequential]:
    return [read_sequential(p) for p in sorted(results.glob("*.ab.json"))]


def aa_spreads(aa: Sequence[Sequential]) -> dict[str, float]:
    """The spread between server starts over every run of the A/A comparisons (one setup), per case figure."""
    runs = [run for s in aa for run in s.runs]
    if len(runs) < 3:
        return {}
    profile = measure_profile(runs)
    return {f"{s.case_id} {s.figure}": s.between for s in profile.spreads if s.figure in ("pp_tps", "tg_tps")}


def _answer(a: FigureAnswer) -> str:
    family = FAMILIES.get(a.figure, a.figure)
    size = "" if a.change is None else f" {a.change:+.1%}"
    interval = "" if a.low is None or a.high is None else f" ({a.low:+.1%} to {a.high:+.1%})"
    return f"{a.case_id} {family} {a.verdict}{size}{interval}"


def _user_flags(command: list[str]) -> str:
    """The flags a night added to the embedded server's own, which end with --swa-full; "default" for none."""
    extra = command[command.index("--swa-full") + 1 :] if "--swa-full" in command else []
    return " ".join(extra) or "default"


def nights(results: Path) -> list[dict[str, Any]]:
    """Each gated night in the order it ran, with its confirmations."""
    out = []
    ordered = sorted(runs_with_meta(results), key=lambda item: item[1].started or 0.0)
    for path, meta in ordered:
        verdict = read_verdict(path)
        if verdict is None:
            continue
        minutes = ((meta.ended or 0.0) - (meta.started or 0.0)) / 60
        out.append(
            {
                "run": path.name,
                "server_args": _user_flags((meta.server or {}).get("command") or []),
                "state": str(verdict.verdict),
                "exit": int(verdict.exit_code),
                "compared_with": verdict.compared_with,
                "confirmed_with": len(verdict.confirmed_with),
                "confirm_minutes": verdict.confirm_seconds / 60,
                "run_minutes": minutes,
                "headline": verdict.headline,
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.devtools.decide_proof", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--write", type=Path, help="keep the figures in this JSON file")
    args = parser.parse_args()
    found = sequentials(args.results / "ab")
    aa = [s for s in found if s.same_setup]
    print("Sequential comparisons (`bench ab --until-decided`), each run its own embedded server start:\n")
    print("| comparison | blocks | server minutes | runs under contention | stopped | answers |")
    print("|---|---|---|---|---|---|")
    for s in found:
        answers = "; ".join(_answer(a) for a in s.answers)
        print(f"| {s.name} | {s.blocks} | {s.server_minutes:.1f} | {s.disturbed_runs} | {s.stopped} | {answers} |")
    called = sum(s.called_changed for s in aa)
    low, high = wilson(called, len(aa))
    if aa:
        blocks = sorted(s.blocks for s in aa)
        minutes = sum(s.server_minutes for s in aa)
        decided = sum(s.stopped.startswith("decided") for s in aa)
        print(
            f"\nA/A: {called} of {len(aa)} called any decided figure changed (95 % interval {low:.0%} - {high:.0%}); "
            f"{decided} of {len(aa)} decided within the budget; blocks to stop: median {blocks[len(blocks) // 2]}, "
            f"most {blocks[-1]}; {minutes:.0f} server minutes in all"
        )
    spreads = aa_spreads(aa)
    if spreads:
        print("\nSpread between server starts over every A/A run (standard deviation of the log):\n")
        print("| case figure | spread |")
        print("|---|---|")
        for name, value in spreads.items():
            print(f"| {name} | {value:.1%} |")
    gated = nights(args.results / "nightly")
    if gated:
        print("\nNightlies with confirmation (`bench nightly --confirm-runs 2`), in the order they ran:\n")
        print("| night | server flags | state | exit | confirmation runs | confirmation minutes | headline |")
        print("|---|---|---|---|---|---|---|")
        for number, n in enumerate(gated, start=1):
            print(
                f"| {number} | {n['server_args']} | {n['state']} | {n['exit']} | {n['confirmed_with']} | "
                f"{n['confirm_minutes']:.1f} | {n['headline']} |"
            )
    if args.write:
        document = {
            "sequential": [
                {
                    "name": s.name,
                    "same_setup": s.same_setup,
                    "blocks": s.blocks,
                    "stopped": s.stopped,
                    "server_minutes": s.server_minutes,
                    "disturbed_runs": s.disturbed_runs,
                    "called_changed": s.called_changed,
                    "answers": [_answer(a) for a in s.answers],
                }
                for s in found
            ],
            "aa": {"pairs": len(aa), "called": called, "low": low, "high": high},
            "spreads": spreads,
            "nights": gated,
        }
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(strict_json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
