from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import bench.cli as bench_cli
from bench.cli import main
from bench.cli.parser import COMMANDS
from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.load.server import free_port

SET = """
[[scenario]]
name = "pp"
prompt_tokens = 40
output_tokens = 4
repetitions = 2
"""


@pytest.fixture
def scenario_file(tmp_path: Path) -> Path:
    path = tmp_path / "set.toml"
    path.write_text(SET)
    return path


def test_python_m_bench_and_help_explain_commands_and_exit_codes() -> None:
    out = subprocess.run([sys.executable, "-m", "bench", "run", "--help"], capture_output=True, text=True, check=True)
    for words in ("--endpoint", "--api-key", "BENCH_API_KEY", "--scenarios", "exit codes", "5 error rate"):
        assert words in out.stdout


def test_run_against_an_endpoint_prints_figures_and_exits_0(
    fake: FakeLlamaServer, scenario_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baselines = tmp_path / "baselines.toml"  # the test's own, not the packaged file a user may edit
    baselines.write_text('[[baseline]]\nfigure = "pp_tps"\nvalue = 4000\nscenario = "pp"\n')
    code = main(
        ["run", "--endpoint", fake.url, "--scenarios", str(scenario_file), "--results-dir", str(tmp_path / "r"),
         "--baselines", str(baselines)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "pp/p40-o4-c1-d0" in out and "5,000.0" in out
    assert "prompt 5,000.00 t/s = 125.0 % of 4,000 t/s" in out


def test_run_json_output_is_machine_readable(
    fake: FakeLlamaServer, scenario_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["run", "--endpoint", fake.url, "--scenarios", str(scenario_file), "--results-dir", str(tmp_path), "--json"]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["requests"] == 2 and data["cases"][0]["pp_tps"] == pytest.approx(5000.0)
    assert Path(data["run_dir"]).is_dir()


def test_bad_scenario_file_exits_2_with_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[scenario]]\nname = "x"\nprompt_tokens = -1\noutput_tokens = 4\n')
    assert main(["run", "--scenarios", str(bad), "--endpoint", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ") and "field 'prompt_tokens'" in err and "Traceback" not in err


def test_unreachable_endpoint_exits_3(scenario_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["run", "--endpoint", url, "--scenarios", str(scenario_file), "--results-dir", str(tmp_path)]) == 3
    assert f"cannot reach {url}" in capsys.readouterr().err


def test_wrong_key_exits_3_with_authentication_failed(
    fake: FakeLlamaServer,
    scenario_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake.config.api_key = "right"
    monkeypatch.setenv("BENCH_API_KEY", "wrong")
    assert main(["run", "--endpoint", fake.url, "--scenarios", str(scenario_file), "--results-dir", str(tmp_path)]) == 3
    err = capsys.readouterr().err
    assert "authentication failed" in err and "wrong" not in err
    monkeypatch.setenv("BENCH_API_KEY", "right")
    assert main(["run", "--endpoint", fake.url, "--scenarios", str(scenario_file), "--results-dir", str(tmp_path)]) == 0


def test_check_reports_what_the_endpoint_offers(fake: FakeLlamaServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--endpoint", fake.url, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["has_timings"] and info["has_tokenize"] and info["n_ctx"] == 4096 and info["total_slots"] == 4
    assert info["build"] == "b0000-fake" and info["finish_reason"] == "length"


def test_check_warns_about_a_buffering_proxy(fake: FakeLlamaServer, capsys: pytest.CaptureFixture[str]) -> None:
    fake.config.buffered = True
    fake.config.tg_tps = 100.0  # the server says 24 tokens took 240 ms; they arrive in one write
    assert main(["check", "--endpoint", fake.url]) == 0
    out = capsys.readouterr().out
    assert "tokens buffered" in out and "proxy_buffering off" in out


def test_bursts_of_accepted_draft_tokens_are_not_blamed_on_a_proxy(
    fake: FakeLlamaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.config.buffered, fake.config.tg_tps = True, 100.0  # bursts, as speculative decoding sends them
    fake.config.draft_acceptance = 0.9  # and the server says it drafted: they are its own
    assert main(["check", "--endpoint", fake.url]) == 0
    out = capsys.readouterr().out
    assert "proxy_buffering off" not in out and "tokens n/a" in out


def test_scenarios_lists_builtins_and_expands_a_set(scenario_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scenarios"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in ("smoke", "baseline", "sweep"))
    assert main(["scenarios", str(scenario_file)]) == 0
    assert "pp/p40-o4-c1-d0" in capsys.readouterr().out


def test_show_recomputes_figures_from_a_stored_run(
    fake: FakeLlamaServer, scenario_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    main(
        [
            "run",
            "--endpoint",
            fake.url,
            "--scenarios",
            str(scenario_file),
            "--results-dir",
            str(results),
            "--label",
            "x",
        ]
    )
    capsys.readouterr()
    (run_dir,) = results.iterdir()
    assert main(["show", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "status complete" in out and "label x" in out and "pp/p40-o4-c1-d0" in out


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: bench" in capsys.readouterr().out


@pytest.mark.parametrize("command", [c.name for c in COMMANDS] + ["baseline set", "trace show", "trace import"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command.split(), "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: bench {command}" in out and "exit codes" in out


def test_every_command_in_the_table_has_a_handler_and_no_handler_lacks_a_command() -> None:
    from bench.cli.commands import HANDLERS

    assert [c.name for c in COMMANDS] and set(HANDLERS) == {c.name for c in COMMANDS}


def test_every_option_is_declared_in_one_place() -> None:
    import ast

    cli = Path(bench_cli.__file__).parent
    declared: dict[str, list[str]] = {}
    for module in ("options.py", "parser.py"):
        tree = ast.parse((cli / module).read_text())
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "add_argument":
                for arg in call.args:
                    if isinstance(arg, ast.Constant) and str(arg.value).startswith("--"):
                        declared.setdefault(arg.value, []).append(f"{module}:{call.lineno}")
    # one word, two different options: their values and meanings differ between the commands
    other_meanings = {
        "--from": "baseline set: one run to adopt; noise: the runs to profile",
        "--out": "noise: the profile to write; trace import: the trace to write",
        "--noise": "compare: where the spread comes from (PATH, auto, none); plan: a profile instead of runs",
    }
    assert "--alpha" in declared and "--label" in declared
    twice = {flag: where for flag, where in declared.items() if len(where) > 1}
    assert twice.keys() == other_meanings.keys(), twice


@pytest.mark.parametrize(
    ("option", "value"),
    [("--max-run-time", "nan"), ("--max-run-time", "-5"), ("--timeout", "nan"), ("--timeout", "0"),
     ("--timeout", "inf"), ("--telemetry-interval", "inf")],
)  # fmt: skip
def test_numbers_that_are_not_finite_or_in_range_are_a_clear_error(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--endpoint", "http://127.0.0.1:9", "--scenarios", "smoke", option, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bench: error: {option} must be") and "Traceback" not in err


def test_progress_messages_are_one_line_each_in_a_log(capsys: pytest.CaptureFixture[str]) -> None:
    from rich.console import Console

    from bench.cli.console import ConsoleObserver

    observer = ConsoleObserver(Console(file=sys.stdout, width=40))  # not a terminal: a log or a cron mail
    text = "no GPU telemetry: NVML unavailable: NVML Shared Library Not Found; on a client, pass --gpu-telemetry-cmd"
    observer.message(text)
    observer.stop()
    assert capsys.readouterr().out == text + "\n"
