import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from qtseg.models import create
from qtseg.models.complexity import measure

SPEC_PARAMS = 9_214_850
SPEC_MACS = 2.559e9


@pytest.fixture(scope="module")
def full_model():
    return create("qtseg-v2", num_classes=2).eval()


def test_parameter_count_matches_spec(full_model):
    params = sum(p.numel() for p in full_model.parameters())
    assert abs(params - SPEC_PARAMS) / SPEC_PARAMS <= 0.005, params


@pytest.mark.slow
def test_macs_match_spec_with_own_and_torch_counter(full_model):
    ours = measure(full_model, (1, 3, 512, 512))
    assert abs(ours.macs - SPEC_MACS) / SPEC_MACS <= 0.03, ours.macs
    with FlopCounterMode(display=False) as counter:
        full_model(torch.rand(1, 3, 512, 512))
    torch_macs = counter.get_total_flops() / 2
    assert abs(torch_macs - SPEC_MACS) / SPEC_MACS <= 0.03, torch_macs
    # The two counters are independent; they may differ only by conventions (<1%).
    assert abs(ours.macs - torch_macs) / torch_macs < 0.01


@pytest.mark.parametrize("num_classes", [2, 4])
def test_forward_shapes_small(num_classes):
    model = create("qtseg-v2", num_classes=num_classes, width=8, img_size=(128, 96)).eval()
    with torch.no_grad():
        out = model(torch.rand(3, 3, 128, 96))
    assert out.shape == (3, num_classes, 128, 96)
    assert torch.isfinite(out).all()


def test_other_input_size_recomputes_positional_encoding():
    model = create("qtseg-v2", width=8, img_size=(64, 64)).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 96, 128)).shape == (1, 2, 96, 128)


def test_positional_encodings_are_buffers_not_parameters():
    model = create("qtseg-v2", width=8, img_size=(64, 64))
    names = {n for n, _ in model.named_buffers()}
    assert {"decoder.pos_enc.pe0", "decoder.pos_enc.pe2"} <= names
    assert not any("pos_enc" in n for n, _ in model.named_parameters())
    # not persistent: checkpoints hold only learned state
    assert not any("pos_enc" in k for k in model.state_dict())


@pytest.mark.slow
def test_torch_export_traces_with_free_batch():
    model = create("qtseg-v2", width=8, img_size=(64, 64)).eval()
    x = torch.rand(2, 3, 64, 64)
    batch = torch.export.Dim("batch", min=1, max=64)
    prog = torch.export.export(model, (x,), dynamic_shapes=({0: batch},), strict=True)
    with torch.no_grad():
        ref = model(torch.rand(5, 3, 64, 64).clone())
        x5 = torch.rand(5, 3, 64, 64)
        assert torch.allclose(prog.module()(x5), model(x5), atol=1e-5)
    assert ref.shape[0] == 5


def test_config_validation():
    with pytest.raises(ValueError, match="multiples of 32"):
        create("qtseg-v2", img_size=(100, 100))
    with pytest.raises(TypeError, match="unknown config keys"):
        create("qtseg-v2", depth=3)
