"""Length distributions: prompt and output lengths that vary like real traffic, each request still exact.

A scenario's ``prompt_tokens`` or ``output_tokens`` may name a distribution instead of a
number (a table in TOML)::

    prompt_tokens = { dist = "uniform", min = 64, max = 1024 }
    prompt_tokens = { dist = "normal", mean = 512, sd = 128, min = 64, max = 2048 }
    output_tokens = { dist = "lognormal", median = 200, sigma = 0.6, min = 16, max = 2048 }
    output_tokens = { dist = "empirical", file = "lengths.txt" }   # one length per line
    output_tokens = { dist = "empirical", values = [12, 40, 40, 310] }

Each request draws its own length from the run's seed (the same seed draws the same lengths),
and its record keeps the exact target as for a fixed length. Normal and log-normal draws are
truncated to [min, max] by drawing again (a clipped tail would pile requests on the bounds).
"""

from __future__ import annotations

import hashlib
import math
import random
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from bench.doors import files
from bench.errors import ConfigError

MAX_DRAWS = 1000  # a truncated draw this unlikely means bounds far in a tail: the bound is used
MAX_EMPIRICAL = 1_000_000
LENGTHS_MAX_BYTES = 16 * 2**20  # a million lengths of up to a few digits each


class LengthKind(StrEnum):
    UNIFORM = "uniform"
    NORMAL = "normal"
    LOGNORMAL = "lognormal"
    EMPIRICAL = "empirical"


_FIELDS: dict[LengthKind, tuple[str, ...]] = {
    LengthKind.UNIFORM: ("min", "max"),
    LengthKind.NORMAL: ("mean", "sd", "min", "max"),
    LengthKind.LOGNORMAL: ("median", "sigma", "min", "max"),
    LengthKind.EMPIRICAL: (),
}
ALLOWED = (
    "a table { dist = 'uniform', min, max }, { dist = 'normal', mean, sd, min, max }, "
    "{ dist = 'lognormal', median, sigma, min, max } or { dist = 'empirical', values = [...] | file = PATH }"
)


@dataclass(frozen=True, slots=True)
class LengthDist:
    kind: LengthKind
    low: int
    high: int
    centre: float = 0.0  # normal: the mean; log-normal: the median
    spread: float = 0.0  # normal: the SD in tokens; log-normal: sigma of the log
    values: tuple[int, ...] = ()  # empirical
    source: str | None = None  # the file an empirical list came from

    def draw(self, rng: random.Random) -> int:
        """One length, from ``rng``."""
        if self.kind is LengthKind.UNIFORM:
            return rng.randint(self.low, self.high)
        if self.kind is LengthKind.EMPIRICAL:
            return rng.choice(self.values)
        for _ in range(MAX_DRAWS):
            if self.kind is LengthKind.NORMAL:
                value = rng.gauss(self.centre, self.spread)
            else:
                value = self.centre * math.exp(rng.gauss(0.0, self.spread))
            length = round(value)
            if self.low <= length <= self.high:
                return length
        return min(max(round(self.centre), self.low), self.high)

    @property
    def nominal(self) -> int:
        """The length that stands for the distribution in plots and tables: its median."""
        if self.kind is LengthKind.EMPIRICAL:
            return round(statistics.median(self.values))
        if self.kind is LengthKind.UNIFORM:
            return (self.low + self.high) // 2
        return min(max(round(self.centre), self.low), self.high)

    @property
    def label(self) -> str:
        """A short name for case ids: ``u64-1024``, ``n512sd128``, ``ln200s0.6``, ``e4f1c2a``."""
        if self.kind is LengthKind.UNIFORM:
            return f"u{self.low}-{self.high}"
        if self.kind is LengthKind.NORMAL:
            return f"n{self.centre:g}sd{self.spread:g}"
        if self.kind is LengthKind.LOGNORMAL:
            return f"ln{self.centre:g}s{self.spread:g}"
        digest = hashlib.sha256(",".join(map(str, self.values)).encode()).hexdigest()[:7]
        return f"e{digest}"


def parse_lengths(value: Mapping[str, Any], *, minimum: int, maximum: int, base: Path | None, where: str) -> LengthDist:
    """A distribution from its TOML table; ``base``: the folder a relative ``file`` is read from."""
    kind_text = value.get("dist")
    if kind_text not in set(LengthKind):
        raise ConfigError(f"{where}: 'dist' must be one of {', '.join(LengthKind)}; got {kind_text!r}")
    kind = LengthKind(kind_text)
    allowed = {"dist", *_FIELDS[kind], *(("values", "file") if kind is LengthKind.EMPIRICAL else ())}
    if unknown := sorted(set(value) - allowed):
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(unknown)} for dist '{kind}'; allowed: {sorted(allowed)}"
        )
    if kind is LengthKind.EMPIRICAL:
        return _empirical(value, minimum, maximum, base, where)
    numbers: dict[str, float] = {}
    for name in _FIELDS[kind]:
        number = value.get(name)
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            raise ConfigError(f"{where}: dist '{kind}' needs '{name}', a finite number; got {number!r}")
        numbers[name] = float(number)
    low, high = numbers["min"], numbers["max"]
    if low != int(low) or high != int(high) or not minimum <= low <= high <= maximum:
        raise ConfigError(f"{where}: 'min' and 'max' must be integers with {minimum} <= min <= max <= {maximum:,}")
    if kind is LengthKind.UNIFORM:
        return LengthDist(kind, int(low), int(high))
    centre = numbers["mean" if kind is LengthKind.NORMAL else "median"]
    spread = numbers["sd" if kind is LengthKind.NORMAL else "sigma"]
    if not low <= centre <= high or spread <= 0:
        raise ConfigError(
            f"{where}: dist '{kind}' needs its centre within [min, max] and a positive spread; got "
            f"{centre:g} and {spread:g}"
        )
    return LengthDist(kind, int(low), int(high), centre=centre, spread=spread)


def _empirical(value: Mapping[str, Any], minimum: int, maximum: int, base: Path | None, where: str) -> LengthDist:
    if ("values" in value) == ("file" in value):
        raise ConfigError(f"{where}: dist 'empirical' needs 'values' (a list) or 'file' (a path), one of them")
    source = None
    if "file" in value:
        if not isinstance(value["file"], str):
            raise ConfigError(f"{where}: 'file' must be a path; got {value['file']!r}")
        path = Path(value["file"])
        path = path if path.is_absolute() or base is None else base / path
        source = str(path)
        items: list[Any] = []
        lines = files.read_lines(path, what=f"lengths file of {where}", max_bytes=LENGTHS_MAX_BYTES)
        for number, line in enumerate(lines, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            # ASCII digits only: "²".isdigit() is true, and int("²") fails
            if not (text.isascii() and text.isdigit()) or len(text) > 9 or len(items) >= MAX_EMPIRICAL:
                raise ConfigError(
                    f"{path}:{number}: each line must be one length, a positive integer "
                    f"(at most {MAX_EMPIRICAL:,} lines); got {text[:40]!r}"
                )
            items.append(int(text))
    else:
        items = value["values"] if isinstance(value["values"], list) else [value["values"]]
    bad = [v for v in items if isinstance(v, bool) or not isinstance(v, int) or not minimum <= v <= maximum]
    if not items or bad:
        raise ConfigError(
            f"{where}: dist 'empirical' needs lengths that are integers from {minimum} to {maximum:,}"
            + (f"; got {bad[0]!r}" if bad else "; got none")
        )
    return LengthDist(LengthKind.EMPIRICAL, min(items), max(items), values=tuple(items), source=source)
