"""The one export wrapper: eval mode on the whole tree, fixed I/O names and shapes.

``torch.onnx.export`` puts the module it is given into eval mode for tracing
and afterwards *restores* the training flag it found, recursively. A wrapper
left in training mode therefore comes back with every BatchNorm using batch
statistics, and the PyTorch reference then disagrees with the artifact on
~25% of pixels. :func:`prepare` forces ``eval()`` on the whole tree before
export and :func:`assert_eval` checks it again afterwards; nothing is ever
restored to training mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

INPUT_NAME = "image"
OUTPUT_NAME = "logits"


class TrainingModeError(RuntimeError):
    """A module of the export tree is in training mode."""


@dataclass(frozen=True)
class ExportIO:
    """Names and shapes of the exported graph's input and output.

    Attributes:
        input_size: ``(H, W)`` of the input (multiples of 32).
        num_classes: channels of the logits.
        batch: static batch size (ignored when ``dynamic_batch``).
        dynamic_batch: batch dimension free (``"batch"``).
        dynamic_hw: height/width free (``"height"``, ``"width"``).
    """

    input_size: tuple[int, int]
    num_classes: int
    batch: int = 1
    dynamic_batch: bool = False
    dynamic_hw: bool = False

    def input_shape(self) -> list[int | str]:
        """``[N, 3, H, W]`` with dimension names where dynamic."""
        h, w = self.input_size
        return [self._n(), 3, "height" if self.dynamic_hw else h, "width" if self.dynamic_hw else w]

    def output_shape(self) -> list[int | str]:
        """``[N, C, H, W]`` with dimension names where dynamic."""
        return [self._n(), self.num_classes, *self.input_shape()[2:]]

    def _n(self) -> int | str:
        return "batch" if self.dynamic_batch else self.batch

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """``dynamic_axes`` argument of the TorchScript ONNX exporter."""
        axes: dict[int, str] = {}
        if self.dynamic_batch:
            axes[0] = "batch"
        if self.dynamic_hw:
            axes.update({2: "height", 3: "width"})
        return {INPUT_NAME: dict(axes), OUTPUT_NAME: dict(axes)} if axes else {}

    def example_input(self) -> torch.Tensor:
        """Tracing input.

        A dynamic batch is traced with batch 2 so that no size-1 dimension is
        specialised. With dynamic H/W the example is 32 px larger than the
        configured size: the model then takes its shape-generic path
        (positional encodings computed from the grid) instead of the
        precomputed buffers, which only fit the configured size.
        """
        n = 2 if self.dynamic_batch else self.batch
        h, w = self.input_size
        if self.dynamic_hw:
            h, w = h + 32, w + 32
        generator = torch.Generator().manual_seed(0)
        return torch.rand(n, 3, h, w, generator=generator)


class ExportWrapper(nn.Module):
    """``image (N, 3, H, W) float32 in [0, 1] -> logits (N, C, H, W) float32``.

    Arguments:
        model: a qtseg segmentation model.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, C, H, W) logits."""
        return self.model(image)


def training_modules(module: nn.Module) -> list[str]:
    """Names of all modules of the tree that are in training mode."""
    return [name or "<root>" for name, m in module.named_modules() if m.training]


def assert_eval(module: nn.Module) -> None:
    """Raise :class:`TrainingModeError` if any module of the tree is training."""
    bad = training_modules(module)
    if bad:
        shown = ", ".join(bad[:5]) + (" ..." if len(bad) > 5 else "")
        raise TrainingModeError(f"{len(bad)} module(s) in training mode after export: {shown}")


def prepare(model: nn.Module) -> ExportWrapper:
    """Wrap ``model`` for export: whole tree in eval mode, float32, no grads."""
    wrapper = ExportWrapper(model).float().eval()
    wrapper.requires_grad_(False)
    assert_eval(wrapper)
    return wrapper
