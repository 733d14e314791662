"""The own-cost table (docs/own-costs.md) is what the benchmarks measured, and targets can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.devtools import own_costs


def test_the_own_cost_page_table_is_the_one_written_from_the_measured_figures() -> None:
    # `python -m bench.devtools.own_costs` writes it; a hand edit of either side fails here
    assert own_costs.main(["--check"]) == 0
    figures = own_costs.read_figures()["figures"]
    assert set(figures) == own_costs.KEYS  # every row of the table was measured


def test_a_target_is_missed_only_beyond_its_slack() -> None:
    assert own_costs.breaches({"ttft_added_ms_median_1": 1.4}) == []  # within 1.5 x the 1 ms target
    (missed,) = own_costs.breaches({"ttft_added_ms_median_1": 1.6})
    assert missed.startswith("added TTFT") and "1.6 is above 1 x 1.5" in missed
    assert own_costs.breaches({"client_events_per_cpu_s": 7_000.0}) == []
    (too_slow,) = own_costs.breaches({"client_events_per_cpu_s": 6_000.0})
    assert "6,000 is below 10,000 / 1.5" in too_slow
    assert own_costs.breaches({"sampler_cpu_pct_50ms": 50.0}) == []  # a figure without a target


def test_figures_are_recorded_by_name_and_unknown_names_refused(tmp_path: Path) -> None:
    path = tmp_path / "costs.json"
    own_costs.record("record_write_us", 74.0, path)
    own_costs.record("summary_1m_records_s", 14.0, path)
    document = own_costs.read_figures(path)
    assert document["figures"] == {"record_write_us": 74.0, "summary_1m_records_s": 14.0}
    assert "| writing one request record (128 token times, flushed) | 74 us |  |" in own_costs.table(document)
    assert "| SSE token events processed per CPU-second by the client, one stream | not measured |" in own_costs.table(
        document
    )
    with pytest.raises(KeyError, match="not a figure of the own-cost table"):
        own_costs.record("made_up", 1.0, path)
