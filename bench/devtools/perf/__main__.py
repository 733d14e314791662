"""``python -m bench.devtools.perf``: timing accuracy, capacity and cost of this suite and its peers."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from bench.devtools.perf.compare_tools import Score, compare, prepare
from bench.devtools.perf.table import accuracy_table, summary_table
from bench.devtools.perf.tools import TOOLS
from bench.devtools.perf.truth import Schedule
from bench.devtools.perf.whole_job import JobCost, job_table, run_whole_job
from bench.doors import files
from bench.errors import BenchError, PerfSetupError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.devtools.perf",
        description="Run this suite and the peer tools (each in its own virtualenv) on the same streaming jobs "
        "against a compiled truth server on 127.0.0.1 that logs when each token left, and write the error, "
        "capacity and cost tables. Installs the peers on first use (guidellm brings torch: ~1.5 GB).",
    )
    pinned = ",".join(name for name, tool in TOOLS.items() if not tool.on_every_core)
    parser.add_argument(
        "--tools",
        default=pinned,
        help=f"comma-separated, of {','.join(TOOLS)} (default: {pinned}; -2w is this suite with --workers 2 "
        "and -unpinned with one process, each on every core beside the truth server)",
    )
    parser.add_argument("--streams", default="1,16,64,256", help="concurrency levels (default: 1,16,64,256)")
    parser.add_argument("--output-tokens", type=int, default=64, help="tokens per response (default 64)")
    parser.add_argument("--ttft-ms", type=float, default=50.0, help="injected TTFT (default 50)")
    parser.add_argument(
        "--itl-ms", type=float, default=4.55, help="injected inter-token gap (default 4.55 = 219.71 t/s)"
    )
    parser.add_argument("--jitter", type=float, default=0.2, help="uniform +/- fraction on each delay (default 0.2)")
    parser.add_argument("--root", type=Path, default=Path(".perf"), help="venvs, caches and runs (default .perf)")
    parser.add_argument("--summary-at", type=int, default=64, help="streams for the cost columns (default 64)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one tool run may take (default 600)")
    parser.add_argument(
        "--parts",
        default="streams,whole-job",
        help="streams (accuracy, capacity, memory at each level) and/or whole-job (the cost of a baseline-shaped "
        "job, ~7 min for all four tools); default: both",
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="SCORES_JSON",
        help="measure nothing: print the tables from a scores.json an earlier run wrote (after a change to them)",
    )
    args = parser.parse_args(argv)
    if args.render is not None:
        try:
            rows = files.read_json(args.render, what="perf scores", error=PerfSetupError)
        except BenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        rendered = [Score(**row) for row in rows]
        print(f"{summary_table(rendered, args.summary_at)}\n\n{accuracy_table(rendered)}")
        return 0
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in tools if t not in TOOLS]
    if unknown:
        parser.error(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(TOOLS)}")
    levels = [int(s) for s in args.streams.split(",")]
    schedule = Schedule(ttft_ms=args.ttft_ms, itl_ms=args.itl_ms, jitter=args.jitter)
    root = args.root.resolve()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if not parts or parts - {"streams", "whole-job"}:
        parser.error("--parts takes streams, whole-job or both")
    scores: list[Score] = []
    costs: list[JobCost] = []
    try:
        prepare(tools, root)
        if "streams" in parts:
            scores = compare(tools, levels, root, schedule=schedule, output_tokens=args.output_tokens,
                             timeout_s=args.timeout)  # fmt: skip
        if "whole-job" in parts:
            for name in tools:
                print(f"{name}: the baseline-shaped job ...", flush=True)
                costs.append(run_whole_job(name, root, schedule, args.timeout))
                print(f"  wall {costs[-1].wall_s:.1f} s, CPU {costs[-1].cpu_s:.1f} s", flush=True)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    versions = ", ".join(f"{TOOLS[t].name} {TOOLS[t].version}" for t in tools)
    text = (
        f"Measured {stamp}; {versions}; truth: TTFT {schedule.ttft_ms:g} ms, ITL {schedule.itl_ms:g} ms, "
        f"jitter +/-{schedule.jitter:.0%}, {args.output_tokens} tokens per response.\n\n"
    )
    if scores:
        text += f"{summary_table(scores, args.summary_at)}\n\n{accuracy_table(scores)}\n\n"
    if costs:
        text += job_table(costs, schedule) + "\n"
    (root / "table.md").write_text(text)
    print("\n" + text)
    print(f"written: {root / 'table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
