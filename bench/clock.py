"""The run clock: wall-clock anchored, monotonic within a run.

Request records and telemetry samples both take times from a ``RunClock`` so
they line up: ``now()`` is epoch seconds at the clock's creation plus elapsed
``perf_counter`` time, immune to NTP steps during a run.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RunClock:
    wall_start: float = field(default_factory=time.time)
    perf_start: float = field(default_factory=time.perf_counter)

    def now(self) -> float:
        return self.wall_start + (time.perf_counter() - self.perf_start)

    def origin(self, loop: asyncio.AbstractEventLoop) -> tuple[float, float]:
        """This clock and the event loop's read at one moment, to map a time due on the loop onto this one.

        Where the loop's clock (``time.monotonic``) is ``perf_counter``'s own (CLOCK_MONOTONIC on
        Linux), the pair is exact. Elsewhere they are read one after the other, this clock first, so
        a mapped time is never later than the moment it stands for; a preemption between the two
        reads shifts the mapping by its length.
        """
        if _LOOP_CLOCK_IS_PERF_COUNTER:
            loop_now = loop.time()
            return self.wall_start + (loop_now - self.perf_start), loop_now
        return self.now(), loop.time()


_LOOP_CLOCK_IS_PERF_COUNTER = (
    time.get_clock_info("perf_counter").implementation == time.get_clock_info("monotonic").implementation
)


# The event loop waits in whole milliseconds (epoll), so a sleep to a time wakes up to 1 ms late:
# a request due at a time sleeps to within this of it and then yields to the loop until it is due.
SPIN_S = 0.002


async def sleep_until(when: float) -> None:
    """Wait until the event loop's clock reads ``when``: within a loop pass, not the poller's millisecond."""
    loop = asyncio.get_running_loop()
    if (rest := when - loop.time() - SPIN_S) > 0:
        await asyncio.sleep(rest)
    while loop.time() < when:
        await asyncio.sleep(0)
