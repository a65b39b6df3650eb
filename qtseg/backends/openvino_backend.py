"""OpenVINO backend: an IR (``model.xml`` + ``model.bin``) or an ONNX file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from qtseg.backends.base import Backend, BackendError, BackendUnavailable, TensorMeta


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
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        where = "the in-memory model" if in_memory else str(model)
        try:
            self.model = model if in_memory else core.read_model(str(model))
            self.compiled = core.compile_model(self.model, self.device, config)
        except RuntimeError as exc:
            raise BackendError(f"openvino could not load {where}: {str(exc).splitlines()[0]}") from None
        self.request = self.compiled.create_infer_request()
        self._config = config
        self._inputs = [_meta(p) for p in self.model.inputs]
        self._outputs = [_meta(p) for p in self.model.outputs]

    def input_metadata(self) -> list[TensorMeta]:
        return list(self._inputs)

    def output_metadata(self) -> list[TensorMeta]:
        """Outputs of the loaded model."""
        return list(self._outputs)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        result = self.request.infer({0: x})
        return np.array(result[self.compiled.outputs[0]], dtype=np.float32)

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
            info["inference_precision"] = self.compiled_property("INFERENCE_PRECISION_HINT")
        return info
