"""TensorRT engine targets (``trt-*`` with ``tensorrt``, ``trtrtx-*`` with ``tensorrt_rtx``).

One builder for both libraries (same API family, 10.x / 11.x / RTX 1.x):
a STRONGLY_TYPED network parsed from the explicit-precision ONNX graph (so
the FP16 engine computes exactly what ``model.onnx`` says, block list
included), a workspace limit, an optimization profile for a dynamic batch,
and a timing cache where it does something (``tensorrt``; TensorRT-RTX >= 1.2
treats timing-cache calls as no-ops).

TensorRT-RTX builds ahead-of-time on a machine without a GPU; the engine then
targets the compute capabilities set in the builder config (recorded in the
manifest). ``tensorrt`` builds on a GPU and targets that GPU's architecture.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qtseg.atomic import atomic_write_bytes
from qtseg.backends.base import Backend
from qtseg.export.job import BuildResult, ExportJob, ParityCheck
from qtseg.export.target import Target

ENGINE, ONNX = "model.engine", "model.onnx"
# TensorRT-RTX's documented default portable set (Ampere, Ada, Blackwell);
# Turing (75) must be asked for explicitly.
DEFAULT_RTX_COMPUTE_CAPABILITIES = ("80", "86", "89", "120")
LIBRARY_LABEL = {"tensorrt": "TensorRT", "tensorrt_rtx": "TensorRT-RTX"}


class EngineBuildError(RuntimeError):
    """The ONNX graph could not be parsed or the engine could not be built."""


def _make_logger(trt: Any) -> Any:
    class CaptureLogger(trt.ILogger):
        """Keeps warnings and errors for the error message; prints nothing."""

        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                self.messages.append(f"{severity.name}: {msg}")

    return CaptureLogger()


def _timing_cache_path(library: str, version: str, given: str | None) -> Path:
    if given:
        return Path(given)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "qtseg" / f"{library}-{version}-timing.cache"


def gpu_compute_capability() -> str:
    """Compute capability of the current CUDA device, e.g. ``"89"``."""
    from cuda.bindings import runtime as cudart

    err, device = cudart.cudaGetDevice()
    err, props = cudart.cudaGetDeviceProperties(device if int(err) == 0 else 0)
    if int(err) != 0:
        raise EngineBuildError(f"cannot read the GPU's properties: {getattr(err, 'name', err)}")
    return f"{props.major}{props.minor}"


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    *,
    library: str,
    shapes: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None,
    workspace_bytes: int = 1 << 30,
    compute_capabilities: Sequence[str] = (),
    timing_cache: str | None = None,
) -> dict[str, Any]:
    """Build a serialized engine from an explicit-precision ONNX file.

    Args:
        onnx_path: the ONNX graph (FP32 or FP16 with Casts).
        engine_path: where to write the engine (atomically).
        library: ``"tensorrt"`` or ``"tensorrt_rtx"``.
        shapes: ``(min, opt, max)`` input shapes for a dynamic input, else ``None``.
        workspace_bytes: workspace memory-pool limit.
        compute_capabilities: TensorRT-RTX targets (default: its portable set).
        timing_cache: timing-cache file for ``tensorrt`` (default in ~/.cache/qtseg).

    Returns:
        What the manifest records under ``"tensorrt"``.
    """
    from qtseg.backends.tensorrt_backend import cuda_device_problem, import_tensorrt

    trt = import_tensorrt(library)
    logger = _make_logger(trt)
    if library == "tensorrt":
        problem = cuda_device_problem()
        if problem:
            raise EngineBuildError(f"TensorRT builds engines on a CUDA GPU: {problem}")
    # TensorRT 10.x and TensorRT-RTX need the flag; 11.x is always strongly
    # typed and keeps the flag only for compatibility (ignored).
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    major = int(trt.__version__.split(".")[0])
    if strongly_typed is None and (library == "tensorrt_rtx" or major < 11):
        raise EngineBuildError(f"{library} {trt.__version__} has no STRONGLY_TYPED networks (need >= 10)")
    builder = trt.Builder(logger)
    network = builder.create_network(0 if strongly_typed is None else 1 << int(strongly_typed))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"ONNX parser failed: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    info: dict[str, Any] = {
        "library": library,
        "version": trt.__version__,
        "strongly_typed": True,
        "workspace_bytes": int(workspace_bytes),
        "profile": None,
    }
    tensor = network.get_input(0)
    if any(d < 0 for d in tensor.shape):
        if shapes is None:
            raise EngineBuildError(f"input {tensor.name} has dynamic shape {tuple(tensor.shape)} but no profile")
        profile = builder.create_optimization_profile()
        profile.set_shape(tensor.name, *shapes)
        config.add_optimization_profile(profile)
        info["profile"] = {tensor.name: {k: list(s) for k, s in zip(("min", "opt", "max"), shapes)}}

    cache = None
    if library == "tensorrt_rtx":
        ccs = tuple(compute_capabilities) or DEFAULT_RTX_COMPUTE_CAPABILITIES
        members = trt.ComputeCapability.__members__
        config.num_compute_capabilities = len(ccs)
        for i, cc in enumerate(ccs):
            key = "CURRENT" if cc == "current" else f"SM{cc}"
            if key not in members or not config.set_compute_capability(members[key], i):
                valid = [m.removeprefix("SM") for m in members if m.startswith("SM")]
                raise EngineBuildError(f"{library} cannot target compute capability {cc} (valid: {valid}, current)")
        info["compute_capabilities"] = [f"sm_{cc}" if cc != "current" else "current" for cc in ccs]
        info["timing_cache"] = "not used (timing-cache calls are no-ops in TensorRT-RTX >= 1.2)"
    else:
        info["compute_capabilities"] = [f"sm_{gpu_compute_capability()}"]
        info["hardware_compatibility"] = "none (engine runs on the build GPU's architecture only)"
        cache_path = _timing_cache_path(library, trt.__version__, timing_cache)
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        config.set_timing_cache(cache, False)
        info["timing_cache"] = str(cache_path)

    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    info["build_seconds"] = round(time.perf_counter() - start, 2)
    if serialized is None:
        detail = "; ".join(m for m in logger.messages if m.startswith(("ERROR", "INTERNAL")))
        raise EngineBuildError(f"{library} engine build failed: {detail or 'no error message'}")
    data = bytes(serialized)
    atomic_write_bytes(engine_path, data)
    info["engine_bytes"] = len(data)
    if cache is not None:
        atomic_write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
    return info


def build(job: ExportJob, target: Target, staging: Path) -> BuildResult:
    """Write ``model.onnx`` and build ``model.engine`` from it in ``staging``.

    Parity runs the exact ONNX file on ONNX Runtime, and the engine itself
    when a TensorRT runtime and a GPU are present (else the manifest says why not).
    """
    from qtseg.backends.tensorrt_backend import TensorRTBackend

    assert target.graph is not None
    library = target.runtime
    data = job.graph_bytes(target.graph)
    onnx_path = staging / ONNX
    atomic_write_bytes(onnx_path, data)
    inputs, outputs = job.graph_io(target.graph)
    shapes = None
    if job.options.dynamic_batch:
        _, c, h, w = inputs[0].shape
        shapes = ((1, c, h, w), (1, c, h, w), (job.options.dynamic_batch, c, h, w))
    label = LIBRARY_LABEL[library]
    ccs = job.options.compute_capability if library == "tensorrt_rtx" else ()
    with job.progress.step(f"build {label} engine ({target.precision}, strongly typed, from {ONNX})"):
        info = build_engine(
            onnx_path,
            staging / ENGINE,
            library=library,
            shapes=shapes,
            workspace_bytes=job.options.workspace_mib << 20,
            compute_capabilities=ccs,
            timing_cache=job.options.timing_cache,
        )
    job.progress.info(
        f"engine {info['engine_bytes'] / 1e6:.1f} MB in {info['build_seconds']} s, "
        f"targets {', '.join(info['compute_capabilities'])}"
    )

    def open_engine() -> Backend:
        return TensorRTBackend(staging / ENGINE, library=library, precision=target.precision)

    details = job.graph_details(target.graph)
    details["tensorrt"] = info
    return BuildResult(
        files={"engine": ENGINE, "onnx": ONNX},
        inputs=inputs,
        outputs=outputs,
        checks=[
            job.ort_check(onnx_path, f"{ONNX} (the engine's source graph) on onnxruntime CPU"),
            ParityCheck(f"{ENGINE} on {label}", open_engine),
        ],
        details=details,
        built=f"{label} engine built",
    )
