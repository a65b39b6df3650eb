"""open_backend: manifest["format"] -> runtime through the plain table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qtseg.backends import OPENERS, BackendError, open_backend
from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend
from qtseg.backends.openvino_backend import OpenVINOBackend
from qtseg.backends.torch_backend import TorchBackend

from .conftest import make_conv_onnx, reference_conv


def _artifact(folder, fmt, files, precision="fp32"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"format": fmt, "files": files, "precision": precision}))
    return folder


def test_onnx_and_openvino_artifacts(tmp_path, batch):
    import openvino as ov

    onnx_dir = tmp_path / "a_onnx"
    onnx_dir.mkdir()
    make_conv_onnx(onnx_dir / "model.onnx")
    _artifact(onnx_dir, "onnx", {"model": "model.onnx"}, "fp16")
    ov_dir = tmp_path / "a_ov"
    ov_dir.mkdir()
    ov.save_model(ov.convert_model(str(onnx_dir / "model.onnx")), str(ov_dir / "model.xml"))
    _artifact(ov_dir, "openvino", {"model": "model.xml", "weights": "model.bin"})
    for folder, cls in ((onnx_dir, OnnxRuntimeBackend), (ov_dir, OpenVINOBackend)):
        with open_backend(folder) as be:
            assert isinstance(be, cls)
            np.testing.assert_allclose(be.infer(batch), reference_conv(batch), atol=1e-2)
    with open_backend(onnx_dir) as be:
        assert be.describe()["precision"] == "fp16"


def test_checkpoint_and_module(tiny_checkpoint):
    from qtseg.checkpoint import load_checkpoint

    with open_backend(tiny_checkpoint) as be:
        assert isinstance(be, TorchBackend)
    model, _, _ = load_checkpoint(tiny_checkpoint)
    with open_backend(model) as be:
        assert isinstance(be, TorchBackend)


def test_bad_paths_and_formats(tmp_path):
    with pytest.raises(BackendError, match="neither an artifact directory nor a qtseg checkpoint"):
        open_backend(tmp_path)
    _artifact(tmp_path / "x", "tflite", {"model": "m.tflite"})
    with pytest.raises(BackendError, match="no backend for format 'tflite'"):
        open_backend(tmp_path / "x")
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "manifest.json").write_text("{not json")
    with pytest.raises(BackendError, match="cannot read"):
        open_backend(tmp_path / "y")


def test_table_covers_the_design_formats():
    assert {"onnx", "openvino", "tensorrt", "checkpoint"} <= set(OPENERS)
