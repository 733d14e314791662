r"""The one door for strings that leave the suite: keys masked, control characters escaped.

The key is only ever sent in the ``Authorization`` header, but text that comes
back can carry it: a server or proxy whose error body quotes the request's
headers (JSON-escaped, or cut off at a limit), a model id or build string that
copies the header, or a server started with ``--api-key KEY`` in its flags. A
``Redactor`` knows the run's secrets and replaces them with ``***`` in any text,
in every spelling a JSON body gives them (``\/``, ``\"``, ``\\``, ``\uXXXX``);
``clip`` masks *before* it cuts a text to a length, and masks what is left of a
secret at the end of a text someone else cut. ``flag_secrets`` finds the keys
inside a server's flags. The default key ``EMPTY`` is not a secret.

Every string a server sent that the suite keeps or prints also has its control
characters escaped (``ESC]0;...BEL`` would retitle a terminal, ``ESC[2J`` clear it):
``Redactor.text`` does both, with or without secrets, so no caller can forget one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from bench.doors import strict_json

DEFAULT_API_KEY = "EMPTY"
MASK = "***"
SECRET_FLAGS = ("--api-key",)  # llama-server's; its value is the key clients must send
# What is left of a secret at the end of a cut text is masked from this many characters on:
# fewer could be any word's ending, and say nothing a guess would not.
MIN_PREFIX_CHARS = 3
# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides
# that make a terminal show text in another order than it is stored
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    """``ESC`` as ``\\x1b``, and so on: what a server sent, shown, never obeyed by a terminal."""
    return CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def spellings(secret: str) -> set[str]:
    """The ways a JSON body, or a body escaped again, may carry ``secret``."""
    forms = {secret}
    for ensure_ascii in (True, False):
        escaped = json.dumps(secret, ensure_ascii=ensure_ascii)[1:-1]
        forms |= {escaped, escaped.replace("/", "\\/")}
        forms.add(json.dumps(escaped, ensure_ascii=ensure_ascii)[1:-1])  # a JSON string inside a JSON string
    return {form for form in forms if form}


def flag_secrets(flags: Sequence[str] | None) -> list[str]:
    """The values of ``--api-key KEY`` / ``--api-key=KEY`` in an argument list."""
    found = []
    for position, arg in enumerate(flags or ()):
        for flag in SECRET_FLAGS:
            if arg == flag and position + 1 < len(flags or ()):
                found.append((flags or ())[position + 1])
            elif arg.startswith(flag + "="):
                found.append(arg.split("=", 1)[1])
    return [secret for secret in found if secret]


class Redactor:
    """Replaces every known secret in text; longest first, so a key containing another is masked whole."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        unique = {s for s in secrets if s and s != DEFAULT_API_KEY}
        self.secrets = tuple(sorted(unique, key=len, reverse=True))
        forms = {form for secret in self.secrets for form in spellings(secret)}
        self._forms = tuple(sorted(forms, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def masked(self, text: str) -> str:
        """``text`` with every spelling of every secret masked; nothing else changed."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def text(self, text: str) -> str:
        """What may be stored or printed of ``text``: masked, and control characters escaped (``clip`` cuts)."""
        return escape_controls(self.masked(text))

    def clip(self, text: str, limit: int, *, cut: bool = False) -> str:
        """At most ``limit`` characters of ``text``, masked before the cut (a cut would split a key).

        ``cut``: ``text`` itself was cut before (a body kept up to a limit).
        """
        masked = self.masked(text)
        if len(masked) > limit:
            masked, cut = masked[:limit], True
        if cut:
            masked = self._mask_cut_prefix(masked)
        return escape_controls(masked)

    def _mask_cut_prefix(self, text: str) -> str:
        for form in self._forms:
            for size in range(min(len(form) - 1, len(text)), MIN_PREFIX_CHARS - 1, -1):
                if text.endswith(form[:size]):
                    return text[:-size] + MASK
        return text

    def optional(self, text: str | None) -> str | None:
        return None if text is None else self.text(text)

    def dumps(self, value: Any, **options: Any) -> str:
        """``value`` as strict JSON, every secret in its strings masked (names and numbers left whole)."""
        return strict_json.dumps(self._masked(value) if self.secrets else value, **options)

    def _masked(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self._masked(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._masked(item) for item in value]
        return value


NO_SECRETS = Redactor()


class MaskedStream:
    """A text stream that masks every secret it is given before passing it on (``sys.stdout`` in a command).

    Only secrets: what is written here is already the suite's own output, ANSI styling included,
    and a server's control characters were escaped where its strings entered. A secret is masked
    when it arrives in one write, as ``print`` and rich write each of their strings.
    """

    def __init__(self, stream: Any, redactor: Redactor) -> None:
        self._stream = stream
        self._redactor = redactor

    def write(self, text: str) -> int:
        self._stream.write(self._redactor.masked(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding: the stream's own
        return getattr(self._stream, name)
