"""The Backend base class: input checks, describe, context manager, errors."""

from __future__ import annotations

import numpy as np
import pytest

from qtseg.backends import BackendError, BackendUnavailable, NotExecutableHere, TensorMeta
from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend


def test_input_checks_name_the_problem(conv_onnx, batch):
    with OnnxRuntimeBackend(conv_onnx) as be:
        with pytest.raises(ValueError, match="float32"):
            be.infer(batch.astype(np.float64))
        with pytest.raises(ValueError, match="4 dims"):
            be.infer(batch[0])
        with pytest.raises(ValueError, match=r"axis 2 differs"):
            be.infer(np.zeros((1, 3, 64, 32), np.float32))
        with pytest.raises(TypeError, match="numpy array"):
            be.infer(batch.tolist())
        with pytest.raises(ValueError, match="empty batch"):
            be.infer(np.zeros((0, 3, 32, 32), np.float32))


def test_non_contiguous_input_is_accepted(conv_onnx, batch):
    with OnnxRuntimeBackend(conv_onnx) as be:
        flipped = batch[:, :, ::-1, :]
        assert not flipped.flags.c_contiguous
        np.testing.assert_array_equal(be.infer(flipped), be.infer(np.ascontiguousarray(flipped)))


def test_closed_backend_refuses(conv_onnx, batch):
    be = OnnxRuntimeBackend(conv_onnx)
    with be:
        be.infer(batch)
        assert be.last_infer_s > 0
    with pytest.raises(BackendError, match="closed"):
        be.infer(batch)


def test_describe_has_the_contract_keys(conv_onnx):
    with OnnxRuntimeBackend(conv_onnx, precision="fp16") as be:
        info = be.describe()
    assert {"backend", "precision", "device", "artifact", "versions"} <= set(info)
    assert info["backend"] == "onnxruntime" and info["precision"] == "fp16"
    assert "onnxruntime" in info["versions"]


def test_error_messages():
    err = BackendUnavailable("openvino", "openvino")
    assert str(err) == "openvino is not installed: pip install 'qtseg[openvino]'"
    assert str(NotExecutableHere("no CUDA device")) == "not executable here: no CUDA device"


def test_tensor_meta_roundtrip():
    meta = TensorMeta("image", (-1, 3, 512, 512), "float32")
    assert TensorMeta.from_dict(meta.to_dict()) == meta
    assert meta.to_dict() == {"name": "image", "shape": [-1, 3, 512, 512], "dtype": "float32"}
