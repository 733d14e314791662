"""How exactly a stored run replayed its schedule and its lengths, per open-loop or trace case.

    python -m bench.devtools.replay_check RUN_DIR [RUN_DIR...]

For each case whose requests had a scheduled time (Poisson arrivals, a trace): how late each
request went out after its time (its body began to be written; its headers went ahead), at
p50 / p99 / max; how many went out within 1 ms; and how many were exactly as long as built
(cache_n + prompt_n equal to the tokens meant from the cache and the new ones) and generated
exactly the tokens asked. The README's trace-replay figures come from this command.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from bench.records import RequestRecord
from bench.store.run_dir import read_records


def _ms(values: list[float]) -> str:
    p50, p99 = np.percentile(values, [50, 99])
    return f"{p50:6.2f} {p99:6.2f} {max(values):6.2f}"


def check(run_dir: Path) -> list[str]:
    by_case: dict[str, list[RequestRecord]] = {}
    for record in read_records(run_dir):
        if not record.warmup and record.t_scheduled is not None and record.ok:
            by_case.setdefault(record.case_id, []).append(record)
    lines = []
    for case_id, records in by_case.items():
        out = [(r.t_request - r.t_scheduled) * 1000 for r in records if r.t_scheduled is not None]
        timed = [r for r in records if r.timings is not None]
        exact = sum(
            1
            for r in timed
            if r.timings is not None
            and r.timings.cache_n + r.timings.prompt_n == r.depth_target + r.prompt_tokens_target
            and r.timings.predicted_n == r.output_tokens_target
        )
        on_time = sum(1 for v in out if v <= 1.0)
        lines.append(f"{case_id:32} {len(records):4}  {_ms(out)}   {on_time:>5}/{len(out):<5} {exact:>5}/{len(timed)}")
    return lines


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        raise SystemExit("usage: python -m bench.devtools.replay_check RUN_DIR [RUN_DIR...]")
    print(f"{'case':32} {'n':>4}  {'went out, ms late':>20}   {'<= 1 ms':>11} {'exact':>11}")
    print(f"{'':32} {'':4}  {'p50':>6} {'p99':>6} {'max':>6}")
    for run in args:
        print(f"{Path(run).name}:")
        for line in check(Path(run)):
            print(line)


if __name__ == "__main__":
    main()
