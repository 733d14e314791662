"""Keeping API keys out of everything the suite stores or prints.

The key is only ever sent in the ``Authorization`` header, but text that comes
back can carry it: a server or proxy whose error body quotes the request's
headers, or a server started with ``--api-key KEY`` in its flags. A
``Redactor`` knows the run's secrets and replaces them, and ``Bearer <key>``,
with ``***`` in any text; ``flag_secrets`` finds the keys inside a server's
flags. The default key ``EMPTY`` is not a secret and is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from bench import strict_json

DEFAULT_API_KEY = "EMPTY"
MASK = "***"
SECRET_FLAGS = ("--api-key",)  # llama-server's; its value is the key clients must send


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

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
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
