"""Hand-made request records for tests of the figures."""

from __future__ import annotations

from typing import Any

from bench.records import RequestRecord, ServerTimings, Usage


def timings(prompt_n: int, prompt_ms: float, predicted_n: int, predicted_ms: float, cache_n: int = 0) -> ServerTimings:
    return ServerTimings(
        prompt_n=prompt_n, prompt_ms=prompt_ms, predicted_n=predicted_n, predicted_ms=predicted_ms, cache_n=cache_n
    )


def record(**overrides: Any) -> RequestRecord:
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


def write_run(
    results_dir: Any,
    records: list[RequestRecord],
    *,
    label: str | None = None,
    model: str = "m",
    started: float = 0.0,
    scenarios: dict[str, Any] | None = None,
    **meta: Any,
) -> Any:
    """A finished run directory holding the given records."""
    from bench.store import RunStore

    store = RunStore.create(results_dir, label)
    store.write_meta(
        label=label,
        model=model,
        started=started,
        scenario_set=scenarios or {"name": "s", "scenarios": [{"name": "s", "prompt_tokens": [100]}]},
        **meta,
    )
    for r in records:
        store.append(r)
    store.finish("complete")
    return store.path


def noisy_records(
    n: int,
    *,
    pp_tps: float,
    tg_tps: float,
    cv: float,
    seed: int,
    case_id: str = "s/p100-o10-c1-d0",
    scenario: str = "s",
) -> list[RequestRecord]:
    """n requests whose per-request pp and tg vary with a coefficient of variation ``cv`` (log-normal)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sigma = float(np.sqrt(np.log(1 + cv**2)))
    out = []
    for i in range(n):
        pp = pp_tps * float(rng.lognormal(-(sigma**2) / 2, sigma))
        tg = tg_tps * float(rng.lognormal(-(sigma**2) / 2, sigma))
        prompt_ms, predicted_ms = 512 / pp * 1000, 128 / tg * 1000
        t0 = i * 10.0
        ttft = prompt_ms / 1000
        out.append(
            record(
                index=i,
                case_id=case_id,
                scenario=scenario,
                timings=timings(512, prompt_ms, 128, predicted_ms),
                t_sent=t0,
                token_times=tuple(t0 + ttft + k * predicted_ms / 1000 / 128 for k in range(128)),
                t_end=t0 + ttft + predicted_ms / 1000,
            )
        )
    return out
