"""The FP16 graph rewrite on a small real graph (Conv, LayerNorm, Resize, shape math)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend
from qtseg.export.onnx_fp16 import BlockList, convert_to_fp16, precision_counts

F32, F16 = TensorProto.FLOAT, TensorProto.FLOAT16


def _graph() -> onnx.ModelProto:
    """image (N,3,8,8) -> Conv -> LayerNorm over C -> shape-math Reshape -> Resize x2 -> logits (N,4,16,16)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.random(4).astype(np.float32) + 0.5, "ln_scale"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "ln_bias"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
        numpy_helper.from_array(np.ones(1, np.float32), "k"),
    ]
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["c"], pads=[1, 1, 1, 1], name="/conv/Conv"),
        helper.make_node("Transpose", ["c"], ["t"], perm=[0, 2, 3, 1], name="/t1"),
        helper.make_node("LayerNormalization", ["t", "ln_scale", "ln_bias"], ["n"], axis=-1, name="/norm/LN"),
        helper.make_node("Transpose", ["n"], ["u"], perm=[0, 3, 1, 2], name="/t2"),
        helper.make_node("Shape", ["u"], ["s"], name="/shape"),
        helper.make_node("Cast", ["s"], ["sf"], to=F32, name="/shape/to_float"),
        helper.make_node("Mul", ["sf", "k"], ["sm"], name="/shape/mul"),
        helper.make_node("Cast", ["sm"], ["si"], to=TensorProto.INT64, name="/shape/to_int"),
        helper.make_node("Reshape", ["u", "si"], ["r"], name="/reshape"),
        helper.make_node("Mul", ["r", "k"], ["rk"], name="/scale"),  # k is shared with the shape math
        helper.make_node("Resize", ["rk", "", "scales"], ["logits"], mode="linear", name="/Resize"),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("image", F32, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", F32, ["batch", 4, 16, 16])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _types(model):
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    types.update({v.name: v.type.tensor_type.elem_type for v in inferred.graph.output})
    return types


def _run(model, tmp_path, name, x):
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    with OnnxRuntimeBackend(path) as be:
        return be.infer(x)


def test_block_list_and_types(tmp_path):
    base = _graph()
    fp16 = convert_to_fp16(base, block=BlockList(op_types=("LayerNormalization",)))
    onnx.checker.check_model(fp16, full_check=True)
    types = _types(fp16)
    inits = {t.name: t.data_type for t in fp16.graph.initializer}
    assert inits["w"] == F16  # conv weight stored in FP16
    assert inits["ln_scale"] == F32 and inits["ln_bias"] == F32  # consumed by an FP32 (blocked) node
    assert inits["scales"] == F32  # Resize scales keep their type
    assert inits["k"] == F32 and types["k__fp16"] == F16  # shared with shape math: kept, cast for FP16 use
    assert types["c"] == F16 and types["n"] == F32 and types["u"] == F16 and types["sf"] == F32
    assert fp16.graph.input[0].type.tensor_type.elem_type == F32
    assert fp16.graph.output[0].type.tensor_type.elem_type == F32
    assert types["logits__fp16"] == F16  # computed in FP16, cast back for the float32 output
    assert precision_counts(fp16)["fp32"] >= 1
    x = np.random.default_rng(1).random((2, 3, 8, 8), dtype=np.float32)
    ref, got = _run(base, tmp_path, "fp32", x), _run(fp16, tmp_path, "fp16", x)
    assert np.abs(ref - got).max() < 2e-2


def test_name_patterns_and_io_fp16():
    fp16 = convert_to_fp16(_graph(), block=BlockList(name_patterns=("/conv/",)), io_fp16=True)
    types = _types(fp16)
    assert types["c"] == F32 and types["n"] == F16  # the conv scope stayed FP32, LN is FP16 now
    assert {t.name: t.data_type for t in fp16.graph.initializer}["w"] == F32
    assert fp16.graph.input[0].type.tensor_type.elem_type == F16
    assert fp16.graph.output[0].type.tensor_type.elem_type == F16


def test_input_model_is_not_modified():
    base = _graph()
    before = base.SerializeToString()
    convert_to_fp16(base)
    assert base.SerializeToString() == before


@pytest.mark.parametrize("block", [BlockList(), BlockList(op_types=("LayerNormalization",))])
def test_conversion_is_deterministic(block):
    a = convert_to_fp16(_graph(), block=block).SerializeToString(deterministic=True)
    b = convert_to_fp16(_graph(), block=block).SerializeToString(deterministic=True)
    assert a == b
