"""Regression tests for the silent failures we measured.

1. ``torch.onnx.export`` restores the training flag of the module it was
   given; a wrapper left in training mode comes back with BatchNorm on batch
   statistics and PyTorch then disagrees with the artifact on many pixels.
2. A broken graph (one perturbed weight) must be rejected by the gate.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend
from qtseg.checkpoint import load_checkpoint
from qtseg.evaluation import SampleSet, check_parity
from qtseg.export import onnx_graph
from qtseg.export.wrapper import (
    ExportIO,
    ExportWrapper,
    TrainingModeError,
    assert_eval,
    training_modules,
)

from .conftest import run_cli


def _io() -> ExportIO:
    return ExportIO(input_size=(128, 128), num_classes=2)


@pytest.fixture(scope="module")
def fp32_onnx(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint exported once (no simplification) for the gate tests."""
    model, _, _ = load_checkpoint(tiny_checkpoint)
    path = tmp_path_factory.mktemp("gate") / "model.onnx"
    path.write_bytes(onnx_graph.serialize(onnx_graph.export_fp32(model, _io())))
    return path


def test_torch_restores_training_mode_and_we_do_not(tiny_checkpoint, tmp_path):
    model, _, _ = load_checkpoint(tiny_checkpoint)
    # The pitfall itself: plain torch.onnx.export hands the training flag back.
    wrapper = ExportWrapper(model).train()
    torch.onnx.export(wrapper, (torch.rand(1, 3, 128, 128),), str(tmp_path / "raw.onnx"), dynamo=False)
    assert training_modules(wrapper), "torch no longer restores training mode; revisit the docs"
    with pytest.raises(TrainingModeError):
        assert_eval(wrapper)
    # Our export forces eval on the whole tree and leaves it there.
    model.train()
    proto = onnx_graph.export_fp32(model, _io())
    assert training_modules(model) == []
    path = tmp_path / "ours.onnx"
    path.write_bytes(onnx_graph.serialize(proto))
    x = np.random.default_rng(0).random((1, 3, 128, 128), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    with OnnxRuntimeBackend(path) as be:
        assert np.abs(be.infer(x) - expected).max() < 1e-4


def test_gate_catches_batch_statistics(tiny_checkpoint, sample_images, fp32_onnx):
    """A reference running BatchNorm in training mode disagrees with the artifact: FAIL."""
    model, spec, _ = load_checkpoint(tiny_checkpoint)
    path = fp32_onnx
    samples = SampleSet.from_folder(sample_images, spec, limit=4)
    model.train()
    with torch.no_grad():
        train_logits = [model(torch.from_numpy(samples.x[i : i + 1])).numpy() for i in range(4)]
    with OnnxRuntimeBackend(path) as be:
        result = check_parity(train_logits, be, samples, spec, precision="fp32")
    assert not result.passed
    assert result.max_abs_diff > 1e-2
    assert any("max|diff|" in f for f in result.failures)
    assert "FAIL" in result.summary() and f"{100 * result.agreement:.4f}%" in result.summary()


def _perturb_one_weight(model) -> None:
    """Add 5 to one weight of the last upsampling ConvTranspose (random-weight
    models barely react to their stem, so the perturbation sits near the output)."""
    from onnx import numpy_helper

    conv = [n for n in model.graph.node if n.op_type == "ConvTranspose"][-1]
    init = next(t for t in model.graph.initializer if t.name == conv.input[1])
    arr = numpy_helper.to_array(init).copy()
    arr.flat[0] += 5.0
    init.CopyFrom(numpy_helper.from_array(arr, init.name))


def test_gate_rejects_one_perturbed_weight(tiny_checkpoint, sample_images, fp32_onnx, tmp_path):
    import onnx

    model, spec, _ = load_checkpoint(tiny_checkpoint)
    proto = onnx.load(str(fp32_onnx))
    _perturb_one_weight(proto)
    path = tmp_path / "broken.onnx"
    onnx.save(proto, str(path))
    samples = SampleSet.from_folder(sample_images, spec, limit=4)
    with OnnxRuntimeBackend(path) as be:
        result = check_parity(model_backend(model, spec), be, samples, spec, precision="fp32")
    assert not result.passed and result.max_abs_diff > 1e-3
    assert result.failures[0].startswith("max|diff|")


def model_backend(model, spec):
    from qtseg.backends.torch_backend import TorchBackend

    return TorchBackend(model, input_size=spec.input_size)


def test_cli_keeps_a_broken_artifact_out_of_place(tiny_checkpoint, sample_images, tmp_path, monkeypatch):
    """A graph broken after export is rejected: exit 1, numbers printed, nothing at the final path."""
    def broken_simplify(model):
        _perturb_one_weight(model)
        return model

    monkeypatch.setattr(onnx_graph, "simplify", broken_simplify)
    out = tmp_path / "exports"
    run = run_cli(["--target", "onnx", "--checkpoint", str(tiny_checkpoint), "--samples",
                   str(sample_images), "--num-samples", "2", "--out", str(out), "--quiet"])
    assert run.rc == 1
    assert "parity gate failed" in run.err and "max|diff|" in run.err and "agreement" in run.err
    assert not (out / "qtseg-v2_onnx").exists()
    assert list(out.iterdir()) == []
