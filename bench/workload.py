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

import random
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.config import Case
from bench.errors import ConfigError
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
_PAD_WORDS = ("a", "I", "o", "x", "is", "it", "an", "as", "at", "be")

Messages = list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class Prompt:
    messages: Messages
    prompt_tokens: int  # tokens the server should process (cache excluded)
    depth_tokens: int  # tokens expected from the cache
    length_source: str  # "tokenize" or "estimate"


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
        self.rng = random.Random(seed)
        self.run_tag = run_tag
        self._exact: bool | None = None
        self._next_marker = 0
        # word count that hit each target last time: the next prompt of that
        # length usually needs the same, so its fit costs one count, not several
        self._fitted_words: dict[int, int] = {}

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
        return [self.rng.choice(_WORDS) for _ in range(n_words)]

    def _take_marker(self) -> str:
        marker = f"{_marker(self._next_marker)} {self.run_tag}"
        self._next_marker += 1
        return marker

    async def build_case(self, case: Case) -> CasePrompts:
        if case.depth > 0:
            return await self._build_depth_case(case)
        prompts = [await self._build_flat(case.prompt_tokens) for _ in range(case.warmup + case.requests)]
        return CasePrompts(prime=None, warmup=prompts[: case.warmup], measured=prompts[case.warmup :])

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
    async def _build_depth_case(self, case: Case) -> CasePrompts:
        if not await self.exact_counts_available():
            raise ConfigError(
                f"case {case.case_id}: depth > 0 needs the server's /apply-template and /tokenize "
                "to place the cached prefix exactly (llama-server has them)"
            )
        depth_words = self._filler(max(case.depth * 2, 16))
        body_words = self._filler(max(case.prompt_tokens * 2, 16))

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
            return _common_prefix(a, b)

        def make_depth(n: int) -> Messages:
            return layout(n, first_marker, 4)

        _, n_depth = await _fit(make_depth, case.depth, shared_prefix, f"a cached depth of {case.depth} tokens")
        prime_tokens = await self._tokens(layout(n_depth, prime_marker, 4))

        prompts: list[Prompt] = []
        n_body: int | None = None
        for index in range(case.warmup + case.requests):
            marker = _marker(index)

            def make_body(n: int, marker: str = marker) -> Messages:
                return layout(n_depth, marker, n)

            async def measured_tokens(messages: Messages) -> int:
                tokens = await self._tokens(messages)
                return len(tokens) - _common_prefix(tokens, prime_tokens)

            messages, n_body = await _fit(
                make_body,
                case.prompt_tokens,
                measured_tokens,
                f"a prompt of {case.prompt_tokens} tokens at depth {case.depth}",
                n_body,
            )
            prompts.append(Prompt(messages, case.prompt_tokens, case.depth, "tokenize"))
        prime = Prompt(layout(n_depth, prime_marker, 4), 0, 0, "tokenize")
        return CasePrompts(prime=prime, warmup=prompts[: case.warmup], measured=prompts[case.warmup :])


def _depth_words_in(messages: Messages) -> int:
    head = messages[-1]["content"].split("\n", 1)[0]
    return len(head.split()) if head else 0


def _common_prefix(a: list[int], b: list[int]) -> int:
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
