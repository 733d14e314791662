"""Incremental parser for Server-Sent Events as OpenAI-style servers stream them.

Bytes arrive split anywhere (mid-line, mid-UTF-8 character); ``feed`` returns the
``data`` payload of every event completed by the new bytes. Follows the WHATWG
event-stream rules the endpoints rely on: ``\\n``, ``\\r\\n`` or ``\\r`` line ends,
comment lines starting with ``:``, multi-line ``data`` joined with ``\\n``, a blank
line ending an event. Other fields (``event``, ``id``, ``retry``) are ignored.
"""

from __future__ import annotations


class SSEParser:
    __slots__ = ("_buffer", "_data", "_pending_cr")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[str]:
        if self._pending_cr and chunk.startswith(b"\n"):
            # The \r that ended the previous chunk was the first half of \r\n.
            chunk = chunk[1:]
        self._pending_cr = chunk.endswith(b"\r")
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
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
        events = self.feed(b"\n\n") if (self._buffer or self._data) else []
        self._buffer = b""
        return events
