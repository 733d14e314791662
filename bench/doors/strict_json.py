"""JSON that jq, JavaScript and every strict reader accept: no bare NaN or Infinity.

Python's ``json`` writes ``NaN`` and ``Infinity`` unless told not to. Every file
and every ``--json`` output of the suite goes through ``dumps``: a non-finite
number becomes ``null`` (a figure that could not be computed), never a token
that breaks the reader.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite(value: Any) -> Any:
    """The value with every non-finite float inside it replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def dumps(value: Any, **options: Any) -> str:
    """``json.dumps`` that never writes NaN or Infinity (the common case costs nothing extra)."""
    try:
        return json.dumps(value, allow_nan=False, **options)
    except ValueError:
        return json.dumps(finite(value), allow_nan=False, **options)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(text: str) -> Any:
    """``json.loads`` that refuses NaN and Infinity, as a strict reader would."""
    return json.loads(text, parse_constant=_refuse_constant)
