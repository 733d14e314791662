"""Joules per token: from the GPU's energy counter where it has one, else its power integrated."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.devtools.testing.records import record, timings
from bench.telemetry.energy import EnergySource, case_energy
from bench.telemetry.nvml import NvmlReader
from bench.telemetry.samples import GpuSample
from tests.fake_nvml import FakeGpu, make_nvml


def _samples(watts: float, start: float, end: float, step: float = 0.25, counter: bool = True) -> list[GpuSample]:
    """A GPU drawing ``watts`` steadily, sampled every ``step`` s, its counter (mJ) rising with it."""
    out, t = [], start
    while t <= end + 1e-9:
        energy = round(5_000_000 + watts * (t - start) * 1000) if counter else None
        out.append(GpuSample(t=t, source="nvml", gpu=0, power_w=watts, energy_mj=energy))
        t += step
    return out


# one stream: 0.5 s of prompt (512 tokens), then 1.5 s generating 128 tokens; then again
REQUESTS = [
    record(index=i, t_sent=10.0 + 2 * i, token_times=(10.5 + 2 * i, 12.0 + 2 * i), t_end=12.0 + 2 * i,
           timings=timings(512, 500.0, 128, 1500.0))
    for i in range(2)
]  # fmt: skip


@pytest.mark.parametrize("counter", [True, False], ids=["energy counter", "power samples"])
def test_a_steady_draw_gives_the_joules_a_token_either_way(counter: bool) -> None:
    energy = case_energy(REQUESTS, _samples(400.0, 9.0, 15.0, counter=counter))
    assert energy is not None
    assert energy.source is (EnergySource.COUNTER if counter else EnergySource.POWER)
    assert energy.energy_j == pytest.approx(400.0 * 4.0)  # 10.0 to 14.0
    assert energy.power_mean_w == pytest.approx(400.0)
    assert energy.j_per_prompt_token == pytest.approx(400.0 * 0.5 / 512)  # the prompt phases' joules
    assert energy.j_per_output_token == pytest.approx(400.0 * 1.5 / 128)
    assert energy.output_tokens_per_j == pytest.approx(256 / 1600.0)
    assert "J a generated token" in energy.sentence()


def test_a_counter_that_goes_backwards_is_bridged_by_power() -> None:
    samples = _samples(300.0, 9.0, 15.0)
    # a driver reload (or a wrap) at 12.5 s: the counter starts again from a small value
    samples = [
        s
        if s.t < 12.5
        else GpuSample(t=s.t, source="nvml", gpu=0, power_w=300.0, energy_mj=int((s.t - 12.5) * 300_000))
        for s in samples
    ]
    energy = case_energy(REQUESTS, samples)
    assert energy is not None and energy.source is EnergySource.MIXED
    assert energy.energy_j == pytest.approx(300.0 * 4.0)


def test_samples_that_cover_too_little_of_the_case_give_no_figure() -> None:
    assert case_energy(REQUESTS, _samples(300.0, 13.0, 15.0)) is None  # a quarter of the case
    assert case_energy(REQUESTS, []) is None
    no_power = [GpuSample(t=t, source="command", gpu=0) for t in (9.0, 15.0)]
    assert case_energy(REQUESTS, no_power) is None


def test_gpus_add_up_and_several_streams_get_no_phase_split() -> None:
    second = [
        GpuSample(t=s.t, source="nvml", gpu=1, power_w=100.0, energy_mj=s.energy_mj) for s in _samples(100.0, 9, 15)
    ]
    two = [*_samples(300.0, 9.0, 15.0), *second]
    energy = case_energy(REQUESTS, two)
    assert energy is not None and energy.energy_j == pytest.approx(400.0 * 4.0)
    concurrent = [
        record(index=i, concurrency=2, t_sent=10.0, token_times=(10.5, 12.0), t_end=12.0,
               timings=timings(512, 500.0, 128, 1500.0))
        for i in range(2)
    ]  # fmt: skip
    energy = case_energy(concurrent, _samples(400.0, 9.0, 13.0))
    assert energy is not None and energy.energy_j == pytest.approx(800.0)
    assert energy.j_per_prompt_token is None and energy.j_per_output_token is None  # phases overlap
    assert energy.output_tokens_per_j == pytest.approx(256 / 800.0)


def test_nvml_reads_the_counter_and_a_gpu_without_it_reads_none() -> None:
    (with_counter,) = NvmlReader(make_nvml(FakeGpu(energy_mj=[123_456]))).read(t=0.0)
    assert with_counter.energy_mj == 123_456
    (without,) = NvmlReader(make_nvml(FakeGpu())).read(t=0.0)
    assert without.energy_mj is None and without.power_w == 300.0


def test_compare_tests_the_energy_a_token_took_run_by_run(
    tmp_path: Path, fake: FakeLlamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the same speed, 30 % more power on B: each generated token costs 30 % more joules
    from bench.decide.compare import compare_runs
    from bench.flows.run import RunOptions, run_benchmark
    from bench.inputs.scenarios import parse_scenario_set
    from bench.telemetry import nvml as nvml_module
    from bench.telemetry.sampler import TelemetryConfig

    fake.config.itl_s = 0.01  # a second a request: many samples at 50 ms
    scenarios = parse_scenario_set(
        {"scenario": [{"name": "tg", "prompt_tokens": 40, "output_tokens": 64, "repetitions": 2, "warmup": 0}]}, "e"
    )
    sides = {}
    for side, milliwatts in (("a", 300_000), ("b", 390_000)):
        runs = []
        for _ in range(3):
            gpu = FakeGpu(power_mw=milliwatts, energy_from_power=True)
            monkeypatch.setattr(nvml_module, "_import_pynvml", lambda gpu=gpu: make_nvml(gpu))
            options = RunOptions(scenarios=scenarios, endpoint=fake.url, results_dir=tmp_path / side,
                                 telemetry=TelemetryConfig(interval_s=0.05))  # fmt: skip
            runs.append(run_benchmark(options).run_dir)
        sides[side] = runs
    comparison = compare_runs(sides["a"], sides["b"])
    energy = next(f for f in comparison.figures if f.figure == "j_per_output_token")
    assert energy.verdict == "regressed" and energy.ratio == pytest.approx(1.3, rel=0.05)
    assert (energy.runs_a, energy.runs_b) == (3, 3)
