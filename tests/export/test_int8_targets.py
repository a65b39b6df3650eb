"""INT8 target rows, options and the TensorRT fallback's error parsing (no runtime work)."""

from __future__ import annotations

import argparse

import onnx
import pytest
from onnx import TensorProto, helper

from qtseg.evaluation import THRESHOLDS
from qtseg.export.int8_context import job_int8_options
from qtseg.export.int8_tensorrt import nodes_named_in
from qtseg.export.options import (
    Int8Options,
    Int8SetupError,
    add_int8_arguments,
    int8_options_from_args,
)
from qtseg.export.target import GRAPH_KEYS
from qtseg.export.targets import INT8_TARGETS


def test_int8_rows_are_ordinary_targets():
    names = [t.name for t in INT8_TARGETS]
    assert names == ["onnx-int8", "openvino-int8", "trt-int8", "trtrtx-int8"]
    for t in INT8_TARGETS:
        assert t.precision == "int8" and t.precision in THRESHOLDS
        assert t.requires_calibration and t.graph == "fp32" and t.graph in GRAPH_KEYS
        assert t.format in ("onnx", "openvino", "tensorrt")
    assert {t.runtime for t in INT8_TARGETS if t.format == "tensorrt"} == {"tensorrt", "tensorrt_rtx"}
    assert "nncf" in next(t for t in INT8_TARGETS if t.format == "openvino").requires


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_int8_arguments(parser)
    return int8_options_from_args(parser.parse_args(argv))


def test_cli_flags_map_to_options():
    opts = _parse(["--calib", "set", "--calib-method", "percentile:99.9", "--max-dice-drop", "0.3",
                   "--guard-limit", "20", "--no-int8-search"])
    assert opts == Int8Options(calib="set", calib_method="percentile:99.9", max_dice_drop=0.3,
                               guard_limit=20, search=False)
    assert _parse([]).calib is None and _parse([]).max_dice_drop == 0.5


@pytest.mark.parametrize(
    "argv, message",
    [(["--calib-method", "kl"], "unknown calibration method"), (["--max-dice-drop", "-1"], "max-dice-drop"),
     (["--calib-size", "0"], "calib-size"), (["--calib-method", "percentile:abc"], "percentile")],
)
def test_bad_flags(argv, message):
    with pytest.raises(ValueError, match=message):
        _parse(argv)


def test_a_job_without_calibration_set_is_refused():
    class Job:
        options = object()
        notes: dict = {}

    with pytest.raises(Int8SetupError, match="--calib"):
        job_int8_options(Job())


def test_builder_errors_name_compute_nodes():
    """A TensorRT error names a Q/DQ node or a quantized tensor; the fallback maps it to its layer."""
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="x_QuantizeLinear"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="x_DequantizeLinear"),
        helper.make_node("DequantizeLinear", ["w_quantized", "ws", "z"], ["wd"], name="w_DequantizeLinear"),
        helper.make_node("Conv", ["xd", "wd"], ["y"], name="/model/head/Conv"),
        helper.make_node("Relu", ["y"], ["out"], name="/model/head/Relu"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)])
    model = helper.make_model(graph)
    assert nodes_named_in("Quantized constant (w_quantized) is only allowed before DQ", model) == ["/model/head/Conv"]
    assert nodes_named_in("In node 3 with name: x_QuantizeLinear and operator", model) == ["/model/head/Conv"]
    assert nodes_named_in("layer /model/head/Conv: no INT8 implementation", model) == ["/model/head/Conv"]
    assert nodes_named_in("something unrelated, an index x1 or /x/y", model) == []
    assert isinstance(model, onnx.ModelProto)
