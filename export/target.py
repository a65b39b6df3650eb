"""One export target: the row type of the target table (light: imports no runtime, no torch)."""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from typing import Any

TRT_HINT = "needs NVIDIA's tensorrt wheel (pip install tensorrt; see docs/export.md)"
GRAPH_KEYS = ("fp32", "fp16")


class TargetError(ValueError):
    """Unknown target or an option the target does not accept."""


@dataclass(frozen=True)
class Target:
    """One export target (a row of :data:`qtseg.export.targets.TARGETS`).

    Attributes:
        name: CLI name, e.g. ``"trtrtx-fp16"``.
        format: ``manifest["format"]``: ``onnx``, ``openvino``, ``tensorrt`` or ``aoti``.
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8`` (selects parity thresholds).
        graph: the ONNX graph the artifact derives from (:data:`GRAPH_KEYS`), or
            ``None`` when it has none (AOTInductor).
        builder: module of the family builder (its ``build(job, target, staging_dir)
            -> BuildResult`` is loaded on use, so reading the table imports no runtime).
        requires: importable module names that must be installed.
        extra: pip extra installing them (``pip install 'qtseg[EXTRA]'``).
        runtime: the runtime that runs the artifact (``manifest["runtime"]["name"]``).
        device: device kind the artifact runs on (``None`` = any its runtime offers).
        options: target-specific options accepted (see ``targets.TARGET_OPTIONS``).
        requires_calibration: needs a calibration set (INT8).
        build_needs_cuda: can only be built on a machine with a CUDA GPU.
        install_hint: extra words for the "not installed" message.
    """

    name: str
    format: str
    precision: str
    graph: str | None
    builder: str
    requires: tuple[str, ...]
    extra: str
    runtime: str
    device: str | None = None
    options: frozenset[str] = frozenset()
    requires_calibration: bool = False
    build_needs_cuda: bool = False
    install_hint: str = ""

    def build(self, job: Any, staging: Any) -> Any:
        """Run the family builder: ``build(job, self, staging) -> BuildResult``."""
        return importlib.import_module(self.builder).build(job, self, staging)

    def missing(self) -> list[str]:
        """Required modules that are not installed (checked without importing them)."""
        return [m for m in self.requires if not _installed(m)]

    def unavailable_reason(self) -> str | None:
        """One line saying why this target cannot be built here, or ``None``."""
        missing = self.missing()
        if missing:
            if self.runtime == "tensorrt" and "tensorrt" in missing:
                rtx = self.name.replace("trt-", "trtrtx-")
                return (f"TensorRT (the 'tensorrt' module) is not installed: {TRT_HINT}; "
                        f"{rtx} builds with the pip-installable TensorRT-RTX instead")
            hint = f" ({self.install_hint})" if self.install_hint else ""
            return f"{', '.join(missing)} not installed: pip install 'qtseg[{self.extra}]'{hint}"
        if self.build_needs_cuda and not _cuda_available():
            return f"{self.name} is compiled on a CUDA GPU and this machine has none"
        return None


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _cuda_available() -> bool:
    # No NVIDIA driver files: no GPU, and no reason to import torch just to learn that.
    if not any(os.path.exists(p) for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/dxg")):
        return False
    import torch

    return bool(torch.cuda.is_available())
