import torch

from qtseg.models import create
from qtseg.models.fuse import fuse_conv_bn
from tests.conftest import randomize_batchnorm


def test_fused_model_gives_identical_outputs():
    model = create("qtseg-v2", width=8, img_size=(64, 64)).eval()
    randomize_batchnorm(model, seed=3)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        fuse_conv_bn(model)
        after = model(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)
    assert (before.argmax(1) == after.argmax(1)).float().mean() > 0.999
