"""Tiny OpenVINO artifacts made in the tests: a healthy conv net, one whose logits turn
NaN for dark images only, and a copy of any IR artifact with NaN weights in its last conv."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from qtseg.preprocess import PreprocessSpec
from tests.cpp.helpers import rehash, write_artifact

SIZE = (64, 64)


def _net(nan_below: float | None):
    """(N, 3, 64, 64) -> (N, 2, 64, 64); with ``nan_below``, NaN logits when mean(x) < it."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.conv2 = torch.nn.Conv2d(8, 2, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv2(torch.relu(self.conv1(x)))
            if nan_below is not None:
                # sqrt of a negative number: NaN for the whole sample of a dark image.
                y = y + torch.sqrt(x.mean(dim=(1, 2, 3), keepdim=True) - nan_below)
            return y

    torch.manual_seed(0)
    return Net().eval()


def tiny_openvino(out: Path, *, nan_below: float | None = None) -> Path:
    """A tiny OpenVINO IR fp32 artifact (dynamic batch, 64x64, 2 classes) in ``out``."""
    import openvino as ov
    import torch

    model = ov.convert_model(
        _net(nan_below),
        example_input=torch.rand(1, 3, *SIZE),
        input=[ov.PartialShape([-1, 3, *SIZE])],
    )
    model.inputs[0].get_tensor().set_names({"image"})
    model.outputs[0].get_tensor().set_names({"logits"})
    out.mkdir(parents=True)
    ov.save_model(model, str(out / "model.xml"), compress_to_fp16=False)
    return write_artifact(
        out,
        spec=PreprocessSpec(input_size=SIZE),
        fmt="openvino",
        files={"model": "model.xml", "weights": "model.bin"},
        input_shape=[-1, 3, *SIZE],
        output_shape=[-1, 2, *SIZE],
        model_name="tiny-conv",
    )


def with_nan_weights(src: Path, dst: Path) -> Path:
    """Copy of the IR artifact ``src`` whose last convolution's weights are NaN, re-hashed,
    so the manifest is valid and only the output guard can catch it."""
    import openvino as ov
    import openvino.opset13 as ops

    shutil.copytree(src, dst)
    model = ov.Core().read_model(str(dst / "model.xml"))
    last = [op for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"][-1]
    shape = list(last.input_value(1).get_shape())
    poisoned = ops.constant(np.full(shape, np.nan, np.float32))
    last.input(1).replace_source_output(poisoned.output(0))
    (dst / "model.xml").unlink()
    (dst / "model.bin").unlink()
    ov.save_model(model, str(dst / "model.xml"), compress_to_fp16=False)
    rehash(dst)
    return dst
