"""PyTorch reference backend: checkpoint dir or module, always eval mode."""

from __future__ import annotations

import numpy as np
import torch

from qtseg.backends.torch_backend import TorchBackend
from qtseg.checkpoint import load_checkpoint


def test_checkpoint_and_module_agree(tiny_checkpoint):
    x = np.random.default_rng(0).random((1, 3, 128, 128), dtype=np.float32)
    with TorchBackend(tiny_checkpoint) as be:
        assert be.input_metadata()[0].shape == (-1, 3, 128, 128)
        from_dir = be.infer(x)
        assert be.describe()["model"] == "qtseg-v2"
    model, _, _ = load_checkpoint(tiny_checkpoint)
    model.train()  # the backend must not run BatchNorm on batch statistics
    with TorchBackend(model) as be:
        assert not any(m.training for m in be.model.modules())
        from_module = be.infer(x)
    np.testing.assert_array_equal(from_dir, from_module)
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(from_dir, expected)
