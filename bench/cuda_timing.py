"""Device-side timing with CUDA events (model-only latency of PyTorch GPU rows).

Each timed call starts on an idle GPU: the host synchronizes, records a start
event, launches the work, records an end event and waits for it. The event
interval therefore contains the kernels *and* the launch gaps between them --
the latency one isolated call sees -- instead of only the kernel time of a
queue the host has filled ahead. The clock is injected (``events``,
``synchronize``) so the loop is testable without a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class TimingEvent(Protocol):
    """The part of ``torch.cuda.Event`` the loop uses."""

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
