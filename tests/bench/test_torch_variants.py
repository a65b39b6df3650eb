"""PyTorch rows: variant table on every machine; the CUDA paths where a GPU exists."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qtseg.backends import NotExecutableHere
from qtseg.backends.torch_backend import TorchOptions
from qtseg.bench.torch_variants import (
    REFERENCE_VARIANT,
    VARIANTS,
    open_variant,
    variants_for,
)

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_variants_per_device():
    assert [v.name for v in variants_for("cpu")] == [REFERENCE_VARIANT]
    assert [v.name for v in variants_for("cuda:0")] == [
        "eager-fp32",
        "eager-fp16",
        "graph-fp32",
        "graph-fp16",
        "fast-fp16",
    ]
    assert {v.precision for v in VARIANTS.values()} == {"fp32", "fp16"}
    assert VARIANTS[REFERENCE_VARIANT].options == TorchOptions()  # the export gate's reference


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on a machine without a GPU"
)
def test_without_gpu_the_backend_says_not_executable(tiny_checkpoint):
    with pytest.raises(NotExecutableHere, match="no CUDA GPU"):
        open_variant(tiny_checkpoint, variant="graph-fp16")


def test_unknown_variant_or_device_is_rejected(tiny_checkpoint):
    with pytest.raises(ValueError, match="unknown torch variant"):
        open_variant(tiny_checkpoint, variant="eager-int4")
    with pytest.raises(ValueError, match="runs on cuda, not 'cpu'"):
        open_variant(tiny_checkpoint, variant="fast-fp16", device="cpu")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("variant", ["eager-fp16", "graph-fp32", "graph-fp16", "fast-fp16"])
def test_cuda_variants_match_eager_fp32(tiny_checkpoint, variant):
    from qtseg.timing import time_cuda

    x = np.random.default_rng(0).random((2, 3, 128, 128), dtype=np.float32)
    with open_variant(tiny_checkpoint, variant="eager-fp32") as ref:
        want = ref.infer(x)
    with open_variant(tiny_checkpoint, variant=variant) as be:
        got = be.infer(x)
        got_again = be.infer(x[::-1].copy())[::-1]  # graph replay with new data, same shape
        durations = time_cuda(be.device_call(x), warmup=2, iters=3)
        assert be.peak_memory_mb() > 0
    tol = 1e-3 if variant.endswith("fp32") else 5e-2
    assert np.abs(got - want).max() < tol and np.abs(got_again - want).max() < tol
    assert (got.argmax(1) == want.argmax(1)).mean() > 0.99
    assert len(durations) == 3 and all(d > 0 for d in durations)
