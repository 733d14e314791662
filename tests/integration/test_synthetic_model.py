"""The tiny synthetic gpt-oss model loads in the embedded llama-server and is benchmarked like any model."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.devtools.synthetic_model import SHAPES, write_gpt_oss_gguf
from bench.flows.run import RunOptions, run_benchmark
from bench.inputs.scenarios import parse_scenario_set
from bench.store.run_dir import read_records

pytestmark = pytest.mark.integration


def test_tiny_gpt_oss_loads_answers_and_is_measured(tmp_path: Path) -> None:
    model = write_gpt_oss_gguf(tmp_path / "gpt-oss-tiny.gguf", SHAPES["tiny"])
    scenarios = parse_scenario_set(
        {"scenario": [{"name": "tg", "prompt_tokens": 200, "output_tokens": 16, "repetitions": 3}]}, "tiny"
    )
    result = run_benchmark(RunOptions(scenarios=scenarios, model_file=model, results_dir=tmp_path / "results"))
    records = [r for r in read_records(result.run_dir) if not r.warmup]
    assert len(records) == 3 and all(r.ok for r in records)
    assert all(r.timings and r.timings.prompt_n == 200 and r.timings.predicted_n == 16 for r in records)
    assert result.endpoint is not None and result.endpoint.model and "gpt-oss-tiny" in result.endpoint.model
