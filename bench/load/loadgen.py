"""Load patterns: drive one case's prompts at the endpoint and emit a record per request.

- ``sequential``: one request at a time.
- ``concurrent``: a closed loop of N streams, each sending its next request when
  the previous one ends.
- ``poisson``: an open loop; arrivals at exponential intervals of mean
  ``1 / rate_rps`` (seeded), at most ``concurrency`` in flight.
- ``trace``: an open loop on a trace's times (``bench.inputs.trace``), its conversations' later
  turns built from the answers as they come.

A closed loop's streams open their connections before the case's clock starts (before its priming
and warm-ups, so the server has accepted them by the first measured request): its first wave goes
out on open connections, as every later wave does. An open loop's request opens one, where it
needs one, READY_S ahead of its time. A case with ``connections = "cold"`` opens a connection per
request inside the request's time instead.

A case with ``turns`` > 1 runs conversations: each stream holds one at a time, every turn
resending the history. A timed request (an arrival, a trace's line) sends its headers ahead
and its body at its time (``ChatClient.chat(at=...)``).

Every loop is bounded by its prompt count and by the case's ``max_duration_s``:
no request starts after the deadline, and those in flight finish or time out.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from bench.clock import sleep_until
from bench.inputs.scenarios import Case, Pattern
from bench.load.workload import CasePrompts, Prompt, PromptBuilder, Turn
from bench.records import RequestRecord
from bench.transport.client import ChatClient, Exchange
from bench.transport.lag import ClientLag, LagProbe

RecordSink = Callable[[RequestRecord], None]
WARMUP_MAX_TOKENS = 32
AUTO_AGREE = 0.05  # warmup = "auto": two requests in a row within 5 % of each other in pp (and tg)


def settled(a: RequestRecord, b: RequestRecord) -> bool:
    """Two warm-ups in a row agree: pp, and tg over 16 tokens or more, within ``AUTO_AGREE`` (the server's
    timings), else the client's time to the first token. A failed one never agrees."""
    if not (a.ok and b.ok):
        return False
    pairs: list[tuple[float, float]] = []
    if a.timings is not None and b.timings is not None:
        ta, tb = a.timings, b.timings
        if ta.prompt_ms > 0 and tb.prompt_ms > 0 and ta.prompt_n and tb.prompt_n:
            pairs.append((ta.prompt_n / ta.prompt_ms, tb.prompt_n / tb.prompt_ms))
        if ta.predicted_n >= 16 and tb.predicted_n >= 16 and ta.predicted_ms > 0 and tb.predicted_ms > 0:
            pairs.append((ta.predicted_n / ta.predicted_ms, tb.predicted_n / tb.predicted_ms))
    elif a.t_first_token is not None and b.t_first_token is not None:
        pairs.append((a.t_first_token - a.t_sent, b.t_first_token - b.t_sent))
    return bool(pairs) and all(x > 0 and abs(y / x - 1) <= AUTO_AGREE for x, y in pairs)


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    case_id: str
    measured: int
    failed: int
    wall_start: float
    wall_end: float
    stopped_by_deadline: bool


def combined(parts: Sequence[CaseOutcome], case_id: str) -> CaseOutcome:
    """One case's outcome from its parts: the shares of its workers, or its rounds of a run in rounds."""
    if not parts:
        return CaseOutcome(case_id, 0, 0, 0.0, 0.0, stopped_by_deadline=False)
    return CaseOutcome(
        case_id=case_id,
        measured=sum(p.measured for p in parts),
        failed=sum(p.failed for p in parts),
        wall_start=min(p.wall_start for p in parts),
        wall_end=max(p.wall_end for p in parts),
        stopped_by_deadline=any(p.stopped_by_deadline for p in parts),
    )


def to_record(
    run_id: str,
    case: Case,
    index: int,
    prompt: Prompt,
    exchange: Exchange,
    *,
    warmup: bool,
    round_number: int = 0,
    scheduled: float | None = None,
    session: int | None = None,
    turn: int | None = None,
) -> RequestRecord:
    return RequestRecord(
        session=session,
        turn=turn,
        prefix=prompt.prefix,
        round=round_number,
        t_scheduled=scheduled,
        run_id=run_id,
        case_id=case.case_id,
        scenario=case.scenario,
        index=index,
        warmup=warmup,
        stream=case.stream,
        prompt_tokens_target=prompt.prompt_tokens,
        output_tokens_target=prompt.output_tokens or case.output_tokens,
        depth_target=prompt.depth_tokens,
        concurrency=case.concurrency,
        prompt_length_source=prompt.length_source,
        ok=exchange.ok,
        http_status=exchange.http_status,
        error=exchange.error,
        finish_reason=exchange.finish_reason,
        content_chars=exchange.content_chars,
        reasoning_chars=exchange.reasoning_chars,
        system_fingerprint=exchange.system_fingerprint,
        model=exchange.model,
        timings=exchange.timings,
        usage=exchange.usage,
        t_sent=exchange.t_sent,
        t_written=exchange.t_written,
        t_first_byte=exchange.t_first_byte,
        t_first_token=exchange.t_first_token,
        t_end=exchange.t_end,
        token_times=tuple(exchange.token_times),
        token_event_count=len(exchange.token_times),
        t_first_content=exchange.t_first_content,
        reasoning_events=exchange.reasoning_events,
        connect_ms=exchange.connect_ms,
        send_clock=exchange.send_clock,
        receive_clock=exchange.receive_clock,
        cold=case.cold,
    )


@dataclass(frozen=True, slots=True)
class _Said:
    """A conversation's last turn as the next one needs it."""

    prompt: Prompt
    tokens: list[int]  # its templated tokens
    exchange: Exchange  # its answer
    ended: float  # when the answer ended (the event loop's clock)


READY_S = 0.1  # a timed request's headers go out this long before it is due; its body at its time
TRACE_LEAD_S = 1.0  # a trace's request is prepared this long before it is due (a later turn is built then)


def _generated(exchange: Exchange) -> int | None:
    """Tokens the server generated for an answer, by its own count."""
    if exchange.timings is not None:
        return exchange.timings.predicted_n
    return exchange.usage.completion_tokens if exchange.usage is not None else None


class CaseRunner:
    """Runs one case: priming, warm-up, then the measured requests in its pattern."""

    def __init__(
        self,
        client: ChatClient,
        run_id: str,
        case: Case,
        prompts: CasePrompts,
        sink: RecordSink,
        *,
        seed: int = 0,
        recover: Callable[[], Awaitable[None]] | None = None,
        builder: PromptBuilder | None = None,
        streams: int | None = None,
        arrivals: Mapping[int, float] | None = None,
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.case = case
        self.prompts = prompts
        self.sink = sink
        self.rng = random.Random(seed)
        # called after a request that could not reach the server: waits until it is back
        self.recover = recover
        # a closed loop's streams here: the case's concurrency, or a worker's share of it (bench.load.workers)
        self.streams = streams or case.concurrency
        # an open loop's arrivals or a trace's times set elsewhere (by the run, for its workers): index -> the
        # loop's clock
        self.arrivals = arrivals
        # builds each later turn of a conversation from the answers (cases with turns > 1)
        self.builder = builder
        if (case.turns > 1 or (case.trace is not None and case.trace.sessions)) and builder is None:
            raise ValueError("a case of conversations needs the run's PromptBuilder")
        self._failed = 0
        self._measured = 0
        self._token_events = 0
        self._last: RequestRecord | None = None  # the request sent last (warmup = "auto" reads it)
        self._lag = LagProbe()  # entered for each share of the case: its probes add up over the shares
        self._spent = 0.0  # seconds of max_duration_s used by earlier rounds
        self._round = 0

    def _body(self, prompt: Prompt, max_tokens: int) -> dict[str, object]:
        case = self.case
        return self.client.chat_body(
            prompt.messages,
            max_tokens=max_tokens,
            stream=case.stream,
            temperature=case.temperature,
            top_p=case.top_p,
            # A request that means to reuse a cached prefix asks for the cache; nothing else may touch
            # it: a cold turn or prefix would otherwise reuse the few chat-template tokens every prompt
            # opens with, and its pp would not cover the prompt it claims. The slot keeps what a
            # request without the cache processed, so the next turn still finds it.
            cache_prompt=case.depth > 0 or prompt.depth_tokens > 0,
        )

    async def _send(
        self,
        index: int,
        prompt: Prompt,
        *,
        warmup: bool,
        scheduled: float | None = None,
        session: int | None = None,
        turn: int | None = None,
        at: float | None = None,
    ) -> Exchange:
        # A warm-up needs the full prompt (graphs, caches) but not a long answer.
        output = prompt.output_tokens or self.case.output_tokens
        max_tokens = min(output, WARMUP_MAX_TOKENS) if warmup else output
        exchange = await self.client.chat(
            self._body(prompt, max_tokens), keep_answer=turn is not None, at=at, cold=self.case.cold
        )
        record = to_record(
            self.run_id, self.case, index, prompt, exchange,
            warmup=warmup, round_number=self._round, scheduled=scheduled, session=session, turn=turn,
        )  # fmt: skip
        if not warmup:
            self._measured += 1
            self._failed += 0 if record.ok else 1
            self._token_events += record.token_event_count
        self.sink(record)
        self._last = record
        if self.recover is not None and exchange.lost_connection:
            await self.recover()
        return exchange

    async def _conversation(self, index: int, first: Prompt, deadline: float) -> bool:
        """One user's conversation: every turn resends the history and a new message; False if the deadline cut it.

        A failed turn ends the conversation (the next one would resend an answer that never came).
        """
        loop = asyncio.get_running_loop()
        turns = self.case.turns
        said = await self._said(first, await self._send(index * turns, first, warmup=False, session=index, turn=1))
        for turn, (target, output) in enumerate(first.turn_lengths, 2):
            if not said.exchange.ok:
                return True
            if loop.time() >= deadline:
                return False
            prompt, tokens = await self._next_turn(said, turn, target, output)
            exchange = await self._send(index * turns + turn - 1, prompt, warmup=False, session=index, turn=turn)
            said = _Said(prompt, tokens, exchange, loop.time())
        return True

    async def _said(self, first: Prompt, exchange: Exchange) -> _Said:
        """A first turn, answered: its templated tokens (fetched after it went out) for the turn after it."""
        assert self.builder is not None
        loop = asyncio.get_running_loop()
        ended = loop.time()
        tokens = await self.builder.templated_tokens(first.messages) if exchange.ok else None
        return _Said(first, tokens or [], exchange, ended)

    async def _next_turn(self, said: _Said, number: int, target: int, output: int | None) -> tuple[Prompt, list[int]]:
        assert self.builder is not None
        prompt, tokens = await self.builder.next_turn(
            Turn(
                number=number,
                history=[*said.prompt.messages, {"role": "assistant", "content": said.exchange.answer}],
                before=said.tokens,
                # a reasoning answer is resent without its reasoning: only the prompt before it is reusable
                answered=0 if said.exchange.reasoning_events else (_generated(said.exchange) or 0),
                target=target,
                prefix=said.prompt.prefix,
                text=self.case.text,
            )
        )
        return replace(prompt, output_tokens=output), tokens

    async def run(
        self, indices: Sequence[int] | None = None, *, warm: bool = True, round_number: int = 0
    ) -> CaseOutcome:
        """Send the measured prompts at ``indices`` (all by default), after the warm-ups when ``warm``.

        A run in rounds calls this once a round with the round's share of the prompts: the
        depth prefix is primed again each time (other cases have used the slot since), the
        warm-ups run before the first share only, and ``max_duration_s`` holds for all shares.
        """
        case = self.case
        self._round = round_number
        chosen = range(len(self.prompts.measured)) if indices is None else indices
        measured = [(i, self.prompts.measured[i]) for i in chosen]
        if case.pattern in (Pattern.SEQUENTIAL, Pattern.CONCURRENT) and not case.cold:
            await self.client.open_connections(self.streams)
        await self.prepare(warm)
        loop = asyncio.get_running_loop()
        started = self.client.clock.now()
        begun = loop.time()
        deadline = begun + case.max_duration_s - self._spent
        before = (self._measured, self._failed)
        try:
            async with self._lag:
                if case.pattern == Pattern.POISSON:
                    stopped = await self._open_loop(deadline, measured)
                elif case.pattern == Pattern.TRACE:
                    stopped = await self._replay(deadline, measured)
                else:
                    stopped = await self._closed_loop(deadline, self.streams, measured)
        except BaseExceptionGroup as group:
            # A stream failed in a way that ends the run (a full disk, say): the
            # caller handles that error, not the task group wrapped around it.
            raise group.exceptions[0] from None
        finally:
            self._spent += loop.time() - begun
        return CaseOutcome(
            case_id=case.case_id,
            measured=self._measured - before[0],
            failed=self._failed - before[1],
            wall_start=started,
            wall_end=self.client.clock.now(),
            stopped_by_deadline=stopped,
        )

    async def prepare(self, warm: bool) -> None:
        """Before a share of the measured requests: prime the depth prefix, and the warm-ups when ``warm``."""
        if self.prompts.prime is not None:
            await self.client.chat(self._body(self.prompts.prime, 1))
        if warm:
            previous: RequestRecord | None = None
            for i, prompt in enumerate(self.prompts.warmup):
                await self._send(-1 - i, prompt, warmup=True)
                if self.case.warmup_auto:
                    # warm until two in a row agree: the first requests of a fresh server carry its set-up
                    if previous is not None and self._last is not None and settled(previous, self._last):
                        break
                    previous = self._last

    def remaining_s(self) -> float:
        """What is left of the case's max_duration_s after the stretches it has run (at least a moment)."""
        return max(self.case.max_duration_s - self._spent, 0.001)

    def spent(self, seconds: float) -> None:
        """Count a stretch the case ran elsewhere (in worker processes) against its max_duration_s."""
        self._spent += seconds

    def client_lag(self) -> ClientLag | None:
        """The client's own lag over the case's measured stretches, with the token events it handled."""
        return self._lag.result(self._token_events, self._spent)

    async def _closed_loop(self, deadline: float, streams: int, measured: Sequence[tuple[int, Prompt]]) -> bool:
        loop = asyncio.get_running_loop()
        queue = list(measured)
        queue.reverse()
        stopped = False

        async def stream() -> None:
            nonlocal stopped
            while queue:
                if loop.time() >= deadline:
                    stopped = True
                    return
                index, prompt = queue.pop()
                if self.case.turns > 1:
                    if not await self._conversation(index, prompt, deadline):
                        stopped = True
                        return
                else:
                    await self._send(index, prompt, warmup=False)

        async with asyncio.TaskGroup() as group:
            for _ in range(streams):
                group.create_task(stream())
        return stopped

    def _origin(self) -> tuple[float, float]:
        """The run clock and the loop's clock at one moment, to map a time due on the loop onto the records'."""
        return self.client.clock.origin(asyncio.get_running_loop())

    async def _send_due(
        self,
        limit: asyncio.Semaphore,
        origin: tuple[float, float],
        index: int,
        prompt: Prompt,
        due: float,
        *,
        session: int | None = None,
        turn: int | None = None,
    ) -> Exchange:
        """A request due at ``due`` (the loop's clock): its headers READY_S ahead, its body then.

        Held by the case's concurrency cap while earlier requests run: the wait is kept (t_scheduled),
        so latency can be read from the request's time, not only from its send.
        """
        await sleep_until(due - READY_S)
        async with limit:
            clock_start, loop_start = origin
            scheduled = clock_start + (due - loop_start)
            return await self._send(
                index, prompt, warmup=False, scheduled=scheduled, session=session, turn=turn, at=due
            )

    async def _open_loop(self, deadline: float, measured: Sequence[tuple[int, Prompt]]) -> bool:
        loop = asyncio.get_running_loop()
        rate = self.case.rate_rps or 1.0
        limit = asyncio.Semaphore(self.streams)
        stopped = False

        origin = self._origin()

        async with asyncio.TaskGroup() as group:
            next_arrival = loop.time() + READY_S  # each request starts READY_S ahead: its headers go first
            for index, prompt in measured:
                if self.arrivals is not None:
                    next_arrival = self.arrivals[index]
                if next_arrival >= deadline:
                    stopped = True
                    break
                await sleep_until(next_arrival - READY_S)
                group.create_task(self._send_due(limit, origin, index, prompt, next_arrival))
                next_arrival += self.rng.expovariate(rate)
        return stopped

    async def _replay(self, deadline: float, measured: Sequence[tuple[int, Prompt]]) -> bool:
        """Replay the trace: every line at its time (over ``speed``), open loop, at most ``concurrency`` in flight.

        A line's task is started a little before it is due, so a later turn is built (from the answer
        before it) before its time comes; it then waits for its time. A turn due before the answer it
        follows is sent when that answer arrives: its scheduled time is then the answer's end. A turn
        after a failed one is not sent (its history never came).
        """
        trace = self.case.trace
        assert trace is not None
        loop = asyncio.get_running_loop()
        limit = asyncio.Semaphore(self.streams)  # the case's cap, or a worker's share of it
        origin = self._origin()
        loop_start = origin[1]
        sessions: dict[int, asyncio.Task[_Said | None]] = {}
        stopped = False

        async def send(index: int, prompt: Prompt, due: float, turn: int | None, session: int | None) -> Exchange:
            return await self._send_due(limit, origin, index, prompt, due, session=session, turn=turn)

        async def turn(
            index: int, prompt: Prompt, due: float, previous: asyncio.Task[_Said | None] | None
        ) -> _Said | None:
            row = trace.rows[index]
            if previous is None:
                if row.turn != 1:
                    return None  # its conversation's first turn was never sent
                return await self._said(prompt, await send(index, prompt, due, row.turn, row.session))
            said = await previous
            if said is None or not said.exchange.ok:
                return None
            built, tokens = await self._next_turn(said, row.turn or 2, row.input_tokens, prompt.output_tokens)
            exchange = await send(index, built, max(due, said.ended), row.turn, row.session)
            return _Said(built, tokens, exchange, loop.time())

        async with asyncio.TaskGroup() as group:
            for index, prompt in measured:
                row = trace.rows[index]
                due = loop_start + row.t / self.case.speed if self.arrivals is None else self.arrivals[index]
                if due >= deadline:
                    stopped = True
                    break
                if (ahead := due - TRACE_LEAD_S - loop.time()) > 0:
                    await asyncio.sleep(ahead)
                if row.session is None:
                    group.create_task(self._send_due(limit, origin, index, prompt, due))
                else:
                    sessions[row.session] = group.create_task(turn(index, prompt, due, sessions.get(row.session)))
        return stopped
