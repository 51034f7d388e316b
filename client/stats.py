"""Percentiles as every babelcap figure reports them: nearest rank on the sorted values."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["nearest_rank"]


def nearest_rank(ordered: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) of ``ordered`` (sorted ascending) by nearest rank: the
    smallest value with at least ``q`` % of the values at or below it. None when empty."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]
