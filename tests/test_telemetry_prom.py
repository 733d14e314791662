from __future__ import annotations

from pathlib import Path

from bench.telemetry.prom import parse_prometheus

DATA = Path(__file__).parent / "data" / "llama_server_metrics.txt"


def test_parses_a_real_llama_server_metrics_page() -> None:
    values = parse_prometheus(DATA.read_text())
    for name in (
        "llamacpp:prompt_tokens_total",
        "llamacpp:tokens_predicted_total",
        "llamacpp:prompt_tokens_seconds",
        "llamacpp:predicted_tokens_seconds",
        "llamacpp:requests_processing",
        "llamacpp:requests_deferred",
        "llamacpp:n_busy_slots_per_decode",
    ):
        assert name in values, name
    assert values["llamacpp:prompt_tokens_total"] == 35158.0
    assert not any(name.startswith("#") for name in values)


def test_labels_comments_junk_and_non_finite_values() -> None:
    text = '# HELP x\nx{slot="0",kind="kv"} 3.5\nbroken line\ny NaN\nz +Inf\nw 2 1700000000000\n'
    assert parse_prometheus(text) == {'x{slot="0",kind="kv"}': 3.5, "w": 2.0}
