"""Shared pieces of the CPU measurement scripts in tools/cpu/ (not a library module).

The machines these run on are shared: every figure is taken in interleaved
rounds (each case runs a few calls in turn, so a change in background load hits
all cases alike) and is stored with the load average before and after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from qtseg.bench.stats import latency_stats, time_calls
from qtseg.bench.system import cpu_description, library_versions

REPO = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
SAMPLES = REPO / "qtseg" / "assets" / "samples" / "images"


def sample_paths() -> list[Path]:
    """The 12 bundled sample images, sorted by name."""
    return sorted(SAMPLES.glob("*.jpg"))


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages."""
    return [round(v, 2) for v in os.getloadavg()]


def machine() -> dict[str, Any]:
    """CPU model and instruction sets, versions, command line and load (for every results file)."""
    return {
        "cpu": cpu_description(),
        "versions": library_versions(),
        "python": sys.version.split()[0],
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "git": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              check=False, capture_output=True, text=True).stdout.strip(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def interleaved(
    cases: Mapping[str, Callable[[], object]],
    *,
    rounds: int,
    per_round: int,
    warmup: int = 2,
    settle: int = 0,
) -> dict[str, list[float]]:
    """Time named zero-argument calls in turns: ``rounds`` x (each case ``per_round`` calls).

    ``settle`` untimed calls start every turn (a runtime whose threads were
    parked while another case ran wakes them up there). Returns
    ``{name: durations in seconds}``.
    """
    times: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    for _ in range(rounds):
        for name, fn in cases.items():
            times[name] += time_calls(fn, warmup=settle, iters=per_round)
    return times


def summary(durations_s: list[float], divide: int = 1) -> dict[str, float]:
    """Median, p90, mean and min in ms of durations, each divided by ``divide`` (images per call)."""
    stats = latency_stats([d / divide for d in durations_s])
    return {"p50_ms": round(stats.p50_ms, 3), "p90_ms": round(stats.p90_ms, 3),
            "mean_ms": round(stats.mean_ms, 3), "min_ms": round(stats.min_ms, 3), "n": stats.n}


def write_results(name: str, data: dict[str, Any]) -> Path:
    """Write ``tools/cpu/results/<name>.json`` and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)
