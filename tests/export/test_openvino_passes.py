"""OpenVINO graph rewrites: same numbers, fewer transposes (on real tiny models, run by OpenVINO)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino")


def _layernorm2d_onnx(path, *, last_perm=(0, 3, 1, 2)) -> tuple[np.ndarray, np.ndarray]:
    """``image (1, 8, 6, 6) -> Transpose -> LayerNormalization(C) -> Transpose -> logits``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    gamma = rng.uniform(0.5, 1.5, 8).astype(np.float32)
    beta = rng.normal(size=8).astype(np.float32)
    out_shape = [1, 8, 6, 6] if tuple(last_perm) == (0, 3, 1, 2) else [1, 6, 8, 6]
    graph = helper.make_graph(
        [
            helper.make_node("Transpose", ["image"], ["nhwc"], perm=[0, 2, 3, 1], name="/model/norm/Transpose"),
            helper.make_node("LayerNormalization", ["nhwc", "gamma", "beta"], ["normed"], axis=-1,
                             epsilon=1e-6, name="/model/norm/norm/LayerNormalization"),
            helper.make_node("Transpose", ["normed"], ["logits"], perm=list(last_perm),
                             name="/model/norm/Transpose_1"),
        ],
        "ln2d",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 8, 6, 6])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(gamma, "gamma"), numpy_helper.from_array(beta, "beta")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return gamma, beta


def _run(model, x: np.ndarray) -> np.ndarray:
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return np.array(compiled.create_infer_request().infer({0: x})[compiled.outputs[0]])


def _types(model) -> list[str]:
    return [op.get_type_name() for op in model.get_ordered_ops()]


def test_channel_layernorm_loses_its_transposes_and_keeps_its_numbers(tmp_path):
    import openvino as ov

    from qtseg.export.openvino_passes import channel_layernorm_to_mvn

    gamma, beta = _layernorm2d_onnx(tmp_path / "ln.onnx")
    original = ov.convert_model(str(tmp_path / "ln.onnx"))
    model = original.clone()
    assert _types(original).count("Transpose") == 2
    assert channel_layernorm_to_mvn(model) == 1
    assert "Transpose" not in _types(model) and "MVN" in _types(model)
    assert model.outputs[0].get_any_name() == "logits"  # the output keeps its name
    names = {op.get_friendly_name() for op in model.get_ordered_ops()}
    assert {"/model/norm/norm/LayerNormalization", "/model/norm/norm/LayerNormalization/MVN"} <= names
    x = np.random.default_rng(1).normal(size=(1, 8, 6, 6)).astype(np.float32)
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    reference = (x - mean) / np.sqrt(var + 1e-6) * gamma[:, None, None] + beta[:, None, None]
    got, before = _run(model, x), _run(original, x)
    np.testing.assert_allclose(got, before, atol=1e-5)
    np.testing.assert_allclose(got, reference, atol=1e-4)


def test_other_transpose_patterns_are_left_alone(tmp_path):
    import openvino as ov

    from qtseg.export.openvino_passes import channel_layernorm_to_mvn

    _layernorm2d_onnx(tmp_path / "other.onnx", last_perm=(0, 1, 3, 2))  # not the inverse permutation
    model = ov.convert_model(str(tmp_path / "other.onnx"))
    before = _types(model)
    assert channel_layernorm_to_mvn(model) == 0 and _types(model) == before
