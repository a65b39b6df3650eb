"""The bench's complexity numbers: QTSeg v2 vs specs/models.md and an independent counter."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from qtseg.bench.discover import ModelGroup
from qtseg.bench.runner import model_complexity
from qtseg.models import create
from qtseg.preprocess import PreprocessSpec

# specs/models.md: QTSeg v2, num_classes=2, n=16, 3x512x512
SPEC_PARAMS = 9_214_850
SPEC_MACS = 2.559e9


@pytest.fixture(scope="module")
def v2_512() -> dict:
    group = ModelGroup(
        key="qtseg-v2@512x512",
        name="qtseg-v2",
        config={},
        spec=PreprocessSpec(),
        checkpoint=None,
        checkpoint_note="",
    )
    return model_complexity(group, layers=True)


def test_qtseg_v2_matches_the_spec(v2_512):
    assert v2_512["params"] == SPEC_PARAMS
    assert (
        abs(v2_512["macs"] - SPEC_MACS) / SPEC_MACS < 0.001
    )  # 2.559 G as stated (3 significant digits)
    assert v2_512["flops"] == 2 * v2_512["macs"]
    assert v2_512["input_shape"] == [1, 3, 512, 512]


def test_cross_check_with_torch_flop_counter(v2_512):
    model = create("qtseg-v2").eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, 3, 512, 512))
    independent_macs = counter.get_total_flops() / 2  # FlopCounterMode counts 2 FLOPs per MAC
    assert abs(v2_512["macs"] - independent_macs) / independent_macs < 0.01
    assert v2_512["params"] == sum(p.numel() for p in model.parameters())


def test_layer_table_adds_up(v2_512):
    layers = v2_512["layers"]
    assert sum(r["macs"] for r in layers) == v2_512["macs"]
    assert sum(r["params"] for r in layers) == v2_512["params"]
    assert len({r["module"] for r in layers}) == len(layers)
    convs = [r for r in layers if r["module"].endswith(".conv")]
    assert convs and all(r["params"] > 0 for r in convs)
