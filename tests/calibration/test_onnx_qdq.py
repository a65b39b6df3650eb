"""QDQ graphs from a calibration set: ranges, scheme, float fallback, TensorRT form."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import numpy_helper

from qtseg.calibration import CalibrationError, CalibrationMethod
from qtseg.calibration.onnx_qdq import (
    calibrate_ranges,
    keep_float,
    qdq_counts,
    quantize_qdq,
    read_ranges,
    tensorrt_form,
)
from tests.calibration.conftest import random_set


def _run(model_or_path, x: np.ndarray) -> np.ndarray:
    data = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {"image": x})[0]


@pytest.fixture(scope="module")
def qdq(tiny_onnx, tmp_path_factory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("qdq")
    method = CalibrationMethod("percentile")
    calibrate_ranges(tiny_onnx, random_set(16), method, work / "r.json", workdir=work)
    quantize_qdq(tiny_onnx, work / "q.onnx", work / "r.json", method)
    return work / "q.onnx", work / "r.json"


@pytest.mark.parametrize("name", ["minmax", "entropy", "percentile"])
def test_every_method_calibrates_and_quantizes(tiny_onnx, tmp_path, name):
    method = CalibrationMethod(name)
    info = calibrate_ranges(tiny_onnx, random_set(8), method, tmp_path / "r.json", workdir=tmp_path)
    assert info["images"] == 8 and info["tensors"] > 5
    ranges = read_ranges(tmp_path / "r.json", method)
    assert all(np.isfinite(lo) and np.isfinite(hi) and lo <= hi for lo, hi in ranges.values())
    counts = quantize_qdq(tiny_onnx, tmp_path / "q.onnx", tmp_path / "r.json", method)
    assert counts["int8_compute_nodes"] == 4 and counts["float_compute_nodes"] == 0  # 3 Conv + 1 Gemm
    x = random_set(1, seed=9).x
    ref, got = _run(tiny_onnx, x), _run(tmp_path / "q.onnx", x)
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max()


def test_range_table_is_tied_to_its_method(qdq):
    with pytest.raises(ValueError, match="percentile"):
        read_ranges(qdq[1], CalibrationMethod("minmax"))


def test_scheme_is_symmetric_int8_per_channel_weights(qdq):
    model = onnx.load(str(qdq[0]))
    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    for conv in convs:
        act, weight = producers[conv.input[0]], producers[conv.input[1]]
        assert act.op_type == weight.op_type == "DequantizeLinear"
        assert numpy_helper.to_array(inits[act.input[2]]).item() == 0  # symmetric activations
        assert inits[act.input[2]].data_type == onnx.TensorProto.INT8
        w_scale = numpy_helper.to_array(inits[weight.input[1]])
        assert w_scale.shape == (numpy_helper.to_array(inits[weight.input[0]]).shape[0],)  # per output channel
        assert not numpy_helper.to_array(inits[weight.input[2]]).any()


class _TokenNet(torch.nn.Module):
    """Learned tokens as the constant first input of a MatMul, like QTSeg's decoder."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.tokens = torch.nn.Parameter(torch.randn(1, 2, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.conv(x)
        return torch.matmul(self.tokens, f.flatten(2)).reshape(1, 2, *x.shape[2:])


def test_constant_first_matmul_input_is_per_tensor(tmp_path):
    """ORT's quantizer makes constant MatMul inputs per-channel; for a constant A, ORT 1.30's QLinearMatMul refuses it."""
    torch.manual_seed(0)
    path = tmp_path / "tokens.onnx"
    torch.onnx.export(_TokenNet().eval(), (torch.rand(1, 3, 32, 32),), str(path), input_names=["image"],
                      output_names=["logits"], opset_version=17, dynamo=False)
    method = CalibrationMethod("minmax")
    calibrate_ranges(path, random_set(8), method, tmp_path / "r.json", workdir=tmp_path)
    quantize_qdq(path, tmp_path / "q.onnx", tmp_path / "r.json", method)
    model = onnx.load(str(tmp_path / "q.onnx"))
    inits = {i.name: i for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    matmul = next(n for n in model.graph.node if n.op_type == "MatMul")
    dq = producers[matmul.input[0]]
    assert dq.op_type == "DequantizeLinear" and dq.input[0] in inits
    assert numpy_helper.to_array(inits[dq.input[1]]).size == 1  # one scale: per tensor
    assert numpy_helper.to_array(inits[dq.input[2]]).item() == 0


def test_bad_calibration_set_is_refused(tiny_onnx, tmp_path):
    bad = random_set(8)
    bad.x[0, 0, 0, 0] = np.nan
    with pytest.raises(CalibrationError, match="NaN"):
        calibrate_ranges(tiny_onnx, bad, CalibrationMethod("minmax"), tmp_path / "r.json", workdir=tmp_path)
    with pytest.raises(CalibrationError, match="at least 8"):
        calibrate_ranges(tiny_onnx, random_set(3), CalibrationMethod("minmax"), tmp_path / "r.json", workdir=tmp_path)


def test_keep_float_all_nodes_is_the_fp32_graph(tiny_onnx, qdq):
    fp32 = onnx.load(str(tiny_onnx))
    restored = keep_float(onnx.load(str(qdq[0])), fp32, [n.name for n in fp32.graph.node])
    assert not any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in restored.graph.node)
    x = random_set(1, seed=3).x
    np.testing.assert_array_equal(_run(restored, x), _run(tiny_onnx, x))


def test_keep_float_one_node(tiny_onnx, qdq, tmp_path):
    fp32 = onnx.load(str(tiny_onnx))
    first = next(n.name for n in fp32.graph.node if n.op_type == "Conv")
    partial = keep_float(onnx.load(str(qdq[0])), fp32, [first])
    onnx.checker.check_model(partial)
    onnx.save(partial, str(tmp_path / "p.onnx"))
    assert qdq_counts(tmp_path / "p.onnx")["float_compute_nodes"] == 1
    x = random_set(1, seed=4).x
    ref, full, part = _run(tiny_onnx, x), _run(qdq[0], x), _run(partial, x)
    assert not np.array_equal(part, full)  # the conv really changed precision
    assert np.abs(part - ref).max() < 0.1 * np.abs(ref).max()


def test_tensorrt_form_computes_the_same_numbers(qdq):
    model = onnx.load(str(qdq[0]))
    inits = {i.name: i for i in model.graph.initializer}
    assert any(inits[n.input[0]].data_type == onnx.TensorProto.INT32 for n in model.graph.node
               if n.op_type == "DequantizeLinear" and n.input[0] in inits)  # ORT form has INT32 biases
    trt = tensorrt_form(onnx.load(str(qdq[0])))
    onnx.checker.check_model(trt)
    inits = {i.name: i for i in trt.graph.initializer}
    consumers = {i: (n.op_type, k) for n in trt.graph.node for k, i in enumerate(n.input)}
    for node in trt.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in inits:
            assert inits[node.input[0]].data_type == onnx.TensorProto.INT8
            assert consumers[node.output[0]] in {("Conv", 1), ("Gemm", 1), ("MatMul", 1), ("ConvTranspose", 1)}
    x = random_set(1, seed=5).x
    np.testing.assert_allclose(_run(trt, x), _run(qdq[0], x), atol=1e-5)
