"""AOTInductor targets: ``torch.export`` of the eval-mode wrapper -> ``model.pt2``.

``aoti`` compiles for the CPU of the build machine; ``aoti-cuda`` and
``aoti-cuda-fp16`` (all three rows of the target table) must be built on a
machine with a GPU and a CUDA build of torch. :func:`export_aoti` runs any of
them through the normal pipeline (staging, parity gate, manifest) from Python.

The package is native code: a CPU package uses the vector ISA of the machine
it was compiled on (recorded as ``AOTI_CPU_ISA``), a CUDA package the GPU
architecture. Both need the torch they were built with (``versions.torch``)
to load. Input checks are the backend's job: the compiled code does not check
shapes (see :mod:`qtseg.backends.aoti_backend`).

The C++ compiler is chosen by :func:`package_compiler`: Inductor's own
choice (``$CXX``, else ``g++``) unless it links libstdc++ statically into
shared libraries -- such a package crashes the loader (issue 16: the lent
H200 image sets ``CXX`` to such a wrapper) -- then the first compiler on
``PATH`` that links it dynamically. Every built package is checked again
(:func:`qtseg.backends.aoti_backend.package_library`) before the gate loads it.

CUDA targets compile the model as the GPU fast path runs it (BatchNorm folded,
attention as matrix products; :func:`qtseg.backends.torch_backend.prepare_model`);
``aoti-cuda-fp16`` has FP16 weights and activations with float32 input and
output. The CPU ``aoti`` target compiles the model unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import qtseg
from qtseg.backends.aoti_backend import META_PREFIX, package_library, read_package_metadata
from qtseg.backends.base import TensorMeta
from qtseg.backends.torch_backend import TorchOptions, prepare_model
from qtseg.checkpoint import load_checkpoint
from qtseg.export.job import BuildResult, ExportJob, ParityCheck, Progress, TargetOutcome
from qtseg.export.options import ExportOptions
from qtseg.export.pipeline import export_target
from qtseg.export.target import Target
from qtseg.export.targets import TARGETS
from qtseg.export.wrapper import INPUT_NAME, OUTPUT_NAME, assert_eval, prepare
from qtseg.provenance import config_hash

PACKAGE = "model.pt2"
DEVICES = ("cpu", "cuda")


# How CUDA targets run the model (the GPU fast path's transforms, FP32 weights here;
# aoti-cuda-fp16 then casts the weights to FP16).
CUDA_OPTIONS = TorchOptions(fold_bn=True, math_attention=True)
PROBE_SOURCE = (
    "#include <locale>\n"
    'extern "C" int qtseg_probe() { return (int)std::locale::classic().name().size(); }\n'
)


class Fp16Compute(nn.Module):
    """float32 image in, float32 logits out, FP16 weights and activations inside.

    Casting the weights (instead of autocast) leaves no per-call weight casts
    in the compiled graph. Layer norms and softmaxes accumulate in FP32 inside
    their kernels; the channel attention computes its affinity in FP32
    explicitly (:class:`qtseg.models.qtseg_v2.ChannelAttention`).

    Arguments:
        inner: the eval-mode export wrapper, cast to float16, on a CUDA device.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float32 -> (N, C, H, W) float32 logits."""
        return self.inner(image.to(torch.float16)).float()


def _cxx_runtime(cxx: str) -> str:
    """How ``cxx`` links libstdc++ into a shared library: "dynamic", "static", "none" or an error."""
    from qtseg.backends.elf import read_dynamic

    with tempfile.TemporaryDirectory(prefix="qtseg-cxx-") as tmp:
        src, lib = Path(tmp) / "probe.cpp", Path(tmp) / "probe.so"
        src.write_text(PROBE_SOURCE)
        try:
            run = subprocess.run(
                [cxx, "-shared", "-fPIC", str(src), "-o", str(lib)],
                capture_output=True, text=True, timeout=120, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"cannot run ({exc})"
        if run.returncode != 0 or not lib.is_file():
            return f"cannot build a shared library (exit {run.returncode})"
        with lib.open("rb") as f:
            return read_dynamic(f).cxx_runtime


@functools.cache
def package_compiler() -> str:
    """The C++ compiler AOTInductor packages are built with (see the module doc).

    Raises:
        RuntimeError: no compiler here links libstdc++ into shared libraries dynamically.
    """
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        candidates = [get_cpp_compiler()]
    except Exception:  # noqa: BLE001 - Inductor's own choice is missing: try the PATH
        candidates = []
    candidates += [c for c in (shutil.which(n) for n in ("g++", "c++", "clang++")) if c]
    tried: list[str] = []
    for cxx in dict.fromkeys(candidates):
        runtime = _cxx_runtime(cxx)
        if runtime == "dynamic":
            return cxx
        tried.append(f"{cxx}: {runtime}")
    raise RuntimeError(
        "no C++ compiler here links libstdc++ dynamically into shared libraries, which "
        f"AOTInductor packages need ({'; '.join(tried) or 'none found'}); install g++ or set CXX"
    )


def compile_package(program: Any, path: Path, metadata: dict[str, str]) -> str:
    """``aoti_compile_and_package`` with :func:`package_compiler`; returns the compiler used.

    Raises:
        RuntimeError: the built library still carries its own libstdc++.
    """
    cxx = package_compiler()
    torch._inductor.aoti_compile_and_package(
        program,
        package_path=str(path),
        inductor_configs={"aot_inductor.metadata": metadata, "cpp.cxx": (cxx,)},
    )
    member, runtime = package_library(path)
    if runtime == "static":
        raise RuntimeError(
            f"{Path(member).name} was linked with its own copy of libstdc++ by {cxx}; "
            "the AOTInductor loader would crash on it"
        )
    return cxx


def target_device(target: Target) -> str:
    """The device kind ``target`` compiles for (its table row's ``device``)."""
    return target.device or "cpu"


def for_device(device: str, precision: str = "fp32") -> Target:
    """The AOTInductor row of the target table for ``device`` (``cpu``/``cuda``) and ``precision``.

    ``("cpu", "fp32")`` is ``aoti``; the CUDA ones are ``aoti-cuda`` and ``aoti-cuda-fp16``.

    Raises:
        ValueError: unknown device, or fp16 on CPU.
    """
    if device not in DEVICES:
        raise ValueError(f"AOTInductor device must be one of {', '.join(DEVICES)}, got {device!r}")
    if precision not in ("fp32", "fp16") or (precision == "fp16" and device != "cuda"):
        raise ValueError(
            f"AOTInductor precision {precision!r} is not offered for {device} "
            "(cpu: fp32; cuda: fp32, fp16)"
        )
    if device == "cpu":
        return TARGETS["aoti"]
    return TARGETS["aoti-cuda" + ("-fp16" if precision == "fp16" else "")]


def _check_toolchain(device: str) -> None:
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"an AOTInductor CUDA package must be compiled on a machine with a CUDA GPU "
                f"(this torch {torch.__version__} sees none)"
            )
        return
    compilers = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
    if not any(c and shutil.which(c) for c in compilers):
        raise RuntimeError(
            "AOTInductor compiles C++ for CPU packages: install g++ or clang++ (or set CXX)"
        )


def _module_for(job: ExportJob, device: str, precision: str) -> nn.Module:
    """The eval-mode wrapper on ``device``; the job's own model stays on CPU for the reference."""
    if device == "cpu":
        return prepare(job.model)
    wrapper = prepare(prepare_model(job.model, CUDA_OPTIONS, device))  # a transformed copy
    return Fp16Compute(wrapper.half()).eval() if precision == "fp16" else wrapper


def export_program(job: ExportJob, device: str, precision: str) -> Any:
    """``torch.export`` of the job's model: ``(N, 3, H, W) -> (N, C, H, W)``.

    The batch dimension is free (1..``dynamic_batch``) when the job asks for
    a dynamic batch, else static.
    """
    io = job.io_spec
    if io.dynamic_hw:
        raise ValueError("AOTInductor targets take a fixed height/width (no --dynamic-hw)")
    module = _module_for(job, device, precision)
    example = io.example_input().to(device)
    dynamic = None
    if io.dynamic_batch:
        dynamic = ({0: torch.export.Dim("batch", min=1, max=job.options.dynamic_batch)},)
    with torch.no_grad():
        program = torch.export.export(module, (example,), dynamic_shapes=dynamic, strict=False)
    assert_eval(module)
    return program


def _output_shape(program: Any) -> tuple[int, ...]:
    """Output shape of an exported program; symbolic dimensions -> -1."""
    node = next(n for n in program.graph.nodes if n.op == "output")
    value = node.args[0][0].meta["val"]
    return tuple(int(d) if isinstance(d, int) else -1 for d in value.shape)


def package_metadata(
    job: ExportJob, target: Target, inputs: TensorMeta, outputs: TensorMeta
) -> dict[str, str]:
    """``qtseg.*`` string metadata stored inside the package (read by both backends)."""
    max_batch = job.options.dynamic_batch if job.io_spec.dynamic_batch else job.options.batch
    items = {
        "model": job.model_name,
        "target": target.name,
        "precision": target.precision,
        "input": json.dumps(inputs.to_dict()),
        "output": json.dumps(outputs.to_dict()),
        "max_batch": str(max_batch),
        "config_hash": config_hash(job.model_name, job.info.config),
        "checkpoint_sha256": job.info.weights_sha256,
        "preprocess": json.dumps(job.spec.to_dict(), sort_keys=True),
    }
    return {META_PREFIX + k: v for k, v in items.items()}


def build(job: ExportJob, target: Target, staging: Path) -> BuildResult:
    """Export, compile and package ``target`` into ``staging/model.pt2``.

    The parity check runs the package through :class:`AotiBackend` on the
    target's device (``NotExecutableHere`` on a machine without it).
    """
    device, precision = target_device(target), target.precision
    _check_toolchain(device)
    with job.progress.step(f"torch.export ({job.batch_label()}, {device}, {precision})"):
        program = export_program(job, device, precision)
    batch = -1 if job.io_spec.dynamic_batch else job.options.batch
    h, w = job.spec.input_size
    inputs = TensorMeta(INPUT_NAME, (batch, 3, h, w), "float32")
    out_shape = _output_shape(program)
    if out_shape[1:] != (job.spec.num_classes, h, w):
        raise RuntimeError(
            f"exported model returns {list(out_shape)}, "
            f"expected (N, {job.spec.num_classes}, {h}, {w})"
        )
    outputs = TensorMeta(OUTPUT_NAME, (batch, *out_shape[1:]), "float32")
    metadata = package_metadata(job, target, inputs, outputs)
    path = staging / PACKAGE
    start = time.perf_counter()
    with job.progress.step(f"AOTInductor compile + package for {device} (minutes on CPU)"):
        cxx = compile_package(program, path, metadata)
    seconds = time.perf_counter() - start
    built = read_package_metadata(path)

    def open_package() -> Any:
        from qtseg.backends.aoti_backend import AotiBackend

        return AotiBackend(path, device=device, precision=precision, inputs=[inputs])

    where = (
        f"cuda (sm {built.get('AOTI_COMPUTE_CAPABILITY') or '?'})"
        if device == "cuda"
        else (f"CPU ({built.get('AOTI_CPU_ISA') or 'no vector ISA'})")
    )
    details = {
        "aoti": {
            "device": device,
            "cpu_isa": built.get("AOTI_CPU_ISA") or None,
            "compute_capability": built.get("AOTI_COMPUTE_CAPABILITY") or None,
            "torch": torch.__version__,
            "exporter": "torch.export.export (non-strict) + aoti_compile_and_package",
            "cxx": cxx,
            "model_transforms": [] if device == "cpu" else ["fold_bn", "math_attention"],
            "fp16_weights": precision == "fp16",
            "max_batch": int(metadata[META_PREFIX + "max_batch"]),
            "compile_seconds": round(seconds, 1),
            "size_bytes": path.stat().st_size,
        }
    }
    return BuildResult(
        files={"model": PACKAGE},
        inputs=[inputs],
        outputs=[outputs],
        checks=[ParityCheck(f"{PACKAGE} on AOTInductor {where}", open_package)],
        details=details,
        built=f"AOTInductor package for {where} written",
    )


def export_aoti(
    checkpoint: str | Path | None = None,
    *,
    out: str | Path = "exports",
    device: str = "cpu",
    precision: str = "fp32",
    imgsz: int | None = None,
    batch: int = 1,
    dynamic_batch: int = 0,
    samples: str | None = None,
    num_samples: int = 8,
    verify: bool = True,
    quiet: bool = False,
) -> TargetOutcome:
    """Export one AOTInductor artifact to ``out/<model>_<target>/`` (Python API).

    Same pipeline as ``qtseg-export --target aoti`` (staging directory, parity
    gate against PyTorch FP32 on the sample images, manifest), with a choice
    of device; e.g. on a GPU machine::

        from qtseg.export.aoti import export_aoti
        outcome = export_aoti("ckpt/", device="cuda", out="exports")

    Args:
        checkpoint: checkpoint directory (default: the bundled one).
        device: ``"cpu"`` or ``"cuda"`` (compile on a machine with that device).
        precision: ``"fp32"``, or ``"fp16"`` (CUDA only: autocast inside,
            float32 I/O, FP16 parity thresholds).
        imgsz: square input size (multiple of 32); default: the checkpoint's.
        batch, dynamic_batch: static batch, or dynamic batch 1..``dynamic_batch``.
        samples, num_samples, verify: parity gate images / count / on-off.

    Returns:
        The pipeline's :class:`TargetOutcome` (``status`` ``"ok"`` or ``"failed"``).
    """
    target = for_device(device, precision)
    model, spec, info = load_checkpoint(
        Path(checkpoint) if checkpoint else qtseg.DEFAULT_CHECKPOINT
    )
    if imgsz is not None:
        spec = dataclasses.replace(spec, input_size=(imgsz, imgsz))
    options = ExportOptions(
        batch=batch,
        dynamic_batch=dynamic_batch,
        samples=samples,
        num_samples=num_samples,
        verify=verify,
    )
    job = ExportJob(model, spec, info, options, progress=Progress(quiet=quiet))
    try:
        return export_target(job, target, Path(out))
    finally:
        job.close()


__all__ = [
    "DEVICES",
    "PACKAGE",
    "build",
    "compile_package",
    "export_aoti",
    "export_program",
    "for_device",
    "package_compiler",
    "target_device",
]
