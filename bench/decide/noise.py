"""How much a figure moves between runs of the same setup: the run, not the request, as the unit.

Requests of one run share its server start, its clocks, its neighbours on the machine and its
batching coincidences, so their spread says nothing about how far a second run of the same
server lands from the first (two starts of the embedded server differ by several percent while
the requests within each agree to 1-2 %). A verdict about runs needs the spread between runs:

- **within** a run: the robust CV of one case's per-request values (median over the runs);
- **between** runs: the standard deviation of the logs of the runs' figures, each run's figure
  being the median of its requests as the comparison takes it. It holds the within-run part
  too, at the request count it was measured with; ``Spread.at_requests`` splits the two
  (the variance of a median of n values is about pi/2 x CV^2 / n), so a plan can say whether
  more requests or more runs help.

Sources, in the order users have them: several runs a side of the comparison itself; a stored
**noise profile** (``bench noise``: the set run several times, each its own server start, kept
as ``noise-profile.json`` beside ``baselines.toml``); the history of the label (earlier runs of
the same model and scenarios). Without any, the comparison says so and holds one run a side to
an allowance (``bench.decide.compare.DEFAULT_ALLOWANCE``) instead of calling a smaller change.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from bench.decide.stats import robust_cv
from bench.doors import files, strict_json
from bench.errors import ConfigError
from bench.figures.throughput import FIGURES, Figure, figure_values, wall_s
from bench.records import RequestRecord
from bench.store.meta import RunMeta, RunStatus
from bench.store.run_dir import read_records, read_run_meta, runs_with_meta, scenario_definitions

PROFILE_SCHEMA = 1
DEFAULT_PROFILE = Path("noise-profile.json")  # beside ./baselines.toml
MIN_RUNS = 3  # a spread from two runs has one degree of freedom: its t-quantile is 12.7
HISTORY_WINDOW = 30
MEDIAN_VARIANCE = math.pi / 2  # var(median of n) ~ pi/2 x var(one) / n, for a normal sample


class NoiseSource(StrEnum):
    """Where a comparison took the spread between runs from."""

    RUNS = "runs a side"  # several runs on each side: the comparison measures it itself
    PROFILE = "noise profile"  # bench noise, stored beside the baselines
    HISTORY = "label history"  # earlier runs of the same label, model and scenarios
    NONE = "none"  # one run a side and nothing else: an allowance, not a test


@dataclass(frozen=True, slots=True)
class Spread:
    """One case's figure: how far runs of one setup land from each other, and requests within one."""

    case_id: str
    figure: str
    between: float  # standard deviation of the log run figures (about the CV between runs)
    runs: int
    within: float | None  # robust CV of the per-request values within a run, median over runs
    requests: int  # median measured requests of the case per run
    case_seconds: float | None = None  # median wall time of the case in one run (for plans)

    @property
    def df(self) -> int:
        return self.runs - 1

    @property
    def run_part(self) -> float:
        """The spread a run adds beyond its requests' sampling (server start, machine, clocks)."""
        sampling = self._sampling(self.requests)
        return math.sqrt(max(0.0, self.between**2 - sampling**2))

    def at_requests(self, requests: int) -> float:
        """The between-run spread expected with ``requests`` measured requests a case instead."""
        return math.sqrt(self.run_part**2 + self._sampling(requests) ** 2)

    def _sampling(self, requests: int) -> float:
        if self.within is None or requests < 1:
            return 0.0
        return math.sqrt(MEDIAN_VARIANCE / requests) * self.within


@dataclass(frozen=True, slots=True)
class NoiseProfile:
    """Spreads per case and figure, from runs of one setup; a stored profile or a label's history."""

    source: NoiseSource
    run_ids: tuple[str, ...]
    spreads: tuple[Spread, ...]
    model: str | None = None
    scenarios: Mapping[str, Any] = field(default_factory=dict)  # scenario name -> definition
    build: str | None = None
    server_flags: str | None = None
    endpoint: str | None = None
    created: float = 0.0
    where: str = ""  # the file it was read from, or the label whose history it is

    def spread(self, case_id: str, figure: str) -> Spread | None:
        return next((s for s in self.spreads if s.case_id == case_id and s.figure == figure), None)

    def applies_to(self, scenario: str, definition: Mapping[str, Any] | None) -> bool:
        """Whether its spreads hold for a case of this scenario as the compared runs define it."""
        return definition is not None and self.scenarios.get(scenario) == definition

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d", time.localtime(self.created)) if self.created else "?"
        if self.source is NoiseSource.HISTORY:
            return f"history of label {self.where!r}: {len(self.run_ids)} runs"
        return f"{self.source} {self.where or '-'}: {len(self.run_ids)} runs, {when}"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["scenarios"] = dict(self.scenarios)
        out["spreads"] = [asdict(s) for s in self.spreads]
        return {"schema_version": PROFILE_SCHEMA, **out}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "") -> NoiseProfile:
        if data.get("schema_version") != PROFILE_SCHEMA:
            raise ConfigError(f"{where}: not a noise profile of schema {PROFILE_SCHEMA} (bench noise writes one)")
        try:
            spreads = tuple(
                Spread(
                    case_id=str(s["case_id"]),
                    figure=str(s["figure"]),
                    between=_finite(s["between"], 0.0, MAX_SPREAD),
                    runs=_count(s["runs"]),
                    within=None if s.get("within") is None else _finite(s["within"], 0.0, MAX_SPREAD),
                    requests=_count(s["requests"]),
                    case_seconds=None if s.get("case_seconds") is None else _finite(s["case_seconds"], 0.0, 1e9),
                )
                for s in data["spreads"]
            )
            if any(s.runs < MIN_RUNS for s in spreads):
                raise ValueError(f"a spread from fewer than {MIN_RUNS} runs")
            return cls(
                source=NoiseSource(data.get("source", NoiseSource.PROFILE)),
                run_ids=tuple(str(r) for r in data["run_ids"]),
                spreads=spreads,
                model=data.get("model"),
                scenarios=dict(data.get("scenarios") or {}),
                build=data.get("build"),
                server_flags=data.get("server_flags"),
                endpoint=data.get("endpoint"),
                created=float(data.get("created") or 0.0),
                where=where,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: not a valid noise profile ({exc}); write it again with bench noise") from None


# A spread is a coefficient of variation: 10 (1,000 %) is already no measurement. Larger values
# only overflow what is computed from them (a plan's run counts, an interval's width).
MAX_SPREAD = 10.0


def _finite(value: Any, low: float, high: float) -> float:
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise ValueError(f"{str(value)[:40]} is not a number from {low:g} to {high:g}")
    return number


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**9:
        raise ValueError(f"{str(value)[:40]} is not a count from 0 to 10^9")
    return value


# ------------------------------------------------------------------ measuring


def spreads_of(runs: Sequence[Sequence[RequestRecord]], figures: Iterable[Figure] = FIGURES) -> list[Spread]:
    """Each case's and figure's spreads over runs (each a list of its records); cases in fewer than 3 runs left out."""
    figures = tuple(figures)
    by_case: dict[str, list[list[RequestRecord]]] = {}
    for records in runs:
        cases: dict[str, list[RequestRecord]] = {}
        for record in records:
            cases.setdefault(record.case_id, []).append(record)
        for case_id, case_records in cases.items():
            by_case.setdefault(case_id, []).append(case_records)
    out = []
    for case_id in sorted(by_case):
        for figure in figures:
            values, withins, counts, seconds = [], [], [], []
            for case_records in by_case[case_id]:
                per = figure_values(case_records, figure)
                value = statistics.median(per) if per else None  # the run's figure, as run_figure takes it
                if value is None or value <= 0:
                    continue
                values.append(value)
                counts.append(len(per))
                seconds.append(wall_s(case_records))
                if (cv := robust_cv(per)) is not None:
                    withins.append(cv)
            if len(values) < MIN_RUNS:
                continue
            out.append(
                Spread(
                    case_id=case_id,
                    figure=figure.name,
                    between=statistics.stdev(math.log(v) for v in values),
                    runs=len(values),
                    within=statistics.median(withins) if withins else None,
                    requests=int(statistics.median(counts)),
                    case_seconds=statistics.median(seconds),
                )
            )
    return out


def measure_profile(run_dirs: Sequence[Path], *, source: NoiseSource = NoiseSource.PROFILE) -> NoiseProfile:
    """A profile from runs of one setup (the same model and scenario definitions): at least three."""
    if len(run_dirs) < MIN_RUNS:
        raise ConfigError(
            f"a noise profile needs at least {MIN_RUNS} runs of the same setup to see their spread; got {len(run_dirs)}"
        )
    metas = [read_run_meta(path) for path in run_dirs]
    models = {m.model for m in metas}
    if len(models) > 1:
        raise ConfigError(f"the runs are of different models ({', '.join(sorted(map(str, models)))}): not one setup")
    scenarios = scenario_definitions(metas[0])
    for path, meta in zip(run_dirs[1:], metas[1:], strict=True):
        other = scenario_definitions(meta)
        if changed := sorted(n for n in set(scenarios) & set(other) if scenarios[n] != other[n]):
            raise ConfigError(f"{path.name} defines {', '.join(changed)} differently from {run_dirs[0].name}")
    spreads = spreads_of([list(read_records(path)) for path in run_dirs])
    if not spreads:
        raise ConfigError(f"no case has a measured figure in {MIN_RUNS} or more of these runs")
    first = metas[0]
    return NoiseProfile(
        source=source,
        run_ids=tuple(path.name for path in run_dirs),
        spreads=tuple(spreads),
        model=first.model,
        scenarios=scenarios,
        build=first.build,
        server_flags=first.server_flags,
        endpoint=_base_url(first),
        created=time.time(),
    )


def _base_url(meta: RunMeta) -> str | None:
    endpoint = meta.endpoint
    return endpoint.get("base_url") if isinstance(endpoint, Mapping) else None


def history_profile(
    results_dir: Path, label: str, model: str | None, *, exclude: Iterable[str] = (), window: int = HISTORY_WINDOW
) -> NoiseProfile | None:
    """The spread between the label's latest complete runs of this model (``exclude``: the compared runs).

    Scenario definitions may differ between them; each case's spread comes from the runs that
    share the newest definition, and a case is left out with fewer than three such runs. A real
    change inside the history widens the spread: the verdicts it gives are the more cautious.
    """
    skip = set(exclude)
    found = []
    for path, meta in runs_with_meta(results_dir):
        if meta.label != label or meta.status != RunStatus.COMPLETE or path.name in skip:
            continue
        if model is not None and meta.model != model:
            continue
        found.append((float(meta.started or 0), path, meta))
    found.sort(key=lambda item: item[0])
    found = found[-window:]
    if len(found) < MIN_RUNS:
        return None
    scenarios: dict[str, Any] = {}
    for _, _, meta in found:  # oldest first: the newest definition of each scenario wins
        scenarios.update(scenario_definitions(meta))
    runs = []
    for _, path, meta in found:
        definitions = scenario_definitions(meta)
        same = {name for name, d in definitions.items() if scenarios.get(name) == d}
        runs.append([r for r in read_records(path) if r.scenario in same])
    spreads = spreads_of(runs)
    if not spreads:
        return None
    newest = found[-1][2]
    return NoiseProfile(
        source=NoiseSource.HISTORY,
        run_ids=tuple(path.name for _, path, _ in found),
        spreads=tuple(spreads),
        model=model,
        scenarios=scenarios,
        build=newest.build,
        server_flags=newest.server_flags,
        endpoint=_base_url(newest),
        created=time.time(),
        where=label,
    )


# ------------------------------------------------------------------ storing


def save_profile(profile: NoiseProfile, path: Path) -> None:
    """Write atomically: a profile half written by a killed command is never read back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(strict_json.dumps(profile.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


PROFILE_MAX_BYTES = 16 * 2**20  # a profile holds a few numbers per figure of each case


def load_profile(path: Path) -> NoiseProfile:
    if not path.exists():
        raise ConfigError(f"{path}: no such noise profile; bench noise writes one")
    data = files.read_json(
        path, what="noise profile", max_bytes=PROFILE_MAX_BYTES, hint="write it again with bench noise"
    )
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a noise profile; write it again with bench noise")
    return NoiseProfile.from_json(data, where=str(path))


# ------------------------------------------------------------------ choosing one for a comparison

AUTO = "auto"
NO_NOISE = "none"


@dataclass(frozen=True, slots=True)
class NoiseChoice:
    profile: NoiseProfile | None
    note: str  # why this one, or why none: printed above the comparison


def choose_noise(
    spec: str, *, results_dir: Path, label: str | None, model: str | None, exclude: Iterable[str] = ()
) -> NoiseChoice:
    """The spread between runs for a comparison: ``spec`` is a profile file, ``auto`` or ``none``.

    ``auto``: ``./noise-profile.json`` when it is of this model, else the history of the
    reference side's label (its earlier complete runs of this model, the compared runs left out).
    """
    if spec == NO_NOISE:
        return NoiseChoice(None, "")
    if spec != AUTO:
        return NoiseChoice(load_profile(Path(spec)), "")
    notes = []
    if DEFAULT_PROFILE.exists():
        profile = load_profile(DEFAULT_PROFILE)
        if model is None or profile.model in (None, model):
            return NoiseChoice(profile, "")
        notes.append(f"{DEFAULT_PROFILE} is of {profile.model}, not {model}: not used")
    if label is not None:
        history = history_profile(results_dir, label, model, exclude=exclude)
        if history is not None:
            return NoiseChoice(history, "; ".join(notes))
    return NoiseChoice(None, "; ".join(notes))
