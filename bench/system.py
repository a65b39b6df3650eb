"""What a report records about the machine: CPU, GPU, threads, library versions, memory.

Nothing here imports a runtime: versions come from package metadata, the
GPU name from PyTorch only when the caller asks for CUDA.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

from qtseg.provenance import TOOLS, cpu_description, gpu_description, package_versions

# Distributions whose versions a report records (absent ones are left out).
LIBRARIES = (*TOOLS, "matplotlib", "psutil")


def default_threads() -> int:
    """Thread count used when none is given: the CPUs this process may run on."""
    return int(cpu_description()["usable_cpus"])


def system_info(*, with_gpu: bool) -> dict[str, Any]:
    """The ``system`` block of a report."""
    return {
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_description(),
        "gpu": gpu_description() if with_gpu else None,
        "versions": package_versions(LIBRARIES),
    }


# -- memory ---------------------------------------------------------------------
def _proc_status_kib(field_name: str) -> float | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field_name + ":"):
            return float(line.split()[1])
    return None


def peak_rss_mb() -> float | None:
    """High-water resident set size of this process in MiB (``None`` where unknown).

    Linux: ``VmHWM`` of ``/proc/self/status``, the high-water mark of this
    process's own address space. ``ru_maxrss`` is not used there because the
    kernel carries it over from the parent across fork + exec, so a worker
    would report the parent's size. Elsewhere: ``ru_maxrss``.
    """
    hwm = _proc_status_kib("VmHWM")
    if hwm is not None:
        return hwm / 2**10
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def current_rss_mb() -> float | None:
    """Resident set size now, in MiB (``None`` where unknown)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        pass
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
