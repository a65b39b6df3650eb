"""qtseg.timing: host-clock and CUDA-event loops on injected clocks, interleaving, statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from qtseg.timing import interleaved, latency_stats, time_calls, time_with_events


class FakeClock:
    """Returns the given timestamps in order; counts how often it was read."""

    def __init__(self, stamps: list[float]) -> None:
        self.stamps = list(stamps)
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.stamps.pop(0)


def test_time_calls_times_only_the_timed_calls_on_the_injected_clock():
    calls = []
    # warm-up calls read no clock; each timed call reads it twice (start, end)
    clock = FakeClock([0.0, 0.010, 1.0, 1.030, 2.0, 2.020])
    durations = time_calls(lambda: calls.append(1), warmup=2, iters=3, clock=clock)
    assert len(calls) == 5 and clock.reads == 6
    assert durations == pytest.approx([0.010, 0.030, 0.020])


def test_stats_of_a_known_series():
    # 1..10 ms
    stats = latency_stats([v / 1000 for v in range(1, 11)], batch=4)
    assert stats.n == 10 and stats.batch == 4
    assert stats.mean_ms == pytest.approx(5.5)
    assert stats.std_ms == pytest.approx(math.sqrt(sum((v - 5.5) ** 2 for v in range(1, 11)) / 9))
    # rank = p/100 * (n-1): p50 -> 4.5 -> between 5 and 6; p90 -> 8.1; p99 -> 8.91
    assert stats.p50_ms == pytest.approx(5.5)
    assert stats.p90_ms == pytest.approx(9.1)
    assert stats.p99_ms == pytest.approx(9.91)
    assert (stats.min_ms, stats.max_ms) == pytest.approx((1.0, 10.0))
    assert stats.img_per_s == pytest.approx(4 * 1000 / 5.5)


def test_order_of_durations_does_not_matter_and_matches_numpy_linear():
    rng = np.random.default_rng(0)
    values = list(rng.uniform(0.001, 0.05, size=37))
    stats = latency_stats(values)
    ms = np.array(values) * 1000
    for p, got in ((50, stats.p50_ms), (90, stats.p90_ms), (99, stats.p99_ms)):
        assert got == pytest.approx(float(np.percentile(ms, p, method="linear")))
    assert stats.std_ms == pytest.approx(float(np.std(ms, ddof=1)))
    assert latency_stats(values[::-1]) == stats


def test_single_call_has_zero_std_and_all_percentiles_equal():
    stats = latency_stats([0.002])
    assert stats.std_ms == 0.0 and stats.p50_ms == stats.p99_ms == stats.mean_ms == pytest.approx(
        2.0
    )


def test_percentile_edges():
    stats = latency_stats([0.001, 0.002])
    assert stats.min_ms == pytest.approx(1.0) and stats.max_ms == pytest.approx(2.0)
    assert stats.p50_ms == pytest.approx(1.5)


def test_interleaved_takes_turns_and_times_each_callable():
    order: list[str] = []
    times = interleaved(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")},
        rounds=2, per_round=2, warmup=1,
    )
    assert order == ["a", "b", "a", "a", "b", "b", "a", "a", "b", "b"]
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4}
    with pytest.raises(ValueError):
        interleaved({"a": lambda: None}, rounds=0)


@pytest.mark.parametrize("bad", [[], [-0.001], [float("nan")]])
def test_bad_durations_are_rejected(bad):
    with pytest.raises(ValueError):
        latency_stats(bad)


def test_time_calls_rejects_zero_iterations():
    with pytest.raises(ValueError):
        time_calls(lambda: None, warmup=0, iters=0)


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
