"""Incremental parser for Server-Sent Events as OpenAI-style servers stream them.

Bytes arrive split anywhere (mid-line, mid-UTF-8 character); ``feed`` returns the
``data`` payload of every event completed by the new bytes. Follows the WHATWG
event-stream rules the endpoints rely on: ``\\n``, ``\\r\\n`` or ``\\r`` line ends,
comment lines starting with ``:``, multi-line ``data`` joined with ``\\n``, a blank
line ending an event. Other fields (``event``, ``id``, ``retry``) are ignored.
"""

from __future__ import annotations

from bench.errors import BodyTooLarge

MAX_LINE_BYTES = 16 * 2**20  # one token event is a few hundred bytes


class SSEParser:
    """Linear in the bytes fed: a line still open is kept in pieces and joined once, when it ends."""

    __slots__ = ("_data", "_max_line_bytes", "_open", "_open_bytes", "_pending_cr")

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._open: list[bytes] = []  # the pieces of the line not yet ended
        self._open_bytes = 0
        self._data: list[str] = []
        self._pending_cr = False
        self._max_line_bytes = max_line_bytes

    def feed(self, chunk: bytes) -> list[str]:
        if self._pending_cr and chunk.startswith(b"\n"):
            # The \r that ended the previous chunk was the first half of \r\n.
            chunk = chunk[1:]
        self._pending_cr = chunk.endswith(b"\r")
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:
            self._open.append(chunk)
            self._open_bytes += len(chunk)
            if self._open_bytes > self._max_line_bytes:
                raise BodyTooLarge(f"an SSE line longer than {self._max_line_bytes / 2**20:g} MiB")
            return []
        lines = (b"".join(self._open) + chunk).split(b"\n") if self._open else chunk.split(b"\n")
        rest = lines.pop()
        self._open = [rest] if rest else []
        self._open_bytes = len(rest)
        events: list[str] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append("\n".join(data))
                    data.clear()
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                if value.startswith(b" "):
                    value = value[1:]
                data.append(value.decode("utf-8", errors="replace"))
            # comments (":...") and other fields are ignored
        return events

    def close(self) -> list[str]:
        """Flush an event the stream ended without a blank line after."""
        events = self.feed(b"\n\n") if (self._open or self._data) else []
        self._open, self._open_bytes = [], 0
        return events
