"""ONNX Runtime backend on a real tiny graph."""

from __future__ import annotations

import numpy as np
import pytest

from qtseg.backends import BackendError, TensorMeta
from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend

from .conftest import make_conv_onnx, reference_conv


def test_matches_pytorch(conv_onnx, batch):
    with OnnxRuntimeBackend(conv_onnx, threads=1) as be:
        assert be.input_metadata() == [TensorMeta("image", (-1, 3, 32, 32), "float32")]
        assert be.output_metadata() == [TensorMeta("logits", (-1, 2, 32, 32), "float32")]
        out = be.infer(batch)
    assert out.dtype == np.float32 and out.shape == (2, 2, 32, 32)
    np.testing.assert_allclose(out, reference_conv(batch), atol=1e-5)


def test_static_batch_is_enforced(tmp_path, batch):
    path = make_conv_onnx(tmp_path / "static.onnx", batch=1)
    with OnnxRuntimeBackend(path) as be:
        assert be.input_metadata()[0].shape == (1, 3, 32, 32)
        be.infer(batch[:1])
        with pytest.raises(ValueError, match="axis 0"):
            be.infer(batch)


def test_bad_file_and_device(tmp_path, conv_onnx):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BackendError, match="could not load"):
        OnnxRuntimeBackend(bad)
    with pytest.raises(BackendError, match="unsupported device"):
        OnnxRuntimeBackend(conv_onnx, device="tpu")
