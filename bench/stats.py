"""Medians and percentiles of small samples (nearest rank: p99 of 200 is the 198th value)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> str:
    value = seconds * 1000
    if abs(value) >= 100:
        return f"{value:.0f} ms"
    if abs(value) >= 10:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def spread(values: Sequence[float]) -> str:
    """`min-max` in ms, for the details under the table."""
    return f"{min(values) * 1000:.2f}-{max(values) * 1000:.2f} ms"
