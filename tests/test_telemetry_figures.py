from __future__ import annotations

import pytest

from bench.figures.summary import summarise_run
from bench.inputs.baselines import Baseline, Baselines
from bench.telemetry.figures import bandwidth_figure, case_gpu_figures, peak_bandwidth_gbs, run_vram_peak_gib
from bench.telemetry.samples import GpuSample
from tests.factories import record, timings

GIB = 1024**3


def gpu(t: float, used_gib: float, util: float | None, **kw: object) -> GpuSample:
    return GpuSample(
        t=t,
        source="nvml",
        gpu=0,
        name="NVIDIA H100 80GB HBM3",
        memory_used_bytes=int(used_gib * GIB),
        gpu_util_pct=util,
        **kw,
    )  # type: ignore[arg-type]


def test_samples_split_into_prompt_and_generation_phases_by_request_times() -> None:
    # one request: sent at 10.0, first token at 10.4, ended at 12.0
    r = record(t_sent=10.0, token_times=(10.4, 11.0, 12.0), t_end=12.0, timings=timings(100, 400.0, 3, 1600.0))
    samples = [
        gpu(9.5, 50, 0),  # before the case: ignored
        gpu(10.1, 60, 100, power_w=500.0, temperature_c=70.0),
        gpu(10.3, 61, 90, power_w=520.0, temperature_c=72.0),
        gpu(11.0, 62, 40, power_w=400.0, temperature_c=71.0, throttle_reasons="sw_power_cap"),
        gpu(11.5, 62, 30, power_w=380.0, temperature_c=70.0, throttle_reasons=""),
        gpu(12.5, 70, 0),  # after: ignored
    ]
    g = case_gpu_figures("c", [r], samples)
    assert g.samples == 4
    assert (g.vram_peak_gib, g.vram_mean_gib) == pytest.approx((62.0, 61.25))
    assert (g.gpu_util_prompt_pct, g.prompt_samples) == (pytest.approx(95.0), 2)
    assert (g.gpu_util_generation_pct, g.generation_samples) == (pytest.approx(35.0), 2)
    assert g.power_mean_w == pytest.approx(450.0) and g.temperature_max_c == 72.0
    assert g.throttle_reasons == ("sw_power_cap",)


def test_non_streaming_prompt_phase_comes_from_server_prompt_ms() -> None:
    r = record(stream=False, t_sent=0.0, t_end=2.0, timings=timings(100, 500.0, 10, 1500.0))
    g = case_gpu_figures("c", [r], [gpu(0.2, 1, 100), gpu(1.0, 1, 20)])
    assert (g.gpu_util_prompt_pct, g.gpu_util_generation_pct) == (100.0, 20.0)


def test_missing_utilisation_is_not_averaged_as_zero() -> None:
    r = record(t_sent=0.0, token_times=(0.5,), t_end=1.0)
    g = case_gpu_figures("c", [r], [gpu(0.2, 1, None), gpu(0.3, 1, 80)])
    assert g.gpu_util_prompt_pct == 80.0


def test_vram_peak_prefers_the_servers_own_process_memory() -> None:
    assert run_vram_peak_gib([gpu(0, 70, 0, process_memory_bytes=60 * GIB)]) == pytest.approx(60.0)
    assert run_vram_peak_gib([gpu(0, 70, 0), gpu(1, 71, 0)]) == pytest.approx(71.0)
    assert run_vram_peak_gib([]) is None


def test_bandwidth_utilisation_of_generation() -> None:
    # 2.5 GiB read per token at 219.71 t/s on a 3,350 GB/s H100 SXM
    figure = bandwidth_figure(219.71, 2.5, [gpu(0, 1, 0)])
    assert figure is not None
    assert figure.achieved_gbs == pytest.approx(2.5 * GIB * 219.71 / 1e9)
    assert figure.utilisation == pytest.approx(figure.achieved_gbs / 3350.0)
    assert "3,350 GB/s" in figure.sentence()
    assert bandwidth_figure(219.71, None, [gpu(0, 1, 0)]) is None
    assert bandwidth_figure(219.71, 2.5, [GpuSample(t=0, source="nvml", gpu=0, name="Mystery GPU")]) is None
    assert bandwidth_figure(100.0, 1.0, [], peak_override_gbs=1000.0) is not None


def test_known_cards_bandwidth() -> None:
    assert peak_bandwidth_gbs("NVIDIA RTX PRO 6000 Blackwell Workstation Edition") == 1792.0
    assert peak_bandwidth_gbs("NVIDIA H100 PCIe") == 2000.0
    assert peak_bandwidth_gbs("NVIDIA H200") == 4800.0


def test_vram_baseline_fails_only_when_memory_grows_past_tolerance() -> None:
    r = record(model="gpt-oss-120b", t_sent=0.0, t_end=1.0, timings=timings(10, 1.0, 10, 10.0))
    baselines = Baselines("b", (Baseline("vram_used_gib", 59.02, "GiB", model="gpt-oss-120b", tolerance_pct=5),))
    (ok,) = summarise_run([r], baselines, [gpu(0.5, 61.0, 50)]).baselines
    assert ok.status == "pass" and ok.measured == pytest.approx(61.0) and ok.source == "gpu_telemetry"
    (high,) = summarise_run([r], baselines, [gpu(0.5, 64.0, 50)]).baselines
    assert high.status == "above"


def test_another_process_on_the_gpu_and_held_clocks_are_said_per_case() -> None:
    r = record(t_sent=0.0, token_times=(0.5, 1.0), t_end=1.0)
    busy = [gpu(0.2, 1, 90, other_processes=1, persistence_mode=True, throttle_reasons="gpu_idle,sw_thermal_slowdown")]
    g = case_gpu_figures("c", [r], busy)
    assert g.other_processes_max == 1 and g.persistence_mode is True
    assert g.notes() == (
        "1 other process(es) ran on the GPU while the case ran: its figures were measured beside them",
        "the GPU's clocks were held back while the case ran (sw_thermal_slowdown)",
    )
    quiet = case_gpu_figures("c", [r], [gpu(0.2, 1, 90, other_processes=0, throttle_reasons="gpu_idle")])
    assert quiet.notes() == () and quiet.persistence_mode is None


def test_nvml_counts_the_processes_beside_the_server_and_reads_persistence() -> None:
    from bench.telemetry.nvml import NvmlReader
    from tests.fake_nvml import FakeGpu, make_nvml

    gpu = FakeGpu(processes=[(4242, 10 * GIB), (999, GIB)], persistence=0)
    (sample,) = NvmlReader(make_nvml(gpu), server_pid=4242).read(t=0.0)
    assert sample.other_processes == 1 and sample.process_memory_bytes == 10 * GIB
    assert sample.persistence_mode is False
    (unknown,) = NvmlReader(make_nvml(FakeGpu())).read(t=0.0)
    assert unknown.other_processes is None  # without the server's pid there is no "other"
