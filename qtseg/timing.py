"""Timing: the host-clock loop, the CUDA-event loop, interleaved rounds, and their statistics.

Every latency qtseg reports is measured here.

- :func:`time_calls`: each call timed on a monotonic host clock; the callable
  must return only when its work is finished (host arrays out, or a device
  synchronize inside).
- :func:`time_with_events` / :func:`time_cuda`: each call timed between two
  CUDA events on an idle GPU (the host synchronizes before the start event),
  so the interval holds the kernels *and* the launch gaps one isolated call
  sees. The event source is injected, so the loop is testable without a GPU.
- :func:`interleaved`: several callables take turns, a few timed calls each,
  round after round, so a change of background load hits all of them alike
  (the way to compare runtimes on a shared machine).
- :func:`latency_stats`: percentiles by numpy's default rule (linear
  interpolation between order statistics, Hyndman & Fan type 7); ``std`` is
  the sample standard deviation; throughput is ``batch / mean``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

PERCENTILE_RULE = "numpy.percentile, method 'linear' (type 7): rank = p/100*(n-1)"


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
    """Statistics of per-call durations (seconds in, milliseconds out).

    Args:
        durations_s: wall (or device) time of each timed call, in seconds.
        batch: images per call (for the throughput).
    """
    if len(durations_s) == 0:
        raise ValueError("latency_stats needs at least one duration")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    ms = np.sort(1000.0 * np.asarray(durations_s, dtype=np.float64))  # order-independent sums
    if not np.all(np.isfinite(ms)) or ms.min() < 0:
        raise ValueError("durations must be finite and non-negative")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    mean = float(ms.mean())
    return LatencyStats(
        batch=batch,
        n=int(ms.size),
        mean_ms=mean,
        std_ms=float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        min_ms=float(ms.min()),
        max_ms=float(ms.max()),
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

    Returns the ``iters`` durations in seconds.
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


class TimingEvent(Protocol):
    """The part of ``torch.cuda.Event`` the event loop uses."""

    def record(self) -> None: ...

    def synchronize(self) -> None: ...

    def elapsed_time(self, end: Any) -> float: ...


def time_with_events(
    fn: Callable[[], object],
    *,
    warmup: int,
    iters: int,
    new_event: Callable[[], TimingEvent],
    synchronize: Callable[[], None],
    on_iter: Callable[[], None] | None = None,
) -> list[float]:
    """Durations (seconds) of ``iters`` calls of ``fn`` measured between device events.

    Args:
        fn: enqueues the work on the current stream (no host sync needed).
        warmup: untimed calls first (allocator, cuDNN autotuning, graph capture).
        iters: timed calls.
        new_event: factory of timing events (``torch.cuda.Event(enable_timing=True)``).
        synchronize: device-wide synchronize (``torch.cuda.synchronize``).
    """
    if iters < 1 or warmup < 0:
        raise ValueError(f"need iters >= 1 and warmup >= 0, got iters={iters}, warmup={warmup}")
    for _ in range(warmup):
        fn()
    synchronize()
    durations = []
    for _ in range(iters):
        start, end = new_event(), new_event()
        synchronize()  # idle GPU: the interval below is one isolated call
        start.record()
        fn()
        end.record()
        end.synchronize()
        durations.append(start.elapsed_time(end) / 1000.0)  # elapsed_time is in ms
        if on_iter is not None:
            on_iter()
    return durations


def time_cuda(
    fn: Callable[[], object], *, warmup: int, iters: int, on_iter: Callable[[], None] | None = None
) -> list[float]:
    """:func:`time_with_events` with ``torch.cuda`` events on the current device."""
    import torch

    return time_with_events(
        fn,
        warmup=warmup,
        iters=iters,
        new_event=lambda: torch.cuda.Event(enable_timing=True),
        synchronize=torch.cuda.synchronize,
        on_iter=on_iter,
    )


def interleaved(
    calls: Mapping[str, Callable[[], object]],
    *,
    rounds: int = 6,
    per_round: int = 4,
    warmup: int = 3,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Durations (seconds) of each callable, timed in interleaved rounds.

    Each callable gets ``warmup`` untimed calls, then the callables take turns,
    ``per_round`` timed calls each, ``rounds`` times.
    """
    if rounds < 1 or per_round < 1 or warmup < 0:
        raise ValueError("need rounds >= 1, per_round >= 1 and warmup >= 0")
    for fn in calls.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            times[name].extend(time_calls(fn, warmup=0, iters=per_round, clock=clock))
    return times
