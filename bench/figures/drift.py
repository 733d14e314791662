"""A server that slows down as it runs: a trend test over a case's requests in the order they were sent.

llama.cpp users report servers that get slower over hours; within one case the sign is each
request's pp and tg (the server's own timings) drifting one way. Mann-Kendall's test (Kendall's tau
of the figure against the order; Mann 1945, Kendall 1975) says whether there is a monotone trend
at all, without assuming a shape or normal errors; how large it is is the median of the case's last
third of requests against the median of its first third (robust to a few outliers, and whole for
a step as for a slope). A case is noted when both hold: p under ``DRIFT_ALPHA`` and a change of
``DRIFT_MIN_CHANGE`` or more. Requests of a run are
not independent (a background hiccup spans several), so the p is a screen, not a verdict: the
bar is high, and the note says what was seen.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bench.records import RequestRecord

DRIFT_ALPHA = 0.01
DRIFT_MIN_CHANGE = 0.05  # 5 % over the case
MIN_REQUESTS = 8  # fewer: no trend test


@dataclass(frozen=True, slots=True)
class Drift:
    figure: str  # "pp" or "tg"
    change: float  # the median of the last third of the requests over that of the first third, minus one
    tau: float
    p_value: float
    requests: int

    @property
    def noted(self) -> bool:
        return self.p_value < DRIFT_ALPHA and abs(self.change) >= DRIFT_MIN_CHANGE

    def sentence(self) -> str:
        way = "fell" if self.change < 0 else "rose"
        return (
            f"{self.figure} {way} {abs(self.change):.1%} from the first third of the case's {self.requests} requests "
            f"to the last (Kendall tau {self.tau:+.2f}, p {self.p_value:.2g}): the server drifted as it ran"
        )


def trend(figure: str, values: Sequence[float]) -> Drift | None:
    """Mann-Kendall over ``values`` in the order they came, and the thirds' change; None for too few."""
    if len(values) < MIN_REQUESTS or min(values) <= 0:
        return None
    from scipy.stats import kendalltau

    tau, p_value = kendalltau(range(len(values)), values)
    third = len(values) // 3
    change = statistics.median(values[-third:]) / statistics.median(values[:third]) - 1
    return Drift(figure, change, float(tau), float(p_value), len(values))


def case_drift(records: Sequence[RequestRecord]) -> tuple[Drift, ...]:
    """pp and tg of a case's measured requests (server timings), in the order they were sent."""
    ok = sorted((r for r in records if r.ok and not r.warmup and r.timings is not None), key=lambda r: r.t_sent)
    found = []
    for figure, values in (
        ("pp", [r.timings.prompt_n / r.timings.prompt_ms * 1000 for r in ok if r.timings and r.timings.prompt_ms > 0
                and r.timings.prompt_n > 0]),
        ("tg", [r.timings.predicted_n / r.timings.predicted_ms * 1000 for r in ok if r.timings
                and r.timings.predicted_ms > 0 and r.timings.predicted_n > 1]),
    ):  # fmt: skip
        if (drift := trend(figure, values)) is not None:
            found.append(drift)
    return tuple(found)
