"""What a report records about the machine: CPU, GPU, threads, library versions, memory.

Nothing here imports a runtime: versions come from package metadata, the
GPU name from PyTorch only when the caller asks for CUDA.
"""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# Distributions whose versions a report records (absent ones are left out).
LIBRARIES = (
    "qtseg",
    "torch",
    "numpy",
    "pillow",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "openvino",
    "tensorrt",
    "tensorrt_rtx",
    "cuda-python",
    "matplotlib",
    "psutil",
)
# CPU features that decide which kernels runtimes pick (x86 names of /proc/cpuinfo).
CPU_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """Installed versions (from package metadata; nothing is imported)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if not line.strip():
            break  # first processor is enough
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def cpu_description() -> dict[str, Any]:
    """CPU model, the :data:`CPU_FLAGS` it has, logical CPUs and CPUs this process may use."""
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    return {
        "model": info.get("model name") or platform.processor() or platform.machine(),
        "flags": [f for f in CPU_FLAGS if f in flags],
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
    }


def default_threads() -> int:
    """Thread count used when none is given: the CPUs this process may run on."""
    return int(cpu_description()["usable_cpus"])


def gpu_description() -> dict[str, Any] | None:
    """Name, capability, memory and CUDA version of GPU 0 via PyTorch (``None``: no GPU)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_gb": round(props.total_memory / 2**30, 1),
        "count": torch.cuda.device_count(),
        "cuda": torch.version.cuda,
    }


def system_info(*, with_gpu: bool) -> dict[str, Any]:
    """The ``system`` block of a report."""
    return {
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_description(),
        "gpu": gpu_description() if with_gpu else None,
        "versions": library_versions(),
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
