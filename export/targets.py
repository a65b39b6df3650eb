"""The one table of export targets, validated before any work starts.

A target names its artifact format, precision, the ONNX graph it derives
from, the family module that builds it, what must be installed and which
target-specific options it accepts. Adding a target (e.g. the INT8 targets of
:mod:`qtseg.calibration`) is one entry here plus one family module; targets
that need a calibration set say so with ``requires_calibration``.

Builders and graph producers are small lazy shims so that reading this table
(e.g. for ``--help`` or validation) imports no runtime.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qtseg.export.pipeline import BuildResult, ExportJob

# Options every target accepts; the others must be listed in Target.options.
COMMON_OPTIONS = frozenset({"imgsz", "batch", "dynamic_batch", "opset", "simplify", "verify", "samples"})
TARGET_OPTIONS = frozenset({"io_fp16", "dynamic_hw", "workspace", "compute_capability", "timing_cache"})

TRT_HINT = "needs NVIDIA's tensorrt wheel (pip install tensorrt; see docs/export.md)"


@dataclass(frozen=True)
class Target:
    """One export target.

    Attributes:
        name: CLI name, e.g. ``"trtrtx-fp16"``.
        format: ``manifest["format"]``: ``onnx``, ``openvino`` or ``tensorrt``.
        precision: ``fp32``, ``fp16`` or ``int8`` (selects parity thresholds).
        graph: key of :data:`GRAPHS`: the ONNX graph the artifact derives from.
        build: family builder ``(job, target, staging_dir) -> BuildResult``.
        requires: importable module names that must be installed.
        extra: pip extra installing them (``pip install 'qtseg[EXTRA]'``).
        options: target-specific options accepted (see :data:`TARGET_OPTIONS`).
        requires_calibration: needs a calibration set (INT8).
        library: TensorRT flavour for ``tensorrt`` targets.
        install_hint: extra words for the "not installed" message.
    """

    name: str
    format: str
    precision: str
    graph: str
    build: Callable[[ExportJob, Target, Path], BuildResult]
    requires: tuple[str, ...]
    extra: str
    options: frozenset[str] = frozenset()
    requires_calibration: bool = False
    library: str | None = None
    install_hint: str = ""

    def missing(self) -> list[str]:
        """Required modules that are not installed (checked without importing them)."""
        return [m for m in self.requires if not _installed(m)]

    def unavailable_reason(self) -> str | None:
        """One line saying why this target cannot be built here, or ``None``."""
        missing = self.missing()
        if not missing:
            return None
        if self.library == "tensorrt" and "tensorrt" in missing:
            return f"TensorRT is not installed: pip install 'qtseg[{self.extra}]' {TRT_HINT}"
        hint = f" ({self.install_hint})" if self.install_hint else ""
        return f"{', '.join(missing)} not installed: pip install 'qtseg[{self.extra}]'{hint}"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# -- lazy shims: family builders ------------------------------------------------
def _build_onnx(job: ExportJob, target: Target, staging: Path) -> BuildResult:
    from qtseg.export.onnx_family import build

    return build(job, target, staging)


def _build_openvino(job: ExportJob, target: Target, staging: Path) -> BuildResult:
    from qtseg.export.openvino_ir import build

    return build(job, target, staging)


def _build_tensorrt(job: ExportJob, target: Target, staging: Path) -> BuildResult:
    from qtseg.export.tensorrt_engine import build

    return build(job, target, staging)


def _build_aoti(job: ExportJob, target: Target, staging: Path) -> BuildResult:
    from qtseg.export.aoti import build

    return build(job, target, staging)


def _build_int8(job: ExportJob, target: Target, staging: Path) -> BuildResult:
    from qtseg.export.int8_targets import build

    return build(job, target, staging)


# -- lazy shims: ONNX graph producers ((job, io_fp16=) -> onnx.ModelProto) ----------
def _graph_fp32(job: ExportJob, *, io_fp16: bool = False) -> Any:
    from qtseg.export.onnx_family import fp32_graph

    return fp32_graph(job, io_fp16=io_fp16)


def _graph_fp16(job: ExportJob, *, io_fp16: bool = False) -> Any:
    from qtseg.export.onnx_family import fp16_graph

    return fp16_graph(job, io_fp16=io_fp16)


GRAPHS: dict[str, Callable[[ExportJob], Any]] = {"fp32": _graph_fp32, "fp16": _graph_fp16}

_ORT = ("onnx", "onnxruntime", "onnxslim")
_OV = ("openvino", "onnx", "onnxslim")
_TRT = ("tensorrt", "onnx", "onnxruntime", "onnxslim", "cuda.bindings")
_RTX = ("tensorrt_rtx", "onnx", "onnxruntime", "onnxslim")
_ENGINE_OPTS = frozenset({"workspace", "timing_cache"})

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("onnx", "onnx", "fp32", "fp32", _build_onnx, _ORT, "ort", frozenset({"dynamic_hw"})),
        Target("onnx-fp16", "onnx", "fp16", "fp16", _build_onnx, _ORT, "ort",
               frozenset({"dynamic_hw", "io_fp16"})),
        Target("openvino-fp32", "openvino", "fp32", "fp32", _build_openvino, _OV, "openvino",
               frozenset({"dynamic_hw"})),
        Target("openvino-fp16", "openvino", "fp16", "fp32", _build_openvino, _OV, "openvino",
               frozenset({"dynamic_hw"})),
        Target("trt-fp16", "tensorrt", "fp16", "fp16", _build_tensorrt, _TRT, "trt", _ENGINE_OPTS,
               library="tensorrt"),
        Target("trt-fp32", "tensorrt", "fp32", "fp32", _build_tensorrt, _TRT, "trt", _ENGINE_OPTS,
               library="tensorrt"),
        Target("trtrtx-fp16", "tensorrt", "fp16", "fp16", _build_tensorrt, _RTX, "trt",
               _ENGINE_OPTS | {"compute_capability"}, library="tensorrt_rtx"),
        Target("trtrtx-fp32", "tensorrt", "fp32", "fp32", _build_tensorrt, _RTX, "trt",
               _ENGINE_OPTS | {"compute_capability"}, library="tensorrt_rtx"),
        # AOTInductor, this CPU; no ONNX graph. CUDA: qtseg.export.aoti.for_device.
        Target("aoti", "aoti", "fp32", "fp32", _build_aoti, ("torch",), "all"),
        # INT8: calibrated from a calibration set (--calib), accuracy-guarded; see docs/calibration.md.
        Target("onnx-int8", "onnx", "int8", "fp32", _build_int8, _ORT, "ort", requires_calibration=True),
        Target("openvino-int8", "openvino", "int8", "fp32", _build_int8, (*_OV, "nncf"), "openvino",
               requires_calibration=True),
        Target("trt-int8", "tensorrt", "int8", "fp32", _build_int8, _TRT, "trt", _ENGINE_OPTS,
               requires_calibration=True, library="tensorrt"),
        Target("trtrtx-int8", "tensorrt", "int8", "fp32", _build_int8, _RTX, "trt",
               _ENGINE_OPTS | {"compute_capability"}, requires_calibration=True, library="tensorrt_rtx"),
    )
}
ALL = "all"


class TargetError(ValueError):
    """Unknown target or an option the target does not accept."""


def target_names() -> list[str]:
    """Valid ``--target`` values (``all`` last)."""
    return [*TARGETS, ALL]


def resolve(name: str) -> list[Target]:
    """Targets selected by ``--target NAME``: ``all`` = every entry, ``a,b`` = those, in order."""
    if name == ALL:
        return list(TARGETS.values())
    names = list(dict.fromkeys(n.strip() for n in name.split(","))) if "," in name else [name]
    for n in names:
        if n not in TARGETS:
            raise TargetError(f"unknown target {n!r}; valid targets: {', '.join(target_names())}")
    return [TARGETS[n] for n in names]


def check_options(target: Target, given: set[str]) -> None:
    """Reject target-specific options ``target`` does not accept.

    Args:
        given: option names the user set to a non-default value.
    """
    bad = sorted(o for o in given if o not in COMMON_OPTIONS and o not in target.options)
    if bad:
        flags = ", ".join("--" + o.replace("_", "-") for o in bad)
        accepted = sorted(target.options)
        extra = ", ".join("--" + o.replace("_", "-") for o in accepted) or "none"
        raise TargetError(
            f"target {target.name} does not accept {flags} (its own options: {extra})"
        )
