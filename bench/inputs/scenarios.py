"""Scenario sets: TOML files validated into typed objects.

A scenario set is data a user edits (see ``bench/inputs/scenarios/*.toml`` for the
built-in ones). Each scenario expands to *cases*: one per combination of prompt
length, output length, concurrency and context depth. A case is the unit that
is measured, summarised and compared.

Errors name the file, the scenario, the field and what is allowed, and are
raised before any request is sent. The TOML helpers here (``read_toml``,
``Where``) serve ``bench.inputs.baselines`` too.
"""

from __future__ import annotations

import itertools
import math
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from bench.doors import files
from bench.errors import ConfigError
from bench.inputs.corpus import corpus_words
from bench.inputs.lengths import ALLOWED, LengthDist, parse_lengths
from bench.inputs.slo import STREAMED_ONLY, Slo, SloLimit, valid_limit
from bench.inputs.trace import Trace, load_trace

SCHEMA_VERSION = 1
BUILTIN_SETS = ("smoke", "quick", "baseline", "sweep", "traffic")


class Pattern(StrEnum):
    """How a scenario's requests go out (``bench.load.loadgen``)."""

    SEQUENTIAL = "sequential"  # one at a time
    CONCURRENT = "concurrent"  # a closed loop of N streams
    POISSON = "poisson"  # an open loop, exponential arrivals at rate_rps
    TRACE = "trace"  # an open loop at a trace's times and lengths


PATTERNS: tuple[Pattern, ...] = tuple(Pattern)


class Connections(StrEnum):
    """What a case's requests go out on (``bench.load.loadgen``)."""

    # kept alive and, for a closed loop, opened ahead of the case's clock: TTFT is the server's, from the request
    WARM = "warm"
    # one new connection per request, its connect inside the request's time: TTFT then includes the connect
    COLD = "cold"


HEADLINE_PROMPT_TOKENS = 256  # a prompt from this long is a pp figure of its own (the quick set's shortest pp case)
HEADLINE_OUTPUT_TOKENS = 32  # an answer from this long is a tg figure of its own


def headline_figures(prompt_tokens: int, output_tokens: int) -> tuple[str, ...]:
    """The throughput figures a case of these lengths is for: pp where its prompt is long enough to time, tg
    where its answer is. A 512-token prompt answered in 8 tokens is a pp case; its tg, 7 gaps, is a by-product
    that lands far apart between runs, and waiting for it to be decided would cost blocks for nothing."""
    figures = tuple(
        name
        for name, enough in (
            ("pp_tps", prompt_tokens >= HEADLINE_PROMPT_TOKENS),
            ("tg_tps", output_tokens >= HEADLINE_OUTPUT_TOKENS),
        )
        if enough
    )
    return figures or ("pp_tps", "tg_tps")  # a case short both ways: both, as it is


@dataclass(frozen=True, slots=True)
class Case:
    """One measured combination of a scenario's axes."""

    scenario: str
    prompt_tokens: int
    output_tokens: int
    concurrency: int
    depth: int
    requests: int
    warmup: int
    stream: bool
    pattern: Pattern
    rate_rps: float | None
    max_duration_s: float
    temperature: float
    top_p: float
    slo: Slo | None = None  # what a request must meet to count toward goodput
    turns: int = 1  # more than 1: each request opens a conversation of this many turns
    prefixes: int = 0  # more than 0: requests share this many system prompts of prefix_tokens each
    prefix_tokens: int = 0
    # lengths that vary: each request draws its own (prompt_tokens / output_tokens are then the median)
    prompt_lengths: LengthDist | None = None
    output_lengths: LengthDist | None = None
    trace: Trace | None = None  # pattern 'trace': every request's time and lengths come from it
    speed: float = 1.0
    text: str | None = None  # a text corpus the prompts are made of (bench.inputs.corpus), else filler words
    warmup_auto: bool = False  # warm up until two requests in a row agree, at most ``warmup`` of them
    connections: Connections = Connections.WARM

    @property
    def case_id(self) -> str:
        if self.trace is not None:
            cold = "-cold" if self.cold else ""
            return f"{self.scenario}/trace-{self.trace.name}-x{self.speed:g}-c{self.concurrency}{cold}"
        prompt = self.prompt_lengths.label if self.prompt_lengths else self.prompt_tokens
        output = self.output_lengths.label if self.output_lengths else self.output_tokens
        base = f"{self.scenario}/p{prompt}-o{output}-c{self.concurrency}-d{self.depth}"
        # suffixes only where used: the ids of cases without them stay as every stored run has them
        turns = f"-t{self.turns}" if self.turns > 1 else ""
        shared = f"-k{self.prefixes}x{self.prefix_tokens}" if self.prefixes else ""
        cold = "-cold" if self.cold else ""
        return base + turns + shared + cold

    @property
    def cold(self) -> bool:
        """Each request on a connection of its own, the connect counted in its time."""
        return self.connections == Connections.COLD

    @property
    def headline_figures(self) -> tuple[str, ...]:
        """The throughput figures this case is for (``headline_figures``)."""
        return headline_figures(self.prompt_tokens, self.output_tokens)

    @property
    def uses_prompt_cache(self) -> bool:
        """The case means requests to reuse what the server cached (a depth, a conversation, a shared prefix)."""
        traced = self.trace is not None and (self.trace.sessions > 0 or bool(self.trace.prefixes))
        return self.depth > 0 or self.turns > 1 or self.prefixes > 0 or traced

    @property
    def measured_requests(self) -> int:
        """Measured requests the case sends: ``requests`` of them, or of conversations, one per turn."""
        return self.requests * self.turns

    @property
    def context_tokens(self) -> int:
        """Tokens the slot must hold: cached depth or shared prefix, every turn's prompt and output."""
        if self.trace is not None:
            return self.trace.longest_context
        return self.depth + self.prefix_tokens + self.turns * (self.longest_prompt + self.longest_output)

    @property
    def longest_prompt(self) -> int:
        return self.prompt_lengths.high if self.prompt_lengths else self.prompt_tokens

    @property
    def longest_output(self) -> int:
        return self.output_lengths.high if self.output_lengths else self.output_tokens


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    prompt_tokens: tuple[int | LengthDist, ...]
    output_tokens: tuple[int | LengthDist, ...]
    concurrency: tuple[int, ...] = (1,)
    depth: tuple[int, ...] = (0,)
    repetitions: int = 3
    warmup: int = 1
    stream: bool = True
    pattern: Pattern = Pattern.SEQUENTIAL
    rate_rps: float | None = None
    max_duration_s: float = 600.0
    temperature: float = 1.0
    top_p: float = 1.0
    description: str = ""
    slo: Slo | None = None
    turns: int = 1
    prefixes: tuple[int, ...] = (0,)
    prefix_tokens: int = 0
    trace: Trace | None = None
    speed: float = 1.0
    text: str | None = None
    warmup_auto: bool = False  # warmup = "auto": warm until two in a row agree, at most AUTO_WARMUP_MAX
    connections: Connections = Connections.WARM

    def cases(self) -> list[Case]:
        out: list[Case] = []
        for prompt, output, conc, depth, prefixes in itertools.product(
            self.prompt_tokens, self.output_tokens, self.concurrency, self.depth, self.prefixes
        ):
            # Closed loop: every one of the N streams runs `repetitions` requests,
            # so each concurrency level gets the same statistical weight per stream.
            requests = self.repetitions * conc if self.pattern == Pattern.CONCURRENT else self.repetitions
            if self.trace is not None:
                requests = len(self.trace.rows)
            out.append(
                Case(
                    scenario=self.name,
                    prompt_tokens=prompt.nominal if isinstance(prompt, LengthDist) else prompt,
                    output_tokens=output.nominal if isinstance(output, LengthDist) else output,
                    prompt_lengths=prompt if isinstance(prompt, LengthDist) else None,
                    output_lengths=output if isinstance(output, LengthDist) else None,
                    concurrency=conc,
                    depth=depth,
                    requests=requests,
                    warmup=self.warmup,
                    stream=self.stream,
                    pattern=self.pattern,
                    rate_rps=self.rate_rps,
                    max_duration_s=self.max_duration_s,
                    temperature=self.temperature,
                    top_p=self.top_p,
                    slo=self.slo,
                    turns=self.turns,
                    prefixes=prefixes,
                    prefix_tokens=self.prefix_tokens if prefixes else 0,
                    trace=self.trace,
                    speed=self.speed,
                    text=self.text,
                    warmup_auto=self.warmup_auto,
                    connections=self.connections,
                )
            )
        return out


@dataclass(frozen=True, slots=True)
class ScenarioSet:
    name: str
    source: str
    scenarios: tuple[Scenario, ...]
    description: str = ""

    def cases(self) -> list[Case]:
        return [case for scenario in self.scenarios for case in scenario.cases()]

    def with_warmup(self, warmup: int | str) -> ScenarioSet:
        """Every scenario with ``warmup`` warm-up requests, or "auto": until two in a row agree (--warmup)."""
        if warmup == AUTO:
            count, auto = AUTO_WARMUP_MAX, True
        elif isinstance(warmup, int) and not isinstance(warmup, bool) and 0 <= warmup <= MAX_WARMUP:
            count, auto = warmup, False
        else:
            raise ConfigError(f'--warmup must be a count from 0 to {MAX_WARMUP:,} or "auto"; got {warmup!r}')
        return replace(self, scenarios=tuple(replace(s, warmup=count, warmup_auto=auto) for s in self.scenarios))

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "name": self.name,
            "source": self.source,
            "description": self.description,
            # a trace is named by its file and digest, not copied into every run.json
            "scenarios": [_scenario_dict(asdict(replace(s, trace=None)), s.trace) for s in self.scenarios],
        }


def _scenario_dict(scenario: dict[str, Any], trace: Trace | None = None) -> dict[str, Any]:
    """A scenario as run.json keeps it: an SLO only where one was stated, with the limits stated.

    Runs from before SLOs existed define their scenarios without the key: the same scenario
    without an SLO must read the same, or every comparison across that change would be refused.
    """
    slo = scenario.pop("slo", None)
    if slo:
        scenario["slo"] = {key: value for key, value in slo.items() if value is not None}
    # the same for conversations, shared prefixes, traces and texts: written only where a scenario uses them
    unused_values = (
        ("turns", 1),
        ("prefixes", (0,)),
        ("prefix_tokens", 0),
        ("trace", None),
        ("speed", 1.0),
        ("text", None),
        ("warmup_auto", False),
        ("connections", Connections.WARM),
    )
    for key, unused in unused_values:
        if scenario.get(key) == unused:
            del scenario[key]
    if trace is not None:
        scenario["trace"] = trace.to_json()
    return scenario


# --------------------------------------------------------------------- loading

# What a run can hold: beyond these a scenario would spend gigabytes and hours before its
# first request (prompts are built, and tokenized, before any load is sent).
MAX_TOKENS = 1_048_576  # prompt, output or depth: a million-token context
MAX_CONCURRENCY = 4096
MAX_REPETITIONS = 100_000
MAX_WARMUP = 10_000
AUTO = "auto"
AUTO_WARMUP_MAX = 8  # warmup = "auto" sends at most this many
MAX_RATE_RPS = 100_000.0
MAX_DURATION_S = 7 * 86400.0
MAX_TURNS = 1000
MAX_SPEED = 1000.0
MAX_PREFIXES = 10_000
MAX_CASE_PROMPT_TOKENS = 20_000_000  # prompt tokens built for one case (its requests x prompt length)

_SCENARIO_FIELDS: dict[str, str] = {
    "name": "a name made of letters, digits, '-' and '_'",
    "description": "text",
    "prompt_tokens": f"a positive integer up to {MAX_TOKENS:,}, a length distribution, or a list of them",
    "output_tokens": f"a positive integer up to {MAX_TOKENS:,}, a length distribution, or a list of them",
    # a length distribution: bench.inputs.lengths.ALLOWED
    "concurrency": f"a positive integer up to {MAX_CONCURRENCY:,} or a list of them",
    "depth": f"a non-negative integer up to {MAX_TOKENS:,} or a list of them",
    "repetitions": f"a positive integer up to {MAX_REPETITIONS:,}",
    "warmup": f'a non-negative integer up to {MAX_WARMUP:,}, or "auto" (warm until two requests in a row agree)',
    "stream": "true or false",
    "pattern": "one of " + ", ".join(PATTERNS),
    "rate_rps": f"a positive number up to {MAX_RATE_RPS:,.0f} (requests per second, pattern 'poisson')",
    "max_duration_s": f"a positive number of seconds up to {MAX_DURATION_S:,.0f} (a week)",
    "temperature": "a number from 0 to 2",
    "top_p": "a number in (0, 1]",
    "turns": f"a positive integer up to {MAX_TURNS:,}: turns per conversation (more than 1: multi-turn sessions)",
    "prefixes": f"a non-negative integer up to {MAX_PREFIXES:,} or a list of them: distinct shared system prompts",
    "prefix_tokens": f"a positive integer up to {MAX_TOKENS:,}: tokens of each shared system prompt",
    "trace": "a JSONL trace file (relative to the scenario set) or 'sample' (pattern 'trace'; see bench.inputs.trace)",
    "speed": f"a positive number up to {MAX_SPEED:g}: how much faster than recorded a trace is replayed",
    "connections": '"warm" (kept alive, a closed loop\'s opened before its clock: the default) or "cold" (a new '
    "connection per request, its connect counted in TTFT and latency)",
    "text": "a UTF-8 text file (relative to the scenario set) whose words make the prompts (default: filler words)",
    "slo": "a table of limits in ms, each a positive number: "
    + ", ".join(f"{limit.value}" for limit in SloLimit)
    + " (e.g. { ttft_ms = 2000, tpot_ms = 50 })",
}
_DEFAULTABLE = set(_SCENARIO_FIELDS) - {"name", "description", "prompt_tokens", "output_tokens"}


class Where:
    """Builds error messages that say where in which file a value was wrong."""

    def __init__(self, source: str, table: str) -> None:
        self.source = source
        self.table = table

    def error(self, key: str, allowed: str, got: object) -> ConfigError:
        return ConfigError(f"{self.source}: {self.table}, field '{key}': must be {allowed}; got {files.shown(got)}")


def _int_list(where: Where, key: str, value: object, minimum: int, maximum: int) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [value]
    allowed = _SCENARIO_FIELDS[key]
    if not items:
        raise where.error(key, allowed, value)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or not minimum <= item <= maximum:
            raise where.error(key, allowed, value)
    return tuple(items)


def _length_list(where: Where, key: str, value: object) -> tuple[int | LengthDist, ...]:
    """Lengths: integers or distributions (TOML tables), one or a list; a file is read beside the set."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise where.error(key, _SCENARIO_FIELDS[key], value)
    source = Path(where.source)
    base = source.parent if source.suffix == ".toml" else None
    out: list[int | LengthDist] = []
    for item in items:
        if isinstance(item, dict):
            out.append(
                parse_lengths(
                    item,
                    minimum=1,
                    maximum=MAX_TOKENS,
                    base=base,
                    where=f"{where.source}: {where.table}, field '{key}'",
                )
            )
        elif isinstance(item, bool) or not isinstance(item, int) or not 1 <= item <= MAX_TOKENS:
            raise where.error(key, f"{_SCENARIO_FIELDS[key]} ({ALLOWED})", value)
        else:
            out.append(item)
    return tuple(out)


def _int_field(where: Where, key: str, value: object, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise where.error(key, _SCENARIO_FIELDS[key], value)
    return value


def number_field(where: Where, key: str, value: object, allowed: str) -> float:
    """A finite number (TOML can write nan and inf; no field of the suite means them)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise where.error(key, allowed, value)
    return float(value)


def check_unknown_fields(where: Where, table: Mapping[str, object], known: Mapping[str, str]) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(
                f"{where.source}: {where.table}: unknown field '{key}'; allowed fields: {', '.join(sorted(known))}"
            )


def _slo_field(where: Where, value: object, stream: bool) -> Slo | None:
    if value is None:
        return None
    allowed = _SCENARIO_FIELDS["slo"]
    if not isinstance(value, dict) or not value:
        raise where.error("slo", allowed, value)
    limits = {limit.value for limit in SloLimit}
    for key, limit in value.items():
        if key not in limits or not valid_limit(limit):
            raise where.error("slo", allowed, value)
    if not stream and (timed := [k for k in value if SloLimit(k) in STREAMED_ONLY]):
        # without a stream the client sees no token times: these limits could never be judged
        raise ConfigError(
            f"{where.source}: {where.table}: slo limits {', '.join(timed)} need stream = true (token times)"
        )
    return Slo(**{key: float(limit) for key, limit in value.items()})


def _parse_scenario(source: str, raw: Mapping[str, Any], defaults: Mapping[str, Any]) -> Scenario:
    name = raw.get("name")
    label = f"scenario {name!r}" if isinstance(name, str) else "a [[scenario]] table"
    where = Where(source, label)
    check_unknown_fields(where, raw, _SCENARIO_FIELDS)
    merged = {**defaults, **raw}
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
        raise where.error("name", _SCENARIO_FIELDS["name"], name)
    if merged.get("pattern", Pattern.SEQUENTIAL) not in PATTERNS:
        raise where.error("pattern", _SCENARIO_FIELDS["pattern"], merged.get("pattern"))
    pattern = Pattern(merged.get("pattern", Pattern.SEQUENTIAL))
    trace, speed = None, 1.0
    if pattern == Pattern.TRACE:
        trace, speed, merged = _trace_fields(where, raw, merged)
    elif "trace" in merged or "speed" in merged:
        raise ConfigError(f"{source}: {label}: fields 'trace' and 'speed' need pattern 'trace'")
    for required in ("prompt_tokens", "output_tokens"):
        if required not in merged:
            raise ConfigError(f"{source}: {label}: missing field '{required}' ({_SCENARIO_FIELDS[required]})")
    repetitions = _int_field(where, "repetitions", merged.get("repetitions", 3), 1, MAX_REPETITIONS)
    warmup_auto = merged.get("warmup") == AUTO
    warmup = AUTO_WARMUP_MAX if warmup_auto else _int_field(where, "warmup", merged.get("warmup", 1), 0, MAX_WARMUP)
    stream = merged.get("stream", True)
    if not isinstance(stream, bool):
        raise where.error("stream", _SCENARIO_FIELDS["stream"], stream)
    if merged.get("connections", Connections.WARM) not in tuple(Connections):
        raise where.error("connections", _SCENARIO_FIELDS["connections"], merged.get("connections"))
    connections = Connections(merged.get("connections", Connections.WARM))
    description = merged.get("description", "")
    if not isinstance(description, str):
        raise where.error("description", _SCENARIO_FIELDS["description"], description)
    concurrency, depth, rate_rps = _load_shape(where, merged, pattern)
    turns, prefixes, prefix_tokens = _reuse(where, merged, pattern, depth)
    max_duration_s, temperature, top_p = _limits_and_sampling(where, merged)
    slo = _slo_field(where, merged.get("slo"), stream)
    prompt_tokens = _length_list(where, "prompt_tokens", merged["prompt_tokens"])
    longest = max(p.high if isinstance(p, LengthDist) else p for p in prompt_tokens)
    requests = repetitions * (max(concurrency) if pattern == Pattern.CONCURRENT else 1) + warmup
    per_case = requests * longest * turns + max(prefixes) * prefix_tokens
    if trace is not None:
        per_case = sum(r.input_tokens for r in trace.rows) + sum(trace.prefixes.values()) + warmup * longest
        if trace.duration_s / speed > max_duration_s:
            raise ConfigError(
                f"{source}: {label}: the trace lasts {trace.duration_s / speed:,.1f} s at speed {speed:g}, longer "
                f"than max_duration_s ({max_duration_s:g} s): raise max_duration_s or the speed"
            )
    if per_case > MAX_CASE_PROMPT_TOKENS:
        raise ConfigError(
            f"{source}: {label}: a case would build {per_case:,} prompt tokens before its first request "
            f"(requests x prompt_tokens); the limit is {MAX_CASE_PROMPT_TOKENS:,}: lower repetitions, "
            "concurrency or prompt_tokens, or split the scenario"
        )
    return Scenario(
        name=name, description=description, prompt_tokens=prompt_tokens,
        output_tokens=_length_list(where, "output_tokens", merged["output_tokens"]),
        concurrency=concurrency, depth=depth, repetitions=repetitions, warmup=warmup, warmup_auto=warmup_auto,
        stream=stream,
        pattern=pattern, rate_rps=rate_rps, max_duration_s=max_duration_s, temperature=temperature,
        top_p=top_p, slo=slo, turns=turns, prefixes=prefixes, prefix_tokens=prefix_tokens, trace=trace,
        speed=speed, text=_text_field(where, merged.get("text")), connections=connections,
    )  # fmt: skip


def _load_shape(
    where: Where, merged: Mapping[str, Any], pattern: Pattern
) -> tuple[tuple[int, ...], tuple[int, ...], float | None]:
    """Concurrency, depth and arrival rate, and the rules that tie them to the pattern."""
    at = f"{where.source}: {where.table}"
    concurrency = _int_list(where, "concurrency", merged.get("concurrency", 1), 1, MAX_CONCURRENCY)
    depth = _int_list(where, "depth", merged.get("depth", 0), 0, MAX_TOKENS)
    rate_rps: float | None = None
    if "rate_rps" in merged:
        rate_rps = number_field(where, "rate_rps", merged["rate_rps"], _SCENARIO_FIELDS["rate_rps"])
        if not 0 < rate_rps <= MAX_RATE_RPS:
            raise where.error("rate_rps", _SCENARIO_FIELDS["rate_rps"], merged["rate_rps"])
    if pattern == Pattern.POISSON and rate_rps is None:
        raise ConfigError(f"{at}: pattern 'poisson' needs field 'rate_rps' (requests per second)")
    if pattern == Pattern.SEQUENTIAL and max(concurrency) > 1:
        raise ConfigError(
            f"{at}: pattern 'sequential' runs one request at a time; "
            f"use pattern 'concurrent' for concurrency {max(concurrency)}"
        )
    if max(depth) > 0 and max(concurrency) > 1:
        # Depth is a prefix cached in one slot; concurrent streams would each need
        # their own primed slot, which the server's slot choice does not guarantee.
        raise ConfigError(f"{at}: field 'depth' > 0 needs concurrency 1")
    return concurrency, depth, rate_rps


def _reuse(
    where: Where, merged: Mapping[str, Any], pattern: Pattern, depth: tuple[int, ...]
) -> tuple[int, tuple[int, ...], int]:
    """Conversations (turns) and shared prefixes: what the prompt cache is meant to reuse."""
    at = f"{where.source}: {where.table}"
    turns = _int_field(where, "turns", merged.get("turns", 1), 1, MAX_TURNS)
    prefixes = _int_list(where, "prefixes", merged.get("prefixes", 0), 0, MAX_PREFIXES)
    prefix_tokens = 0
    if max(prefixes) > 0:
        if "prefix_tokens" not in merged:
            raise ConfigError(f"{at}: field 'prefixes' needs 'prefix_tokens' (tokens of each shared prompt)")
        prefix_tokens = _int_field(where, "prefix_tokens", merged["prefix_tokens"], 1, MAX_TOKENS)
    elif "prefix_tokens" in merged:
        raise ConfigError(f"{at}: field 'prefix_tokens' needs 'prefixes' (how many shared prompts)")
    if (turns > 1 or max(prefixes) > 0) and max(depth) > 0:
        # depth primes one cached prefix itself; conversations and shared prompts build their own
        raise ConfigError(f"{at}: field 'depth' cannot be combined with 'turns' or 'prefixes'")
    if turns > 1 and pattern == Pattern.POISSON:
        raise ConfigError(
            f"{at}: conversations (turns > 1) run as users in a closed loop: use pattern "
            "'concurrent' (concurrency = users) or 'sequential'"
        )
    return turns, prefixes, prefix_tokens


def _limits_and_sampling(where: Where, merged: Mapping[str, Any]) -> tuple[float, float, float]:
    """A case's time limit, and the sampling every request asks for (temperature, top_p)."""
    max_duration_s = number_field(
        where, "max_duration_s", merged.get("max_duration_s", 600.0), _SCENARIO_FIELDS["max_duration_s"]
    )
    if not 0 < max_duration_s <= MAX_DURATION_S:
        raise where.error("max_duration_s", _SCENARIO_FIELDS["max_duration_s"], max_duration_s)
    temperature = number_field(where, "temperature", merged.get("temperature", 1.0), _SCENARIO_FIELDS["temperature"])
    if not 0 <= temperature <= 2:
        raise where.error("temperature", _SCENARIO_FIELDS["temperature"], temperature)
    top_p = number_field(where, "top_p", merged.get("top_p", 1.0), _SCENARIO_FIELDS["top_p"])
    if not 0 < top_p <= 1:
        raise where.error("top_p", _SCENARIO_FIELDS["top_p"], top_p)
    return max_duration_s, temperature, top_p


def _text_field(where: Where, value: object) -> str | None:
    """A text corpus's path (relative to the set), checked readable now rather than after the server starts."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise where.error("text", _SCENARIO_FIELDS["text"], value)
    source = Path(where.source)
    path = Path(value) if Path(value).is_absolute() or source.suffix != ".toml" else source.parent / value
    corpus_words(str(path))
    return str(path)


TRACE_CONCURRENCY = 8  # a trace's default cap on requests in flight (the embedded server gets a slot each)
_NOT_WITH_TRACE = ("prompt_tokens", "output_tokens", "depth", "turns", "prefixes", "prefix_tokens", "rate_rps")


def _trace_fields(where: Where, raw: Mapping[str, Any], merged: dict[str, Any]) -> tuple[Trace, float, dict[str, Any]]:
    """A trace scenario's trace and speed; its lengths, sessions, prefixes and times come from the trace."""
    for key in _NOT_WITH_TRACE:
        if key in raw:
            raise ConfigError(
                f"{where.source}: {where.table}: pattern 'trace' takes field '{key}' from the trace; remove it"
            )
    if not isinstance(merged.get("trace"), str):
        raise where.error("trace", _SCENARIO_FIELDS["trace"], merged.get("trace"))
    source = Path(where.source)
    trace = load_trace(merged["trace"], source.parent if source.suffix == ".toml" else None)
    speed = number_field(where, "speed", merged.get("speed", 1.0), _SCENARIO_FIELDS["speed"])
    if not 0 < speed <= MAX_SPEED:
        raise where.error("speed", _SCENARIO_FIELDS["speed"], speed)
    inputs = sorted(r.input_tokens for r in trace.rows if r.turn in (None, 1))
    outputs = sorted(r.output_tokens for r in trace.rows)
    merged = {
        **{k: v for k, v in merged.items() if k not in _NOT_WITH_TRACE},
        # what stands for the trace in tables and warm-ups: its median first prompt and answer
        "prompt_tokens": inputs[len(inputs) // 2] if inputs else trace.rows[0].input_tokens,
        "output_tokens": outputs[len(outputs) // 2],
        "repetitions": 1,
        "concurrency": merged.get("concurrency", TRACE_CONCURRENCY),
    }
    return trace, speed, merged


def read_toml(path: Path | str, text: str | None = None, *, what: str = "scenario set") -> dict[str, Any]:
    """A TOML file through the suite's one reader (``bench.doors.files``), or ``text`` already read (a built-in)."""
    if text is None:
        return files.read_toml(path, what=what)
    return files.loads_toml(text, str(path), what=what)


def check_schema(source: str, data: Mapping[str, Any]) -> None:
    version = data.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise ConfigError(
            f"{source}: schema_version {version!r} is not supported by this version of the suite "
            f"(it reads schema_version {SCHEMA_VERSION})"
        )


def parse_scenario_set(data: Mapping[str, Any], source: str) -> ScenarioSet:
    check_schema(source, data)
    allowed_top = {"schema_version", "name", "description", "defaults", "scenario"}
    for key in data:
        if key not in allowed_top:
            raise ConfigError(f"{source}: unknown top-level field '{key}'; allowed: {', '.join(sorted(allowed_top))}")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigError(f"{source}: [defaults] must be a table")
    for key in defaults:
        if key not in _DEFAULTABLE:
            raise ConfigError(
                f"{source}: [defaults]: unknown field '{key}'; allowed: {', '.join(sorted(_DEFAULTABLE))}"
            )
    raw_scenarios = data.get("scenario")
    if not isinstance(raw_scenarios, list) or not raw_scenarios:
        raise ConfigError(f"{source}: needs at least one [[scenario]] table")
    scenarios = tuple(_parse_scenario(source, raw, defaults) for raw in raw_scenarios)
    names = [s.name for s in scenarios]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{source}: scenario names must be unique; repeated: {', '.join(duplicates)}")
    name = data.get("name", Path(source).stem)
    description = data.get("description", "")
    return ScenarioSet(name=str(name), source=source, scenarios=scenarios, description=str(description))


def load_scenario_set(name_or_path: str | Path) -> ScenarioSet:
    """Load a built-in set by name (``smoke``, ``quick``, ``baseline``, ``sweep``) or a TOML file."""
    text = str(name_or_path)
    if text in BUILTIN_SETS:
        resource = resources.files("bench.inputs").joinpath("scenarios", f"{text}.toml")
        return parse_scenario_set(read_toml(f"<built-in {text}>", resource.read_text("utf-8")), f"built-in:{text}")
    path = Path(text)
    if not path.exists():
        raise ConfigError(f"{text}: no such scenario file, and not a built-in set ({', '.join(BUILTIN_SETS)})")
    return parse_scenario_set(read_toml(path), str(path))


def split_command(text: str | None, option: str) -> tuple[str, ...] | None:
    """A command or flags given as one string, split as a POSIX shell would (never run by one)."""
    if not text:
        return None
    try:
        return tuple(shlex.split(text))
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc} in {text!r}") from None
