"""TensorRT / TensorRT-RTX engine runner with cuda-python device buffers.

The same code runs engines of ``tensorrt`` (10.x, 11.x) and ``tensorrt_rtx``:
deserialize, create an execution context, set the input shape, bind device
addresses with ``set_tensor_address``, ``execute_async_v3`` on a CUDA stream,
copy back, synchronize. Device memory goes through ``cuda.bindings.runtime``.

Before touching the engine the constructor asks the CUDA runtime for a
device; without one it raises :class:`NotExecutableHere` with the CUDA error,
so no caller ever gets numbers that did not come from the engine.
"""

from __future__ import annotations

import importlib
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

LIBRARIES = ("tensorrt", "tensorrt_rtx")
_TRT_HINT = "NVIDIA's tensorrt wheel, see docs/export.md"


def import_tensorrt(library: str) -> Any:
    """Import ``tensorrt`` or ``tensorrt_rtx``; :class:`BackendUnavailable` if missing."""
    if library not in LIBRARIES:
        raise BackendError(f"unknown TensorRT library {library!r}; expected one of {LIBRARIES}")
    try:
        return importlib.import_module(library)
    except ImportError:
        if library == "tensorrt":
            raise BackendUnavailable("TensorRT", "trt", f"needs {_TRT_HINT}") from None
        raise BackendUnavailable("tensorrt_rtx", "trt") from None


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime
    except ImportError:
        raise BackendUnavailable("cuda-python", "trt") from None
    return runtime


def _check(result: tuple[Any, ...], what: str) -> Any:
    """Unpack a cuda-python ``(err, *values)`` tuple, raising on error."""
    err = result[0]
    if int(err) != 0:
        raise BackendError(f"CUDA error in {what}: {getattr(err, 'name', err)}")
    return result[1] if len(result) == 2 else result[1:]


def cuda_device_problem() -> str | None:
    """``None`` when a CUDA device is usable, else the reason it is not."""
    try:
        cudart = _cudart()
    except BackendUnavailable as exc:
        return str(exc)
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0:
        return f"no usable CUDA device ({getattr(err, 'name', err)})"
    if count == 0:
        return "no CUDA device"
    return None


def gpu_description(index: int = 0) -> str:
    """``"NVIDIA H100 80GB HBM3, sm_90"`` for CUDA device ``index``."""
    cudart = _cudart()
    props = _check(cudart.cudaGetDeviceProperties(index), "cudaGetDeviceProperties")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return f"{name.rstrip(chr(0))}, sm_{props.major}{props.minor}"


class DeviceBuffer:
    """One ``cudaMalloc`` allocation, grown on demand."""

    def __init__(self, cudart: Any) -> None:
        self._cudart = cudart
        self.ptr = 0
        self.nbytes = 0

    def ensure(self, nbytes: int) -> int:
        """Make the buffer at least ``nbytes`` long; return its device address."""
        if nbytes > self.nbytes:
            self.free()
            self.ptr = int(_check(self._cudart.cudaMalloc(nbytes), "cudaMalloc"))
            self.nbytes = nbytes
        return self.ptr

    def free(self) -> None:
        """Release the allocation (idempotent)."""
        if self.ptr:
            self._cudart.cudaFree(self.ptr)
            self.ptr = 0
            self.nbytes = 0


class TensorRTBackend(Backend):
    """Run a serialized engine (``model.engine``) on a CUDA GPU.

    Arguments:
        engine: path of the serialized engine.
        library: ``"tensorrt"`` or ``"tensorrt_rtx"`` (the library that built it).
        device: ``"cuda"`` or ``"cuda:N"``.
        precision: precision label reported by :meth:`describe`.

    Raises:
        BackendUnavailable: the TensorRT library or cuda-python is missing.
        NotExecutableHere: no usable CUDA device on this machine.
        BackendError: the engine cannot be deserialized here.
    """

    name = "tensorrt"

    def __init__(
        self,
        engine: str | Path,
        *,
        library: str = "tensorrt",
        device: str = "cuda",
        precision: str = "fp32",
    ) -> None:
        trt = import_tensorrt(library)
        cudart = _cudart()
        super().__init__(artifact=engine, precision=precision)
        self.name = library
        self._trt = trt
        self._cudart = cudart
        self._buffers: dict[str, DeviceBuffer] = {}
        self._stream = None
        problem = cuda_device_problem()
        if problem is not None:
            raise NotExecutableHere(problem)
        if not device.startswith("cuda"):
            raise BackendError(f"TensorRT engines run on CUDA devices, not {device!r}")
        self.device_index = int(device.split(":")[1]) if ":" in device else 0
        _check(cudart.cudaSetDevice(self.device_index), "cudaSetDevice")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(Path(engine).read_bytes())
        if self.engine is None:
            # built by another TensorRT version or for another GPU: valid, but not runnable here
            raise NotExecutableHere(
                f"{library} could not deserialize {engine} (built by another TensorRT version, "
                "or for a GPU architecture this device does not have?)"
            )
        self.context = self.engine.create_execution_context()
        self._stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._input_names = [n for n in names if self._is_input(n)]
        self._output_names = [n for n in names if not self._is_input(n)]
        if len(self._input_names) != 1 or not self._output_names:
            raise BackendError(f"expected one input and at least one output, got {names}")
        self._buffers = {n: DeviceBuffer(cudart) for n in names}

    def _is_input(self, name: str) -> bool:
        return self.engine.get_tensor_mode(name) == self._trt.TensorIOMode.INPUT

    def _meta(self, name: str) -> TensorMeta:
        dtype = np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name))).name
        return TensorMeta(name, tuple(int(d) for d in self.engine.get_tensor_shape(name)), dtype)

    def input_metadata(self) -> list[TensorMeta]:
        return [self._meta(n) for n in self._input_names]

    def output_metadata(self) -> list[TensorMeta]:
        """Outputs of the engine (``-1`` where the shape is dynamic)."""
        return [self._meta(n) for n in self._output_names]

    def _infer(self, x: np.ndarray) -> np.ndarray:
        cudart, ctx, stream = self._cudart, self.context, self._stream
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        name = self._input_names[0]
        host_in = np.ascontiguousarray(x.astype(self._meta(name).dtype, copy=False))
        if not ctx.set_input_shape(name, tuple(host_in.shape)):
            raise BackendError(f"engine rejected input shape {host_in.shape} (outside its profile?)")
        ptr = self._buffers[name].ensure(host_in.nbytes)
        _check(cudart.cudaMemcpyAsync(ptr, host_in.ctypes.data, host_in.nbytes, h2d, stream), "H2D copy")
        ctx.set_tensor_address(name, ptr)
        outputs = {}
        for out_name in self._output_names:
            shape = tuple(int(d) for d in ctx.get_tensor_shape(out_name))
            dtype = np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(out_name)))
            host = np.empty(shape, dtype=dtype)
            ctx.set_tensor_address(out_name, self._buffers[out_name].ensure(max(host.nbytes, 1)))
            outputs[out_name] = host
        if not ctx.execute_async_v3(stream):
            raise BackendError("execute_async_v3 failed")
        for out_name, host in outputs.items():
            ptr = self._buffers[out_name].ptr
            _check(cudart.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, d2h, stream), "D2H copy")
        _check(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        return outputs[self._output_names[0]].astype(np.float32, copy=False)

    def _describe(self) -> dict[str, Any]:
        return {
            "device": f"cuda:{self.device_index} ({gpu_description(self.device_index)})",
            "versions": {self.name: self._trt.__version__},
        }

    def _close(self) -> None:
        for buf in self._buffers.values():
            buf.free()
        if self._stream is not None:
            self._cudart.cudaStreamDestroy(self._stream)
            self._stream = None
