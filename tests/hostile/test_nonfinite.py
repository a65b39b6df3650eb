"""NaN/Inf never passes through a backend: refused in the input, an error in the output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from qtseg.backends import NonFiniteInput, NonFiniteOutput, open_backend
from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend
from qtseg.backends.openvino_backend import OpenVINOBackend
from qtseg.backends.torch_backend import TorchBackend
from qtseg.evaluation import SampleSet, check_parity
from qtseg.preprocess import PreprocessSpec

from ..artifacts import make_manifest
from ..backends.conftest import conv_weights, make_conv_onnx
from .conftest import conv_onnx_with


def _torch_conv(weight_value: float | None = None) -> torch.nn.Module:
    """The tiny conv of tests/backends in PyTorch (same weights as its ONNX file)."""
    w, b = conv_weights()
    conv = torch.nn.Conv2d(3, 2, 3, padding=1).eval()
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w))
        conv.bias.copy_(torch.from_numpy(b))
        if weight_value is not None:
            conv.weight.view(-1)[0] = weight_value
    return conv


def _backends(tmp_path: Path, weight_value: float | None):
    """ORT, OpenVINO and torch backends of the tiny conv, one weight set to ``weight_value``."""
    onnx_path = tmp_path / "model.onnx"
    if weight_value is None:
        make_conv_onnx(onnx_path)
    else:
        conv_onnx_with(onnx_path, weight_value)
    return [
        OnnxRuntimeBackend(onnx_path),
        OpenVINOBackend(onnx_path),
        TorchBackend(_torch_conv(weight_value), input_size=(32, 32)),
    ]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_input_is_refused_by_every_backend(tmp_path, batch, bad):
    x = batch.copy()
    x[1, 2, 3, 4] = bad
    for backend in _backends(tmp_path, None):
        with backend, pytest.raises(NonFiniteInput, match="1 NaN/Inf values; refused"):
            backend.infer(x)
        assert issubclass(NonFiniteInput, ValueError)  # callers catching bad input still do


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_logits_raise_instead_of_becoming_a_mask(tmp_path, batch, bad):
    """A corrupted weight makes NaN/Inf logits; every runtime really computes them, and infer refuses."""
    for backend in _backends(tmp_path, bad):
        with backend, pytest.raises(NonFiniteOutput, match="NaN/Inf logits") as exc:
            backend.infer(batch)
        assert exc.value.count > 0 and not np.isfinite(exc.value.logits).all()
        assert exc.value.logits.shape == (2, 2, 32, 32)


def test_finite_values_pass_unchanged(tmp_path, batch):
    results = []
    for backend in _backends(tmp_path, None):
        with backend:
            results.append(backend.infer(batch))
    for out in results[1:]:
        np.testing.assert_allclose(out, results[0], atol=1e-5)


def test_an_artifact_opened_by_open_backend_is_guarded_too(tmp_path, batch):
    folder = tmp_path / "art"
    folder.mkdir()
    conv_onnx_with(folder / "model.onnx", np.nan)
    make_manifest(folder, fmt="onnx", files={"model": "model.onnx"})
    with open_backend(folder) as backend, pytest.raises(NonFiniteOutput):
        backend.infer(batch)


def test_the_parity_gate_records_nan_logits_as_a_failure(tmp_path, samples_dir):
    """check_parity (the export gate's comparison) reports refused NaN logits as failed parity."""
    spec = PreprocessSpec(input_size=(32, 32))
    samples = SampleSet.from_folder(samples_dir / "images", spec, limit=2)
    with TorchBackend(_torch_conv(), input_size=(32, 32)) as ref, OnnxRuntimeBackend(
        conv_onnx_with(tmp_path / "nan.onnx", np.nan)
    ) as cand, np.errstate(invalid="ignore"):
        result = check_parity(ref, cand, samples, spec, precision="fp32")
    assert not result.passed
    assert "NaN/Inf logits in 2 image(s)" in result.failures
