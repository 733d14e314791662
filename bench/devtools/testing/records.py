"""Synthetic request records, for statistics calibration and for tests of the figures."""

from __future__ import annotations

from typing import Any

from bench.records import RequestRecord, ServerTimings, Usage


def timings(prompt_n: int, prompt_ms: float, predicted_n: int, predicted_ms: float, cache_n: int = 0) -> ServerTimings:
    return ServerTimings(
        prompt_n=prompt_n, prompt_ms=prompt_ms, predicted_n=predicted_n, predicted_ms=predicted_ms, cache_n=cache_n
    )


def record(**overrides: Any) -> RequestRecord:
    """A successful streamed request with plausible defaults; any field can be overridden."""
    fields: dict[str, Any] = dict(
        run_id="r",
        case_id="s/p100-o10-c1-d0",
        scenario="s",
        index=0,
        warmup=False,
        stream=True,
        prompt_tokens_target=100,
        output_tokens_target=10,
        depth_target=0,
        concurrency=1,
        prompt_length_source="tokenize",
        ok=True,
        http_status=200,
        error=None,
        finish_reason="length",
        content_chars=10,
        reasoning_chars=0,
        system_fingerprint="b1",
        model="m",
        timings=None,
        usage=Usage(100, 10, 110),
        t_sent=0.0,
        t_first_byte=None,
        t_first_token=None,
        t_end=1.0,
        token_times=(),
        token_event_count=0,
    )
    fields.update(overrides)
    if fields["token_times"] and "token_event_count" not in overrides:
        fields["token_event_count"] = len(fields["token_times"])
    if fields["token_times"] and "t_first_token" not in overrides:
        fields["t_first_token"] = fields["token_times"][0]
    return RequestRecord(**fields)
