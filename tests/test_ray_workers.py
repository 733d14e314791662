"""Ray workers without a cluster: addresses refused clearly, clocks mapped exactly, drift told apart from noise.

The cluster itself is in tests/integration/test_ray.py.
"""

from __future__ import annotations

import socket

import pytest

from bench.clock import RunClock
from bench.doors.redact import Redactor
from bench.errors import ConfigError
from bench.inputs.scenarios import parse_scenario_set
from bench.load.ray_workers import _drift, _mapped, connect
from bench.load.workers import ClockOffset, Placement, WorkerBackend, WorkerSpec
from bench.load.workload import CasePrompts


def test_an_address_where_no_cluster_answers_is_one_clear_error() -> None:
    with socket.socket() as bound:  # held, never listening: a connection to it is refused, and no one takes it
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        with pytest.raises(ConfigError, match=f"no Ray cluster answers at 127.0.0.1:{port}.*ray start --head"):
            connect(f"127.0.0.1:{port}")
    with pytest.raises(ConfigError, match="HOST:PORT"):
        connect("head-node-without-port")


def test_a_workers_spec_is_mapped_onto_its_own_clock() -> None:
    # the worker's monotonic clock reads 100 s more than ours: its run clock must read our time,
    # and an arrival due at our 5.0 is due at its 105.0
    (case,) = parse_scenario_set({"scenario": [{"name": "s", "prompt_tokens": 40, "output_tokens": 8,
                                               "concurrency": 2, "pattern": "poisson", "rate_rps": 1.0}]},
                                 "ray-set").cases()  # fmt: skip
    spec = WorkerSpec(
        worker=0, endpoint="http://127.0.0.1:9", api_key="EMPTY", model=None, timeout_s=10, max_body_bytes=2**20,
        redactor=Redactor(), clock=RunClock(wall_start=1_000.0, perf_start=2.0), run_id="r", case=case,
        prompts=CasePrompts(None, [], []), indices=(3, 7), streams=1, seed=0, round_number=0,
        arrivals={3: 5.0, 7: 5.5},
    )  # fmt: skip
    mapped = _mapped(spec, ClockOffset(offset_s=100.0, uncertainty_s=0.001))
    assert mapped.clock.wall_start == 1_000.0 and mapped.clock.perf_start == 102.0
    assert mapped.arrivals == {3: 105.0, 7: 105.5}


def test_a_clock_that_moved_more_than_its_offsets_uncertainty_is_noted() -> None:
    def placement(start: float, end: float) -> Placement:
        node = "gpu-node.example"
        return Placement(0, WorkerBackend.RAY, "h", 1, node=node, clock_at_start=ClockOffset(start, 0.0005),
                         clock_at_end=ClockOffset(end, 0.0005))  # fmt: skip

    assert _drift(placement(0.0100, 0.0109)) is None  # 0.9 ms apart, within 0.5 + 0.5 ms
    note = _drift(placement(0.0100, 0.0150))
    assert note is not None and "moved 5.00 ms" in note and "node gpu-node.example" in note
