"""Timing helpers for the benchmark: interleaved repetitions and robust summaries.

Every contender is timed in the same process, round-robin within each repetition (the order
rotates every repetition), so a burst of load from another process lands on all of them alike.
Summaries are medians with the interquartile range and p10-p90, never means alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# Calibration: each timed sample runs a contender this many times over, chosen so that one
# sample lasts about ``target_s``; a single call of a slow contender is one sample.
MIN_CALLS, MAX_CALLS = 1, 2000


@dataclass(frozen=True)
class Summary:
    """Median and spread of a set of samples (same unit as the samples)."""

    n: int
    median: float
    p10: float
    p25: float
    p75: float
    p90: float
    mean: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        if len(samples) == 0:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan, nan, nan)
        a = np.asarray(samples, dtype=np.float64)
        p10, p25, p50, p75, p90 = np.percentile(a, [10, 25, 50, 75, 90])
        return cls(len(a), float(p50), float(p10), float(p25), float(p75), float(p90), a.mean())

    def scaled(self, factor: float) -> Summary:
        return Summary(
            self.n,
            self.median * factor,
            self.p10 * factor,
            self.p25 * factor,
            self.p75 * factor,
            self.p90 * factor,
            self.mean * factor,
        )


@dataclass
class Contender:
    """One thing to time: ``call()`` does the work once; ``units`` is items per call (digits)."""

    name: str
    call: Callable[[], object]
    units: int = 1
    calls_per_sample: int = 1


def calibrate(contender: Contender, target_s: float, warmup: int = 2) -> None:
    """Warm the contender up and pick how many calls make one sample of about ``target_s``."""
    for _ in range(warmup):
        contender.call()
    start = time.perf_counter()
    contender.call()
    once = max(time.perf_counter() - start, 1e-7)
    contender.calls_per_sample = int(np.clip(round(target_s / once), MIN_CALLS, MAX_CALLS))


def interleaved(contenders: Sequence[Contender], reps: int) -> dict[str, list[float]]:
    """Seconds per unit for each contender, one sample per repetition, round-robin order.

    The starting contender rotates each repetition so that none is always first (or always
    right after the slowest one, which may leave caches and frequency in a different state).
    """
    samples: dict[str, list[float]] = {c.name: [] for c in contenders}
    n = len(contenders)
    for rep in range(reps):
        for k in range(n):
            c = contenders[(rep + k) % n]
            calls = c.calls_per_sample
            start = time.perf_counter()
            for _ in range(calls):
                c.call()
            elapsed = time.perf_counter() - start
            samples[c.name].append(elapsed / (calls * c.units))
    return samples
