"""Latency figures the benches print and the tests check."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max (nearest rank) and the mean, in seconds."""
    ordered = sorted(samples)
    if not ordered:
        return {}

    def rank(p: float) -> float:
        index = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[index]

    return {
        "n": float(len(ordered)),
        "p50": rank(50),
        "p95": rank(95),
        "p99": rank(99),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def describe(stats: dict[str, float], *, mean: bool = True) -> str:
    """`percentiles()` on one line: `n=… p50=…s p95=…s p99=…s max=…s [mean=…s]`."""
    if not stats:
        return "no samples"
    names = ("p50", "p95", "p99", "max", *(("mean",) if mean else ()))
    return " ".join([f"n={int(stats['n'])}", *(f"{name}={stats[name]:.3f}s" for name in names)])
