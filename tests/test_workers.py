"""Load workers in processes: a closed loop's streams shared by several event loops, one run directory."""

from __future__ import annotations

import asyncio
import os
import pickle
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.errors import ConfigError
from bench.flows.run import RunOptions, run_benchmark
from bench.inputs.scenarios import parse_scenario_set
from bench.load.workers import split, supports
from bench.store.run_dir import read_records, read_run_meta


def scenarios(**fields: object) -> object:
    scenario = {"name": "load", "prompt_tokens": 40, "output_tokens": 8, "concurrency": 4, "pattern": "concurrent",
                "repetitions": 3, "warmup": 1, **fields}  # fmt: skip
    return parse_scenario_set({"scenario": [scenario]}, "workers-set")


def test_streams_and_prompts_are_shared_as_evenly_as_they_go() -> None:
    (case,) = scenarios(concurrency=5).cases()  # type: ignore[attr-defined]
    assert split(case, list(range(10)), 2) == [((0, 2, 4, 6, 8), 3), ((1, 3, 5, 7, 9), 2)]
    assert len(split(case, list(range(10)), 64)) == 5  # never more workers than streams
    assert supports(case)
    assert not supports(scenarios(concurrency=1, pattern="sequential").cases()[0])  # type: ignore[attr-defined]
    assert supports(scenarios(turns=2).cases()[0])  # type: ignore[attr-defined]  # a conversation is one prompt
    assert not supports(scenarios(concurrency=1).cases()[0])  # type: ignore[attr-defined]  # one stream: one loop


def test_two_workers_send_every_request_exactly_into_one_run(fake: FakeLlamaServer, tmp_path: Path) -> None:
    messages: list[str] = []

    class Listener:
        def message(self, text: str) -> None:
            messages.append(text)

        def run_started(self, *args: object) -> None: ...
        def case_started(self, *args: object) -> None: ...
        def request_done(self, *args: object) -> None: ...
        def case_done(self, *args: object) -> None: ...

    options = RunOptions(scenarios=scenarios(), endpoint=fake.url, results_dir=tmp_path, workers=2)  # type: ignore[arg-type]
    result = run_benchmark(options, Listener())  # type: ignore[arg-type]
    assert result.status == "complete"
    records = list(read_records(result.run_dir))
    measured = sorted((r for r in records if not r.warmup), key=lambda r: r.index)
    assert [r.index for r in measured] == list(range(12)) and all(r.ok for r in measured)
    assert len([r for r in records if r.warmup]) == 1  # the warm-up ran once, here
    for r in measured:
        assert r.timings is not None and r.timings.prompt_n == r.prompt_tokens_target == 40
        assert r.concurrency == 4 and r.run_id == result.run_id
    assert any("2 worker processes share its 4 streams" in m for m in messages)
    (case,) = result.summary.cases
    assert case.requests == 12 and case.client_lag is not None
    # on the run's one clock: every request began after the run did and ended after it began
    started = read_run_meta(result.run_dir).started
    assert started is not None and all(started <= r.t_sent < r.t_end for r in measured)


def test_workers_out_of_range_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--workers must be from 1 to 64"):
        RunOptions(scenarios=scenarios(), results_dir=tmp_path, workers=0)  # type: ignore[arg-type]


def test_a_worker_that_dies_loses_only_its_own_requests_and_is_named(fake: FakeLlamaServer) -> None:
    import asyncio

    from bench.clock import RunClock
    from bench.doors.redact import Redactor
    from bench.load.workers import WorkerSpec, run_in_workers
    from bench.load.workload import CasePrompts, Prompt

    (case,) = scenarios(warmup=0).cases()  # type: ignore[attr-defined]
    prompt = Prompt([{"role": "user", "content": "hello there"}], 10, 0, "estimate")
    spec = WorkerSpec(
        worker=0, endpoint=fake.url, api_key="EMPTY", model=None, timeout_s=10, max_body_bytes=2**20,
        redactor=Redactor(), clock=RunClock(), run_id="r", case=case,
        prompts=CasePrompts(None, [], [prompt] * 4), indices=(0, 2), streams=2, seed=0, round_number=0,
    )  # fmt: skip
    broken = replace(spec, worker=1, indices=(1, 99))  # one of its prompts does not exist: it dies before any
    received: list[object] = []
    result = asyncio.run(run_in_workers([spec, broken], received.append))
    assert sorted(r.index for r in received) == [0, 2]  # type: ignore[attr-defined]
    assert result.outcome.measured == 2  # the worker that ended reports its own
    (note,) = result.notes
    assert note.startswith("worker 1 exited with code 1 before its end")


def test_a_stopped_worker_is_ended_from_the_parent_and_named(
    fake: FakeLlamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGSTOP (or a call that never returns) silences a worker: the run ends it instead of waiting for ever."""
    import signal

    from bench.clock import RunClock
    from bench.doors.redact import Redactor
    from bench.load import messages
    from bench.load.workers import ProcessPool, WorkerSpec
    from bench.load.workload import CasePrompts, Prompt

    monkeypatch.setattr(messages, "SILENCE_S", 5.0)  # the parent's bound; a live worker beats every second
    fake.config.itl_s = 0.05  # 20 tokens a request: about 1 s each
    (case,) = scenarios(warmup=0, output_tokens=20).cases()  # type: ignore[attr-defined]
    prompt = Prompt([{"role": "user", "content": "hello there"}], 10, 0, "estimate")
    spec = WorkerSpec(
        worker=0, endpoint=fake.url, api_key="EMPTY", model=None, timeout_s=30, max_body_bytes=2**20,
        redactor=Redactor(), clock=RunClock(), run_id="r", case=case,
        prompts=CasePrompts(None, [], [prompt] * 8), indices=(0, 2, 4), streams=1, seed=0, round_number=0,
    )  # fmt: skip
    stuck = replace(spec, worker=1, indices=(1, 3, 5, 7))
    received: list[int] = []

    async def run() -> object:
        pool = await ProcessPool.start(2)

        def sink(record: object) -> None:
            received.append(record.index)  # type: ignore[attr-defined]
            if record.index == 1:  # type: ignore[attr-defined]
                os.kill(pool.processes[1].pid, signal.SIGSTOP)

        try:
            return await asyncio.wait_for(pool.run([spec, stuck], sink), 60)
        finally:
            await pool.close()

    result = asyncio.run(run())
    assert sorted(received) == [0, 1, 2, 4]  # the live worker's all, the stopped one's first
    (note,) = result.notes  # type: ignore[attr-defined]
    assert note.startswith("worker 1 sent nothing for 5 s (stopped, or stuck) and was ended")


def test_workers_send_an_open_loops_one_schedule_as_one_process_would(fake: FakeLlamaServer, tmp_path: Path) -> None:
    poisson = scenarios(pattern="poisson", rate_rps=40.0, repetitions=12, warmup=0)

    def schedule(workers: int) -> list[float]:
        options = RunOptions(scenarios=poisson, endpoint=fake.url, results_dir=tmp_path, workers=workers, seed=3)  # type: ignore[arg-type]
        result = run_benchmark(options)
        records = sorted(read_records(result.run_dir), key=lambda r: r.index)
        assert len(records) == 12 and all(r.ok for r in records)
        assert all(r.t_scheduled is not None and r.t_request >= r.t_scheduled for r in records)  # never early
        first = records[0].t_scheduled
        assert first is not None
        return [r.t_scheduled - first for r in records]  # type: ignore[operator]

    # the same seed draws the same arrivals, whether one process sends them or two share them
    assert schedule(2) == pytest.approx(schedule(1), abs=1e-6)


def test_a_worker_whose_run_is_gone_stops_at_once(fake: FakeLlamaServer) -> None:
    import asyncio

    from bench.clock import RunClock
    from bench.doors.redact import Redactor
    from bench.load.workers import FRAME, ORPHANED, ProcessPool, WorkerSpec
    from bench.load.workload import CasePrompts, Prompt

    fake.config.itl_s = 0.05  # 20 tokens a request, 12 requests on 2 streams: about 6 s of work
    (case,) = scenarios(warmup=0, concurrency=2, repetitions=6, output_tokens=20).cases()  # type: ignore[attr-defined]
    prompt = Prompt([{"role": "user", "content": "hello there"}], 10, 0, "estimate")
    spec = WorkerSpec(
        worker=0, endpoint=fake.url, api_key="EMPTY", model=None, timeout_s=10, max_body_bytes=2**20,
        redactor=Redactor(), clock=RunClock(), run_id="r", case=case,
        prompts=CasePrompts(None, [], [prompt] * 12), indices=tuple(range(12)), streams=2, seed=0, round_number=0,
    )  # fmt: skip

    async def orphaned() -> tuple[int | None, float]:
        pool = await ProcessPool.start(2)
        try:
            first, second = pool.processes
            assert [p.pid for p in pool.placements] == [first.pid, second.pid]
            assert first.stdin is not None and first.stdout is not None and second.stdin is not None
            first.stdin.write(pickle.dumps(spec))
            await first.stdin.drain()
            await first.stdout.readexactly(FRAME.size)  # its first record: it is sending
            began = asyncio.get_running_loop().time()
            first.stdin.close()  # what the kernel does when the run is killed: the worker's stdin ends
            second.stdin.close()  # and one killed before its work came stops too
            codes = await asyncio.wait_for(asyncio.gather(first.wait(), second.wait()), 30)
            assert codes[1] == ORPHANED
            return codes[0], asyncio.get_running_loop().time() - began
        finally:
            await pool.close()

    code, stopped_after_s = asyncio.run(orphaned())
    assert code == ORPHANED and stopped_after_s < 2.0  # well before its 5 s of work left were done


def test_the_automatic_choice_gives_each_worker_a_core_and_keeps_one_for_a_server_here() -> None:
    from bench.load.workers import STREAMS_PER_WORKER, auto_workers

    def case(streams: int) -> object:
        return scenarios(concurrency=streams).cases()[0]  # type: ignore[attr-defined]

    # a remote server: one worker per STREAMS_PER_WORKER streams, no more than the cores
    assert auto_workers(case(STREAMS_PER_WORKER), server_here=False, cores=16) == 1  # type: ignore[arg-type]
    assert auto_workers(case(STREAMS_PER_WORKER + 1), server_here=False, cores=16) == 2  # type: ignore[arg-type]
    assert auto_workers(case(8 * STREAMS_PER_WORKER), server_here=False, cores=4) == 4  # type: ignore[arg-type]
    # a server on this machine keeps a core: on two cores the client stays in one process
    assert auto_workers(case(8 * STREAMS_PER_WORKER), server_here=True, cores=2) == 1  # type: ignore[arg-type]
    assert auto_workers(case(8 * STREAMS_PER_WORKER), server_here=True, cores=1) == 1  # type: ignore[arg-type]


def test_loopback_is_told_from_a_url_or_a_host() -> None:
    from bench.transport.client import is_loopback

    assert is_loopback("http://127.0.0.1:8080") and is_loopback("http://localhost/v1") and is_loopback("[::1]")
    assert is_loopback("http://[::1]:8080") and is_loopback("127.3.4.5")
    assert not is_loopback("http://gpu-host.example:8080") and not is_loopback("gpu-host.example")


def test_a_traces_sessions_stay_with_one_worker_and_its_lines_keep_their_order() -> None:
    import json

    from bench.inputs.trace import parse_trace

    rows = [{"t": 0.0, "input_tokens": 8, "output_tokens": 2, "session": "a", "turn": 1},
            {"t": 0.1, "input_tokens": 8, "output_tokens": 2},
            {"t": 0.2, "input_tokens": 8, "output_tokens": 2, "session": "b", "turn": 1},
            {"t": 0.3, "input_tokens": 8, "output_tokens": 2, "session": "a", "turn": 2},
            {"t": 0.4, "input_tokens": 8, "output_tokens": 2},
            {"t": 0.5, "input_tokens": 8, "output_tokens": 2, "session": "b", "turn": 2}]  # fmt: skip
    trace = parse_trace([json.dumps(row) + "\n" for row in rows], "t.jsonl")
    (shipped,) = parse_scenario_set(
        {"scenario": [{"name": "replay", "pattern": "trace", "trace": "sample", "concurrency": 3}]}, "s"
    ).cases()
    case = replace(shipped, trace=trace)
    # sessions and lone lines dealt out in order of first appearance: a(0) line1(1) b(0) line4(1)
    assert split(case, list(range(6)), 2) == [((0, 2, 3, 5), 2), ((1, 4), 1)]
    assert supports(case)


def test_a_worker_sends_without_waiting_for_the_run_to_read() -> None:
    # 6 MiB of records into a pipe of 64 KiB that nobody reads yet: with blocking writes the
    # worker's event loop, and every stream on it, would stop until the run read them
    from bench.load.workers import FRAME, PipeOut

    read_end, write_end = os.pipe()
    sent_all = threading.Event()
    received = bytearray()
    read_before_all_sent: list[bool] = []

    def run_reads_late() -> None:
        read_before_all_sent.append(not sent_all.wait(timeout=10))  # the worker stopped until read
        while chunk := os.read(read_end, 1 << 20):
            received.extend(chunk)

    async def worker() -> None:
        out = await PipeOut.open(write_end)
        for k in range(96):
            out.send(("record", k, b"x" * 65536))
        sent_all.set()
        await out.aclose()

    reader = threading.Thread(target=run_reads_late)
    reader.start()
    try:
        asyncio.run(asyncio.wait_for(worker(), 60))
    finally:
        sent_all.set()
        os.close(write_end)
        reader.join(timeout=30)
        os.close(read_end)
    messages, view = [], memoryview(received)
    while view:
        (size,) = FRAME.unpack(view[: FRAME.size])
        messages.append(pickle.loads(view[FRAME.size : FRAME.size + size]))
        view = view[FRAME.size + size :]
    assert read_before_all_sent == [False]
    assert [m[1] for m in messages] == list(range(96))  # all of them, in order, once the run reads
