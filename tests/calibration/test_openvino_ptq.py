"""NNCF INT8 of an OpenVINO model from a calibration set, and per-group float fallback."""

from __future__ import annotations

import numpy as np
import pytest

from qtseg.calibration import CalibrationError, CalibrationMethod
from qtseg.calibration.openvino_ptq import count_fake_quantize, keep_float, quantize_openvino
from tests.calibration.conftest import random_set

ov = pytest.importorskip("openvino")
pytestmark = pytest.mark.openvino


def _run(model, x):
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return np.array(compiled.create_infer_request().infer({0: x})[compiled.outputs[0]])


@pytest.fixture(scope="module")
def models(tiny_onnx):
    fp32 = ov.convert_model(str(tiny_onnx))
    quantized, info = quantize_openvino(fp32, random_set(8), CalibrationMethod("minmax"))
    return fp32, quantized, info


def test_quantized_model_is_int8_and_close(models):
    fp32, quantized, info = models
    assert info["fake_quantize_nodes"] == count_fake_quantize(quantized) > 0
    assert "MINMAX" in info["range_estimator"] and info["subset_size"] == 8
    x = random_set(1, seed=7).x
    ref, got = _run(fp32, x), _run(quantized, x)
    assert not np.array_equal(ref, got)
    assert np.abs(got - ref).max() < 0.1 * np.abs(ref).max()


@pytest.mark.parametrize("name", ["percentile", "entropy"])
def test_other_range_estimators(tiny_onnx, name):
    _, info = quantize_openvino(ov.convert_model(str(tiny_onnx)), random_set(8), CalibrationMethod(name))
    assert info["range_estimator"].startswith("nncf")


def test_keep_float_everything_restores_fp32(models):
    fp32, quantized, _ = models
    restored, changed = keep_float(quantized, fp32, [".*"])
    assert changed > 0
    x = random_set(1, seed=8).x
    np.testing.assert_allclose(_run(restored, x), _run(fp32, x), rtol=1e-5, atol=1e-5)
    assert count_fake_quantize(quantized) > 0  # the original is untouched


def test_keep_float_one_layer(models):
    fp32, quantized, _ = models
    partial, changed = keep_float(quantized, fp32, ["^/head/"])
    assert changed == 1
    x = random_set(1, seed=2).x
    assert not np.array_equal(_run(partial, x), _run(quantized, x))


def test_bad_set_is_refused(tiny_onnx):
    with pytest.raises(CalibrationError, match="at least 8"):
        quantize_openvino(ov.convert_model(str(tiny_onnx)), random_set(4), CalibrationMethod("minmax"))
