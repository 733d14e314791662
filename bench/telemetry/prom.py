"""llama-server's Prometheus ``/metrics`` (served with ``--metrics``): parse what is there.

Metric names vary between llama.cpp builds (KV-cache gauges come and go), so
every numeric series is kept under its name (labels appended as ``{k="v"}``),
and none is required.
"""

from __future__ import annotations

import math


def parse_prometheus(text: str) -> dict[str, float]:
    """Series name (with labels) -> value, from the Prometheus text exposition format."""
    values: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "}" in line:
            name, _, rest = line.partition("}")
            name += "}"
        else:
            name, _, rest = line.partition(" ")
        parts = rest.split()
        if not name or not parts:
            continue
        try:
            value = float(parts[0])
        except ValueError:
            continue
        if math.isfinite(value):
            values[name.strip()] = value
    return values
