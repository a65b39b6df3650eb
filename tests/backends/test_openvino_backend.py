"""OpenVINO backend on a real tiny graph (ONNX and IR)."""

from __future__ import annotations

import numpy as np
import pytest

from qtseg.backends import BackendError
from qtseg.backends.openvino_backend import OpenVINOBackend

from .conftest import reference_conv

pytestmark = pytest.mark.openvino


def test_onnx_and_ir_match_pytorch(tmp_path, conv_onnx, batch):
    import openvino as ov

    xml = tmp_path / "model.xml"
    ov.save_model(ov.convert_model(str(conv_onnx)), str(xml), compress_to_fp16=False)
    for path in (conv_onnx, xml):
        with OpenVINOBackend(path) as be:
            meta = be.input_metadata()[0]
            assert meta.name == "image" and meta.shape == (-1, 3, 32, 32) and meta.dtype == "float32"
            out = be.infer(batch)
            assert be.describe()["config"] == {"INFERENCE_PRECISION_HINT": "f32"}
        np.testing.assert_allclose(out, reference_conv(batch), atol=1e-5)


def test_unknown_device(conv_onnx):
    with pytest.raises(BackendError, match="not available"):
        OpenVINOBackend(conv_onnx, device="npu9")
