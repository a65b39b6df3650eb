"""HRMedSeg: registry, paper complexity, shapes, gradients, ONNX parity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from qtseg import models
from qtseg.models.complexity import measure
from qtseg.models.hrmedseg import HRMedSegConfig, build_hrmedseg
from tests.models.conftest import HRMEDSEG_TINY, onnx_vs_torch

pytestmark = pytest.mark.usefixtures("one_thread")


PAPER_PARAMS = 3.53e6  # Table 1
PAPER_GFLOPS = 9.39  # Table 1, 1024x1024; read as multiply-accumulates (MACs)

TINY = HRMEDSEG_TINY


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _meta_params(**cfg: object) -> int:
    with torch.device("meta"):
        return _params(build_hrmedseg(HRMedSegConfig(**cfg)))


def test_registered_and_created() -> None:
    assert "hrmedseg" in models.list_models()
    model = models.create("hrmedseg", num_classes=2)
    assert model.model_name == "hrmedseg"
    assert model.config.embed_dim == 96 and model.config.depth == 10


def test_param_count_matches_paper() -> None:
    n = _params(models.create("hrmedseg", num_classes=2))
    assert abs(n / PAPER_PARAMS - 1) < 0.05, n


def test_macs_at_1024_match_paper() -> None:
    with torch.device("meta"):
        model = build_hrmedseg(HRMedSegConfig())
        counter = FlopCounterMode(display=False)
        with counter:
            model(torch.empty(1, 3, 1024, 1024))
        project_count = measure(model, (1, 3, 1024, 1024))
    macs = counter.get_total_flops() / 2  # FlopCounterMode counts 2 FLOPs per MAC
    assert abs(macs / (PAPER_GFLOPS * 1e9) - 1) < 0.05, macs
    assert abs(project_count.macs / macs - 1) < 0.01  # qtseg's own counter agrees


def test_depth_and_layout_deltas_match_paper_tables() -> None:
    # Table 6: L=4 -> L=16 adds 0.97 M parameters (C1 = 96).
    delta_depth = _meta_params(depth=16) - _meta_params(depth=4)
    assert abs(delta_depth / 0.97e6 - 1) < 0.05, delta_depth
    # Table 7: removing the channel-interactive layers saves 0.08 M.
    delta_mbconv = _meta_params() - _meta_params(num_mbconv=0)
    assert abs(delta_mbconv / 0.08e6 - 1) < 0.05, delta_mbconv


@pytest.mark.parametrize("batch", [1, 3])
def test_forward_shape_256(batch: int) -> None:
    torch.manual_seed(0)
    model = models.create("hrmedseg", num_classes=2, img_size=256).eval()
    with torch.no_grad():
        out = model(torch.rand(batch, 3, 256, 256))
    assert out.shape == (batch, 2, 256, 256)
    assert torch.isfinite(out).all()


def test_non_square_input_and_classes() -> None:
    model = models.create("hrmedseg", num_classes=4, **TINY).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 64, 96))
    assert out.shape == (2, 4, 64, 96)


def test_every_parameter_receives_gradient() -> None:
    torch.manual_seed(0)
    model = models.create("hrmedseg", num_classes=3, **TINY).train()
    target = torch.randint(0, 3, (2, 64, 64))
    loss = torch.nn.functional.cross_entropy(model(torch.rand(2, 3, 64, 64)), target)
    loss.backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing, missing


def test_config_accepts_int_or_pair_and_rejects_bad_sizes() -> None:
    assert models.make_config("hrmedseg", img_size=512).img_size == (512, 512)
    assert models.make_config("hrmedseg", img_size=[256, 320]).img_size == (256, 320)
    for bad in ({"img_size": 100}, {"img_size": (256, 250)}, {"num_classes": 1}):
        with pytest.raises(ValueError):
            models.make_config("hrmedseg", **bad)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_export_matches_torch(tmp_path) -> None:
    torch.manual_seed(0)
    model = models.create("hrmedseg", num_classes=2, **TINY).eval()
    x = torch.rand(2, 3, 64, 64)  # batch differs from the export batch
    ref, got, _ = onnx_vs_torch(model, tmp_path / "hrmedseg.onnx", x)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-4
