"""The key, and any key in a server's flags, never reach what the suite stores or prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.doors.redact import MASK, Redactor, flag_secrets
from bench.flows.ab import AbPlan, Variant, run_ab
from bench.flows.run import RunOptions
from bench.inputs.scenarios import parse_scenario_set

SECRET = "sk-flag-5b1d-NOT-FOR-FILES"


def test_keys_are_found_in_either_spelling_of_the_flag() -> None:
    assert flag_secrets(["-m", "x.gguf", "--api-key", "k1", "--api-key=k2", "-c", "4096"]) == ["k1", "k2"]
    assert flag_secrets(["--api-key"]) == []  # a flag without its value
    assert flag_secrets(None) == []


def test_the_redactor_masks_every_secret_and_leaves_the_default_key_alone() -> None:
    redactor = Redactor(["EMPTY", "abc", "abcdef", None])
    assert redactor.text("Bearer abcdef and abc, EMPTY") == f"Bearer {MASK} and {MASK}, EMPTY"
    assert json.loads(redactor.dumps({"a": ["x abc", 1.5, {"b": "abcdef"}]})) == {"a": [f"x {MASK}", 1.5, {"b": MASK}]}
    # a key with a character JSON escapes is masked as it is written
    quoted = Redactor(['k"ey\\1'])
    assert 'k"ey' not in json.loads(quoted.dumps({"error": 'echo: k"ey\\1 !'}))["error"]
    assert not Redactor(["EMPTY"]) and Redactor(["EMPTY"]).text("EMPTY") == "EMPTY"


def test_a_key_in_variant_flags_is_not_in_ab_json_nor_in_any_run(fake: FakeLlamaServer, tmp_path: Path) -> None:
    scenarios = parse_scenario_set(
        {"scenario": [{"name": "tg", "prompt_tokens": 40, "output_tokens": 8, "repetitions": 3, "warmup": 0}]}, "ab"
    )
    plan = AbPlan(
        RunOptions(scenarios=scenarios, endpoint=fake.url, results_dir=tmp_path),
        (Variant("a", ("-fa", "off", "--api-key", SECRET)), Variant("b", ("-fa", "on", f"--api-key={SECRET}"))),
        blocks=1,
    )
    result = run_ab(plan)
    assert [v.flags for v in result.variants] == [f"-fa off --api-key {MASK}", f"-fa on --api-key={MASK}"]
    assert [str(p) for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()] == []


# ------------------------------------------------------------------ the door: every spelling, every cut


def test_a_key_is_masked_in_every_json_spelling() -> None:
    key = 'sk-a/b"c\\d'
    redactor = Redactor([key])
    for written in (key, json.dumps(key)[1:-1], json.dumps(key)[1:-1].replace("/", "\\/"), json.dumps(json.dumps(key))):
        assert "sk-a" not in redactor.text(f"echo: {written} end"), written


def test_a_key_late_in_a_long_error_is_masked_before_the_cut() -> None:
    key = "sk-live-0123456789abcdefghijklmnop"
    redactor = Redactor([key])
    text = "x" * 290 + key  # the cut at 300 falls inside the key
    clipped = redactor.clip(text, 300)
    assert len(clipped) <= 300 and "sk-live" not in clipped and "0123" not in clipped
    # a text someone else cut (a body kept up to a limit) leaves a prefix at its end: masked
    assert redactor.clip("error: sk-live-0123", 300, cut=True) == f"error: {MASK}"
    assert redactor.clip("error: sk", 300, cut=True) == "error: sk"  # two characters say nothing


def test_control_characters_from_a_server_are_escaped_not_obeyed() -> None:
    shown = Redactor().text("model\x1b]0;pwned\x07\x1b[2J\u202eevil")
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert shown == "model\\x1b]0;pwned\\x07\\x1b[2J\\u202eevil"
    assert Redactor().text("two\nlines\tand a tab") == "two\nlines\tand a tab"


@pytest.mark.parametrize(
    "body",
    [
        '{"error": {"message": "' + "x" * 290 + ' {auth}"}}',  # the key past the cut at 300 characters
        '{"detail": {"headers": {"Authorization": "{auth_json}"}}}',  # JSON-escaped, not an OpenAI error
        "upstream said: {auth_json}",  # escaped, in a body that is not JSON at all
    ],
)
def test_a_key_echoed_late_or_escaped_is_never_stored_or_printed(
    fake: FakeLlamaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str
) -> None:
    from bench.cli import main
    from bench.flows.run import run_benchmark
    from bench.store.run_dir import read_records
    from tests.test_faults import _BreakAfterPreflight, options

    key = 'sk-esc/4f"9\\x-0123456789'  # characters JSON escapes, some servers "/" too
    fake.config.api_key = key
    fake.config.error_body = body
    result = run_benchmark(options(fake.url, tmp_path / "results", api_key=key), _BreakAfterPreflight(fake))
    errors = [r.error or "" for r in read_records(result.run_dir)]
    assert errors and all("sk-esc" not in e and "0123456789" not in e for e in errors), errors
    assert main(["check", "--endpoint", fake.url, "--api-key", key]) == 3  # the preflight meets the same
    printed = capsys.readouterr()
    assert "sk-esc" not in printed.out + printed.err and "0123456789" not in printed.out + printed.err
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and b"0123456789" in p.read_bytes()]
    assert leaked == []


def test_a_model_id_that_copies_the_key_or_holds_escapes_is_masked_and_escaped_when_printed(
    fake: FakeLlamaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.cli import main

    fake.config.model = f"m-{SECRET}-\x1b]0;pwned\x07"
    assert main(["check", "--endpoint", fake.url, "--api-key", SECRET]) == 0
    printed = capsys.readouterr()
    assert SECRET not in printed.out + printed.err
    assert "\x1b]0" not in printed.out + printed.err and "\\x1b]0;pwned" in printed.out
