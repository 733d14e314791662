"""The run clock: wall-clock anchored, monotonic within a run.

Request records and telemetry samples both take times from a ``RunClock`` so
they line up: ``now()`` is epoch seconds at the clock's creation plus elapsed
``perf_counter`` time, immune to NTP steps during a run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RunClock:
    wall_start: float = field(default_factory=time.time)
    perf_start: float = field(default_factory=time.perf_counter)

    def now(self) -> float:
        return self.wall_start + (time.perf_counter() - self.perf_start)
