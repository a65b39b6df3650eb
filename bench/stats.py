"""Latency statistics and the host-clock timing loop.

Percentile rule (stated once, used everywhere): linear interpolation between
order statistics -- for ``n`` sorted durations ``d[0..n-1]`` the ``p``-th
percentile sits at rank ``r = p / 100 * (n - 1)`` and is
``d[floor(r)] + (r - floor(r)) * (d[floor(r) + 1] - d[floor(r)])``
(Hyndman & Fan type 7, numpy's default). ``std`` is the sample standard
deviation (``n - 1`` in the denominator; 0 for a single call). Throughput is
``batch / mean`` images per second.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

PERCENTILE_RULE = "linear interpolation between order statistics (type 7): rank = p/100*(n-1)"


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """``p``-th percentile (0..100) of already sorted values, by :data:`PERCENTILE_RULE`."""
    if not sorted_values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= p <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {p}")
    rank = p / 100.0 * (len(sorted_values) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (rank - low) * (sorted_values[high] - sorted_values[low])


@dataclass(frozen=True)
class LatencyStats:
    """Summary of ``n`` timed calls of one batch size (times in milliseconds)."""

    batch: int
    n: int
    mean_ms: float
    std_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    img_per_s: float

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready dict."""
        return asdict(self)


def latency_stats(durations_s: Sequence[float], batch: int = 1) -> LatencyStats:
    """Statistics of per-call durations.

    Args:
        durations_s: wall (or device) time of each timed call, in seconds.
        batch: images per call (for the throughput).
    """
    if not durations_s:
        raise ValueError("latency_stats needs at least one duration")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    ms = sorted(1000.0 * float(d) for d in durations_s)
    if ms[0] < 0 or not all(math.isfinite(v) for v in ms):
        raise ValueError("durations must be finite and non-negative")
    n = len(ms)
    mean = sum(ms) / n
    var = sum((v - mean) ** 2 for v in ms) / (n - 1) if n > 1 else 0.0
    return LatencyStats(
        batch=batch,
        n=n,
        mean_ms=mean,
        std_ms=math.sqrt(var),
        p50_ms=percentile(ms, 50),
        p90_ms=percentile(ms, 90),
        p99_ms=percentile(ms, 99),
        min_ms=ms[0],
        max_ms=ms[-1],
        img_per_s=batch * 1000.0 / mean if mean > 0 else float("inf"),
    )


def time_calls(
    fn: Callable[[], object],
    *,
    warmup: int,
    iters: int,
    clock: Callable[[], float] = time.perf_counter,
    on_iter: Callable[[], None] | None = None,
) -> list[float]:
    """Run ``fn`` ``warmup`` times untimed, then ``iters`` times, each timed on ``clock``.

    ``clock`` must be monotonic (default :func:`time.perf_counter`); ``fn``
    must return only when its work is finished (host arrays out, or a device
    synchronize inside). Returns the ``iters`` durations in seconds.
    """
    if iters < 1 or warmup < 0:
        raise ValueError(f"need iters >= 1 and warmup >= 0, got iters={iters}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    durations = []
    for _ in range(iters):
        start = clock()
        fn()
        durations.append(clock() - start)
        if on_iter is not None:
            on_iter()
    return durations
