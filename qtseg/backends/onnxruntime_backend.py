"""ONNX Runtime backend (CPU by default, CUDA when the GPU build is installed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from qtseg.backends.base import Backend, BackendError, BackendUnavailable, TensorMeta

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}
_DEVICE_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def _shape(dims: list[Any]) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in dims)


class OnnxRuntimeBackend(Backend):
    """Run an ``.onnx`` file with ONNX Runtime.

    Arguments:
        model: path of the ``.onnx`` file, its serialized bytes, or an
            in-memory ``onnx.ModelProto``.
        device: ``"cpu"`` or ``"cuda"`` (needs ``onnxruntime-gpu``).
        precision: precision label reported by :meth:`describe`.
        threads: intra-op threads (0 = runtime default).
        optimize: apply ONNX Runtime's full graph optimizations (default on).
        session_config: ``SessionOptions`` config entries, e.g. the
            ``onnxruntime.session_config`` an INT8 artifact's manifest
            records (``open_backend`` passes it on).
    """

    name = "onnxruntime"

    def __init__(
        self,
        model: str | Path | bytes | Any,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        threads: int = 0,
        optimize: bool = True,
        session_config: Mapping[str, str] | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailable("onnxruntime", "ort") from None
        on_disk = isinstance(model, (str, Path))
        super().__init__(artifact=model if on_disk else None, precision=precision)
        kind = device.split(":")[0]
        if kind not in _DEVICE_PROVIDERS:
            raise BackendError(f"onnxruntime backend: unsupported device {device!r} (cpu or cuda)")
        provider = _DEVICE_PROVIDERS[kind]
        if provider not in ort.get_available_providers():
            raise BackendUnavailable(
                "onnxruntime-gpu", "ort", f"{provider} is not in this onnxruntime build"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        self.session_config = dict(session_config or {})
        for key, value in self.session_config.items():
            options.add_session_config_entry(str(key), str(value))
        if not optimize:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        providers: list[Any] = [provider]
        if kind == "cuda" and ":" in device:
            providers = [(provider, {"device_id": int(device.split(":")[1])})]
        source = str(model) if on_disk else model if isinstance(model, bytes) else model.SerializeToString()
        where = str(model) if on_disk else "the in-memory model"
        try:
            self.session = ort.InferenceSession(source, options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's pybind errors share no base class
            raise BackendError(f"onnxruntime could not load {where}: {exc}") from None
        self._ort = ort
        self.device = device
        self._inputs = [
            TensorMeta(i.name, _shape(i.shape), _ORT_DTYPES.get(i.type, i.type))
            for i in self.session.get_inputs()
        ]
        self._outputs = [
            TensorMeta(o.name, _shape(o.shape), _ORT_DTYPES.get(o.type, o.type))
            for o in self.session.get_outputs()
        ]

    def input_metadata(self) -> list[TensorMeta]:
        return list(self._inputs)

    def output_metadata(self) -> list[TensorMeta]:
        """Outputs of the loaded graph."""
        return list(self._outputs)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        feed = x.astype(np.float16) if self._inputs[0].dtype == "float16" else x
        out = self.session.run([self._outputs[0].name], {self._inputs[0].name: feed})[0]
        return out.astype(np.float32, copy=False)

    def _describe(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "providers": self.session.get_providers(),
            "session_config": dict(self.session_config),
            "versions": {"onnxruntime": self._ort.__version__},
        }
