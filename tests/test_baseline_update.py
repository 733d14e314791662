from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main
from bench.inputs.baselines import load_baselines
from tests.factories import noisy_records, write_run


def test_adopting_a_run_sets_new_values_and_keeps_the_old_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = noisy_records(5, pp_tps=650, tg_tps=72, cv=0.0, seed=1, scenario="tg")
    run = write_run(tmp_path / "results", records, label="good", model="gemma", build="b1", server_flags="-t 2")
    target = tmp_path / "baselines.toml"
    assert (
        main(
            [
                "baseline",
                "set",
                "--from",
                "good",
                "--results-dir",
                str(tmp_path / "results"),
                "--baselines",
                str(target),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "tg_tps (scenario tg): 219.71 -> 72" in out
    assert "vram_used_gib: not measured" in out and "kept 59.02" in out
    entries = {b.figure: b for b in load_baselines(target).entries}
    tg = entries["tg_tps"]
    assert tg.value == pytest.approx(72.0) and tg.model == "gemma" and tg.run_id == run.name
    assert "flags -t 2" in tg.condition
    assert tg.history[0]["value"] == 219.71 and tg.history[0]["model"] == "gpt-oss-120b"
    assert entries["vram_used_gib"].value == 59.02 and entries["vram_used_gib"].history == ()
    # the packaged pp baseline's scenario ("pp") did not run: unchanged
    assert entries["pp_tps"].value == 5136
    # adopting again stacks history, newest first
    main(["baseline", "set", "--from", "good", "--results-dir", str(tmp_path / "results"), "--baselines", str(target)])
    again = {b.figure: b for b in load_baselines(target).entries}["tg_tps"]
    assert [h["value"] for h in again.history] == [pytest.approx(72.0), 219.71]


def test_a_figure_of_zero_is_not_adopted_as_a_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A GPU that reported 0 bytes used: adopting 0 GiB would write a file every later run refuses.
    import json

    from bench.telemetry.samples import GpuSample

    run = write_run(tmp_path / "results", noisy_records(5, pp_tps=650, tg_tps=72, cv=0.0, seed=1), label="zero")
    sample = GpuSample(t=0.5, source="nvml", gpu=0, name="NVIDIA H100", memory_used_bytes=0)
    (run / "gpu.jsonl").write_text(json.dumps(sample.to_json()) + "\n")
    target = tmp_path / "baselines.toml"
    argv = ["baseline", "set", "--from", "zero", "--results-dir", str(tmp_path / "results"), "--baselines", str(target)]
    assert main(argv) == 0
    assert "vram_used_gib: 0 is not a usable figure" in capsys.readouterr().out
    entries = {b.figure: b for b in load_baselines(target).entries}  # the file it wrote loads
    assert entries["vram_used_gib"].value == 59.02
