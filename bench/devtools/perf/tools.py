"""The benchmark tools compared: this suite and the peers users would pick instead.

Each tool runs the same job (N streaming requests, P prompt and T output tokens,
a closed loop of S concurrent streams) against the truth server through its own
command line, as a user would run it, and each is read back from the per-request
output it writes. Peers are installed with pip, pinned, in their own virtualenvs.

Nothing here reaches beyond loopback: the peers get a local tokenizer (a
whitespace word-level one, the truth server's own count) through an offline
Hugging Face cache, and llama-benchy's corpus is placed in its cache beforehand.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import PerfSetupError
from bench.store.run_dir import read_records, run_dirs

TOKENIZER_REPO = "perf/word-tokenizer"
_TOKENIZER_REVISION = "0" * 40
CORPUS_URL = "http://127.0.0.1:9/perf-corpus.txt"  # a cache key only: the file is placed in the cache
MODEL = "truth-model"


@dataclass(frozen=True)
class Job:
    """One measurement job, the same for every tool."""

    streams: int
    requests: int
    prompt_tokens: int = 64
    output_tokens: int = 64


@dataclass
class Measured:
    """What a tool reported, per request (milliseconds)."""

    ttft_ms: list[float] = field(default_factory=list)
    itl_mean_ms: list[float] = field(default_factory=list)  # per request: (last - first token) / (n - 1)
    itl_gap_ms: list[float] | None = None  # every gap, where the tool reports gaps
    failed: int = 0
    # the first wave (the first request of each stream, by send time) apart, where the tool's output says when
    # each request went out; and the connects it reported, where it reports them
    first_wave_ttft_ms: list[float] | None = None
    connect_ms: list[float] | None = None


@dataclass(frozen=True)
class Tool:
    name: str
    version: str
    requirements: tuple[str, ...]  # pip install steps, in order; () for this suite
    command: Callable[[Job, str, Path, Path], list[str]]  # job, url, work dir, perf root
    parse: Callable[[Job, Path], Measured]
    on_every_core: bool = False  # not pinned to the tool's core: it shares the machine with the truth server


# ---------------------------------------------------------------- this suite
def _suite_command(job: Job, url: str, work: Path, root: Path, workers: int = 1) -> list[str]:
    scenarios = work / "perf.toml"
    scenarios.write_text(
        "schema_version = 1\n"
        'name = "perf"\n'
        "[[scenario]]\n"
        'name = "perf"\n'
        f"prompt_tokens = {job.prompt_tokens}\n"
        f"output_tokens = {job.output_tokens}\n"
        f"concurrency = {job.streams}\n"
        'pattern = "concurrent"\n'
        f"repetitions = {max(job.requests // job.streams, 1)}\n"
        "warmup = 1\n"
    )
    return [
        sys.executable, "-m", "bench", "run", "--endpoint", url, "--scenarios", str(scenarios),
        "--results-dir", str(work / "results"), "--no-report", "--label", "perf", "--workers", str(workers),
    ]  # fmt: skip


def _suite_in_two_workers(job: Job, url: str, work: Path, root: Path) -> list[str]:
    return _suite_command(job, url, work, root, workers=2)


def _suite_parse(job: Job, work: Path) -> Measured:
    measured = Measured(itl_gap_ms=[], first_wave_ttft_ms=[], connect_ms=[])
    scored = []
    for run_dir in run_dirs(work / "results"):
        for record in read_records(run_dir):
            if record.connect_ms is not None:  # a warm-up's too: a one-stream job's connection is its warm-up's
                measured.connect_ms.append(record.connect_ms)  # type: ignore[union-attr]
            if record.warmup:
                continue
            ttft, itl = record.ttft_ms, record.itl_ms
            if not record.ok or ttft is None or len(record.token_times) < 2:
                measured.failed += 1
                continue
            scored.append(record)
            measured.ttft_ms.append(ttft)
            measured.itl_mean_ms.append((record.token_times[-1] - record.token_times[0]) * 1000 / (len(itl)))
            assert measured.itl_gap_ms is not None
            measured.itl_gap_ms.extend(itl)
    first_wave = sorted(scored, key=lambda r: r.t_request)[: job.streams]
    measured.first_wave_ttft_ms = [r.ttft_ms for r in first_wave if r.ttft_ms is not None]
    return measured


# ---------------------------------------------------------------- guidellm
def _guidellm_command(job: Job, url: str, work: Path, root: Path) -> list[str]:
    config = {
        "spec": {
            "backend": {"kind": "openai_http", "target": url, "model": MODEL, "request_format": "/v1/chat/completions"},
            "profile": {"kind": "concurrent", "streams": job.streams},
            "tokenizer": {"kind": "hf_auto", "model": str(tokenizer_snapshot(root))},
            "data": [
                {"kind": "synthetic_text", "prompt_tokens": job.prompt_tokens, "output_tokens": job.output_tokens}
            ],
            "constraints": [{"kind": "max_requests", "count": job.requests}],
            "outputs": [{"kind": "json", "path": str(work / "guidellm.json")}],
        }
    }
    (work / "guidellm-config.json").write_text(json.dumps(config))
    return ["guidellm", "run", "--config", str(work / "guidellm-config.json"), "--disable-console-interactive"]


def _guidellm_parse(job: Job, work: Path) -> Measured:
    data = json.loads((work / "guidellm.json").read_text())
    measured = Measured()
    for benchmark in data["benchmarks"]:
        requests = benchmark["requests"]
        measured.failed += len(requests.get("errored") or []) + len(requests.get("incomplete") or [])
        for request in requests["successful"]:
            measured.ttft_ms.append(request["time_to_first_token_ms"])
            measured.itl_mean_ms.append(request["inter_token_latency_ms"])
    return measured


# ---------------------------------------------------------------- AIPerf
def _aiperf_command(job: Job, url: str, work: Path, root: Path) -> list[str]:
    return [
        "aiperf", "profile", "-m", MODEL, "--url", url, "--endpoint-type", "chat", "--streaming",
        "--concurrency", str(job.streams), "--request-count", str(job.requests),
        "--isl", str(job.prompt_tokens), "--isl-stddev", "0", "--osl", str(job.output_tokens), "--osl-stddev", "0",
        "--extra-inputs", "ignore_eos:true", "--tokenizer", TOKENIZER_REPO,
        "--artifact-dir", str(work / "aiperf"), "--ui-type", "none",
    ]  # fmt: skip


def _aiperf_parse(job: Job, work: Path) -> Measured:
    measured = Measured(itl_gap_ms=[])
    with (work / "aiperf" / "profile_export.jsonl").open() as lines:
        for line in lines:
            record = json.loads(line)
            metrics = record.get("metrics") or {}
            if record.get("error") or "time_to_first_token" not in metrics:
                measured.failed += 1
                continue
            measured.ttft_ms.append(metrics["time_to_first_token"]["value"])
            measured.itl_mean_ms.append(metrics["inter_token_latency"]["value"])
            assert measured.itl_gap_ms is not None
            measured.itl_gap_ms.extend(metrics["inter_chunk_latency"]["value"])
    return measured


# ---------------------------------------------------------------- llama-benchy
def _benchy_command(job: Job, url: str, work: Path, root: Path) -> list[str]:
    return [
        "llama-benchy", "--base-url", f"{url}/v1", "--model", MODEL, "--tokenizer", str(tokenizer_snapshot(root)),
        "--pp", str(job.prompt_tokens), "--tg", str(job.output_tokens), "--exact-tg",
        "--concurrency", str(job.streams), "--runs", str(max(job.requests // job.streams, 1)),
        "--book-url", CORPUS_URL, "--no-cache", "--latency-mode", "none", "--skip-coherence",
        "--emit-progress", str(work / "progress.jsonl"), "--save-result", str(work / "benchy.json"), "--format", "json",
    ]  # fmt: skip


def _benchy_parse(job: Job, work: Path) -> Measured:
    measured = Measured()
    first: dict[int, float] = {}
    with (work / "progress.jsonl").open() as lines:
        for line in lines:
            event = json.loads(line)
            if event["type"] == "request_first_token":
                first[event["request_id"]] = event["ttft_s"] * 1000
            elif event["type"] == "request_end":
                rid, tokens = event["request_id"], event["total_tokens"]
                if event.get("error") or rid not in first or tokens < 2:
                    measured.failed += 1
                    continue
                measured.ttft_ms.append(first[rid])
                measured.itl_mean_ms.append(event["decode_seconds"] * 1000 / (tokens - 1))
    return measured


TOOLS: dict[str, Tool] = {
    tool.name: tool
    for tool in (
        Tool("llama-server-bench", "this checkout", (), _suite_command, _suite_parse),
        # its streams in two worker processes, on both cores of a 2-core machine: the truth server shares them
        Tool("llama-server-bench-2w", "this checkout", (), _suite_in_two_workers, _suite_parse, on_every_core=True),
        # one process on every core: what sharing the truth server's core costs by itself
        Tool("llama-server-bench-unpinned", "this checkout", (), _suite_command, _suite_parse, on_every_core=True),
        Tool("guidellm", "0.8.1", ("torch==2.13.0", "guidellm==0.8.1"), _guidellm_command, _guidellm_parse),
        Tool("aiperf", "0.13.0", ("aiperf==0.13.0",), _aiperf_command, _aiperf_parse),
        Tool("llama-benchy", "0.4.0", ("llama-benchy==0.4.0",), _benchy_command, _benchy_parse),
    )
}  # fmt: skip


# ---------------------------------------------------------------- environments
def install(tool: Tool, venvs: Path, log: Path) -> None:
    """Create the tool's own virtualenv and pip-install its pinned packages (skipped when present)."""
    if not tool.requirements:
        return
    venv = venvs / tool.name
    marker = venv / ".installed"
    wanted = "\n".join(tool.requirements)
    if marker.is_file() and marker.read_text() == wanted:
        return
    print(f"installing {tool.name} into {venv} (once; see {log}) ...", flush=True)
    with log.open("a") as out:
        steps = [[sys.executable, "-m", "venv", str(venv)]]
        # one pip call per requirement, in order: guidellm's torch is pinned and installed first, so that
        # guidellm's bare 'torch' does not pull the newest (CUDA, several GB) build
        steps += [[str(venv / "bin" / "python"), "-m", "pip", "install", "-q", spec] for spec in tool.requirements]
        for step in steps:
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, check=False).returncode != 0:
                raise PerfSetupError(f"installing {tool.name} failed at '{' '.join(step[-2:])}'; see {log}")
    marker.write_text(wanted)


def tokenizer_snapshot(root: Path) -> Path:
    """The word-level tokenizer's directory inside the offline Hugging Face cache under ``root``."""
    return hf_home(root) / "hub" / "models--perf--word-tokenizer" / "snapshots" / _TOKENIZER_REVISION


def hf_home(root: Path) -> Path:
    return root / "hf"


def prepare_offline_assets(root: Path) -> None:
    """A tokenizer every tool can load offline, and llama-benchy's corpus already in its cache."""
    snapshot = tokenizer_snapshot(root)
    repo = snapshot.parent.parent
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(_TOKENIZER_REVISION)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "tok": 3} | {f"w{i}": 4 + i for i in range(4096)}
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": i,
                "content": c,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for c, i in (("<s>", 1), ("</s>", 2))
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "WhitespaceSplit"},  # one token per word, as the truth server counts
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    }
    (snapshot / "tokenizer.json").write_text(json.dumps(tokenizer))
    # <unk> is deliberately not declared special: guidellm decodes with skip_special_tokens,
    # and its Faker text is all unknown words, which would leave an empty prompt
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
              "model_max_length": 1_000_000}  # fmt: skip
    (snapshot / "tokenizer_config.json").write_text(json.dumps(config))
    home = root / "home"
    corpus = home / ".cache" / "llama-benchy" / f"{hashlib.md5(CORPUS_URL.encode()).hexdigest()}.txt"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    corpus.write_text(" ".join(f"w{rng.randrange(4096)}" for _ in range(200_000)))


def environment(root: Path, tool: Tool, venvs: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env |= {
        "HOME": str(root / "home"),
        "HF_HOME": str(hf_home(root)),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "DO_NOT_TRACK": "1",
        "NO_COLOR": "1",
    }
    if tool.requirements:
        env["PATH"] = f"{venvs / tool.name / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env.pop("VIRTUAL_ENV", None)
    return env
