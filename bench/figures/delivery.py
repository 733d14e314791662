"""Whether streamed tokens reach the client one by one or in bursts a proxy made.

Used by the preflight (``bench check``, before a run) and by the summary (per
case, after it): the same rule on token arrival times and the server's timings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import StrEnum

import numpy as np

from bench.figures.throughput import flatten_token_times, within_request_gaps
from bench.records import ServerTimings

BUFFERED_SPAN_RATIO = 0.2  # whole answer arrived in a fifth of the time the server took
BUNCHED_GAP_SHARE = 0.1  # a gap under a tenth of the server's time per token is "bunched"
BUNCHED_SHARE = 0.5  # most gaps bunched: tokens came a buffer at a time
MIN_EVENTS_FOR_DELIVERY = 8


class Delivery(StrEnum):
    INCREMENTAL = "incremental"  # tokens arrived as the server sent them
    BUFFERED = "buffered"  # a proxy held them back: TTFT and ITL measure the proxy
    UNKNOWN = "n/a"  # too few streamed tokens, or a server too fast to tell


def stream_delivery(streams: Iterable[tuple[Sequence[float], ServerTimings | None]]) -> Delivery:
    """``BUFFERED`` when tokens reach the client in bursts the server did not send them in.

    Each item is one streamed response: its token arrival times and the server's
    timings. A proxy that buffers SSE (nginx with gzip on event streams, say)
    holds tokens back and releases them a buffer at a time: most gaps between
    arrivals then shrink to almost nothing though the server spent its usual
    time per token, or the whole answer lands at once. Either way TTFT and ITL
    measure the proxy, not the server.
    """
    kept = [
        (times, timings)
        for times, timings in streams
        if timings is not None
        and len(times) >= MIN_EVENTS_FOR_DELIVERY
        and timings.predicted_n >= 2
        # speculative decoding sends the draft tokens it accepts together: bursts of the server's own
        # making, which no arrival times can tell from a proxy's
        and not timings.draft_n_accepted
    ]
    if not kept:
        return Delivery.UNKNOWN
    flat, counts = flatten_token_times([times for times, _ in kept])
    per_token_s = np.array([t.predicted_ms / 1000.0 / max(t.predicted_n - 1, 1) for _, t in kept])
    gaps = within_request_gaps(flat, counts)
    owner = np.repeat(np.arange(len(kept)), counts - 1)
    bunched = np.bincount(owner, weights=gaps < BUNCHED_GAP_SHARE * per_token_s[owner], minlength=len(kept))
    bunched_share = bunched / (counts - 1)
    starts = np.cumsum(counts) - counts
    span = flat[starts + counts - 1] - flat[starts]
    expected = per_token_s * (counts - 1)
    usable = expected > 0.005  # a server this fast leaves nothing to tell apart
    if not usable.any():
        return Delivery.UNKNOWN
    verdicts = (bunched_share > BUNCHED_SHARE) | (span / np.where(usable, expected, 1.0) < BUFFERED_SPAN_RATIO)
    verdicts = verdicts[usable]
    return Delivery.BUFFERED if int(verdicts.sum()) * 2 > len(verdicts) else Delivery.INCREMENTAL
