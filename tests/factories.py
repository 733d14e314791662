"""Hand-made request records for tests of the figures."""

from __future__ import annotations

from typing import Any

from bench.devtools.testing.records import record, timings
from bench.records import RequestRecord

__all__ = ["noisy_records", "record", "timings", "write_run"]


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
    from bench.store.run_dir import RunStore

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
