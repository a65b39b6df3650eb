"""PyTorch backend: the FP32 reference (checkpoint dir or module, eval mode) and its options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qtseg.backends import BackendError, NotExecutableHere
from qtseg.backends.torch_backend import FAST_GPU, TorchBackend, TorchOptions
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


def test_options_are_checked_before_any_work(tiny_checkpoint):
    with pytest.raises(ValueError, match="precision must be one of"):
        TorchOptions(precision="int4")
    with pytest.raises(ValueError, match="captures CUDA graphs itself"):
        TorchOptions(compile="reduce-overhead", cuda_graph=True)
    with pytest.raises(BackendError, match="options need a CUDA device"):
        TorchBackend(tiny_checkpoint, options=TorchOptions(precision="fp16"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without a GPU")
def test_cuda_without_a_gpu_is_not_executable(tiny_checkpoint):
    with pytest.raises(NotExecutableHere, match="no CUDA GPU"):
        TorchBackend(tiny_checkpoint, device="cuda", options=FAST_GPU)


def test_fast_path_transforms_keep_the_logits_and_the_callers_model(tiny_checkpoint):
    """BN folding, math attention and NHWC on CPU (FP32): same function, caller untouched."""
    x = np.random.default_rng(1).random((2, 3, 128, 128), dtype=np.float32)
    model, _, _ = load_checkpoint(tiny_checkpoint)
    with TorchBackend(model) as ref:
        want = ref.infer(x)
        assert not hasattr(ref, "device_call")  # CPU: the bench times it with the host clock
    options = TorchOptions(fold_bn=True, math_attention=True, channels_last=True)
    with TorchBackend(model, options=options) as fast:
        got = fast.infer(x)
        kinds = {type(m).__name__ for m in fast.model.modules()}
        assert fast.describe()["options"]["math_attention"] is True
    assert "MathAttention" in kinds and "BatchNorm2d" not in kinds
    caller_kinds = {type(m).__name__ for m in model.modules()}
    assert "BatchNorm2d" in caller_kinds and "MathAttention" not in caller_kinds
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    assert (got.argmax(1) == want.argmax(1)).mean() > 0.9999


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fast_gpu_path_matches_the_reference(tiny_checkpoint):
    x = np.random.default_rng(2).random((2, 3, 128, 128), dtype=np.float32)
    with TorchBackend(tiny_checkpoint) as ref:
        want = ref.infer(x)
    with TorchBackend(tiny_checkpoint, device="cuda", options=FAST_GPU) as fast:
        got = fast.infer(x)
        again = fast.infer(x[::-1].copy())[::-1]  # graph replay with new data
        assert callable(fast.device_call(x)) and fast.peak_memory_mb() > 0
    assert np.abs(got - want).max() < 5e-2 and np.abs(again - want).max() < 5e-2
    assert (got.argmax(1) == want.argmax(1)).mean() > 0.99
