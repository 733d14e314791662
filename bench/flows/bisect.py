"""``bench bisect``: from a good and a bad llama.cpp commit to the first bad one, with stated error.

1. The commits from good to bad along the ancestry path (``bench.load.builds``), each built once in
   its own worktree, the user's checkout untouched.
2. Good and bad are measured first, ``reference_runs`` server starts each, on the scenario set
   (the regressed cases). The case whose figure moved most against its spread between runs is the
   one bisect follows, unless one is named; its two levels and spread are the yardstick.
3. The search (``bench.decide.bisection``) tests the commit in the middle of the open range; each
   gets runs until the sequential test puts it on a side, or its budget is spent (unclear). A
   commit that does not build is skipped.
4. The answer: the first bad commit, or the range it lies in when skipped or unclear commits
   hide the border; with every tested commit's runs, the server and build time, and a confidence
   (``1 - sum of the error rates of the decisions it rests on``, Bonferroni's bound).

Each run is a stored run labelled ``bisect-<short hash>``, so ``bench compare`` works on them; the
whole search is kept as ``bisect-<time>.json`` in the results directory.

Against a server the suite does not start (``endpoint`` with ``deploy_command``), each run is
preceded by the user's deploy command for the commit, and the build the endpoint's ``/props``
then names must be that commit's: a deploy that did not take stops the bisect rather than put a
commit on the side of the build that was measured in its place.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bench.decide.bisection import (
    DEFAULT_ALPHA,
    DEFAULT_BETA,
    DEFAULT_MAX_RUNS,
    DEFAULT_REFERENCE_RUNS,
    MIN_REFERENCE_RUNS,
    BisectResult,
    Classification,
    Search,
    Side,
    Tested,
    Yardstick,
    answer_sentence,
    classify,
    write_result,
)
from bench.decide.nightly import BUILD
from bench.errors import BenchError, ConfigError, EndpointError
from bench.flows.run import RunObserver, RunOptions, run_benchmark
from bench.load.builds import DEFAULT_CACHE, DEPLOY_TIMEOUT_S, Builds, Deployments, ReleaseBinaries, ServerSource
from bench.records import Commit
from bench.store.run_dir import check_writable
from bench.transport.client import ChatClient
from bench.transport.health import wait_for_health

DEPLOYED_READY_S = 600.0  # a deployed server loading its model

DECIDED_FIGURES = ("pp_tps", "tg_tps")


@dataclass(frozen=True, slots=True)
class BisectPlan:
    base: RunOptions  # the scenario set, results directory, model file and server flags
    repo: Path
    good: str
    bad: str
    figure: str = "tg_tps"
    case_id: str | None = None  # None: the case whose figure moved most against its spread
    build_commands: tuple[tuple[str, ...], ...] | None = None  # None: CMake for llama-server (builds.py)
    cache: Path = DEFAULT_CACHE
    binaries: Path | None = None  # a folder of release builds instead of building from the repository
    # a server the suite does not start (base.endpoint): the command that puts a commit on it ({commit}, {short})
    deploy_command: tuple[str, ...] | None = None
    deploy_timeout_s: float = DEPLOY_TIMEOUT_S
    reference_runs: int = DEFAULT_REFERENCE_RUNS
    max_runs: int = DEFAULT_MAX_RUNS
    alpha: float = DEFAULT_ALPHA
    beta: float = DEFAULT_BETA

    def __post_init__(self) -> None:
        if self.figure not in DECIDED_FIGURES:
            raise ConfigError(f"--figure must be one of {', '.join(DECIDED_FIGURES)}; got {self.figure}")
        if self.reference_runs < MIN_REFERENCE_RUNS:
            raise ConfigError(f"--runs must be at least {MIN_REFERENCE_RUNS}; got {self.reference_runs}")
        if self.max_runs < 1:
            raise ConfigError(f"--max-runs must be at least 1; got {self.max_runs}")
        for name, value in (("--alpha", self.alpha), ("--beta", self.beta)):
            if not 0 < value < 0.5:
                raise ConfigError(f"{name} must be between 0 and 0.5; got {value}")
        if (self.deploy_command is None) != (self.base.endpoint is None):
            raise ConfigError(
                "bisect on a server it does not start needs both --endpoint and --deploy-cmd (the command that "
                "puts a commit on it); without them it builds and starts each commit's server itself"
            )
        if self.deploy_command is not None and self.binaries is not None:
            raise ConfigError("--binaries and --deploy-cmd are two ways to get each commit's server: give one")


Say = Callable[[str], None]


class _Bisect:
    def __init__(self, plan: BisectPlan, observer: RunObserver | None, say: Say) -> None:
        self.plan, self.observer, self.say = plan, observer, say
        self.deployments: Deployments | None = None
        if plan.deploy_command is not None and plan.base.endpoint is not None:
            self.deployments = Deployments(
                plan.repo, plan.deploy_command, plan.base.endpoint, timeout_s=plan.deploy_timeout_s
            )
        self.builds: ServerSource = self.deployments or (
            ReleaseBinaries(plan.binaries)
            if plan.binaries is not None
            else Builds(plan.repo, plan.build_commands, cache=plan.cache)
        )
        self.server_s = self.build_s = 0.0
        # flags every llama-server of the range knows (an older commit may not know the embedded ones' --swa-full)
        slots = max(c.concurrency for c in plan.base.scenarios.cases())
        self.default_args = ("-c", str(4096 * slots), "-np", str(slots), "--metrics")

    def binary(self, commit: Commit) -> Path | str | None:
        began = time.monotonic()
        built = self.builds.server(commit)
        self.build_s += time.monotonic() - began
        return built

    def deploy(self, commit: Commit) -> str | None:
        """Put the commit on the endpoint before a run (a server the suite does not start); why not, where it failed.

        Raises ``ConfigError`` when the deploy exited 0 but the endpoint serves another build.
        """
        if self.deployments is None:
            return None
        began = time.monotonic()
        try:
            if not self.deployments.deploy(commit):
                return self.deployments.failure(commit)
            endpoint = self.deployments.endpoint
            wait_for_health(endpoint, DEPLOYED_READY_S, api_key=self.plan.base.api_key, say=self.say)
            served = served_build(endpoint, self.plan.base.api_key)
        except EndpointError as exc:
            return f"the deployed server did not answer: {exc}"
        finally:
            self.build_s += time.monotonic() - began
        if served is None or not serves(served, commit):
            said = "names no build (no build_info in /props)" if served is None else f"serves build {served}"
            raise ConfigError(
                f"after the deploy command for {commit.short}, {endpoint} {said}, not {commit.short}: bisect "
                "cannot tell which commit it would measure. Check that --deploy-cmd builds the commit it is "
                "given and restarts the server before it exits"
            )
        return None

    def run(self, commit: Commit, binary: Path | str) -> tuple[str, dict[str, dict[str, float]]]:
        """One server start and run of the set: its id and each case's pp and tg."""
        began = time.monotonic()
        label = f"bisect-{commit.short}"
        if isinstance(binary, str):  # deployed: the endpoint serves the commit
            options = replace(self.plan.base, endpoint=binary, label=label)
        else:
            options = replace(
                self.plan.base,
                endpoint=None,
                server_binary=binary,
                server_args=self.plan.base.server_args or self.default_args,
                label=label,
            )
        result = run_benchmark(options, self.observer)
        self.server_s += time.monotonic() - began
        return result.run_id, result.summary.throughput()

    def references(self, commit: Commit) -> list[tuple[str, dict[str, dict[str, float]]]]:
        binary = self.binary(commit)
        if binary is None:
            raise ConfigError(f"{commit.short} ({commit.subject}) does not build: {self.builds.failure(commit)}")
        runs = []
        for number in range(self.plan.reference_runs):
            self.say(f"measuring {commit.short}: run {number + 1} of {self.plan.reference_runs}")
            if (failed := self.deploy(commit)) is not None:
                raise ConfigError(f"{commit.short} ({commit.subject}) could not be deployed: {failed}")
            runs.append(self.run(commit, binary))
        return runs


def served_build(endpoint: str, api_key: str) -> str | None:
    """The build a server says it is (llama-server's ``build_info`` in ``/props``: b6458-abc1234), where it says."""

    async def ask() -> object:
        async with ChatClient(endpoint, api_key=api_key, timeout_s=30.0) as client:
            props = await client.get_json("/props")
            build = props.get("build_info") if isinstance(props, dict) else None
            return client.redactor.optional(build) if isinstance(build, str) else None

    build = asyncio.run(ask())
    return build if isinstance(build, str) else None


def serves(build: str, commit: Commit) -> bool:
    """Whether a build_info names the commit: its hash a prefix of the commit's."""
    match = BUILD.search(build)
    return match is not None and commit.sha.startswith(match.group(2))


def _follow(
    plan: BisectPlan, good: Sequence[dict[str, dict[str, float]]], bad: Sequence[dict[str, dict[str, float]]]
) -> tuple[str, Yardstick]:
    """The case to follow, and its yardstick: the named one, else the one moved most against its spread."""
    cases = [plan.case_id] if plan.case_id else sorted({c for run in good for c in run})
    best: tuple[float, str, Yardstick] | None = None
    problems = []
    for case_id in cases:
        g = [run[case_id][plan.figure] for run in good if plan.figure in run.get(case_id, {})]
        b = [run[case_id][plan.figure] for run in bad if plan.figure in run.get(case_id, {})]
        try:
            stick = Yardstick.measure(g, b)
        except ConfigError as exc:
            problems.append(f"{case_id}: {exc}")
            continue
        if plan.case_id is None and stick.change >= 0:
            problems.append(f"{case_id}: not slower at bad ({stick.change:+.1%})")
            continue
        if best is None or stick.separation > best[0]:
            best = (stick.separation, case_id, stick)
    if best is None:
        raise ConfigError("no case tells good from bad: " + "; ".join(problems or ["no case has the figure"]))
    return best[1], best[2]


def _reference(
    commit: Commit, side: Side, runs: Sequence[tuple[str, dict[str, dict[str, float]]]], case_id: str, figure: str
) -> Tested:
    values = tuple(f[case_id][figure] for _, f in runs if figure in f.get(case_id, {}))
    return Tested(commit, side, values, tuple(r for r, _ in runs), f"the {side} reference")


def run_bisect(plan: BisectPlan, observer: RunObserver | None = None, say: Say = lambda _: None) -> BisectResult:
    check_writable(plan.base.results_dir)
    work = _Bisect(plan, observer, say)
    commits = work.builds.commits(plan.good, plan.bad)
    by_sha = {c.sha: c for c in commits}
    say(f"{len(commits) - 2} commit(s) between {commits[0].short} (good) and {commits[-1].short} (bad)")
    good_runs = work.references(commits[0])
    bad_runs = work.references(commits[-1])
    case_id, stick = _follow(plan, [f for _, f in good_runs], [f for _, f in bad_runs])
    say(
        f"following {case_id} {plan.figure}: good {math.exp(stick.good):,.2f}, bad {math.exp(stick.bad):,.2f} "
        f"({stick.change:+.1%}), runs {stick.spread:.1%} apart: {stick.separation:.1f} spreads"
    )
    tested = [
        _reference(commits[0], Side.GOOD, good_runs, case_id, plan.figure),
        _reference(commits[-1], Side.BAD, bad_runs, case_id, plan.figure),
    ]
    search = Search([c.sha for c in commits])
    steps = 0
    while (sha := search.next_commit()) is not None:
        steps += 1
        commit = by_sha[sha]
        binary = work.binary(commit)
        if binary is None:
            search.record(sha, Side.SKIPPED)
            tested.append(Tested(commit, Side.SKIPPED, (), (), f"does not build: {work.builds.failure(commit)}"))
            say(f"step {steps}: {commit.short} skipped: it does not build")
            continue
        figures: list[float] = []
        runs: list[str] = []
        verdict: Classification | None = None
        while verdict is None or verdict.side is Side.UNTESTED:
            if (failed := work.deploy(commit)) is not None:
                verdict = Classification(Side.SKIPPED, len(figures), 0.0, None, f"it could not be deployed: {failed}")
                break
            try:
                run_id, measured = work.run(commit, binary)
            except BenchError as exc:
                verdict = Classification(Side.SKIPPED, len(figures), 0.0, None, f"its server failed: {exc}")
                break
            runs.append(run_id)
            value = measured.get(case_id, {}).get(plan.figure)
            if value is not None:
                figures.append(value)
            verdict = classify(figures, stick, alpha=plan.alpha, beta=plan.beta, max_runs=plan.max_runs)
            if value is None and len(runs) >= plan.max_runs:
                verdict = Classification(Side.UNCLEAR, len(figures), 0.0, None, f"{case_id} gave no {plan.figure}")
        search.record(sha, verdict.side)
        tested.append(Tested(commit, verdict.side, tuple(figures), tuple(runs), verdict.why))
        low, high = search.bounds()
        say(f"step {steps}: {commit.short} {verdict.why}; {high - low - 1} commit(s) left between good and bad")
    answer = tuple(by_sha[sha] for sha in search.answer())
    decided = [t for t in tested[2:] if t.side in (Side.GOOD, Side.BAD)]
    confidence = max(0.0, 1 - sum(plan.alpha if t.side is Side.GOOD else plan.beta for t in decided))
    path = plan.base.results_dir / f"bisect-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
    result = BisectResult(
        answer, tuple(tested), stick, case_id, plan.figure, steps, work.server_s, work.build_s, confidence, path,
        tuple(c.sha for c in commits),
    )  # fmt: skip
    write_result(result, plan.repo, plan.good, plan.bad)
    return result


__all__ = ["BisectPlan", "BisectResult", "Tested", "answer_sentence", "run_bisect"]
