"""Writes the shipped trace, ``bench/inputs/traces/sample.jsonl``, from a fixed seed.

    python -m bench.devtools.sample_trace

A minute of light, mixed traffic that a 2-core CPU llama-server with the embedded model
carries without queueing: single requests with log-normal lengths arriving as a Poisson
process, two conversations of three turns with a user's think time between turns, and
requests on two shared system prompts. Every length is above what a chat template adds.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

SEED = 20261126
OUT = Path(__file__).resolve().parents[1] / "inputs" / "traces" / "sample.jsonl"


def rows(seed: int = SEED) -> list[dict[str, object]]:
    rng = random.Random(seed)

    def lognormal(median: float, sigma: float, low: int, high: int) -> int:
        return min(max(round(median * math.exp(rng.gauss(0, sigma))), low), high)

    out: list[dict[str, object]] = []
    t = 0.0
    for _ in range(12):  # single requests, 0.25 per second
        t += rng.expovariate(0.25)
        out.append(
            {"t": round(t, 3), "input_tokens": lognormal(120, 0.5, 64, 400), "output_tokens": lognormal(24, 0.5, 8, 64)}
        )
    for session, start in (("chat-a", 4.0), ("chat-b", 21.0)):
        for turn in range(1, 4):
            first = turn == 1
            out.append(
                {
                    "t": round(start + (turn - 1) * 12.0 + rng.uniform(0, 2), 3),
                    "session": session,
                    "turn": turn,
                    "input_tokens": lognormal(100, 0.3, 64, 200) if first else lognormal(40, 0.3, 24, 80),
                    "output_tokens": lognormal(24, 0.3, 8, 48),
                }
            )
    for k in range(6):  # two system prompts, three requests each
        prefix = "support-bot" if k % 2 == 0 else "code-helper"
        out.append(
            {
                "t": round(8.0 + k * 7.5 + rng.uniform(0, 1), 3),
                "prefix": prefix,
                "prefix_tokens": 200 if prefix == "support-bot" else 320,
                "input_tokens": lognormal(40, 0.3, 16, 96),
                "output_tokens": lognormal(16, 0.3, 8, 32),
            }
        )
    out.sort(key=lambda row: float(row["t"]))  # type: ignore[arg-type]
    return out


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(row) + "\n" for row in rows()), encoding="utf-8")
    print(f"wrote {OUT} ({len(rows())} requests)")


if __name__ == "__main__":
    main()
