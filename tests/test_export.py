from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main
from tests.factories import noisy_records, write_run


def test_runs_export_as_pytest_benchmark_json_that_its_compare_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    write_run(results, noisy_records(5, pp_tps=650, tg_tps=72, cv=0.02, seed=1), label="a", started=1)
    write_run(results, noisy_records(5, pp_tps=650, tg_tps=60, cv=0.02, seed=2), label="b", started=2)
    for label in ("a", "b"):
        assert main(["export", label, "--results-dir", str(results), "-o", str(tmp_path / f"{label}.json")]) == 0
    data = json.loads((tmp_path / "a.json").read_text())
    names = [b["name"] for b in data["benchmarks"]]
    assert names == [f"s/p100-o10-c1-d0::{f}" for f in ("pp", "tg", "ttft", "e2e")]
    tg = next(b for b in data["benchmarks"] if b["param"] == "tg")
    assert tg["stats"]["rounds"] == 5
    # seconds per generated token: the inverse of the t/s figure
    assert 1 / tg["stats"]["mean"] == pytest.approx(72, rel=0.05)
    compared = subprocess.run(
        [sys.executable, "-c", "from pytest_benchmark.cli import main; main()", "compare",
         str(tmp_path / "a.json"), str(tmp_path / "b.json")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert compared.stdout.count("s/p100-o10-c1-d0::tg (") == 2  # one row per run
