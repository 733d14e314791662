"""Property-based tests: bad input never crashes, and the figures never claim more than the records allow."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.errors import ConfigError
from bench.figures.summary import summarise_case
from bench.figures.throughput import server_pp_tps, server_tg_tps
from bench.inputs.baselines import parse_baselines
from bench.inputs.scenarios import parse_scenario_set
from tests.factories import record, timings

FIELDS = ["name", "prompt_tokens", "output_tokens", "concurrency", "depth", "repetitions", "warmup", "stream",
          "pattern", "rate_rps", "max_duration_s", "temperature", "top_p", "description", "bogus"]  # fmt: skip
VALUES = st.one_of(
    st.integers(-5, 5000), st.floats(allow_nan=True), st.booleans(), st.text(max_size=8),
    st.lists(st.integers(-2, 5000), max_size=4), st.sampled_from(["sequential", "concurrent", "poisson", "x"]),
    st.none(),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=8), max_size=3),
    st.dictionaries(st.sampled_from(["repetitions", "stream", "warmup", "nope"]), VALUES, max_size=3),
)
def test_any_scenario_table_is_parsed_or_refused_with_a_config_error(
    scenarios: list[dict[str, object]], defaults: dict[str, object]
) -> None:
    try:
        parsed = parse_scenario_set({"defaults": defaults, "scenario": scenarios}, "fuzz.toml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.toml")  # always names the file
        return
    for case in parsed.cases():
        assert case.prompt_tokens >= 1 and case.output_tokens >= 1 and case.concurrency >= 1 and case.requests >= 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["figure", "value", "tolerance_pct", "model", "x"]), VALUES,
                                max_size=5), max_size=3))  # fmt: skip
def test_any_baseline_table_is_parsed_or_refused_with_a_config_error(entries: list[dict[str, object]]) -> None:
    try:
        parse_baselines({"baseline": entries}, "b.toml")
    except ConfigError as exc:
        assert str(exc).startswith("b.toml")


requests = st.lists(
    st.tuples(st.integers(1, 4096), st.floats(0.01, 1e5), st.integers(2, 2048), st.floats(0.01, 1e5),
              st.floats(0, 100), st.floats(0.001, 100)),
    min_size=1, max_size=30,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(requests)
def test_throughput_figures_stay_within_what_the_records_allow(
    rows: list[tuple[int, float, int, float, float, float]],
) -> None:
    records = [
        record(index=i, t_sent=start, t_end=start + duration, timings=timings(pn, pms, gn, gms))
        for i, (pn, pms, gn, gms, start, duration) in enumerate(rows)
    ]
    pp_rates = [pn / pms * 1000 for pn, pms, _, _, _, _ in rows]
    tg_rates = [gn / gms * 1000 for _, _, gn, gms, _, _ in rows]
    pp, tg = server_pp_tps(records), server_tg_tps(records)
    assert pp is not None and min(pp_rates) * (1 - 1e-9) <= pp <= max(pp_rates) * (1 + 1e-9)
    assert tg is not None and min(tg_rates) * (1 - 1e-9) <= tg <= max(tg_rates) * (1 + 1e-9)
    summary = summarise_case("c", records)
    # aggregate output t/s can never beat every request running side by side at its own rate
    assert summary.output_tps is not None
    assert summary.output_tps <= sum(gn / d for (_, _, gn, _, _, d) in rows) * (1 + 1e-9)
