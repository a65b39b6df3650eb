"""OpenVINO backend: an IR (``model.xml`` + ``model.bin``) or an ONNX file.

Also the one place that asks OpenVINO's CPU plugin what this CPU computes
natively (:func:`cpu_capabilities`, :func:`precision_problem`): the export
table, the INT8 builder and this backend decide bf16 from it.
"""

from __future__ import annotations

import functools
import queue
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from qtseg.backends.base import (
    Backend,
    BackendError,
    BackendUnavailable,
    NotExecutableHere,
    TensorMeta,
)
from qtseg.manifest import INFERENCE_PRECISION

# Inference precisions that need a native instruction set, and the entry of the CPU
# plugin's OPTIMIZATION_CAPABILITIES that says it is there (f32 always is).
NATIVE_CAPABILITY = {"bf16": "BF16", "f16": "FP16"}


@functools.cache
def cpu_capabilities() -> tuple[str, ...]:
    """OpenVINO CPU plugin's ``OPTIMIZATION_CAPABILITIES``, e.g. ``("BF16", "FP32", "INT8", ...)``.

    The plugin derives them from the CPU's instruction sets when it loads
    (``BF16`` needs AVX512_BF16 or AMX-BF16; ``OV_CPU_MAX_ISA`` caps what it
    sees). Cached per process, as the plugin's answer is.
    """
    try:
        import openvino as ov
    except ImportError:
        raise BackendUnavailable("openvino", "openvino") from None
    return tuple(str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


_PROBE = (
    "import openvino as ov; "
    "print(','.join(map(str, ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'))))"
)


@functools.cache
def cpu_capabilities_isolated() -> tuple[str, ...]:
    """:func:`cpu_capabilities` asked in a child process, so this process never imports OpenVINO.

    For planning an export (validation imports no runtime); the child sees the
    same environment (``OV_CPU_MAX_ISA`` included). ``()`` when OpenVINO cannot
    answer (not installed: the target's own check says so).
    """
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                             timeout=120, check=True)
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(c for c in out.stdout.strip().split(",") if c)


def precision_problem(hint: str, capabilities: tuple[str, ...] | None = None) -> str | None:
    """Why this CPU cannot run inference precision ``hint`` natively, or ``None`` when it can.

    On a CPU without native bf16 OpenVINO would not run what a bf16 artifact
    was verified at: it emulates bf16 on AVX-512 (slower than f32) or computes
    something else; so a bf16 hint is refused there instead.

    Args:
        hint: an ``INFERENCE_PRECISION_HINT`` value (``f32``, ``bf16``, ``f16``).
        capabilities: the plugin's capabilities (default: :func:`cpu_capabilities`).
    """
    needed = NATIVE_CAPABILITY.get(hint)
    caps = cpu_capabilities() if capabilities is None and needed else capabilities or ()
    if needed is None or needed in caps:
        return None
    return (f"inference precision {hint} needs native {needed} support, and OpenVINO's CPU plugin "
            f"does not list {needed} on this CPU (OPTIMIZATION_CAPABILITIES: "
            f"{', '.join(caps) or 'unknown'}; {hint} needs AVX512_{needed} or AMX)")


def fastest_float_precision() -> str:
    """``"bf16"`` where this CPU runs it natively, else ``"f32"`` (the float parts of an INT8 IR)."""
    return "f32" if precision_problem("bf16") else "bf16"


def _meta(port: Any) -> TensorMeta:
    shape = tuple(d.get_length() if d.is_static else -1 for d in port.get_partial_shape())
    return TensorMeta(port.get_any_name(), shape, str(port.get_element_type().to_dtype()))


class OpenVINOBackend(Backend):
    """Compile and run a model with OpenVINO.

    Arguments:
        model: ``model.xml`` (weights beside it), an ``.onnx`` file, or an
            in-memory ``openvino.Model``.
        device: OpenVINO device name, e.g. ``"cpu"``, ``"gpu"``, ``"npu"``.
        precision: precision label reported by :meth:`describe`.
        inference_precision: ``INFERENCE_PRECISION_HINT``. Default ``"f32"``:
            on CPUs with AMX/AVX512-BF16 OpenVINO otherwise computes in bf16,
            which would make an FP32 IR fail parity for a reason unrelated to
            the artifact. Pass ``None`` to keep the device default.
        properties: OpenVINO compile properties applied verbatim after
            ``inference_precision`` (an artifact's ``runtime.properties``,
            which always state ``INFERENCE_PRECISION_HINT``).
        threads: ``INFERENCE_NUM_THREADS`` (0 = runtime default).

    Thread safety: one OpenVINO infer request runs one inference at a time,
    so each :meth:`infer` call takes an idle request from a pool (creating
    one when all are busy) and copies the logits out before returning it.
    Concurrent calls run in parallel on the one compiled model and each gets
    exactly its own result; the pool grows to the peak number of concurrent
    calls.

    Raises:
        NotExecutableHere: the inference precision asked for (bf16, f16) is not
            native on this CPU (:func:`precision_problem`).
    """

    name = "openvino"

    def __init__(
        self,
        model: str | Path,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        inference_precision: str | None = "f32",
        properties: Mapping[str, str] | None = None,
        threads: int = 0,
    ) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise BackendUnavailable("openvino", "openvino") from None
        in_memory = isinstance(model, ov.Model)
        super().__init__(artifact=None if in_memory else model, precision=precision)
        self._ov = ov
        self.device = device.upper()
        core = ov.Core()
        if self.device.split(".")[0] not in {d.split(".")[0] for d in core.available_devices}:
            raise BackendError(
                f"openvino device {self.device!r} not available; available: {core.available_devices}"
            )
        config: dict[str, Any] = {}
        if inference_precision is not None and self.device == "CPU":
            config["INFERENCE_PRECISION_HINT"] = inference_precision
        config.update({str(k): str(v) for k, v in (properties or {}).items()})
        if self.device == "CPU" and config.get(INFERENCE_PRECISION):
            problem = precision_problem(str(config[INFERENCE_PRECISION]))
            if problem:
                raise NotExecutableHere(problem)
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        where = "the in-memory model" if in_memory else str(model)
        try:
            self.model = model if in_memory else core.read_model(str(model))
            self.compiled = core.compile_model(self.model, self.device, config)
        except RuntimeError as exc:
            raise BackendError(f"openvino could not load {where}: {str(exc).splitlines()[0]}") from None
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._idle.put(self.compiled.create_infer_request())
        self._config = config
        self._inputs = [_meta(p) for p in self.model.inputs]
        self._outputs = [_meta(p) for p in self.model.outputs]

    def input_metadata(self) -> list[TensorMeta]:
        return list(self._inputs)

    def output_metadata(self) -> list[TensorMeta]:
        """Outputs of the loaded model."""
        return list(self._outputs)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self.compiled.create_infer_request()
        try:
            result = request.infer({0: x})
            # a copy: the request's output tensor is overwritten by its next inference
            return np.array(result[self.compiled.outputs[0]], dtype=np.float32, copy=True)
        finally:
            self._idle.put(request)

    def compiled_property(self, name: str) -> str:
        """A property of the compiled model as OpenVINO reports it (``INFERENCE_PRECISION_HINT`` -> ``"f32"``)."""
        value = self.compiled.get_property(name)
        return value.to_string() if isinstance(value, self._ov.Type) else str(value)

    def _describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "device": self.device,
            "config": dict(self._config),
            "versions": {"openvino": self._ov.get_version()},
        }
        if self.device == "CPU":
            info["inference_precision"] = self.compiled_property(INFERENCE_PRECISION)
            info["cpu_capabilities"] = list(cpu_capabilities())
        return info
