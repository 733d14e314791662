"""Typed records of what was measured.

``RequestRecord`` is one request as the client saw it plus what the server said
about it; ``FigureName`` and ``FigureSource`` are the closed vocabularies of what a set of
records measures and where a figure came from. Times are seconds on the run's clock: ``time.time()`` at run start plus
``time.perf_counter()`` deltas, so they are monotonic within a run and line up
with telemetry samples taken on the same clock.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

RECORD_SCHEMA = 1


class FigureName(StrEnum):
    """The figures the suite measures, by the names files and flags use."""

    PP_TPS = "pp_tps"  # prompt processing, tokens/s
    TG_TPS = "tg_tps"  # generation, tokens/s
    TTFT_MS = "ttft_ms"
    ITL_MS = "itl_ms"
    E2E_MS = "e2e_ms"
    VRAM_USED_GIB = "vram_used_gib"  # peak GPU memory over a run
    GOODPUT_RPS = "goodput_rps"  # requests/s that met the scenario's SLO, one value a run

    @property
    def label(self) -> str:
        """The word a sentence uses: 'prompt 92 % of 5,136 t/s'."""
        return _LABELS.get(self, self.value)


class StampSource(StrEnum):
    """Which clock timed one end of a request: the kernel's stamp of the bytes, or the event loop's clock."""

    KERNEL = "kernel"  # when the bytes left or arrived (SO_TIMESTAMPING, SO_TIMESTAMPNS): plain HTTP on Linux
    LOOP = "loop"  # when the event loop sent or read them: TLS, other systems, a stamp that did not come


_LABELS = {FigureName.PP_TPS: "prompt", FigureName.TG_TPS: "generation", FigureName.VRAM_USED_GIB: "VRAM"}


class FigureSource(StrEnum):
    """Where a figure came from."""

    SERVER = "server_timings"  # llama.cpp's own timings
    CLIENT = "client_estimate"  # client clocks: an endpoint without timings
    GPU_TELEMETRY = "gpu_telemetry"  # VRAM, from NVML or the nvidia-smi command


# Fields of llama.cpp's `timings` object that the suite keeps, in this order.
TIMING_FIELDS = (
    "cache_n",
    "prompt_n",
    "prompt_ms",
    "prompt_per_token_ms",
    "prompt_per_second",
    "predicted_n",
    "predicted_ms",
    "predicted_per_token_ms",
    "predicted_per_second",
    "draft_n",
    "draft_n_accepted",
)


@dataclass(frozen=True, slots=True)
class ServerTimings:
    """llama.cpp's own per-request timings (absent on other servers)."""

    prompt_n: int
    prompt_ms: float
    predicted_n: int
    predicted_ms: float
    cache_n: int = 0
    prompt_per_token_ms: float | None = None
    prompt_per_second: float | None = None
    predicted_per_token_ms: float | None = None
    predicted_per_second: float | None = None
    # speculative decoding (recent llama-server with a draft model): tokens drafted, and accepted
    draft_n: int | None = None
    draft_n_accepted: int | None = None

    @staticmethod
    def doubt(raw: object) -> str | None:
        """Why a `timings` object cannot be believed (a count or a duration out of range), else None.

        Absent fields are not doubted (``from_json`` then returns None); what is there must be
        a finite number in range: NaN, infinity, a negative time or a 10^30 count would poison
        every figure built on it and every file it is written to.
        """
        if not isinstance(raw, dict):
            return None
        for key in ("prompt_n", "predicted_n", "cache_n", "draft_n", "draft_n_accepted"):
            value = raw.get(key)
            if value is not None and not (_is_number(value) and 0 <= value <= MAX_TOKENS and float(value).is_integer()):
                return f"timings.{key} is {value!r}, not a count from 0 to {MAX_TOKENS:,}"
        for key in ("prompt_ms", "predicted_ms"):
            value = raw.get(key)
            if value is not None and not (_is_number(value) and 0 <= value <= MAX_MS):
                return f"timings.{key} is {value!r}, not a duration from 0 to {MAX_MS:,.0f} ms"
        return None

    @classmethod
    def from_json(cls, raw: object) -> ServerTimings | None:
        """Parse a `timings` object; None when absent or unusable (``doubt`` says why it is unbelievable)."""
        if not isinstance(raw, dict) or ServerTimings.doubt(raw) is not None:
            return None
        try:
            return cls(
                prompt_n=int(raw["prompt_n"]),
                prompt_ms=float(raw["prompt_ms"]),
                predicted_n=int(raw["predicted_n"]),
                predicted_ms=float(raw["predicted_ms"]),
                cache_n=int(raw.get("cache_n", 0)),
                prompt_per_token_ms=_opt_float(raw.get("prompt_per_token_ms")),
                prompt_per_second=_opt_float(raw.get("prompt_per_second")),
                predicted_per_token_ms=_opt_float(raw.get("predicted_per_token_ms")),
                predicted_per_second=_opt_float(raw.get("predicted_per_second")),
                draft_n=_opt_count(raw.get("draft_n")),
                draft_n_accepted=_opt_count(raw.get("draft_n_accepted")),
            )
        except (KeyError, TypeError, ValueError):
            return None


MAX_TOKENS = 10**9  # a count beyond this is not a count llama.cpp produced
MAX_MS = 1e10  # four months


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _opt_count(value: object) -> int | None:
    return int(value) if _is_number(value) else None  # type: ignore[call-overload]


def _opt_float(value: object) -> float | None:
    """A derived figure (per token, per second): kept when finite, else dropped, never stored as NaN."""
    return float(value) if _is_number(value) else None  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None

    @classmethod
    def from_json(cls, raw: object) -> Usage | None:
        if not isinstance(raw, dict):
            return None

        def count(key: str) -> int | None:
            value = raw.get(key)
            in_range = isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS
            return value if in_range else None

        return cls(count("prompt_tokens"), count("completion_tokens"), count("total_tokens"))


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request: what was asked, what came back, and when."""

    run_id: str
    case_id: str
    scenario: str
    index: int
    warmup: bool
    stream: bool
    # what was asked
    prompt_tokens_target: int
    output_tokens_target: int
    depth_target: int
    concurrency: int
    prompt_length_source: str  # "tokenize" (exact) or "estimate"
    # what came back
    ok: bool
    http_status: int | None
    error: str | None
    finish_reason: str | None
    content_chars: int
    reasoning_chars: int
    system_fingerprint: str | None
    model: str | None
    timings: ServerTimings | None
    usage: Usage | None
    # client clock (seconds, run clock)
    t_sent: float
    t_first_byte: float | None
    t_first_token: float | None
    t_end: float
    token_times: tuple[float, ...] = field(default_factory=tuple)
    token_event_count: int = 0
    # when the request went out (its body began to be written); None in records from before it was kept
    t_written: float | None = None
    # which round of the run sent it (runs in rounds: each round every case once); 0 case after case
    round: int = 0
    # open loop: when the arrival process meant it to go out (run clock); None for closed loops
    t_scheduled: float | None = None
    # a reasoning model: the first answer token after the reasoning, and how many events were reasoning
    t_first_content: float | None = None
    reasoning_events: int = 0
    # a conversation (turns > 1): which one, and which turn of it (from 1); None elsewhere
    session: int | None = None
    turn: int | None = None
    # a shared system prompt: which of the case's prefixes the request began with
    prefix: int | None = None
    # opening the connection it went out on, reported by the connection's first request (opened ahead of
    # the case's clock, or, cold, inside this request's time); None on a connection used before
    connect_ms: float | None = None
    # which clock timed its send (t_written) and its arrivals (t_first_byte, token_times); None in older records
    send_clock: StampSource | None = None
    receive_clock: StampSource | None = None
    # the case measured cold connections: each request opened its own, and its time includes the connect
    cold: bool = False

    # ---------------------------------------------------------- derived figures
    @property
    def e2e_ms(self) -> float:
        return (self.t_end - self.t_sent) * 1000.0

    @property
    def t_request(self) -> float:
        """When the request went out where known, else when the client began to send it.

        The gap between the two is the client's own queueing (and, on a new
        connection, the TCP connect): the server cannot have started before it.
        """
        return self.t_written if self.t_written is not None else self.t_sent

    @property
    def ttft_ms(self) -> float | None:
        if self.t_first_token is None:
            return None
        return (self.t_first_token - self.t_request) * 1000.0

    @property
    def ttfct_ms(self) -> float | None:
        """Time to the first content token: what a user waits for while a reasoning model thinks."""
        return None if self.t_first_content is None else (self.t_first_content - self.t_request) * 1000.0

    @property
    def schedule_delay_ms(self) -> float | None:
        """How late the request went out after its scheduled arrival: the concurrency cap, or the client's lag."""
        return None if self.t_scheduled is None else (self.t_request - self.t_scheduled) * 1000.0

    @property
    def ttft_from_schedule_ms(self) -> float | None:
        """TTFT as the arriving user saw it: from the scheduled arrival, queueing in the client included."""
        if self.t_scheduled is None or self.t_first_token is None:
            return None
        return (self.t_first_token - self.t_scheduled) * 1000.0

    @property
    def e2e_from_schedule_ms(self) -> float | None:
        return None if self.t_scheduled is None else (self.t_end - self.t_scheduled) * 1000.0

    @property
    def ttfb_ms(self) -> float | None:
        if self.t_first_byte is None:
            return None
        return (self.t_first_byte - self.t_request) * 1000.0

    @property
    def itl_ms(self) -> list[float]:
        """Gaps between consecutive token events (the first token excluded)."""
        times = self.token_times
        return [(b - a) * 1000.0 for a, b in itertools.pairwise(times)]

    @property
    def generated_tokens(self) -> int | None:
        """Generated tokens, reasoning included: the server's count where it gave one."""
        if self.timings is not None:
            return self.timings.predicted_n
        if self.usage is not None and self.usage.completion_tokens is not None:
            return self.usage.completion_tokens
        return self.token_event_count or None

    @property
    def tpot_ms(self) -> float | None:
        """Time per output token after the first: (last token - first token) / (n - 1)."""
        n = self.generated_tokens
        if self.t_first_token is None or not self.token_times or n is None or n < 2:
            return None
        return (self.token_times[-1] - self.t_first_token) * 1000.0 / (n - 1)

    def to_json(self) -> dict[str, Any]:
        # Built by hand: dataclasses.asdict deep-copies every value, which made writing
        # a record with a few hundred token times cost a third of a millisecond.
        row = {name: getattr(self, name) for name in _RECORD_FIELDS}
        row["timings"] = _shallow(self.timings)
        row["usage"] = _shallow(self.usage)
        row["token_times"] = list(self.token_times)
        row["schema"] = RECORD_SCHEMA
        return row

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RequestRecord:
        data = dict(raw)
        data.pop("schema", None)
        timings = data.get("timings")
        usage = data.get("usage")
        # through the same checks as an answer: a run written before they existed may hold NaN
        data["timings"] = ServerTimings.from_json(timings) if isinstance(timings, dict) else None
        data["usage"] = Usage(**usage) if isinstance(usage, dict) else None
        data["token_times"] = tuple(data.get("token_times") or ())
        for name in ("send_clock", "receive_clock"):
            if data.get(name) is not None:
                data[name] = StampSource(data[name])
        return cls(**data)


_RECORD_FIELDS = tuple(f.name for f in fields(RequestRecord))


def _shallow(value: ServerTimings | Usage | None) -> dict[str, Any] | None:
    return None if value is None else {f.name: getattr(value, f.name) for f in fields(value)}


@dataclass(frozen=True, slots=True)
class Commit:
    """A commit of the server's source, as bench bisect lists and reports it."""

    sha: str
    subject: str
    date: str  # committer date, ISO 8601
    pr: int | None  # the pull request its subject names

    @property
    def short(self) -> str:
        return self.sha[:9]
