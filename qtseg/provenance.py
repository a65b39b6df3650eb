"""Facts recorded with every artifact, report and calibration set.

One home for: installed package versions, the git commit of the source tree,
file hashes, the configuration hash of a model, and what the host CPU can do
(its vector and matrix instruction sets). Nothing here imports a runtime.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

# Distributions whose versions artifacts and reports record (absent ones are left out).
TOOLS = (
    "torch", "numpy", "pillow", "onnx", "onnxruntime", "onnxruntime-gpu", "onnxslim",
    "openvino", "nncf", "tensorrt", "tensorrt_rtx", "cuda-python",
)

# x86 CPU features (as /proc/cpuinfo names them) that decide which kernels runtimes pick.
CPU_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c",
    "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni",
    "amx_tile", "amx_bf16", "amx_int8",
)


def package_versions(names: tuple[str, ...] = TOOLS) -> dict[str, str]:
    """``{"qtseg": ..., name: version}`` of the installed distributions among ``names``.

    Read from package metadata; nothing is imported.
    """
    import qtseg

    versions = {"qtseg": qtseg.__version__}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bytes_sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def config_hash(model_name: str, config: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``{"model": name, "config": config}``."""
    text = json.dumps({"model": model_name, "config": config}, sort_keys=True, separators=(",", ":"))
    return bytes_sha256(text.encode())


def git_sha() -> str | None:
    """Commit of the qtseg source tree, ``None`` outside a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _first_cpu() -> dict[str, str]:
    """Key/value lines of the first processor of ``/proc/cpuinfo`` (empty off Linux)."""
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def cpu_description() -> dict[str, Any]:
    """CPU model, the :data:`CPU_FLAGS` it has, logical CPUs and CPUs this process may use."""
    info = _first_cpu()
    flags = set(info.get("flags", "").split())
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    return {
        "model": info.get("model name") or platform.processor() or platform.machine(),
        "machine": platform.machine(),
        "flags": [f for f in CPU_FLAGS if f in flags],
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
    }


def cpu_has(flag: str) -> bool:
    """True when the host CPU reports ``flag`` (a :data:`CPU_FLAGS` name)."""
    return flag in cpu_description()["flags"]


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


def host_description() -> str:
    """Where something was built or run, in one line.

    E.g. ``"Linux x86_64, Python 3.11.7, AMD EPYC (avx512f, avx512_vnni, avx512_bf16), no CUDA GPU"``.
    """
    cpu = cpu_description()
    isa = ", ".join(f for f in cpu["flags"] if f.startswith(("avx512", "amx", "avx_vnni"))) or "no AVX-512"
    gpu = gpu_description()
    where = f"CUDA GPU {gpu['name']} (sm {gpu['capability']})" if gpu else "no CUDA GPU"
    return (
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, "
        f"{cpu['model']} ({isa}), {where}"
    )


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages of the host (``None`` where unknown).

    Recorded before and after timed runs: on a shared machine a load above the
    number of usable CPUs means the latencies include waiting for a CPU.
    """
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None
