from __future__ import annotations

import asyncio

import pytest

from bench.devtools.testing.fake_server import FakeLlamaServer, count_tokens, render_template
from bench.errors import ConfigError
from bench.inputs.scenarios import Case
from bench.load.workload import CasePrompts, PromptBuilder
from bench.transport.client import ChatClient


def case(prompt: int, depth: int = 0, requests: int = 3, warmup: int = 1) -> Case:
    return Case(
        scenario="s",
        prompt_tokens=prompt,
        output_tokens=8,
        concurrency=1,
        depth=depth,
        requests=requests,
        warmup=warmup,
        stream=True,
        pattern="sequential",
        rate_rps=None,
        max_duration_s=60.0,
        temperature=1.0,
        top_p=1.0,
    )


def build(url: str, c: Case, seed: int = 0) -> CasePrompts:
    async def go() -> CasePrompts:
        async with ChatClient(url) as client:
            return await PromptBuilder(client, seed=seed, run_tag="t1").build_case(c)

    return asyncio.run(go())


def templated_length(messages: list[dict[str, str]]) -> int:
    return len(count_tokens(render_template(messages)))


@pytest.mark.parametrize("target", [40, 128, 1000])
def test_prompts_have_the_exact_templated_token_count(fake: FakeLlamaServer, target: int) -> None:
    prompts = build(fake.url, case(target))
    assert [templated_length(p.messages) for p in prompts.warmup + prompts.measured] == [target] * 4
    assert all(p.length_source == "tokenize" for p in prompts.measured)


def test_every_request_starts_with_a_unique_marker(fake: FakeLlamaServer) -> None:
    prompts = build(fake.url, case(64, requests=5))
    firsts = [p.messages[0]["content"].split()[0] for p in prompts.warmup + prompts.measured]
    assert len(set(firsts)) == len(firsts)


def test_same_seed_gives_the_same_text(fake: FakeLlamaServer) -> None:
    a = build(fake.url, case(64), seed=7)
    b = build(fake.url, case(64), seed=7)
    assert [p.messages for p in a.measured] == [p.messages for p in b.measured]


def test_without_tokenize_the_length_is_a_stated_estimate(fake: FakeLlamaServer) -> None:
    fake.config.has_tokenize = False
    prompts = build(fake.url, case(200))
    assert {p.length_source for p in prompts.measured} == {"estimate"}


def test_a_prompt_shorter_than_the_template_is_refused_with_the_floor(fake: FakeLlamaServer) -> None:
    with pytest.raises(ConfigError, match=r"shorter than this server's chat template .* use prompt_tokens >= \d+"):
        build(fake.url, case(5))


def test_depth_prompts_share_a_prefix_of_exactly_the_depth(fake: FakeLlamaServer) -> None:
    prompts = build(fake.url, case(50, depth=300))
    assert prompts.prime is not None
    prime = count_tokens(render_template(prompts.prime.messages))
    for p in prompts.warmup + prompts.measured:
        tokens = count_tokens(render_template(p.messages))
        shared = next(i for i, (a, b) in enumerate(zip(prime, tokens, strict=False)) if a != b)
        assert shared == 300
        assert len(tokens) - shared == 50
        assert p.depth_tokens == 300


def test_depth_needs_exact_token_counts(fake: FakeLlamaServer) -> None:
    fake.config.has_tokenize = False
    with pytest.raises(ConfigError, match="depth > 0 needs the server's /apply-template and /tokenize"):
        build(fake.url, case(50, depth=300))
