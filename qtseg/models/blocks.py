"""Convolutional building blocks shared by the QTSeg encoders and MLFD/MLFF.

``Conv`` and ``ConvTranspose`` are the conv (no bias) + BatchNorm + SiLU units
of the YOLOv8-style encoder; ``C2f`` and ``SPPF`` follow the layer recipe in
``specs/models.md``. Every block takes typed keyword-only arguments.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Conv(nn.Module):
    """Conv2d (no bias, "same" padding) + BatchNorm2d + SiLU.

    Arguments:
        c_in: input channels.
        c_out: output channels.
        kernel: square kernel size (odd).
        stride: stride; output size is ``ceil(H / stride)`` for odd kernels.
    """

    def __init__(self, c_in: int, c_out: int, *, kernel: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c_in, H, W) -> (B, c_out, H / stride, W / stride)."""
        return self.act(self.bn(self.conv(x)))


class ConvTranspose(nn.Module):
    """ConvTranspose2d (no bias, kernel == stride) + BatchNorm2d + SiLU.

    Arguments:
        c_in: input channels.
        c_out: output channels.
        factor: upsampling factor (kernel size and stride).
    """

    def __init__(self, c_in: int, c_out: int, *, factor: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(c_in, c_out, factor, factor, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c_in, H, W) -> (B, c_out, H * factor, W * factor)."""
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """Two 3x3 ``Conv`` units, optionally with a residual connection."""

    def __init__(self, channels: int, *, residual: bool) -> None:
        super().__init__()
        self.cv1 = Conv(channels, channels, kernel=3)
        self.cv2 = Conv(channels, channels, kernel=3)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.residual else y


class C2f(nn.Module):
    """CSP block with two convolutions and ``depth`` chained bottlenecks.

    1x1 Conv to ``2h`` channels (``h = c_out // 2``), split in halves, chain
    ``depth`` bottlenecks on the last half, concatenate all ``(2 + depth) * h``
    channels and project with a 1x1 Conv to ``c_out``.

    Arguments:
        c_in: input channels.
        c_out: output channels.
        depth: number of bottlenecks.
        residual: whether bottlenecks add their input.
    """

    def __init__(self, c_in: int, c_out: int, *, depth: int, residual: bool) -> None:
        super().__init__()
        self.hidden = c_out // 2
        self.cv1 = Conv(c_in, 2 * self.hidden)
        self.blocks = nn.ModuleList(Bottleneck(self.hidden, residual=residual) for _ in range(depth))
        self.cv2 = Conv((2 + depth) * self.hidden, c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c_in, H, W) -> (B, c_out, H, W)."""
        parts = list(self.cv1(x).chunk(2, dim=1))
        for block in self.blocks:
            parts.append(block(parts[-1]))
        return self.cv2(torch.cat(parts, dim=1))


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast): 1x1 Conv to c/2, three chained 5x5 max-pools.

    Arguments:
        channels: input and output channels.
        pool: max-pool kernel size (stride 1, "same" padding).
    """

    def __init__(self, channels: int, *, pool: int = 5) -> None:
        super().__init__()
        hidden = channels // 2
        self.cv1 = Conv(channels, hidden)
        self.cv2 = Conv(4 * hidden, channels)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(F.max_pool2d(y[-1], self.pool, 1, self.pool // 2))
        return self.cv2(torch.cat(y, dim=1))


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dimension of a ``(B, C, H, W)`` tensor."""

    def __init__(self, channels: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Permuting lets the export emit a single LayerNormalization op (opset 17),
        # which TensorRT and OpenVINO keep in FP32 internally.
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
