"""The one door for every file the suite reads that a user or a tool handed it.

Scenario sets, traces, corpora, length files, trace imports (Mooncake, Azure), noise
profiles, baselines, ``run.json`` and the history all come in through here, so that:

- only a regular file is read (after links): a FIFO would block for ever, ``/dev/zero``
  would never end, a directory is a mistake. The file is opened without blocking and
  checked on the open descriptor, so it cannot be swapped between the check and the read;
- no more than a stated number of bytes (``max_bytes``) and lines (``max_lines``) is read,
  and a field of a CSV may be long but not unbounded (``CSV_FIELD_CHARS``);
- text is UTF-8 (a byte-order mark is allowed and dropped), and a byte that is not is an
  error naming the line and column;
- JSON is strict (no NaN, no Infinity, no ``1e400`` that overflows to infinity, no integer of
  more than ``MAX_INT_DIGITS`` digits, no nesting deeper than Python can parse), and so are
  TOML's numbers;
- every failure is one ``ConfigError`` (or the caller's error class, ``ResultsError`` for
  stored results) whose message starts with the file, then the line, then what is wrong.

The limits are documented in docs/reliability.md ("Files the suite reads").
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from bench.errors import BenchError, ConfigError

MiB = 2**20
DEFAULT_MAX_BYTES = 64 * MiB  # scenario sets, profiles, baselines, run.json: far above any real one
DEFAULT_MAX_LINES = 10_000_000
CSV_FIELD_CHARS = 1 * MiB  # csv's own limit is 128 KiB and fails with a bare csv.Error
MAX_INT_DIGITS = 30  # a count, a length or a time: 10^30 is already unbelievable
MAX_JSON_DEPTH = 64  # the suite writes at most a few levels; deeper is not one of its files


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_bytes(
    path: Path | str,
    *,
    what: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    error: type[BenchError] = ConfigError,
) -> bytes:
    """At most ``max_bytes`` of a regular file; ``error`` naming the file and ``what`` it was to be otherwise."""
    name = str(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise error(f"{name}: cannot read the {what}: no such file") from None
    except OSError as exc:
        raise error(f"{name}: cannot read the {what}: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise error(f"{name}: the {what} must be a regular file; this is {_kind(mode)}")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise error(f"{name}: cannot read the {what}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise error(f"{name}: the {what} is larger than the {_size(max_bytes)} the suite reads")
    return data


def read_text(
    path: Path | str,
    *,
    what: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_lines: int = DEFAULT_MAX_LINES,
    error: type[BenchError] = ConfigError,
) -> str:
    """A regular file's UTF-8 text (a byte-order mark dropped), bounded in bytes and lines."""
    return decode(read_bytes(path, what=what, max_bytes=max_bytes, error=error), str(path), what, max_lines, error)


def decode(
    data: bytes, source: str, what: str, max_lines: int = DEFAULT_MAX_LINES, error: type[BenchError] = ConfigError
) -> str:
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(
            f"{source}:{line}: the {what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at column {column})"
        ) from None
    if text.count("\n") >= max_lines:
        raise error(f"{source}: the {what} has more than {max_lines:,} lines")
    return text


def read_lines(
    path: Path | str,
    *,
    what: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_lines: int = DEFAULT_MAX_LINES,
    error: type[BenchError] = ConfigError,
) -> list[str]:
    """The file's lines, ends kept (as a text file iterates)."""
    text = read_text(path, what=what, max_bytes=max_bytes, max_lines=max_lines, error=error)
    return text.splitlines(keepends=True)


# ------------------------------------------------------------------ structured text


def _finite_float(text: str) -> float:
    """A float that is what its digits say: ``1e400`` would silently be infinity."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is too large")
    return value


def _toml_float(text: str) -> float:
    """TOML may spell nan and inf on purpose (a field refuses them by name); digits must not overflow."""
    if text.lstrip("+-") in ("nan", "inf"):
        return float(text)
    return _finite_float(text)


def _bounded_int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(digits):,} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def loads_json(
    text: str,
    source: str,
    *,
    what: str,
    error: type[BenchError] = ConfigError,
    line: int | None = None,
    hint: str = "",
) -> Any:
    """Strict JSON (see the module docstring); ``error`` with the line and column of what is wrong.

    ``line``: the text is that one line of ``source`` (a JSONL file). ``hint``: what to do, ending the message.
    """
    try:
        return _strict_json(text, source, what, error, line)
    except BenchError as exc:
        if not hint:
            raise
        raise type(exc)(f"{exc}; {hint}") from None


def _strict_json(text: str, source: str, what: str, error: type[BenchError], line: int | None) -> Any:
    try:
        value = json.loads(text, parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        where = f"{source}:{line if line is not None else exc.lineno}"
        raise error(f"{where}: the {what} is not valid JSON: {exc.msg} (column {exc.colno})") from None
    except ValueError as exc:
        raise error(f"{_at(source, line)}: the {what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise error(f"{_at(source, line)}: the {what} is nested too deeply to be one of the suite's files") from None
    check_depth(value, _at(source, line), what, error)
    return value


def _at(source: str, line: int | None) -> str:
    return source if line is None else f"{source}:{line}"


def read_json(
    path: Path | str,
    *,
    what: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    error: type[BenchError] = ConfigError,
    hint: str = "",
) -> Any:
    text = read_text(path, what=what, max_bytes=max_bytes, error=error)
    return loads_json(text, str(path), what=what, error=error, hint=hint)


def loads_toml(text: str, source: str, *, what: str, error: type[BenchError] = ConfigError) -> dict[str, Any]:
    """TOML, with every float finite (``1e400`` is infinity to ``tomllib``) and every integer bounded."""
    try:
        data = tomllib.loads(text, parse_float=_toml_float)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{source}: the {what} is not valid TOML: {exc}") from None
    except ValueError as exc:
        raise error(f"{source}: the {what} is not valid TOML: {exc}") from None
    except RecursionError:
        raise error(f"{source}: the {what} is nested too deeply") from None
    check_depth(data, source, what, error)
    _check_ints(data, source, what, error)
    return data


def read_toml(
    path: Path | str, *, what: str, max_bytes: int = DEFAULT_MAX_BYTES, error: type[BenchError] = ConfigError
) -> dict[str, Any]:
    return loads_toml(read_text(path, what=what, max_bytes=max_bytes, error=error), str(path), what=what, error=error)


def check_depth(value: Any, source: str, what: str, error: type[BenchError], limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse nesting deeper than ``limit`` (walked without recursion: the check must not overflow itself)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                raise error(f"{source}: the {what} is nested deeper than {limit} levels")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def _check_ints(value: Any, source: str, what: str, error: type[BenchError]) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) >= 10**MAX_INT_DIGITS:
            raise error(f"{source}: the {what} holds an integer of more than {MAX_INT_DIGITS} digits")


def csv_rows(
    text: str, source: str, *, what: str, error: type[BenchError] = ConfigError
) -> list[tuple[int, dict[str, str]]]:
    """A CSV's rows as (line number, {header: field}); a field may be up to ``CSV_FIELD_CHARS`` long."""
    previous = csv.field_size_limit(CSV_FIELD_CHARS)  # csv's limit is global: set and put back around one read
    rows: list[tuple[int, dict[str, str]]] = []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        for row in reader:
            if None in row:
                raise error(f"{source}:{reader.line_num}: the {what} has more fields than its header")
            rows.append((reader.line_num, {key: value or "" for key, value in row.items()}))
    except csv.Error as exc:  # raised while reading a line, before csv counts it
        raise error(f"{source}:{reader.line_num + 1}: the {what} is not valid CSV: {exc}") from None
    finally:
        csv.field_size_limit(previous)
    return rows


SHOWN_CHARS = 60


def shown(value: object, limit: int = SHOWN_CHARS) -> str:
    """A value from a file, quoted in an error: its repr, cut (a 300-digit number is not a message)."""
    try:
        text = repr(value)
    except ValueError:  # an integer past Python's digit limit for text
        return "an integer too long to show"
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _size(count: int) -> str:
    return f"{count / MiB:g} MiB" if count >= MiB else f"{count:,} bytes"
