"""Signal handlers swapped for the length of a block, and put back after it.

Only the main thread may set handlers; elsewhere (a CLI or a run called from a worker
thread) the block runs with the handlers as they are.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import Any

Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers


@contextlib.contextmanager
def handling(signals: Sequence[signal.Signals], handler: Handler) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    earlier = {number: signal.signal(number, handler) for number in signals}
    try:
        yield
    finally:
        for number, previous in earlier.items():
            signal.signal(number, previous)
