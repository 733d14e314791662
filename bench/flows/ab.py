"""``bench ab``: before/after comparison of server flags, variants interleaved in blocks.

Two ways of working:

1. **The suite starts the servers** (on the GPU host, or the embedded CPU server):
   a server command plus named variants' flags. For each block, each variant's
   server is started on 127.0.0.1 (a free port), waited for, measured with the
   scenario set, and stopped, before the next one starts.
2. **A remote service the user switches**: an endpoint and, per variant, an
   optional switch command (an argument list, no shell) that reconfigures the
   server, for example restarting a systemd unit with other flags; the suite runs
   it, waits for ``/health``, then measures.

Blocks interleave the variants (A B, then B A, ...; or a seeded random order
within each block, recorded), so drift in temperature or clocks falls on both.
Each block is an ordinary run in ``results/`` (label ``<ab-id>-<variant>``);
``ab.json`` links them, and the comparison pools each variant's runs. With
``output_probe`` every run also records a temperature-0 answer; variants whose
answers differ are flagged: faster but saying something else is not the same.

A variant whose server does not start, crashes or never gets healthy is reported
with its log tail; the other variants' data is kept, and nothing is left running.

``until_decided`` keeps adding blocks until every figure asked about (``decide``: pp and tg by
default) is changed or the same within the margin, or ``max_blocks`` / ``max_time_s`` is spent.
It looks after every second block, so each look has as many A-first as B-first blocks, and
reads each look's p-values against all the looks the budget allows
(``bench.decide.sequential``): looking often does not make an A/A "changed" more often.
"""

from __future__ import annotations

import os
import random
import secrets
import shlex
import shutil
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from bench.decide.compare import CHANGED, TESTED, CompareSettings, Comparison, RunRef, Verdict, compare_record_sets
from bench.decide.sequential import DEFAULT_MAX_BLOCKS, SequentialDesign
from bench.doors.children import run_command
from bench.doors.redact import Redactor, flag_secrets
from bench.errors import BenchError, ConfigError, EndpointError, ExitCode
from bench.figures.throughput import FIGURES, GOODPUT
from bench.flows.run import RunObserver, RunOptions, run_benchmark
from bench.inputs.scenarios import split_command
from bench.load.server import embedded_binary, embedded_server_args, names_a_model
from bench.store.run_dir import check_writable, read_gpu_samples, read_records, read_run_meta, scenario_definitions
from bench.telemetry.host import HostConditions, contention_phrase
from bench.transport.health import HealthPolicy, HealthTimeout, wait_for_health

AB_SCHEMA = 1
FIGURE_NAMES = tuple(str(f.name) for f in (*FIGURES, GOODPUT))


class BlockOrder(StrEnum):
    ALTERNATE = "alternate"  # A B | B A | A B ...: drift falls on both sides alike
    RANDOM = "random"  # each block shuffled (seeded, recorded)


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    flags: tuple[str, ...]  # appended to the server command (mode 1) or recorded (mode 2)
    switch_command: tuple[str, ...] | None = None  # mode 2: reconfigures the remote server


@dataclass(frozen=True, slots=True)
class AbPlan:
    base: RunOptions  # scenarios, results dir, endpoint (mode 2) or server binary/model (mode 1)
    variants: tuple[Variant, ...]
    server_command: tuple[str, ...] | None = None  # mode 1; None: the embedded server
    blocks: int = 4
    order: BlockOrder = BlockOrder.ALTERNATE
    health_timeout_s: float = 600.0
    settings: CompareSettings = field(default_factory=CompareSettings)
    until_decided: bool = False  # add blocks until the figures in ``decide`` are decided, or the budget is spent
    max_blocks: int = DEFAULT_MAX_BLOCKS
    max_time_s: float | None = None  # --until-decided: start no block after this long
    decide: tuple[str, ...] = ()  # figures to decide in every case; (): each case's own (Case.headline_figures)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def asked(self) -> frozenset[tuple[str, str]]:
        """The (case id, figure) pairs ``--until-decided`` waits for."""
        cases = self.base.scenarios.cases()
        return frozenset((c.case_id, figure) for c in cases for figure in (self.decide or c.headline_figures))

    @property
    def design(self) -> SequentialDesign | None:
        return SequentialDesign.for_blocks(self.max_blocks) if self.until_decided else None

    def redactor(self) -> Redactor:
        flags = [flag for v in self.variants for flag in (*v.flags, *(v.switch_command or ()))]
        return Redactor([*self.base.redactor().secrets, *flag_secrets(self.server_command), *flag_secrets(flags)])

    def validate(self) -> None:
        if len(self.variants) < 2:
            raise ConfigError("bench ab needs at least two --variant NAME=FLAGS")
        names = [v.name for v in self.variants]
        for name in names:
            # a name becomes part of a label, a run id and a file name: no path separators, no ".."
            if not name or not all(c.isalnum() or c in "-_" for c in name):
                raise ConfigError(f"a variant name is letters, digits, '-' and '_'; got {name!r}")
        if len(set(names)) != len(names):
            raise ConfigError(f"variant names must be unique; got {', '.join(names)}")
        if self.blocks < 1:
            raise ConfigError(f"--blocks must be at least 1; got {self.blocks}")
        if self.until_decided:
            SequentialDesign.for_blocks(self.max_blocks)  # refuses a budget that cannot decide
            if self.max_time_s is not None and not 0 < self.max_time_s < float("inf"):
                raise ConfigError(f"--max-time must be a positive number of seconds; got {self.max_time_s}")
            unknown = sorted(set(self.decide) - set(FIGURE_NAMES))
            if unknown:
                raise ConfigError(
                    f"--decide takes figures from {', '.join(FIGURE_NAMES)}; got {', '.join(unknown) or 'none'}"
                )
        if self.order not in {o.value for o in BlockOrder}:
            raise ConfigError(f"--order must be one of {', '.join(BlockOrder)}; got {self.order!r}")
        if self.base.endpoint is None and any(v.switch_command for v in self.variants):
            raise ConfigError("--switch commands are for a remote --endpoint; without one the suite starts the servers")


@dataclass(frozen=True, slots=True)
class VariantResult:
    name: str
    flags: str
    command: tuple[str, ...] | None = None
    runs: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()
    output_sha256: frozenset[str] = frozenset()
    contention: tuple[str, ...] = ()  # "block N: measured under contention in ..." for each such run


@dataclass(frozen=True, slots=True)
class AbResult:
    ab_id: str
    path: Path  # ab.json
    order: tuple[tuple[int, str], ...]
    variants: tuple[VariantResult, ...]
    comparisons: tuple[Comparison, ...]  # each later variant against the first
    outputs_differ: bool | None  # None: not checked
    records: dict[str, list[Any]] = field(default_factory=dict)  # variant -> its pooled records
    stopped: str = ""  # --until-decided: why it stopped (decided, or which budget was spent)

    @property
    def exit_code(self) -> ExitCode:
        """A variant with no run at all (its server never served) is an unusable endpoint, exit 3."""
        return ExitCode.ENDPOINT if any(not v.runs for v in self.variants) else ExitCode.OK


def parse_variant(text: str, option: str = "--variant") -> tuple[str, tuple[str, ...]]:
    """``NAME=FLAGS`` -> (name, flags as an argument list)."""
    name, sep, flags = text.partition("=")
    if not sep or not name.strip():
        raise ConfigError(f'{option} takes NAME=FLAGS, e.g. fa_on="-fa on"; got {text!r}')
    return name.strip(), split_command(flags, f"{option} {name.strip()}") or ()


def block_order(names: Sequence[str], blocks: int, order: BlockOrder, seed: int) -> list[tuple[int, str]]:
    """Which variant runs when: alternate gives A B | B A | A B ..., random shuffles each block (seeded)."""
    rng = random.Random(seed)
    plan = []
    for block in range(blocks):
        names_here = list(names)
        if order == BlockOrder.RANDOM:
            rng.shuffle(names_here)
        elif block % 2:
            names_here.reverse()
        plan += [(block, name) for name in names_here]
    return plan


def _wait_after_switch(plan: AbPlan) -> None:
    assert plan.base.endpoint is not None
    try:
        wait_for_health(plan.base.endpoint, plan.health_timeout_s, HealthPolicy(first_delay_s=0.5, max_delay_s=0.5),
                        api_key=plan.base.api_key)  # fmt: skip
    except HealthTimeout as exc:
        raise EndpointError(f"after the switch, {exc}") from None


SWITCH_TIMEOUT_S = 600.0  # a restart that takes longer is stuck


def _run_switch(variant: Variant) -> None:
    assert variant.switch_command is not None
    try:
        done = run_command(variant.switch_command, timeout_s=SWITCH_TIMEOUT_S)
    except OSError as exc:
        raise EndpointError(f"switch command for {variant.name} failed: {exc.strerror or exc}") from None
    if done.returncode is None:
        raise EndpointError(f"switch command for {variant.name} did not end within {SWITCH_TIMEOUT_S:g} s: stopped")
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise EndpointError(f"switch command for {variant.name} exited {done.returncode}: {' / '.join(tail)}")


def _server_options(plan: AbPlan, variant: Variant) -> RunOptions:
    """Run options that make run_benchmark start this variant's server."""
    if plan.server_command:
        binary = shutil.which(plan.server_command[0]) or plan.server_command[0]
        args = (*plan.server_command[1:], *variant.flags)
        if not names_a_model(args) and plan.base.model_file is None:
            raise ConfigError("--server-cmd must name the model (-m model.gguf)")
        return replace(plan.base, endpoint=None, server_binary=Path(binary), server_args=args)
    # the embedded server with its default flags, then the variant's (the last value of a flag wins)
    max_streams = max(c.concurrency for c in plan.base.scenarios.cases())
    args = (*embedded_server_args(max_streams), *variant.flags)
    return replace(
        plan.base, endpoint=None, server_binary=plan.base.server_binary or embedded_binary(), server_args=args
    )


LookObserver = Callable[[int, Sequence[Comparison]], None]


def undecided_figures(comparisons: Sequence[Comparison], asked: Collection[tuple[str, str]]) -> list[str]:
    """The asked figures (``case figure``) that are neither changed nor the same yet."""
    return [
        f"{f.case_id} {f.figure}"
        for comparison in comparisons
        for f in comparison.figures
        if (f.case_id, f.figure) in asked and f.verdict in TESTED and f.verdict not in (*CHANGED, Verdict.SAME)
    ]


def _decided(comparisons: Sequence[Comparison], asked: Collection[tuple[str, str]]) -> bool:
    tested = [f for c in comparisons for f in c.figures if (f.case_id, f.figure) in asked and f.verdict in TESTED]
    return bool(comparisons) and bool(tested) and not undecided_figures(comparisons, asked)


def run_ab(plan: AbPlan, observer: RunObserver | None = None, on_look: LookObserver | None = None) -> AbResult:
    """Run the blocks (until decided, with ``plan.until_decided``), compare, and write ``ab.json``.

    ``on_look`` hears each look of ``--until-decided`` (blocks so far, the comparisons then).
    """
    check_writable(plan.base.results_dir)  # ab.json goes there after the last block: fail now, not then
    ab_id = f"ab-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"
    redactor = plan.redactor()
    results = {v.name: VariantResult(v.name, redactor.text(shlex.join(v.flags))) for v in plan.variants}
    by_name = {v.name: v for v in plan.variants}
    blocks = plan.max_blocks if plan.until_decided else plan.blocks
    order = block_order([v.name for v in plan.variants], blocks, plan.order, plan.base.seed)
    design, started, stopped, done, asked = plan.design, time.monotonic(), "", 0, plan.asked
    for done, (block, name) in enumerate(order, start=1):
        starts_pair = (done == 1 or order[done - 2][0] != block) and block % 2 == 0 and block > 0
        out_of_time = plan.max_time_s is not None and time.monotonic() - started > plan.max_time_s
        if design is not None and starts_pair and out_of_time:
            # at a pair's start, so that the blocks run stay balanced (A B, B A)
            stopped = f"--max-time {plan.max_time_s:g} s spent after {block} blocks: undecided"
            done -= 1
            break
        variant = by_name[name]
        outcome = results[name]
        try:
            if plan.base.endpoint is None:
                options = _server_options(plan, variant)
            else:
                if variant.switch_command:
                    _run_switch(variant)
                    _wait_after_switch(plan)
                options = plan.base
            options = replace(
                options,
                label=f"{ab_id}-{name}",
                server_flags=shlex.join(variant.flags),
                output_probe=True,
                seed=plan.base.seed + block,
            )
            result = run_benchmark(options, observer)
        except ConfigError:
            raise  # the plan itself is wrong: stop before wasting every block
        except BenchError as exc:
            # a failed run still ends its block: the look that falls there happens on the runs there are
            results[name] = replace(outcome, failures=(*outcome.failures, redactor.text(f"block {block}: {exc}")))
        else:
            meta = read_run_meta(result.run_dir)
            sample = meta.output_sample or {}
            conditions = [HostConditions.from_json(raw) for raw in (meta.conditions or {}).values()]
            contention = contention_phrase(conditions)
            results[name] = replace(
                outcome,
                runs=(*outcome.runs, result.run_id),
                command=tuple(meta.server["command"]) if meta.server else outcome.command,
                output_sha256=outcome.output_sha256 | ({sample["sha256"]} if sample.get("sha256") else set()),
                contention=(*outcome.contention, f"block {block}: {contention}") if contention else outcome.contention,
            )
        finished = block + 1
        if design is not None and _block_ends(order, done) and design.looks_at(finished):
            looked = _compare(plan, ab_id, results, {})
            if on_look is not None:
                on_look(finished, looked)
            if _decided(looked, asked):
                stopped = f"decided after {finished} blocks"
                break
    if design is not None and not stopped:
        stopped = f"--max-blocks {plan.max_blocks} spent: undecided"
    order = order[:done]
    pooled: dict[str, list[Any]] = {}
    comparisons = _compare(plan, ab_id, results, pooled)
    hashes = [r.output_sha256 for r in results.values() if r.output_sha256]
    outputs_differ = None if len(hashes) < 2 else len(set().union(*hashes)) > 1
    path = plan.base.results_dir / f"{ab_id}.ab.json"
    document = {
        "schema_version": AB_SCHEMA,
        "ab_id": ab_id,
        "mode": "remote" if plan.base.endpoint else "suite-started servers",
        "server_command": list(plan.server_command) if plan.server_command else None,
        "order": [{"block": b, "variant": n} for b, n in order],
        "variants": [{**asdict(r), "output_sha256": sorted(r.output_sha256)} for r in results.values()],
        "outputs_differ": outputs_differ,
        "until_decided": None
        if design is None
        else {
            "looks": list(design.looks),
            "decide": sorted(f"{case_id} {figure}" for case_id, figure in asked),
            "stopped": stopped,
            "max_time_s": plan.max_time_s,
        },
        "comparisons": [c.to_json() for c in comparisons],
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(redactor.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return AbResult(
        ab_id, path, tuple(order), tuple(results.values()), tuple(comparisons), outputs_differ, pooled, stopped
    )


def _block_ends(order: Sequence[tuple[int, str]], done: int) -> bool:
    """Whether the ``done``-th run of the order is the last of its block."""
    return done == len(order) or order[done][0] != order[done - 1][0]


def _compare(
    plan: AbPlan, ab_id: str, results: dict[str, VariantResult], pooled: dict[str, list[Any]]
) -> list[Comparison]:
    """Each later variant against the first, each side pooling its blocks' runs."""
    sides: list[tuple[RunRef, list[Any], dict[str, Any], list[Any]]] = []
    for variant in plan.variants:
        outcome = results[variant.name]
        if not outcome.runs:
            sides.append((RunRef(f"{ab_id}:{variant.name}", plan.base.results_dir, variant.name, None, None,
                                 outcome.flags, None, "failed"), [], {}, []))  # fmt: skip
            continue
        dirs = [plan.base.results_dir / run_id for run_id in outcome.runs]
        first = RunRef.load(dirs[0])
        ref = replace(
            first, run_id=f"{ab_id}:{variant.name}", label=variant.name, server_flags=outcome.flags, runs=len(dirs)
        )
        records = [r for d in dirs for r in read_records(d)]
        pooled[variant.name] = records
        samples = [s for d in dirs for s in read_gpu_samples(d)]
        sides.append((ref, records, scenario_definitions(read_run_meta(dirs[0])), samples))
    reference = sides[0]
    settings = replace(plan.settings, design=plan.design)
    return [
        compare_record_sets(
            reference[0],
            reference[1],
            reference[2],
            ref,
            records,
            defs,
            settings,
            samples_a=reference[3],
            samples_b=samples,
        )
        for ref, records, defs, samples in sides[1:]
        if reference[1] and records
    ]
