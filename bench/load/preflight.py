"""Preflight: is the endpoint usable, and what does it offer?

``bench check`` prints this report; ``bench run`` runs the same checks first and
stops with a clear message when the endpoint cannot be benchmarked. Optional
llama.cpp endpoints (``/props``, ``/tokenize``) are used when present and never
required.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from bench.doors.redact import Redactor
from bench.errors import ConfigError, ServerError
from bench.figures.delivery import Delivery, stream_delivery
from bench.inputs.scenarios import Case
from bench.transport.client import ChatClient, raise_for_chat_failure
from bench.transport.health import HealthPolicy, HealthTimeout, not_loading, wait_for_health

PROBE_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Count from one to twenty in words."},
]
PROBE_TOKENS = 24


class PromptCache(StrEnum):
    """Whether the endpoint reuses a cached prompt when asked (``cache_prompt``, llama-server's default)."""

    HONOURED = "honoured"
    IGNORED = "ignored"  # the same prompt sent twice: nothing reused (a proxy, another server)
    UNKNOWN = "unknown"  # no timings to tell, or not checked


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    base_url: str
    model: str | None
    models_listed: tuple[str, ...] | None
    build: str | None
    n_ctx: int | None  # per slot
    total_slots: int | None
    model_path: str | None
    has_props: bool
    has_tokenize: bool
    has_timings: bool
    has_usage: bool
    has_reasoning: bool
    finish_reason: str | None
    stream_delivery: Delivery
    stream_ok: bool
    notes: tuple[str, ...] = field(default_factory=tuple)
    prompt_cache: PromptCache = PromptCache.UNKNOWN

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def wait_until_ready(
    client: ChatClient,
    timeout_s: float,
    say: Callable[[str], None] = lambda _: None,
    *,
    while_unreachable: bool = False,
) -> None:
    """Wait while ``/health`` answers 503 (llama-server loading its model), with a bounded back-off.

    A server without ``/health`` (404) or one that is ready goes on at once. One that
    cannot be reached fails at once (EndpointError) before a run, as waiting would not
    help; mid-run (``while_unreachable``) it is waited for too: a restarted server.
    """
    policy = HealthPolicy(
        ready_when=not_loading, fail_when_unreachable=not while_unreachable, first_delay_s=0.5, max_delay_s=5.0
    )
    try:
        await asyncio.to_thread(wait_for_health, client.base_url, timeout_s, policy, api_key=client.api_key, say=say)
    except HealthTimeout as exc:
        raise ServerError(str(exc)) from None


def _props_summary(props: Any) -> tuple[int | None, int | None, str | None, str | None]:
    if not isinstance(props, dict):
        return None, None, None, None
    settings = props.get("default_generation_settings")
    n_ctx = _count(settings.get("n_ctx")) if isinstance(settings, dict) else None
    if n_ctx is None:
        n_ctx = _count(props.get("n_ctx"))
    slots = _count(props.get("total_slots"))
    build = props.get("build_info") if isinstance(props.get("build_info"), str) else None
    path = props.get("model_path") if isinstance(props.get("model_path"), str) else None
    return n_ctx, slots, build, path


def _count(value: Any) -> int | None:
    """A context or slot count a server reports: a positive integer, else unknown (``-5`` is no context)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def context_per_slot(props: Any) -> int | None:
    """A slot's context from /props, or None where the server does not say (or says nonsense)."""
    return _props_summary(props)[0]


def props_subset(props: Any) -> dict[str, Any]:
    """The parts of /props worth keeping with a run (not the whole chat template)."""
    if not isinstance(props, dict):
        return {}
    keep = ("build_info", "model_path", "total_slots", "modalities", "model_alias")
    subset = {k: props[k] for k in keep if k in props}
    settings = props.get("default_generation_settings")
    if isinstance(settings, dict):
        subset["n_ctx"] = _count(settings.get("n_ctx"))
    template = props.get("chat_template")
    if isinstance(template, str):
        subset["chat_template_chars"] = len(template)
    return subset


async def prompt_cache_support(client: ChatClient) -> PromptCache:
    """Send one prompt twice asking for the cache: the second says, in ``timings.cache_n``, what was reused."""
    body = client.chat_body(PROBE_MESSAGES, max_tokens=1, stream=False, cache_prompt=True)
    first = await client.chat(body)
    second = await client.chat(body) if first.ok else first
    if not second.ok or second.timings is None:
        return PromptCache.UNKNOWN
    return PromptCache.HONOURED if second.timings.cache_n > 0 else PromptCache.IGNORED


async def probe(client: ChatClient, *, chat: bool = True, props: Any = None, check_cache: bool = False) -> EndpointInfo:
    """Check the endpoint and say what it offers; ``props`` is its /props when already fetched.

    ``check_cache``: also send a prompt twice to learn whether the endpoint honours ``cache_prompt``.
    """
    notes: list[str] = []
    if props is None:
        props = await client.get_json("/props")
    n_ctx, slots, build, model_path = _props_summary(props)
    models = await client.list_models()
    model = client.model
    if models is not None and model is not None and model not in models:
        # llama-server answers for its one model whatever name is sent; others do not.
        notes.append(f"model {model!r} is not in /v1/models ({', '.join(models) or 'empty'})")
    if model is None and models:
        model = models[0]
    has_tokenize = (await client.tokenize("hello")) is not None and (
        await client.apply_template([{"role": "user", "content": "hi"}])
    ) is not None
    if not has_tokenize:
        notes.append("no /tokenize or /apply-template: prompt lengths are estimates")

    streamed = plain = None
    if chat:
        plain = await client.chat(client.chat_body(PROBE_MESSAGES, max_tokens=PROBE_TOKENS, stream=False))
        raise_for_chat_failure(plain, client.base_url)
        streamed = await client.chat(client.chat_body(PROBE_MESSAGES, max_tokens=PROBE_TOKENS, stream=True))
        raise_for_chat_failure(streamed, client.base_url)
        if not streamed.token_times:
            raise ServerError(f"{client.base_url} streamed no tokens for a {PROBE_TOKENS}-token request")
        if streamed.timings is None and plain.timings is not None:
            notes.append("timings missing from the stream's last chunk: is stream_options.include_usage honoured?")
    has_timings = bool(plain and plain.timings)
    if chat and not has_timings:
        notes.append("no llama.cpp timings: pp/tg will be client-side estimates")
    delivery = Delivery.UNKNOWN
    if streamed is not None:
        delivery = stream_delivery([(streamed.token_times, streamed.timings)])
        if delivery is Delivery.BUFFERED:
            notes.append(
                "streamed tokens arrive in bursts: a proxy is buffering SSE (nginx: proxy_buffering off, "
                "and no gzip for text/event-stream); TTFT and ITL would be wrong"
            )
    cache = await prompt_cache_support(client) if chat and check_cache else PromptCache.UNKNOWN
    if cache is PromptCache.IGNORED:
        notes.append(
            "the same prompt sent twice with cache_prompt reused nothing (timings.cache_n 0): a proxy or server "
            "that ignores it; depth, conversation and shared-prefix cases will see every request miss"
        )
    build = build or (plain.system_fingerprint if plain else None)
    info = EndpointInfo(
        base_url=client.base_url,
        model=model or (plain.model if plain else None),
        models_listed=tuple(models) if models is not None else None,
        build=build,
        n_ctx=n_ctx,
        total_slots=slots,
        model_path=model_path,
        has_props=props is not None,
        has_tokenize=has_tokenize,
        has_timings=has_timings,
        has_usage=bool(plain and plain.usage),
        has_reasoning=bool(plain and plain.reasoning_chars) or bool(streamed and streamed.reasoning_chars),
        finish_reason=plain.finish_reason if plain else None,
        stream_delivery=delivery,
        stream_ok=streamed is not None and streamed.ok,
        notes=tuple(notes),
        prompt_cache=cache,
    )
    return through_the_door(info, client.redactor)


def through_the_door(info: EndpointInfo, redactor: Redactor) -> EndpointInfo:
    """Every string the server chose (model ids, build, path, notes quoting them) masked and escaped."""
    return replace(
        info,
        model=redactor.optional(info.model),
        models_listed=None if info.models_listed is None else tuple(map(redactor.text, info.models_listed)),
        build=redactor.optional(info.build),
        model_path=redactor.optional(info.model_path),
        finish_reason=redactor.optional(info.finish_reason),
        notes=tuple(map(redactor.text, info.notes)),
    )


def check_cases_fit(cases: list[Case], n_ctx: int | None) -> None:
    """Refuse, before any load, cases whose depth + prompt + output exceed a slot's context."""
    if n_ctx is None:
        return
    too_big = [c for c in cases if c.context_tokens > n_ctx]
    if too_big:
        lines = [_too_big(c, n_ctx) for c in too_big]
        raise ConfigError(
            f"{len(too_big)} case(s) do not fit the server's context of {n_ctx} tokens per slot:\n"
            + "\n".join(lines)
            + "\nshorten them in the scenario file or start the server with a larger -c"
        )


def _too_big(case: Case, n_ctx: int) -> str:
    """What of a case does not fit: its lengths, or the trace's first line that goes over."""
    if case.trace is None:
        what = f"depth {case.depth} + prompt {case.longest_prompt} + output {case.longest_output}"
        if case.turns > 1 or case.prefixes:
            what = f"prefix {case.prefix_tokens} + {case.turns} turn(s) x (prompt {case.longest_prompt} + output "
            what += f"{case.longest_output})"
        return f"  {case.case_id}: {what} = {case.context_tokens} tokens, {case.context_tokens - n_ctx} over"
    held: dict[object, int] = {}
    for row in case.trace.rows:
        key: object = ("session", row.session) if row.session is not None else ("line", row.line)
        held[key] = held.get(key, row.prefix_tokens) + row.input_tokens + row.output_tokens
        if held[key] > n_ctx:
            whose = f"session {row.session}'s turn {row.turn}" if row.session is not None else "the request"
            return (
                f"  {case.trace.source}:{row.line}: field 'input_tokens': {whose} needs {held[key]:,} tokens in one "
                f"slot (prefix, every turn's prompt and output so far), {held[key] - n_ctx:,} over"
            )
    return f"  {case.case_id}: {case.context_tokens} tokens"
