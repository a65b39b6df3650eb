"""The CUDA-event timing loop, driven by synthetic events (no GPU needed)."""

from __future__ import annotations

import pytest
from qtseg.bench.cuda_timing import time_with_events


class Recorder:
    """Synthetic device: events get the timestamp of a virtual GPU clock; the work advances it."""

    def __init__(self, work_ms: list[float]) -> None:
        self.now = 0.0
        self.work_ms = list(work_ms)
        self.log: list[str] = []

    def event(self):
        rec = self

        class Event:
            stamp = None

            def record(self) -> None:
                rec.log.append("record")
                self.stamp = rec.now

            def synchronize(self) -> None:
                rec.log.append("event-sync")

            def elapsed_time(self, end) -> float:
                return end.stamp - self.stamp

        return Event()

    def synchronize(self) -> None:
        self.log.append("sync")

    def work(self) -> None:
        self.log.append("work")
        self.now += self.work_ms.pop(0)


def test_durations_are_event_intervals_in_seconds():
    dev = Recorder([100.0, 5.0, 7.0, 6.0])  # one warm-up call, then three timed
    out = time_with_events(
        dev.work, warmup=1, iters=3, new_event=dev.event, synchronize=dev.synchronize
    )
    assert out == pytest.approx([0.005, 0.007, 0.006])


def test_each_timed_call_starts_on_an_idle_device_and_waits_for_its_end():
    dev = Recorder([1.0, 1.0, 1.0])
    time_with_events(dev.work, warmup=1, iters=2, new_event=dev.event, synchronize=dev.synchronize)
    timed = ["sync", "record", "work", "record", "event-sync"]
    assert dev.log == ["work", "sync", *timed, *timed]
