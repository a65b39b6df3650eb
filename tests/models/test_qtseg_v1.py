"""QTSeg v1: paper complexity, shapes, configuration and export cleanliness."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from qtseg.models import create, list_models
from qtseg.models.qtseg_v1 import QTSegV1Config

PAPER_PARAMS = 9.69e6  # Table V, setting 6 (MLFF + addition aggregation)
PAPER_MACS = 2.29e9  # same row, 512x512 input; the paper's "FLOPs" are MACs
TOLERANCE = 0.03
# Small but structurally complete: stage 1 has a first and a later block.
SMALL = {"width": 8, "img_size": (64, 64), "depths": (1, 2, 1), "mlp_dim": 128}


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create("qtseg-v1", num_classes=3, **SMALL).eval()


def test_registered() -> None:
    assert "qtseg-v1" in list_models()
    model = create("qtseg-v1")
    assert model.model_name == "qtseg-v1"
    assert model.config == QTSegV1Config()


def test_param_count_within_3_percent_of_paper() -> None:
    count = _params(create("qtseg-v1", num_classes=2))
    assert abs(count - PAPER_PARAMS) / PAPER_PARAMS < TOLERANCE, count


def test_encoder_and_mlff_are_the_v2_modules() -> None:
    v1 = create("qtseg-v1")
    v2 = create("qtseg-v2")
    assert type(v1.encoder) is type(v2.encoder) and type(v1.bridge) is type(v2.bridge)
    assert _params(v1.encoder) + _params(v1.bridge) == _params(v2.encoder) + _params(v2.bridge)


def test_macs_at_512_within_3_percent_of_paper() -> None:
    model = create("qtseg-v1", num_classes=2).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        out = model(torch.rand(1, 3, 512, 512))
    assert out.shape == (1, 2, 512, 512)
    macs = counter.get_total_flops() / 2
    assert abs(macs - PAPER_MACS) / PAPER_MACS < TOLERANCE, macs


@pytest.mark.parametrize("num_classes", [2, 3])
def test_forward_shape(num_classes: int) -> None:
    model = create("qtseg-v1", num_classes=num_classes, width=8, img_size=(256, 256)).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 256, 256))
    assert out.shape == (2, num_classes, 256, 256)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_other_input_size_recomputes_positional_encoding(small_model: torch.nn.Module) -> None:
    with torch.no_grad():
        out = small_model(torch.rand(1, 3, 96, 128))
    assert out.shape == (1, 3, 96, 128)


def test_samples_are_independent_in_a_batch(small_model: torch.nn.Module) -> None:
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        both = small_model(x)
        first = small_model(x[:1])
    torch.testing.assert_close(both[:1], first, rtol=1e-4, atol=1e-5)


def test_every_parameter_gets_a_gradient() -> None:
    model = create("qtseg-v1", **SMALL).train()
    model(torch.rand(2, 3, 64, 64)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


@pytest.mark.parametrize(
    "cfg",
    [
        {"num_classes": 1},
        {"img_size": (500, 512)},
        {"width": 6},
        {"depths": (1, 0, 3)},
    ],
)
def test_invalid_config_rejected(cfg: dict) -> None:
    with pytest.raises(ValueError):
        QTSegV1Config(**cfg)


@pytest.mark.slow
def test_torch_export_dynamic_batch(small_model: torch.nn.Module) -> None:
    # torch.export specialises example sizes 0 and 1, so the example batch is 2.
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(
        small_model, (torch.rand(2, 3, 64, 64),), dynamic_shapes={"x": {0: batch}}
    )
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    # No host syncs, and the positional encodings are buffers, not recomputed.
    assert not targets & {"aten._local_scalar_dense.default", "aten.item.default"}, targets
    assert not any(t.startswith(("aten.sin", "aten.cos")) for t in targets), targets
    exported = program.module()
    for n in (1, 3):
        x = torch.rand(n, 3, 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(exported(x), small_model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_onnx_export_matches_onnxruntime(small_model: torch.nn.Module) -> None:
    ort = pytest.importorskip("onnxruntime")
    buf = io.BytesIO()
    torch.onnx.export(
        small_model,
        (torch.rand(1, 3, 64, 64),),
        buf,
        opset_version=17,
        dynamo=False,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )
    assert not small_model.training
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    for n in (1, 2):
        x = torch.rand(n, 3, 64, 64)
        got = session.run(None, {"image": x.numpy()})[0]
        with torch.no_grad():
            want = small_model(x).numpy()
        assert got.shape == (n, 3, 64, 64)
        assert np.abs(got - want).max() < 1e-4
