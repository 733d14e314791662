"""The user's real path: llama-server behind nginx with a Bearer token checked at the proxy."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli import main
from bench.load.server import LocalServer
from bench.store.run_dir import read_run_meta
from tests.integration.nginx import nginx_proxy

pytestmark = pytest.mark.integration
KEY = "sk-nginx-7Q2v-SECRET-9f3"
SET = """
[[scenario]]
name = "tg"
prompt_tokens = 64
output_tokens = 40
repetitions = 5
"""


def write_set(tmp_path: Path) -> Path:
    path = tmp_path / "set.toml"
    path.write_text(SET)
    return path


def run_json(endpoint: str, tmp_path: Path, key: str, name: str, capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    import json

    code = main(["run", "--endpoint", endpoint, "--api-key", key, "--scenarios", str(write_set(tmp_path)),
                 "--results-dir", str(tmp_path / "results"), "--reports-dir", str(tmp_path / "reports"),
                 "--label", name, "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    data: dict = json.loads(captured.out)  # type: ignore[type-arg]
    data["_stderr"] = captured.err
    return data


def test_figures_through_nginx_match_direct_and_streams_stay_incremental(
    llama_server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    direct = run_json(llama_server.url, tmp_path, "EMPTY", "direct", capsys)
    with nginx_proxy(llama_server.url, KEY, tmp_path / "nginx") as proxy:
        proxied = run_json(proxy, tmp_path, KEY, "proxied", capsys)
    (a,), (b,) = direct["cases"], proxied["cases"]
    assert b["ok"] == 5 and b["pp_source"] == "server_timings"
    assert 0.8 < b["tg_tps"] / a["tg_tps"] < 1.25  # the same server, within noise
    assert 0.7 < b["pp_tps"] / a["pp_tps"] < 1.4
    assert b["stream_delivery"] == "incremental"


def test_a_buffering_proxy_is_detected_and_warned_about(
    llama_server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with nginx_proxy(llama_server.url, KEY, tmp_path / "nginx", buffering=True) as proxy:
        assert main(["check", "--endpoint", proxy, "--api-key", KEY]) == 0
        check = capsys.readouterr().out
        proxied = run_json(proxy, tmp_path, KEY, "buffered", capsys)
    assert "tokens buffered" in check and "proxy_buffering off" in check
    (case,) = proxied["cases"]
    assert case["stream_delivery"] == "buffered"
    assert any("arrived in bursts" in note for note in case["notes"])
    report = next((tmp_path / "reports").glob("run-*.html")).read_text()
    assert "arrived in bursts" in report


def test_a_wrong_key_at_the_proxy_is_authentication_failed_and_never_printed(
    llama_server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = "sk-wrong-0000-SECRET"
    with nginx_proxy(llama_server.url, KEY, tmp_path / "nginx") as proxy:
        code = main(["run", "--endpoint", proxy, "--api-key", wrong, "--scenarios", str(write_set(tmp_path)),
                     "--results-dir", str(tmp_path / "results")])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 3
    assert "authentication failed" in captured.err and "HTTP 401" in captured.err
    assert "Traceback" not in captured.err
    assert wrong not in captured.out + captured.err


def test_the_key_never_reaches_results_logs_reports_or_output(
    llama_server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = []
    with nginx_proxy(llama_server.url, KEY, tmp_path / "nginx") as proxy:
        first = run_json(proxy, tmp_path, KEY, "a", capsys)
        second = run_json(proxy, tmp_path, KEY, "b", capsys)
        outputs += [str(first), str(second)]
        for argv in (
            [
                "compare",
                "a",
                "b",
                "--results-dir",
                str(tmp_path / "results"),
                "--reports-dir",
                str(tmp_path / "reports"),
            ],
            ["compare", "a", "b", "--results-dir", str(tmp_path / "results"), "--markdown", "--no-report"],
            ["export", "a", "--results-dir", str(tmp_path / "results")],
            ["show", first["run_dir"]],
            ["check", "--endpoint", proxy, "--api-key", KEY, "--json"],
        ):
            main(argv)
            captured = capsys.readouterr()
            outputs += [captured.out, captured.err]
    assert read_run_meta(Path(first["run_dir"])).endpoint["base_url"] == proxy
    leaks = [
        str(p) for p in tmp_path.rglob("*") if p.is_file() and "nginx" not in p.parts and KEY.encode() in p.read_bytes()
    ]
    assert leaks == []
    assert not [text for text in outputs if KEY in text]
