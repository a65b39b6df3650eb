"""Pieces shared by the QTSeg v1 and v2 decoders and the top-level model."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from qtseg.models.attention import fourier_positional_encoding
from qtseg.models.blocks import LayerNorm2d


class UpsampleBlock(nn.Module):
    """ConvTranspose2d (k2, s2) + LayerNorm2d + GELU: doubles the resolution."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.ConvTranspose2d(c_in, c_out, 2, 2)
        self.norm = LayerNorm2d(c_out)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c_in, H, W) -> (B, c_out, 2H, 2W)."""
        return self.act(self.norm(self.conv(x)))


class StagePositionalEncoding(nn.Module):
    """Fixed random-Fourier positional encodings of the three decoder stages.

    The encodings for the configured input size are buffers computed once at
    construction (no host work in ``forward``). For another input size they
    are recomputed on the device from the stored Gaussian matrices.

    Arguments:
        channels: channels of each stage.
        strides: stride of each stage.
        img_size: input ``(height, width)`` to precompute the grids for.
        seed: seed of the Gaussian matrices (fixed, not learned).
    """

    def __init__(
        self,
        *,
        channels: tuple[int, ...],
        strides: tuple[int, ...],
        img_size: tuple[int, int],
        seed: int,
    ) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.num_stages = len(channels)
        for i, (c, s) in enumerate(zip(channels, strides)):
            gaussian = torch.randn(2, c // 2, generator=generator)
            pe = fourier_positional_encoding(gaussian, img_size[0] // s, img_size[1] // s)
            self.register_buffer(f"pe{i}", pe, persistent=False)
            self.register_buffer(f"gaussian{i}", gaussian, persistent=False)

    def forward(self, stage: int, feat: torch.Tensor) -> torch.Tensor:
        """Encoding ``(1, C, H, W)`` matching the grid of ``feat`` at ``stage``."""
        pe = getattr(self, f"pe{stage}")
        h, w = feat.shape[-2:]
        if pe.shape[-2:] == (h, w):
            return pe.to(feat.dtype)
        return fourier_positional_encoding(getattr(self, f"gaussian{stage}"), h, w).to(feat.dtype)


class QTSeg(nn.Module):
    """Encoder -> bridge (MLFD/MLFF) -> query-token decoder -> full-size logits.

    Arguments:
        encoder: returns three feature maps (strides 8, 16, 32).
        bridge: mixes the three maps (MLFD) or passes them through.
        decoder: returns mask logits at half the input resolution.
    """

    def __init__(self, *, encoder: nn.Module, bridge: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.bridge = bridge
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float32 in [0, 1] -> (B, num_classes, H, W) logits."""
        logits = self.decoder(self.bridge(self.encoder(x)))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
