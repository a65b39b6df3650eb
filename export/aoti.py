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
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from qtseg.export.job import BuildResult, ExportJob, ParityCheck, Progress, TargetOutcome
from qtseg.export.options import ExportOptions
from qtseg.export.pipeline import export_target
from qtseg.export.target import Target
from qtseg.export.targets import TARGETS
from qtseg.export.wrapper import INPUT_NAME, OUTPUT_NAME, assert_eval, prepare
from torch import nn

import qtseg
from qtseg.backends.aoti_backend import META_PREFIX, read_package_metadata
from qtseg.backends.base import TensorMeta
from qtseg.checkpoint import load_checkpoint
from qtseg.provenance import config_hash

PACKAGE = "model.pt2"
DEVICES = ("cpu", "cuda")


class Fp16Compute(nn.Module):
    """float32 image in, float32 logits out, CUDA autocast (float16) inside.

    Autocast keeps reductions and normalisations (softmax, layer norm, ...) in
    FP32, unlike casting the whole model to half.

    Arguments:
        inner: the eval-mode export wrapper, on a CUDA device.
    """

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float32 -> (N, C, H, W) float32 logits."""
        with torch.autocast(device_type="cuda", dtype=torch.float16):
            logits = self.inner(image)
        return logits.float()


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
    model = job.model if device == "cpu" else copy.deepcopy(job.model)
    wrapper = prepare(model).to(device)
    return Fp16Compute(wrapper).eval() if precision == "fp16" else wrapper


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
        torch._inductor.aoti_compile_and_package(
            program, package_path=str(path), inductor_configs={"aot_inductor.metadata": metadata}
        )
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
            "autocast_fp16": precision == "fp16",
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
    "export_aoti",
    "export_program",
    "for_device",
    "target_device",
]
