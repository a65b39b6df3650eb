"""The one table of export targets, validated before any work starts.

A target names its artifact format, precision, the ONNX graph it derives
from, the family module that builds it, what must be installed, the runtime
and device kind its artifact runs on, and which target-specific options it
accepts. Adding a target is one entry here plus one family module; targets
that need a calibration set say so with ``requires_calibration``.

Builders are named by module and imported only when a target is built, so
reading this table (``--help``, validation) imports no runtime and no torch.
"""

from __future__ import annotations

from qtseg.export.target import Target, TargetError

# Options every target accepts; the others must be listed in Target.options.
COMMON_OPTIONS = frozenset({"imgsz", "batch", "dynamic_batch", "opset", "simplify", "verify", "samples"})
TARGET_OPTIONS = frozenset({"io_fp16", "dynamic_hw", "workspace", "compute_capability", "timing_cache"})

_ORT = ("onnx", "onnxruntime", "onnxslim")
_OV = ("openvino", "onnx", "onnxslim")
_TRT = ("tensorrt", "onnx", "onnxruntime", "onnxslim", "cuda.bindings")
_RTX = ("tensorrt_rtx", "onnx", "onnxruntime", "onnxslim")
_ENGINE_OPTS = frozenset({"workspace", "timing_cache"})

_ONNX, _OV_IR, _ENGINE = "qtseg.export.onnx_family", "qtseg.export.openvino_ir", "qtseg.export.tensorrt_engine"
_AOTI = "qtseg.export.aoti"
_INT8_ONNX, _INT8_OV, _INT8_TRT = (
    "qtseg.export.int8_onnx", "qtseg.export.int8_openvino", "qtseg.export.int8_tensorrt",
)
_HW = frozenset({"dynamic_hw"})
_RTX_OPTS = _ENGINE_OPTS | {"compute_capability"}

TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("onnx", "onnx", "fp32", "fp32", _ONNX, _ORT, "ort", "onnxruntime", options=_HW),
        Target("onnx-fp16", "onnx", "fp16", "fp16", _ONNX, _ORT, "ort", "onnxruntime",
               options=_HW | {"io_fp16"}),
        Target("openvino-fp32", "openvino", "fp32", "fp32", _OV_IR, _OV, "openvino", "openvino", "cpu",
               options=_HW),
        Target("openvino-fp16", "openvino", "fp16", "fp32", _OV_IR, _OV, "openvino", "openvino", "cpu",
               options=_HW),
        Target("trt-fp16", "tensorrt", "fp16", "fp16", _ENGINE, _TRT, "trt", "tensorrt", "cuda",
               options=_ENGINE_OPTS),
        Target("trt-fp32", "tensorrt", "fp32", "fp32", _ENGINE, _TRT, "trt", "tensorrt", "cuda",
               options=_ENGINE_OPTS),
        Target("trtrtx-fp16", "tensorrt", "fp16", "fp16", _ENGINE, _RTX, "trt", "tensorrt_rtx", "cuda",
               options=_RTX_OPTS),
        Target("trtrtx-fp32", "tensorrt", "fp32", "fp32", _ENGINE, _RTX, "trt", "tensorrt_rtx", "cuda",
               options=_RTX_OPTS),
        # AOTInductor: native code for this CPU's ISA, or (built on a GPU) for that GPU; no ONNX graph.
        Target("aoti", "aoti", "fp32", None, _AOTI, ("torch",), "all", "aoti", "cpu"),
        Target("aoti-cuda", "aoti", "fp32", None, _AOTI, ("torch",), "all", "aoti", "cuda",
               build_needs_cuda=True),
        Target("aoti-cuda-fp16", "aoti", "fp16", None, _AOTI, ("torch",), "all", "aoti", "cuda",
               build_needs_cuda=True),
        # INT8: calibrated from a calibration set (--calib), accuracy-guarded; see docs/calibration.md.
        Target("onnx-int8", "onnx", "int8", "fp32", _INT8_ONNX, _ORT, "ort", "onnxruntime",
               requires_calibration=True),
        Target("openvino-int8", "openvino", "int8", "fp32", _INT8_OV, (*_OV, "nncf"), "openvino",
               "openvino", "cpu", requires_calibration=True),
        Target("trt-int8", "tensorrt", "int8", "fp32", _INT8_TRT, _TRT, "trt", "tensorrt", "cuda",
               options=_ENGINE_OPTS, requires_calibration=True),
        Target("trtrtx-int8", "tensorrt", "int8", "fp32", _INT8_TRT, _RTX, "trt", "tensorrt_rtx", "cuda",
               options=_RTX_OPTS, requires_calibration=True),
    )
}
INT8_TARGETS: tuple[Target, ...] = tuple(t for t in TARGETS.values() if t.requires_calibration)
ALL = "all"


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
