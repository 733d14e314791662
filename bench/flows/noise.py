"""A noise profile measured: the scenario set run several times, each pass a run of its own.

``measure_noise`` runs the passes (each its own server start when the suite starts the server)
and writes the noise profile of those runs (``bench.decide.noise``) beside the baselines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bench.decide.noise import DEFAULT_PROFILE, MIN_RUNS, NoiseProfile, measure_profile, save_profile
from bench.errors import ConfigError
from bench.flows.run import RunObserver, RunOptions, RunResult, run_benchmark

DEFAULT_PASSES = 6
NOISE_LABEL = "noise"


@dataclass(frozen=True, slots=True)
class NoiseOptions:
    run: RunOptions  # the set and endpoint to profile; its label names the passes ("noise" if none)
    passes: int = DEFAULT_PASSES
    out: Path = DEFAULT_PROFILE

    def __post_init__(self) -> None:
        if not MIN_RUNS <= self.passes <= 100:
            raise ConfigError(
                f"--passes must be from {MIN_RUNS} to 100 (a spread needs {MIN_RUNS} runs); got {self.passes}"
            )


@dataclass(frozen=True, slots=True)
class NoiseOutcome:
    runs: tuple[RunResult, ...]
    profile: NoiseProfile


def measure_noise(options: NoiseOptions, observer: RunObserver | None = None) -> NoiseOutcome:
    """Run the set ``passes`` times, each pass its own run (and server start), and store their profile.

    A pass that fails stops the measurement (its error says why); the passes before it are kept
    as runs, and ``bench noise --from`` makes a profile of them.
    """
    run_options = options.run if options.run.label else replace(options.run, label=NOISE_LABEL)
    results: list[RunResult] = []
    for number in range(options.passes):
        if observer is not None:
            observer.message(f"pass {number + 1} of {options.passes}")
        # one seed for every pass: the passes differ by their server start and moment, not their prompts
        results.append(run_benchmark(run_options, observer))
    profile = measure_profile([r.run_dir for r in results])
    profile = replace(profile, where=str(options.out))
    save_profile(profile, options.out)
    return NoiseOutcome(tuple(results), profile)


def profile_of_runs(run_dirs: Sequence[Path], out: Path) -> NoiseProfile:
    """The noise profile of runs a user already has (``bench noise --from``), written to ``out``."""
    profile = replace(measure_profile(run_dirs), where=str(out))
    save_profile(profile, out)
    return profile
