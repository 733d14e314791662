"""Speculative decoding: drafted and accepted tokens from llama.cpp's timings, per case and in an A/B."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.cli import main
from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.records import ServerTimings

SET = """
[[scenario]]
name = "tg"
prompt_tokens = 40
output_tokens = 20
repetitions = 4
warmup = 0
"""


def test_timings_keep_the_draft_counts_and_doubt_impossible_ones() -> None:
    raw = {"prompt_n": 35, "prompt_ms": 200.0, "predicted_n": 64, "predicted_ms": 1800.0}
    timings = ServerTimings.from_json({**raw, "draft_n": 49, "draft_n_accepted": 46})
    assert timings is not None and (timings.draft_n, timings.draft_n_accepted) == (49, 46)
    plain = ServerTimings.from_json(raw)
    assert plain is not None and plain.draft_n is None  # a server without a draft model
    assert ServerTimings.doubt({**raw, "draft_n": -1}) is not None


def test_a_case_reports_its_acceptance_and_a_draft_ab_sets_it_beside_tg(
    fake: FakeLlamaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "set.toml").write_text(SET)
    results = tmp_path / "results"
    args = ["run", "--endpoint", fake.url, "--scenarios", str(tmp_path / "set.toml"), "--results-dir", str(results)]
    assert main([*args, "--label", "plain", "--no-report"]) == 0
    fake.config.draft_acceptance, fake.config.tg_tps = 0.75, 260.0
    assert main([*args, "--label", "draft", "--no-report"]) == 0
    out = capsys.readouterr().out
    # four requests of 20 tokens each, every one drafted, three in four accepted
    assert "speculative decoding: 60 of 80 drafted tokens accepted (75%) over 4 request(s)" in out
    assert main(["compare", "plain", "draft", "--results-dir", str(results), "--no-report"]) == 0
    compared = capsys.readouterr().out
    assert re.search(r"tg/p40-o20-c1-d0\s+draft tokens accepted \(%\)\s+-\s+75\.00", compared)
    assert re.search(r"tg/p40-o20-c1-d0\s+tg \(t/s\)\s+200\.00\s+260\.00", compared)
