"""The cost of a whole benchmarking job, this suite vs the peers doing comparable work.

The job is the shape of ``--scenarios baseline`` that every tool can express
against a server without /tokenize: prompt processing at 512-3584-token prompts
(16 generated tokens) and generation of 128, 512 and 2048 tokens after a
128-token prompt, 5 requests each, one at a time, streaming. Each tool does it
the shortest way its command line allows (AIPerf in one zipped sweep, llama-benchy
in two pp x tg grids, guidellm once per case) and writes its usual outputs; this
suite writes its HTML report too. The truth server spends the same time on every
tool's requests, so what differs is each tool's own start-up, warm-up, data
generation, bookkeeping and reporting.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.devtools.perf.process import SERVER_CORE, TOOL_CORE, keep_off_the_tools_core, pinned, run_measured
from bench.devtools.perf.tools import CORPUS_URL, MODEL, TOOLS, environment, tokenizer_snapshot
from bench.devtools.perf.truth import Schedule, read_log, truth_server

PP_CASES = ((512, 16), (1024, 16), (2048, 16), (3584, 16))
TG_CASES = ((128, 128), (128, 512), (128, 2048))
CASES = PP_CASES + TG_CASES
REPETITIONS = 5


@dataclass(frozen=True)
class JobCost:
    tool: str
    invocations: int
    requests_served: int  # requests of the job's shapes the server answered, warm-ups of the same shape included
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    failed_invocations: int


def _suite(url: str, work: Path, root: Path) -> list[list[str]]:
    pp = ", ".join(str(p) for p, _ in PP_CASES)
    tg = ", ".join(str(t) for _, t in TG_CASES)
    (work / "job.toml").write_text(
        "schema_version = 1\n"
        'name = "whole-job"\n'
        f"[defaults]\nrepetitions = {REPETITIONS}\nwarmup = 1\n"
        f'[[scenario]]\nname = "pp"\nprompt_tokens = [{pp}]\noutput_tokens = {PP_CASES[0][1]}\n'
        f'[[scenario]]\nname = "tg"\nprompt_tokens = {TG_CASES[0][0]}\noutput_tokens = [{tg}]\n'
    )
    return [
        [sys.executable, "-m", "bench", "run", "--endpoint", url, "--scenarios", str(work / "job.toml"),
         "--results-dir", str(work / "results"), "--reports-dir", str(work / "reports"), "--label", "whole-job"]
    ]  # fmt: skip


def _aiperf(url: str, work: Path, root: Path) -> list[list[str]]:
    return [
        ["aiperf", "profile", "-m", MODEL, "--url", url, "--endpoint-type", "chat", "--streaming",
         "--concurrency", "1", "--request-count", str(REPETITIONS), "--sweep-type", "zip",
         "--isl", ",".join(str(p) for p, _ in CASES), "--isl-stddev", "0",
         "--osl", ",".join(str(t) for _, t in CASES), "--osl-stddev", "0",
         "--extra-inputs", "ignore_eos:true", "--tokenizer", "perf/word-tokenizer",
         "--artifact-dir", str(work / "aiperf"), "--ui-type", "none"]
    ]  # fmt: skip


def _benchy(url: str, work: Path, root: Path) -> list[list[str]]:
    common = ["--base-url", f"{url}/v1", "--model", MODEL, "--tokenizer", str(tokenizer_snapshot(root)),
              "--runs", str(REPETITIONS), "--exact-tg", "--no-cache", "--book-url", CORPUS_URL, "--skip-coherence",
              "--format", "json"]  # fmt: skip
    pp = [str(p) for p, _ in PP_CASES]
    tg = [str(t) for _, t in TG_CASES]
    return [
        ["llama-benchy", *common, "--pp", *pp, "--tg", str(PP_CASES[0][1]), "--save-result", str(work / "pp.json")],
        ["llama-benchy", *common, "--pp", str(TG_CASES[0][0]), "--tg", *tg, "--save-result", str(work / "tg.json")],
    ]


def _guidellm(url: str, work: Path, root: Path) -> list[list[str]]:
    commands = []
    for i, (prompt, output) in enumerate(CASES):
        config = {
            "spec": {
                "backend": {"kind": "openai_http", "target": url, "model": MODEL},
                "profile": {"kind": "synchronous"},
                "tokenizer": {"kind": "hf_auto", "model": str(tokenizer_snapshot(root))},
                "data": [{"kind": "synthetic_text", "prompt_tokens": prompt, "output_tokens": output}],
                "constraints": [{"kind": "max_requests", "count": REPETITIONS}],
                "outputs": [{"kind": "json", "path": str(work / f"case-{i}.json")}],
            }
        }
        (work / f"case-{i}-config.json").write_text(json.dumps(config))
        commands.append(["guidellm", "run", "--config", str(work / f"case-{i}-config.json"), "--disable-progress"])
    return commands


JOBS: dict[str, Callable[[str, Path, Path], list[list[str]]]] = {
    "llama-server-bench": _suite,
    "guidellm": _guidellm,
    "aiperf": _aiperf,
    "llama-benchy": _benchy,
}


def run_whole_job(name: str, root: Path, schedule: Schedule, timeout_s: float) -> JobCost:
    tool = TOOLS[name]
    work = root / "whole-job" / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "truth.jsonl"
    keep_off_the_tools_core()
    wall = cpu = peak = 0.0
    failed = 0
    with truth_server(log, schedule, core=SERVER_CORE) as url:
        commands = JOBS[name](url, work, root)
        env = environment(root, tool, root / "venvs")
        for command in commands:
            used = run_measured(pinned(command, TOOL_CORE), cwd=work, env=env, log=work / "output.log",
                                timeout_s=timeout_s)  # fmt: skip
            wall, cpu, peak = wall + used.wall_s, cpu + used.cpu_s, max(peak, used.peak_rss_mb)
            failed += used.exit_code != 0
    shapes = {t for _, t in CASES}
    served = sum(1 for r in read_log(log) if r.max_tokens in shapes and len(r.sends) == r.max_tokens)
    if failed:
        print(f"  {name}: {failed} of {len(commands)} invocation(s) failed; see {work / 'output.log'}")
    return JobCost(name, len(commands), served, wall, cpu, peak, failed)


def job_table(costs: list[JobCost], schedule: Schedule) -> str:
    """Markdown, with each tool's ratio to this suite."""
    ref = next((c for c in costs if c.tool == "llama-server-bench"), None)

    def cell(value: float, reference: float | None, fmt: str) -> str:
        text = fmt.format(value)
        return text if not reference else f"{text} ({value / reference:.1f}x)"

    server_s = sum(schedule.ttft_ms + (t - 1) * schedule.itl_ms for _, t in CASES) * REPETITIONS / 1000
    lines = [
        f"Job: {len(CASES)} cases x {REPETITIONS} requests, one at a time; the truth server's own time for "
        f"them is about {server_s:.0f} s.",
        "",
        "| tool | invocations | requests served | wall s | CPU s | peak memory MB | failed invocations |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in costs:
        wall = cell(c.wall_s, ref.wall_s if ref else None, "{:.1f}")
        cpu = cell(c.cpu_s, ref.cpu_s if ref else None, "{:.1f}")
        memory = cell(c.peak_rss_mb, ref.peak_rss_mb if ref else None, "{:.0f}")
        lines.append(
            f"| {c.tool} | {c.invocations} | {c.requests_served} | {wall} | {cpu} | {memory} | {c.failed_invocations} |"
        )
    return "\n".join(lines)
