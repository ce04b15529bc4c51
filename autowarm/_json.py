"""The one rule for numbers in JSON: strict JSON has no NaN or Infinity, so a non-finite
number (a diverged loss, an unbounded boundary) is written as ``null``."""

from __future__ import annotations

import math
from typing import Any


def finite_or_none(x: float | None) -> float | None:
    """``float(x)`` when it is a finite number, else ``None``."""
    return float(x) if x is not None and math.isfinite(x) else None


def json_safe(value: Any) -> Any:
    """A deep copy of ``value`` that ``json.dumps(..., allow_nan=False)`` accepts: non-finite
    floats become ``None``, tuples become lists."""
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
