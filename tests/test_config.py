from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.errors import ConfigError
from bench.inputs.baselines import load_baselines, parse_baselines
from bench.inputs.scenarios import BUILTIN_SETS, load_scenario_set, parse_scenario_set


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "set.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", BUILTIN_SETS)
def test_builtin_sets_load_and_fit_a_4096_context(name: str) -> None:
    cases = load_scenario_set(name).cases()
    assert cases
    assert all(c.context_tokens <= 4096 for c in cases)


def test_baseline_set_spans_the_lengths_the_baselines_are_compared_on() -> None:
    cases = load_scenario_set("baseline").cases()
    pp = [c for c in cases if c.scenario == "pp"]
    tg = [c for c in cases if c.scenario == "tg"]
    assert min(c.prompt_tokens for c in pp) == 512 and max(c.prompt_tokens for c in pp) == 3584
    assert sorted(c.output_tokens for c in tg) == [128, 512, 2048]
    assert all(c.concurrency == 1 for c in cases)


def test_axes_expand_to_their_product_and_closed_loop_scales_requests(tmp_path: Path) -> None:
    scenario_set = load_scenario_set(
        write(
            tmp_path,
            """
[[scenario]]
name = "grid"
prompt_tokens = [128, 256]
output_tokens = [16, 32, 64]
concurrency = [1, 4]
pattern = "concurrent"
repetitions = 2
""",
        )
    )
    cases = scenario_set.cases()
    assert len(cases) == 2 * 3 * 2
    by_conc = {c.concurrency: c.requests for c in cases}
    assert by_conc == {1: 2, 4: 8}
    assert cases[0].case_id == "grid/p128-o16-c1-d0"


def test_defaults_apply_unless_a_scenario_overrides_them(tmp_path: Path) -> None:
    scenario_set = load_scenario_set(
        write(
            tmp_path,
            """
[defaults]
repetitions = 5
stream = false
[[scenario]]
name = "a"
prompt_tokens = 64
output_tokens = 8
[[scenario]]
name = "b"
prompt_tokens = 64
output_tokens = 8
stream = true
""",
        )
    )
    a, b = scenario_set.scenarios
    assert (a.repetitions, a.stream) == (5, False)
    assert (b.repetitions, b.stream) == (5, True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("prompt_tokens = -5\noutput_tokens = 8", "field 'prompt_tokens': must be a positive integer"),
        ("prompt_tokens = 64\noutput_tokens = 0", "field 'output_tokens'"),
        ("prompt_tokens = 64\noutput_tokens = 8\nprompt_lenght = 3", "unknown field 'prompt_lenght'"),
        ('prompt_tokens = 64\noutput_tokens = 8\npattern = "burst"', "field 'pattern': must be one of sequential"),
        ("prompt_tokens = 64\noutput_tokens = 8\nconcurrency = 4", "pattern 'sequential' runs one request at a time"),
        ('prompt_tokens = 64\noutput_tokens = 8\npattern = "poisson"', "needs field 'rate_rps'"),
        (
            'prompt_tokens = 64\noutput_tokens = 8\ndepth = 512\nconcurrency = 2\npattern = "concurrent"',
            "depth' > 0 needs concurrency 1",
        ),
        ("prompt_tokens = 64\noutput_tokens = 8\ntop_p = 0", "field 'top_p'"),
        ("prompt_tokens = 64\noutput_tokens = 8\nrepetitions = true", "field 'repetitions'"),
        ("output_tokens = 8", "missing field 'prompt_tokens'"),
    ],
)
def test_bad_scenarios_name_the_file_scenario_and_field(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, f'[[scenario]]\nname = "s1"\n{body}\n')
    with pytest.raises(ConfigError) as info:
        load_scenario_set(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_invalid_toml_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_scenario_set(write(tmp_path, "[[scenario]\n"))
    with pytest.raises(ConfigError, match="no such scenario file, and not a built-in set"):
        load_scenario_set(tmp_path / "nope.toml")


def test_newer_schema_is_refused_with_the_version_it_reads() -> None:
    with pytest.raises(ConfigError, match="schema_version 2 is not supported"):
        parse_scenario_set({"schema_version": 2, "scenario": []}, "x.toml")


def test_duplicate_scenario_names_are_refused() -> None:
    raw = {"scenario": [{"name": "a", "prompt_tokens": 8, "output_tokens": 8}] * 2}
    with pytest.raises(ConfigError, match="repeated: a"):
        parse_scenario_set(raw, "x.toml")


def test_packaged_baselines_hold_the_seed_figures() -> None:
    baselines = load_baselines(None)
    values = {b.figure: b.value for b in baselines.entries}
    assert values == {"pp_tps": 5136, "tg_tps": 219.71, "vram_used_gib": 59.02}
    assert {b.scenario for b in baselines.entries if b.figure != "vram_used_gib"} == {"pp", "tg"}


def test_a_local_baselines_file_is_read_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "baselines.toml").write_text('[[baseline]]\nfigure = "tg_tps"\nvalue = 80\n')
    monkeypatch.chdir(tmp_path)
    baselines = load_baselines(None)
    assert [(b.figure, b.value, b.unit) for b in baselines.entries] == [("tg_tps", 80.0, "t/s")]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"figure": "speed", "value": 1}, "field 'figure'"),
        ({"figure": "pp_tps", "value": -1}, "field 'value'"),
        ({"figure": "pp_tps"}, "missing field 'value'"),
        ({"figure": "pp_tps", "value": 1, "tolerance": 3}, "unknown field 'tolerance'"),
    ],
)
def test_bad_baselines_are_refused(entry: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_baselines({"baseline": [entry]}, "b.toml")


def test_baseline_model_matches_as_a_substring() -> None:
    (baseline,) = parse_baselines(
        {"baseline": [{"figure": "tg_tps", "value": 1, "model": "gpt-oss-120b"}]}, "b"
    ).entries
    assert baseline.applies_to("ggml-org/gpt-oss-120b-GGUF")
    assert not baseline.applies_to("gemma-3-270m-q4_k_m")
    assert baseline.applies_to(None)


def test_the_documented_examples_parse() -> None:
    import re

    docs = Path(__file__).parent.parent / "docs"
    pages = (docs / "workloads.md").read_text() + (docs / "baselines.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", pages, re.S)
    scenario_example = next(b for b in blocks if "[[scenario]]" in b)
    baseline_example = next(b for b in blocks if "[[baseline]]" in b)
    import tomllib

    assert parse_scenario_set(tomllib.loads(scenario_example), "docs").cases()
    assert parse_baselines(tomllib.loads(baseline_example), "docs").entries[0].value == 219.71


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("repetitions", "1000000000", "field 'repetitions': must be a positive integer up to 100,000"),
        ("concurrency", "100000", "field 'concurrency': must be a positive integer up to 4,096"),
        ("prompt_tokens", "1000000000", "field 'prompt_tokens': must be a positive integer up to 1,048,576"),
        ("max_duration_s", "inf", "field 'max_duration_s': must be a positive number of seconds up to 604,800"),
        ("temperature", "nan", "field 'temperature': must be a number from 0 to 2; got nan"),
    ],
)
def test_values_a_run_cannot_hold_are_refused_with_the_limit(
    tmp_path: Path, field: str, value: str, message: str
) -> None:
    scenario = {"name": "s", "prompt_tokens": "64", "output_tokens": "8", "pattern": '"concurrent"', field: value}
    text = "[[scenario]]\n" + "".join(f"{k} = {v if k != 'name' else repr(v)}\n" for k, v in scenario.items())
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_scenario_set(write(tmp_path, text))


def test_a_case_too_big_to_build_is_refused_before_any_request(tmp_path: Path) -> None:
    text = '[[scenario]]\nname = "big"\nprompt_tokens = 4000\noutput_tokens = 8\nrepetitions = 10000\n'
    with pytest.raises(ConfigError, match=r"would build 40,004,000 prompt tokens .* the limit is 20,000,000"):
        load_scenario_set(write(tmp_path, text))


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_baseline_that_is_not_a_finite_number_is_refused(tmp_path: Path, value: str) -> None:
    path = tmp_path / "baselines.toml"
    path.write_text(f'[[baseline]]\nfigure = "tg_tps"\nvalue = {value}\n')
    with pytest.raises(ConfigError, match=r"field 'value': must be a positive number"):
        load_baselines(path)
    path.write_text(f'[[baseline]]\nfigure = "tg_tps"\nvalue = 100\ntolerance_pct = {value}\n')
    with pytest.raises(ConfigError, match=r"field 'tolerance_pct'"):
        load_baselines(path)


@pytest.mark.parametrize("value", ["1e300", "101", "-1"])
def test_a_tolerance_that_would_pass_every_figure_is_refused_with_its_range(tmp_path: Path, value: str) -> None:
    path = tmp_path / "baselines.toml"
    path.write_text(f'[[baseline]]\nfigure = "tg_tps"\nvalue = 100\ntolerance_pct = {value}\n')
    with pytest.raises(ConfigError, match=r"field 'tolerance_pct': must be a number of percent from 0 to 100"):
        load_baselines(path)


def test_a_huge_value_is_quoted_cut_in_the_error(tmp_path: Path) -> None:
    text = '[[scenario]]\nname = "x"\nprompt_tokens = [' + ", ".join(["7" * 18] * 40) + "]\noutput_tokens = 8\n"
    with pytest.raises(ConfigError) as error:
        load_scenario_set(write(tmp_path, text))
    message = str(error.value)
    assert "field 'prompt_tokens'" in message and message.endswith("...") and message.count("7" * 18) < 4
