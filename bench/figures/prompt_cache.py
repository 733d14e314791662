"""What the prompt cache reused, request by request, against what the workload meant it to reuse.

Every request keeps, as ``depth_target``, the templated tokens it means the server to take
from its cache: a context depth, a conversation's history (the previous turn's prompt and
answer), or a shared system prompt already sent. llama.cpp reports what it did reuse as
``timings.cache_n``, so a request **hits** when the two are equal, and a miss says how it
missed: nothing reused (the slot went to another conversation or prefix, or the endpoint
ignores ``cache_prompt``), part of it (the chat template renders the history differently
from how it was sent, or an answer resent as the server returned it stops matching the tokens
it generated), or more than meant (a prompt that shares more with what the slot held).

A case of conversations also gets its figures turn by turn (the reuse grows with the
history, TTFT should not), and its conversations' own: how many ran without a failed turn,
and how long each took from its first request sent to its last answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from bench.figures.throughput import server_pp_tps
from bench.records import RequestRecord


class CacheMiss(StrEnum):
    NOTHING = "nothing_reused"
    ANSWER = "answer_not_reused"  # a turn: the previous prompt reused, not all of the answer after it
    HISTORY = "history_part_reused"  # a turn: less than the previous prompt reused
    PART = "part_reused"  # a depth or a shared prefix: part of it
    MORE = "more_reused"


MISS_REASONS = {
    CacheMiss.NOTHING: "reused nothing: the slot had gone to another conversation or prefix (more of them than "
    "the server's slots, -np?), or the endpoint ignores cache_prompt",
    CacheMiss.ANSWER: "reused the previous prompt but not all of the answer after it: the answer as the server "
    "returned it, resent as history, stops matching the tokens it generated (the text re-tokenizes differently, "
    "or the server's chat parser changed it)",
    CacheMiss.HISTORY: "reused less than the previous prompt: the slot had gone to another conversation (more "
    "of them than the server's slots, -np?), kept only part of it, or the chat template renders earlier turns "
    "differently from how it sent them",
    CacheMiss.PART: "reused only part of what was cached for it: the slot had gone to another prompt that shares "
    "only its opening (more prefixes than the server's slots, -np?), or kept only part (a sliding-window model "
    "needs llama-server --swa-full)",
    CacheMiss.MORE: "reused more than meant: the prompt shared more with what the slot held than the workload meant",
}


@dataclass(frozen=True, slots=True)
class TurnFigures:
    """One turn number of a case's conversations."""

    turn: int
    requests: int  # that succeeded
    meant_tokens: float  # mean tokens the turn meant to reuse (its history)
    reused_tokens: float  # mean tokens the server reused
    hit_rate: float | None  # of the requests that meant to reuse anything
    pp_tps: float | None  # over the new tokens of the requests that hit (bench.figures.throughput.pp_sample)
    ttft_p50_ms: float | None
    e2e_p50_ms: float


@dataclass(frozen=True, slots=True)
class CacheSummary:
    meant: int  # requests that meant to reuse cached tokens (the server reported timings)
    hits: int  # reused exactly what they meant
    meant_tokens: int
    reused_tokens: int  # of the meant tokens, how many were reused (a surplus is not counted)
    hit_rate: float | None  # hits / meant
    reused_share: float | None  # reused_tokens / meant_tokens
    misses: dict[str, int] = field(default_factory=dict)  # by CacheMiss
    least_reused: int | None = None  # the fewest tokens a request that meant some reused
    # TTFT of the requests that meant no reuse (a conversation's first turn, a prefix's first use)
    # and of those that hit: what the cache saves a user
    cold_ttft_p50_ms: float | None = None
    hit_ttft_p50_ms: float | None = None
    turns: tuple[TurnFigures, ...] = ()
    conversations: int = 0
    conversations_complete: int = 0  # no turn failed
    conversation_s_p50: float | None = None  # first request sent to last answer, over complete ones


def miss_of(record: RequestRecord, previous_prompt: int | None = None) -> CacheMiss | None:
    """How a request with timings missed what it meant to reuse; None on a hit (or nothing meant).

    ``previous_prompt``: for a turn, the templated tokens of the turn before it (its cache_n +
    prompt_n), which tells a history the server lost from an answer it cannot match.
    """
    t = record.timings
    if t is None or t.cache_n == record.depth_target:
        return None
    if t.cache_n > record.depth_target:
        return CacheMiss.MORE
    if t.cache_n == 0:
        return CacheMiss.NOTHING
    if previous_prompt is None:
        return CacheMiss.PART
    return CacheMiss.ANSWER if t.cache_n >= previous_prompt else CacheMiss.HISTORY


def misses_of(records: Sequence[RequestRecord]) -> list[CacheMiss | None]:
    """``miss_of`` each record, each turn told the size of the one before it where that was measured."""
    prompts = {
        (r.session, r.turn): r.timings.cache_n + r.timings.prompt_n
        for r in records
        if r.session is not None and r.turn is not None and r.timings is not None
    }
    return [
        miss_of(r, prompts.get((r.session, r.turn - 1)) if r.session is not None and r.turn is not None else None)
        for r in records
    ]


def _p50(values: Sequence[float]) -> float | None:
    return float(np.percentile(values, 50)) if values else None


def uses_cache(records: Sequence[RequestRecord]) -> bool:
    """A case whose requests mean to reuse the cache: a depth, conversations or shared prefixes."""
    return any(r.depth_target > 0 or r.turn is not None or r.prefix is not None for r in records)


def summarise_cache(records: Sequence[RequestRecord]) -> CacheSummary | None:
    """The cache's figures over a case's measured records; None for a case that means no reuse."""
    measured = [r for r in records if not r.warmup]
    if not uses_cache(measured):
        return None
    timed = [r for r in measured if r.ok and r.timings is not None]
    meant = [r for r in timed if r.depth_target > 0]
    kinds = misses_of(timed)
    misses: dict[str, int] = {}
    for miss in kinds:
        if miss is not None:
            misses[miss] = misses.get(miss, 0) + 1
    hits = [r for r, miss in zip(timed, kinds, strict=True) if r.depth_target > 0 and miss is None]
    cold = [r for r in timed if r.depth_target == 0]
    turns, conversations, complete, conversation_s = _conversation_figures(measured)
    meant_tokens = sum(r.depth_target for r in meant)
    reused_tokens = sum(min(r.timings.cache_n, r.depth_target) for r in meant if r.timings is not None)
    return CacheSummary(
        meant=len(meant),
        hits=len(hits),
        meant_tokens=meant_tokens,
        reused_tokens=reused_tokens,
        hit_rate=len(hits) / len(meant) if meant else None,
        reused_share=reused_tokens / meant_tokens if meant_tokens else None,
        misses=misses,
        least_reused=min((r.timings.cache_n for r in meant if r.timings is not None), default=None),
        cold_ttft_p50_ms=_p50([v for r in cold if (v := r.ttft_ms) is not None]),
        hit_ttft_p50_ms=_p50([v for r in hits if (v := r.ttft_ms) is not None]),
        turns=turns,
        conversations=conversations,
        conversations_complete=complete,
        conversation_s_p50=conversation_s,
    )


def _conversation_figures(
    measured: Sequence[RequestRecord],
) -> tuple[tuple[TurnFigures, ...], int, int, float | None]:
    """Turn by turn; how many conversations, how many ran every turn, and how long those took (p50)."""
    sessions: dict[int, list[RequestRecord]] = {}
    for r in measured:
        if r.session is not None:
            sessions.setdefault(r.session, []).append(r)
    if not sessions:
        return (), 0, 0, None
    # a failed turn ends its conversation; a trace's conversations differ in length
    complete = [rs for rs in sessions.values() if all(r.ok for r in rs)]
    by_turn: dict[int, list[RequestRecord]] = {}
    for r in measured:
        if r.ok and r.turn is not None:
            by_turn.setdefault(r.turn, []).append(r)
    return (
        tuple(_turn_figures(number, rs) for number, rs in sorted(by_turn.items())),
        len(sessions),
        len(complete),
        _p50([max(r.t_end for r in rs) - min(r.t_sent for r in rs) for rs in complete]),
    )


def _turn_figures(number: int, records: Sequence[RequestRecord]) -> TurnFigures:
    timed = [r for r in records if r.timings is not None]
    meant = [r for r in timed if r.depth_target > 0]
    return TurnFigures(
        turn=number,
        requests=len(records),
        meant_tokens=float(np.mean([r.depth_target for r in timed])) if timed else 0.0,
        reused_tokens=float(np.mean([r.timings.cache_n for r in timed if r.timings is not None])) if timed else 0.0,
        hit_rate=sum(1 for r in meant if r.timings is not None and r.timings.cache_n == r.depth_target) / len(meant)
        if meant
        else None,
        pp_tps=server_pp_tps(timed),
        ttft_p50_ms=_p50([v for r in records if (v := r.ttft_ms) is not None]),
        e2e_p50_ms=float(np.percentile([r.e2e_ms for r in records], 50)),
    )


def cache_notes(cache: CacheSummary) -> list[str]:
    """What a reader should know about the reuse: each kind of miss, with its likely causes."""
    notes = []
    if cache.meant:
        notes.append(
            f"prompt cache: {cache.hits} of {cache.meant} request(s) reused exactly the tokens they meant "
            f"({cache.reused_share:.0%} of {cache.meant_tokens:,} tokens)"
        )
    for miss, count in sorted(cache.misses.items()):
        notes.append(f"{count} request(s) {MISS_REASONS[CacheMiss(miss)]}")
    if cache.conversations and cache.conversations_complete < cache.conversations:
        notes.append(
            f"{cache.conversations - cache.conversations_complete} of {cache.conversations} conversation(s) "
            "had a failed turn, which ended it"
        )
    return notes
