"""Calibration fixtures: a small synthetic dataset (with empty masks) and a tiny ONNX graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from qtseg.calibration import CalibrationSet
from qtseg.preprocess import PreprocessSpec

SPEC32 = PreprocessSpec(input_size=(32, 32))


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> Path:
    """40 images: 8 with empty masks, 32 with lesions of growing size; a fixed split file."""
    import json

    root = tmp_path_factory.mktemp("synthetic")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    names = []
    for i in range(40):
        name = f"img{i:02d}"
        image = rng.integers(0, 256, size=(40 + i, 48, 3), dtype=np.uint8)
        mask = np.zeros(image.shape[:2], dtype=np.uint8)
        if i >= 8:
            side = 2 + (i - 8)  # lesion size grows with the index
            mask[:side, :side] = 255
        Image.fromarray(image).save(root / "images" / f"{name}.png")
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")
        names.append(name)
    split = {"train": [f"{n}.png" for n in names[::2] + names[1::4]], "val": [f"{n}.png" for n in names[3::4]], "test": []}
    (root / "splits.json").write_text(json.dumps(split))
    return root


def random_set(count: int = 16, *, size: int = 32, seed: int = 0) -> CalibrationSet:
    """A calibration set of uniform [0, 1) tensors."""
    x = np.random.default_rng(seed).random((count, 3, size, size), dtype=np.float32)
    return CalibrationSet(x=x, spec=PreprocessSpec(input_size=(size, size)), names=[f"r{i}" for i in range(count)])


class TinyNet(nn.Module):
    """Conv-BN-SiLU, a residual conv, a zero-gated branch, a Gemm gate, a 1x1 head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.SiLU())
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.SiLU())
        self.gate = nn.Parameter(torch.zeros(1))
        self.proj = nn.Linear(8, 8)
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 2, H, W)."""
        f = self.stem(x)
        f = f + self.body(f)
        zero = self.gate * f  # an all-zero tensor: calibration must cope with it
        t = self.proj(f.mean(dim=(2, 3)))
        return self.head(f * torch.sigmoid(t)[:, :, None, None] + zero)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """TinyNet exported to ONNX (opset 17, static 1x3x32x32)."""
    torch.manual_seed(0)
    model = TinyNet().eval()
    with torch.no_grad():
        model.stem[1].running_mean.uniform_(-0.2, 0.2)
        model.stem[1].running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    torch.onnx.export(model, (torch.rand(1, 3, 32, 32),), str(path), input_names=["image"],
                      output_names=["logits"], opset_version=17, dynamo=False)
    return path
