"""Exact, comparable prompts: a token count that the server will report as ``prompt_n``.

A prompt's length is counted on the *templated* prompt (the chat template adds
tokens around the messages), so the builder renders it with the server's
``/apply-template`` and counts it with ``/tokenize``, then adds or removes filler
words until the count is exact. Servers without those endpoints get an estimate
of one token per filler word plus a fixed template overhead, and every prompt
says which method made it.

Every measured request carries a marker unique within the run at the very start
of its messages, so no server can serve it from a prefix cache. For context
depth (llama-bench's ``-d``) the layout is ``system | depth filler | marker |
body``: a priming request leaves the depth filler cached in the slot, and each
measured request then reuses exactly that prefix (``cache_n`` proves it).
"""

from __future__ import annotations

import copy
import random
import string
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, replace

from bench.errors import ConfigError
from bench.inputs.corpus import corpus_words
from bench.inputs.lengths import LengthDist
from bench.inputs.scenarios import Case
from bench.inputs.trace import Trace
from bench.transport.client import ChatClient

SYSTEM_PROMPT = "You are a helpful assistant."
ESTIMATED_TEMPLATE_TOKENS = 24
MAX_FIT_STEPS = 24

# Common English words: one token each in the tokenizers of the usual model families.
_WORDS = tuple(
    """
    the of and to in is was for on that with as by at from his her they this have had are not but which
    one were all their there been has when who will more if out so said what up its about into than them
    can only other new some could time these two may then do first any my now such like our over man me
    even most made after also did many before must through back years where much your way well down
    should because each just those people how too little state good very make world still own see men
    work long get here between both life being under never day same another know while last might us
    great old year off come since against go came right used take three
    """.split()
)
# Opens the text after a shared prefix when its length is measured: a first token no request has.
_PROBE_OPENER = "Zq"
_PAD_WORDS = ("a", "I", "o", "x", "is", "it", "an", "as", "at", "be")

Messages = list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class Prompt:
    messages: Messages
    prompt_tokens: int  # tokens the server should process (cache excluded)
    depth_tokens: int  # tokens expected from the cache
    length_source: str  # "tokenize" or "estimate"
    prefix: int | None = None  # which shared system prompt of the case it begins with
    output_tokens: int | None = None  # tokens to generate, where the case's lengths are drawn per request
    turn_lengths: tuple[tuple[int, int], ...] = ()  # a conversation's later turns: (new prompt, output) tokens


@dataclass(frozen=True, slots=True)
class CasePrompts:
    """The prompts of one case: an optional priming request, warm-ups, then measured ones."""

    prime: Prompt | None
    warmup: list[Prompt]
    measured: list[Prompt]


def _marker(index: int) -> str:
    """A marker whose first character differs between consecutive indices.

    Consecutive requests in one slot then diverge at the marker's first token,
    so the cached prefix a request reuses is exactly the depth filler.
    """
    letters = string.ascii_uppercase
    first = letters[index % len(letters)]
    rest = "".join(letters[(index // len(letters) ** k) % len(letters)] for k in range(1, 3))
    return f"{first}{rest}{index}"


class PromptBuilder:
    """Builds prompts of exact token counts against one server."""

    def __init__(self, client: ChatClient, *, seed: int = 0, run_tag: str = "run") -> None:
        self.client = client
        self.seed = seed
        self.rng = random.Random(seed)
        self.run_tag = run_tag
        self._exact: bool | None = None
        self._next_marker = 0
        # word count that hit each target last time: the next prompt of that
        # length usually needs the same, so its fit costs one count, not several
        self._fitted_words: dict[int, int] = {}
        self._next_prefix = 0
        # draws lengths apart from the words, so a case with fixed lengths builds what it always built
        self.length_rng = random.Random(f"lengths-{seed}")
        self._turn_words: int | None = None
        self._text: str | None = None
        self._probes: dict[str, list[int]] = {}  # a shared prefix's tokens with an opener no request has

    def __getstate__(self) -> dict[str, object]:
        # sent to a load worker without this process's client: the worker binds its own (``bind``)
        return {**self.__dict__, "client": None}

    def for_worker(self, worker: int) -> PromptBuilder:
        """A copy for a load worker that builds its conversations' later turns: words of its own."""
        twin = copy.copy(self)
        twin.rng = random.Random(f"{self.seed}-worker-{worker}")
        twin._fitted_words, twin._probes = dict(self._fitted_words), dict(self._probes)
        return twin

    def bind(self, client: ChatClient) -> None:
        """Build through ``client`` (a load worker's own, once this builder has reached it)."""
        self.client = client

    async def exact_counts_available(self) -> bool:
        if self._exact is None:
            probe = [{"role": "user", "content": "hello"}]
            self._exact = await self.count(probe) is not None
        return self._exact

    async def templated_tokens(self, messages: Messages) -> list[int] | None:
        """Token ids of the messages as the server templates them, or None without server support."""
        rendered = await self.client.apply_template(messages)
        return None if rendered is None else await self.client.tokenize(rendered)

    async def count(self, messages: Messages) -> int | None:
        tokens = await self.templated_tokens(messages)
        return None if tokens is None else len(tokens)

    async def _tokens(self, messages: Messages) -> list[int]:
        tokens = await self.templated_tokens(messages)
        if tokens is None:
            raise ConfigError("the server stopped answering /apply-template or /tokenize while prompts were built")
        return tokens

    def _filler(self, n_words: int) -> list[str]:
        """Words to fit a prompt with: filler words, or a run of the case's text corpus from a seeded place."""
        if self._text is None:
            return [self.rng.choice(_WORDS) for _ in range(n_words)]
        words = corpus_words(self._text)
        start = self.rng.randrange(len(words))
        return [words[(start + i) % len(words)] for i in range(n_words)]

    def _take_marker(self) -> str:
        marker = f"{_marker(self._next_marker)} {self.run_tag}"
        self._next_marker += 1
        return marker

    def _draw(self, lengths: LengthDist | None, fixed: int) -> int:
        return fixed if lengths is None else lengths.draw(self.length_rng)

    async def build_case(self, case: Case) -> CasePrompts:
        """The case's prompts; for a conversation, the first turn of each (later turns: ``next_turn``).

        Lengths drawn from a distribution are drawn here, every request's (and every turn's) in
        order from the seed, before any load: a run's lengths do not depend on its timing.
        """
        self._text = case.text  # what the case's prompts are made of (its later turns say it again)
        if case.trace is not None:
            return await self._build_trace_case(case, case.trace)
        targets = [self._draw(case.prompt_lengths, case.prompt_tokens) for _ in range(case.requests)]
        outputs = [self._draw(case.output_lengths, case.output_tokens) for _ in range(case.requests)]
        if case.depth > 0:
            built = await self._build_depth_case(case, targets)
        elif case.prefixes > 0:
            built = await self._build_prefix_case(case, targets)
        else:
            warmup = [await self._build_flat(case.prompt_tokens) for _ in range(case.warmup)]
            built = CasePrompts(None, warmup, [await self._build_flat(target) for target in targets])
        measured = [replace(p, output_tokens=o) for p, o in zip(built.measured, outputs, strict=True)]
        if case.turns > 1:
            measured = [
                replace(
                    p,
                    turn_lengths=tuple(
                        (self._draw(case.prompt_lengths, case.prompt_tokens), self._draw(case.output_lengths, o))
                        for _ in range(case.turns - 1)
                    ),
                )
                for p, o in zip(measured, outputs, strict=True)
            ]
            shortest = min(length for p in measured for length, _ in p.turn_lengths)
            await self._check_turn_floor(case, measured[0], shortest)
        return replace(built, measured=measured)

    # ------------------------------------------------------------- depth 0
    async def _build_flat(self, target: int) -> Prompt:
        marker = self._take_marker()
        words = self._filler(max(target * 2, 16))

        def make(n: int) -> Messages:
            return [
                {"role": "system", "content": f"{marker} {SYSTEM_PROMPT}"},
                {"role": "user", "content": " ".join(words[:n])},
            ]

        if not await self.exact_counts_available():
            n = max(target - ESTIMATED_TEMPLATE_TOKENS, 1)
            return Prompt(make(n), target, 0, "estimate")

        async def measure(messages: Messages) -> int:
            return len(await self._tokens(messages))

        floor = await measure(make(0))
        if target < floor:
            raise ConfigError(
                f"a prompt of {target} tokens is shorter than this server's chat template and system "
                f"prompt alone ({floor} tokens); use prompt_tokens >= {floor}"
            )
        messages, n = await _fit(make, target, measure, f"a prompt of {target} tokens", self._fitted_words.get(target))
        self._fitted_words[target] = n
        return Prompt(messages, target, 0, "tokenize")

    # ------------------------------------------------------------- depth d
    async def _build_depth_case(self, case: Case, targets: list[int]) -> CasePrompts:
        if not await self.exact_counts_available():
            raise ConfigError(
                f"case {case.case_id}: depth > 0 needs the server's /apply-template and /tokenize "
                "to place the cached prefix exactly (llama-server has them)"
            )
        depth_words = self._filler(max(case.depth * 2, 16))
        body_words = self._filler(max(max(targets, default=case.prompt_tokens) * 2, 16))

        def layout(n_depth: int, marker: str, n_body: int) -> Messages:
            user = " ".join(depth_words[:n_depth]) + f"\n{marker} " + " ".join(body_words[:n_body])
            return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]

        prime_marker = "0 prime"
        # The cached prefix is what a priming request and a measured one share.
        first_marker = _marker(0)

        async def shared_prefix(messages: Messages) -> int:
            n_depth = _depth_words_in(messages)
            a = await self._tokens(layout(n_depth, prime_marker, 4))
            b = await self._tokens(layout(n_depth, first_marker, 4))
            return common_prefix(a, b)

        def make_depth(n: int) -> Messages:
            return layout(n, first_marker, 4)

        _, n_depth = await _fit(make_depth, case.depth, shared_prefix, f"a cached depth of {case.depth} tokens")
        prime_tokens = await self._tokens(layout(n_depth, prime_marker, 4))

        prompts: list[Prompt] = []
        n_body: int | None = None
        for index, target in enumerate([case.prompt_tokens] * case.warmup + targets):
            marker = _marker(index)

            def make_body(n: int, marker: str = marker) -> Messages:
                return layout(n_depth, marker, n)

            async def measured_tokens(messages: Messages) -> int:
                tokens = await self._tokens(messages)
                return len(tokens) - common_prefix(tokens, prime_tokens)

            messages, n_body = await _fit(
                make_body, target, measured_tokens, f"a prompt of {target} tokens at depth {case.depth}", n_body
            )
            prompts.append(Prompt(messages, target, case.depth, "tokenize"))
        prime = Prompt(layout(n_depth, prime_marker, 4), 0, 0, "tokenize")
        return CasePrompts(prime=prime, warmup=prompts[: case.warmup], measured=prompts[case.warmup :])

    # ------------------------------------------------------------- shared system prompts
    async def _build_prefix_case(self, case: Case, targets: list[int]) -> CasePrompts:
        """K system prompts of exactly ``prefix_tokens`` each; every request one of them (seeded) and its own text.

        The first request on a prefix finds it cold (nothing to reuse: its whole prompt is
        new); every later one means to reuse the prefix, exactly ``prefix_tokens`` of it,
        because its text after the prefix opens with a word the previous use of that prefix
        did not (a slot holds the last request it served, and the reuse stops where they differ).
        """
        if not await self.exact_counts_available():
            raise ConfigError(
                f"case {case.case_id}: shared prefixes need the server's /apply-template and /tokenize "
                "to place the prefix exactly (llama-server has them)"
            )
        systems = [await self._build_prefix(case.prefix_tokens) for _ in range(case.prefixes)]
        # warm-ups touch no prefix (the first request on each must find it cold): a cold one's length
        warmup = [await self._build_flat(case.prefix_tokens + case.prompt_tokens) for _ in range(case.warmup)]
        uses = [0] * case.prefixes
        measured: list[Prompt] = []
        start: int | None = None
        for target in targets:
            k = self.rng.randrange(case.prefixes)
            prompt, start = await self._on_prefix(systems[k], k, uses[k], target, start)
            measured.append(prompt)
            uses[k] += 1
        return CasePrompts(prime=None, warmup=warmup, measured=measured)

    async def _build_prefix(self, target: int) -> str:
        """A system prompt whose request shares exactly ``target`` templated tokens with any other on it."""
        marker = f"P{self._next_prefix} {self.run_tag}"  # no other case's prefix, nor another run's, matches
        self._next_prefix += 1
        words = self._filler(max(target * 2, 16))

        def make(n: int) -> Messages:
            return [{"role": "system", "content": " ".join([marker, *words[:n]])}, {"role": "user", "content": "the"}]

        async def shared(messages: Messages) -> int:
            other = [messages[0], {"role": "user", "content": _PROBE_OPENER}]
            return common_prefix(await self._tokens(messages), await self._tokens(other))

        floor = await shared(make(0))
        if target < floor:
            raise ConfigError(
                f"a shared prefix of {target} tokens is shorter than this server's chat template around a "
                f"system prompt ({floor} tokens); use prefix_tokens >= {floor}"
            )
        messages, _ = await _fit(make, target, shared, f"a shared prefix of {target} tokens")
        return messages[0]["content"]

    async def _on_prefix(self, system: str, k: int, use: int, target: int, start: int | None) -> tuple[Prompt, int]:
        """A request on prefix ``k`` with ``target`` new tokens: the prefix's whole prompt the first time."""
        opener = _WORDS[use % len(_WORDS)]  # differs from the prefix's previous use: the reuse ends at the prefix
        words = self._filler(max(target * 2, 16))
        if (probe := self._probes.get(system)) is None:  # the same for every request on the prefix: once
            probe = await self._tokens(
                [{"role": "system", "content": system}, {"role": "user", "content": _PROBE_OPENER}]
            )
            self._probes[system] = probe
        reused = 0

        def make(n: int) -> Messages:
            return [{"role": "system", "content": system}, {"role": "user", "content": " ".join([opener, *words[:n]])}]

        async def new_tokens(messages: Messages) -> int:
            nonlocal reused
            tokens = await self._tokens(messages)
            reused = common_prefix(tokens, probe) if use else 0
            return len(tokens) - reused

        what = f"a prompt of {target} tokens after a shared prefix"
        if use == 0:
            # cold: the whole prompt is new; its target is the prefix's tokens and the request's own
            prefix_len = common_prefix(await self._tokens(make(0)), probe)
            messages, n = await _fit(make, prefix_len + target, new_tokens, what, start)
            return Prompt(messages, prefix_len + target, 0, "tokenize", prefix=k), n
        messages, n = await _fit(make, target, new_tokens, what, start)
        return Prompt(messages, target, reused, "tokenize", prefix=k), n

    # ------------------------------------------------------------- conversations
    async def _build_trace_case(self, case: Case, trace: Trace) -> CasePrompts:
        """One prompt per line of the trace; a session's later turns are built as its answers arrive.

        Such a turn gets a placeholder here (no messages) carrying its lengths. An error names the line.
        """
        needs_exact = trace.sessions > 0 or bool(trace.prefixes)
        if needs_exact and not await self.exact_counts_available():
            raise ConfigError(
                f"{trace.source}: sessions and shared prefixes need the server's /apply-template and /tokenize "
                "(llama-server has them)"
            )
        systems = {k: await self._build_prefix(tokens) for k, tokens in trace.prefixes.items()}
        uses = dict.fromkeys(systems, 0)
        warmup = [await self._build_flat(case.prompt_tokens) for _ in range(case.warmup)]
        measured: list[Prompt] = []
        for row in trace.rows:
            try:
                if row.turn is not None and row.turn > 1:
                    prompt = Prompt([], row.input_tokens, 0, "tokenize", prefix=row.prefix)
                elif row.prefix is not None:
                    prompt, _ = await self._on_prefix(
                        systems[row.prefix], row.prefix, uses[row.prefix], row.input_tokens, None
                    )
                    uses[row.prefix] += 1
                else:
                    prompt = await self._build_flat(row.input_tokens)
            except ConfigError as exc:
                raise ConfigError(f"{trace.source}:{row.line}: {exc}") from None
            measured.append(replace(prompt, output_tokens=row.output_tokens))
        later = [row.input_tokens for row in trace.rows if row.turn is not None and row.turn > 1]
        if later:
            first = next(p for p, row in zip(measured, trace.rows, strict=True) if row.turn == 1)
            await self._check_turn_floor(case, first, min(later), "input_tokens of a later turn in the trace")
        return CasePrompts(prime=None, warmup=warmup, measured=measured)

    async def _check_turn_floor(self, case: Case, first: Prompt, shortest: int, field: str = "prompt_tokens") -> None:
        """Refuse, before any load, a turn shorter than what the template adds around one."""
        history = [*first.messages, {"role": "assistant", "content": "the"}]
        # a one-token answer, all of it reusable but the last token: what is new is the template's own
        tokens, reused = await self._turn_tokens(history, await self._tokens(first.messages), 1, "")
        floor = len(tokens) - reused
        if shortest < floor:
            raise ConfigError(
                f"case {case.case_id}: a turn of {shortest} new tokens is shorter than what this "
                f"server's chat template adds around an answer and a user message ({floor} tokens); "
                f"use {field} >= {floor}"
            )

    async def _turn_tokens(
        self, history: Messages, before: list[int], answered: int, message: str
    ) -> tuple[list[int], int]:
        """The templated tokens of a turn and how many of them the server can reuse from the one before."""
        tokens = await self._tokens([*history, {"role": "user", "content": message}])
        shared = common_prefix(tokens, before)
        if shared == len(before) and answered > 0:
            # the slot holds the previous prompt and the answer it generated, all but the last
            # sampled token, which llama.cpp never decodes into the cache
            shared += answered - 1
        return tokens, min(shared, len(tokens) - 1)

    async def next_turn(self, turn: Turn) -> tuple[Prompt, list[int]]:
        """The next turn of a conversation: its history resent and a new message of exactly ``turn.target`` tokens.

        Returns the prompt (``depth_tokens``: what the server can reuse) and its templated tokens,
        which the turn after it compares with.
        """
        self._text = turn.text
        words = self._filler(max(turn.target * 2, 16))
        reused = 0
        tokens: list[int] = []

        def make(n: int) -> Messages:
            return [*turn.history, {"role": "user", "content": " ".join(words[:n])}]

        async def new_tokens(messages: Messages) -> int:
            nonlocal reused, tokens
            tokens, reused = await self._turn_tokens(turn.history, turn.before, turn.answered, messages[-1]["content"])
            return len(tokens) - reused

        messages, n = await _fit(
            make, turn.target, new_tokens, f"turn {turn.number} of {turn.target} new tokens", self._turn_words
        )
        self._turn_words = n
        return Prompt(messages, turn.target, reused, "tokenize", prefix=turn.prefix), tokens


@dataclass(frozen=True, slots=True)
class Turn:
    """What the next turn of a conversation is built from."""

    number: int  # from 1
    history: Messages  # every message so far: the previous prompts and the answers as the server sent them
    before: list[int]  # templated tokens of the previous turn's prompt
    answered: int  # tokens the server generated for the previous turn (0: unknown, or a reasoning answer)
    target: int  # new tokens this turn
    prefix: int | None = None
    text: str | None = None  # the case's text corpus, if it has one


def _depth_words_in(messages: Messages) -> int:
    head = messages[-1]["content"].split("\n", 1)[0]
    return len(head.split()) if head else 0


def common_prefix(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """How many leading items two token lists share: what a server's prompt cache can reuse."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


async def _fit(
    make: Callable[[int], Messages],
    target: int,
    measure: Callable[[Messages], Awaitable[int]],
    what: str,
    start: int | None = None,
) -> tuple[Messages, int]:
    """Find n such that measure(make(n)) == target; returns the messages and n.

    measure(make(n)) grows with n by about one token per word, so a secant-like
    step from ``start`` converges in a few requests even for thousands of tokens.
    Where one word jumps over the target, short words pad the last gap.
    """
    n = target if start is None else start
    low_n, low_count = -1, -1
    high_n: int | None = None
    for _ in range(MAX_FIT_STEPS):
        count = await measure(make(n))
        if count == target:
            return make(n), n
        if count < target:
            low_n, low_count = n, count
            step = target - count
        else:
            high_n = n
            step = target - count
        candidate = n + step
        if high_n is not None and candidate >= high_n:
            candidate = high_n - 1
        if candidate <= low_n:
            candidate = low_n + 1
        if high_n is not None and candidate >= high_n:
            break  # low_n + 1 == high_n: one word jumps over the target
        if candidate < 0:
            break
        n = candidate
    if low_n >= 0:
        base = make(low_n)
        missing = target - low_count
        for pad in _PAD_WORDS:
            padded = [dict(m) for m in base]
            padded[-1]["content"] = padded[-1]["content"] + (" " + pad) * missing
            if await measure(padded) == target:
                return padded, low_n
    raise ConfigError(f"could not build {what}: the tokenizer's counts did not converge")
