"""The key, and any key in a server's flags, never reach what the suite stores or prints."""

from __future__ import annotations

import json
from pathlib import Path

from bench.ab import AbPlan, Variant, run_ab
from bench.config import parse_scenario_set
from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.redact import MASK, Redactor, flag_secrets
from bench.runner import RunOptions

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
