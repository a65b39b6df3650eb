"""Tiny real ONNX graphs for backend tests (no mocks: every runtime really runs them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def conv_weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(2, 3, 3, 3)`` and bias ``(2,)`` of the tiny model."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((2, 3, 3, 3)).astype(np.float32), rng.standard_normal(2).astype(np.float32)


def reference_conv(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """The tiny model in PyTorch: 3x3 conv, padding 1, (N, 3, H, W) -> (N, 2, H, W)."""
    import torch

    w, b = conv_weights(seed)
    out = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), padding=1)
    return out.numpy()


def make_conv_onnx(path: Path, *, batch: int | str = "batch", hw: int = 32, seed: int = 0) -> Path:
    """Write ``image (N, 3, hw, hw) -> logits (N, 2, hw, hw)`` as one Conv node."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w, b = conv_weights(seed)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w", "b"], ["logits"], pads=[1, 1, 1, 1])],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, hw, hw])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 2, hw, hw])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


def make_conv_openvino_artifact(folder: Path) -> Path:
    """An OpenVINO IR artifact folder (``model.xml``/``.bin`` + manifest) of the tiny model."""
    import openvino as ov

    from tests.artifacts import make_manifest

    folder.mkdir()
    onnx_path = make_conv_onnx(folder.parent / f"{folder.name}-source.onnx")
    ov.save_model(ov.convert_model(str(onnx_path)), str(folder / "model.xml"))
    make_manifest(folder, fmt="openvino", files={"model": "model.xml", "weights": "model.bin"})
    return folder


@pytest.fixture()
def conv_onnx(tmp_path: Path) -> Path:
    """Tiny dynamic-batch ONNX file."""
    return make_conv_onnx(tmp_path / "model.onnx")


@pytest.fixture()
def batch(tmp_path: Path) -> np.ndarray:
    """A (2, 3, 32, 32) float32 input in [0, 1]."""
    return np.random.default_rng(1).random((2, 3, 32, 32), dtype=np.float32)
