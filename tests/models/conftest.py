"""Shared pieces of the model tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

# A small HRMedSeg (img_size 64) that keeps every part of the architecture.
HRMEDSEG_TINY: dict[str, object] = {
    "img_size": 64,
    "embed_dim": 32,
    "depth": 2,
    "decoder_dim": 64,
    "decoder_heads": 4,
    "decoder_mlp_dim": 128,
    "up_dims": (32, 16),
}


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny models on a shared 2-core runner: intra-op threading costs more than it saves."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def onnx_vs_torch(
    model: torch.nn.Module, path: Path, x: torch.Tensor
) -> tuple[np.ndarray, np.ndarray, set[str]]:
    """Export ``model`` (batch 1, dynamic batch axis) to ``path``, run ``x`` on ORT and PyTorch.

    Returns:
        ``(torch logits, onnxruntime logits, op types of the graph)``; the
        logits are (B, K, H, W) for ``x`` (B, 3, H, W).
    """
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    torch.onnx.export(
        model,
        (torch.rand(1, *x.shape[1:]),),
        str(path),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    with torch.no_grad():
        ref = model(x).numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["logits"], {"image": x.numpy()})[0]
    return ref, got, {n.op_type for n in onnx.load(str(path)).graph.node}
