"""The YOLOv8-style FPN encoder and the multi-level feature distribution (MLFD).

MLFD is the same module the v1 paper calls MLFF.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from qtseg.models.blocks import SPPF, C2f, Conv, ConvTranspose


@dataclass(frozen=True)
class FeatureInfo:
    """Channels and stride of one encoder output stage."""

    channels: int
    stride: int


class FPNEncoder(nn.Module):
    """Backbone + top-down + bottom-up path producing three feature maps.

    Arguments:
        width: base width ``n`` (16 for the paper's model).

    Outputs ``(S0, S1, S2)`` with ``4n, 8n, 16n`` channels at strides 8, 16, 32;
    :attr:`feature_info` lists them.
    """

    def __init__(self, *, width: int = 16) -> None:
        super().__init__()
        n = width
        self.stem = nn.Sequential(
            Conv(3, n, kernel=3, stride=2),
            Conv(n, 2 * n, kernel=3, stride=2),
            C2f(2 * n, 2 * n, depth=1, residual=True),
        )
        self.stage3 = nn.Sequential(
            Conv(2 * n, 4 * n, kernel=3, stride=2), C2f(4 * n, 4 * n, depth=2, residual=True)
        )
        self.stage4 = nn.Sequential(
            Conv(4 * n, 8 * n, kernel=3, stride=2), C2f(8 * n, 8 * n, depth=2, residual=True)
        )
        self.stage5 = nn.Sequential(
            Conv(8 * n, 16 * n, kernel=3, stride=2),
            C2f(16 * n, 16 * n, depth=1, residual=True),
            SPPF(16 * n),
        )
        self.top_down4 = C2f(24 * n, 8 * n, depth=1, residual=False)
        self.top_down3 = C2f(12 * n, 4 * n, depth=1, residual=False)
        self.down3 = Conv(4 * n, 4 * n, kernel=3, stride=2)
        self.bottom_up4 = C2f(12 * n, 8 * n, depth=1, residual=False)
        self.down4 = Conv(8 * n, 8 * n, kernel=3, stride=2)
        self.bottom_up5 = C2f(24 * n, 16 * n, depth=1, residual=False)
        self.feature_info = (FeatureInfo(4 * n, 8), FeatureInfo(8 * n, 16), FeatureInfo(16 * n, 32))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> S0 (B, 4n, H/8, W/8), S1 (B, 8n, H/16, W/16), S2 (B, 16n, H/32, W/32)."""
        p3 = self.stage3(self.stem(x))
        p4 = self.stage4(p3)
        p5 = self.stage5(p4)
        t4 = self.top_down4(torch.cat([_up2(p5), p4], dim=1))
        s0 = self.top_down3(torch.cat([_up2(t4), p3], dim=1))
        s1 = self.bottom_up4(torch.cat([self.down3(s0), t4], dim=1))
        s2 = self.bottom_up5(torch.cat([self.down4(s1), p5], dim=1))
        return s0, s1, s2


def _up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class MLFD(nn.Module):
    """Multi-level feature distribution: every stage mixes all three stages.

    Each output stage concatenates three projections, half of its channels
    from its own stage and a quarter from each of the other two (resampled
    with strided convs or transposed convs).

    Arguments:
        channels: ``(c0, c1, c2)`` channels of S0, S1, S2 (e.g. 64, 128, 256).
    """

    def __init__(self, *, channels: tuple[int, int, int]) -> None:
        super().__init__()
        c0, c1, c2 = channels
        self.to0 = nn.ModuleList([
            Conv(c0, c0 // 2),
            ConvTranspose(c1, c0 // 4, factor=2),
            ConvTranspose(c2, c0 // 4, factor=4),
        ])
        self.to1 = nn.ModuleList([
            Conv(c0, c1 // 4, kernel=3, stride=2),
            Conv(c1, c1 // 2),
            ConvTranspose(c2, c1 // 4, factor=2),
        ])
        self.to2 = nn.ModuleList([
            Conv(c0, c2 // 4, kernel=3, stride=4),
            Conv(c1, c2 // 4, kernel=3, stride=2),
            Conv(c2, c2 // 2),
        ])

    def forward(
        self, feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(S0, S1, S2) -> (F0, F1, F2) with the same shapes."""
        return tuple(
            torch.cat([proj(f) for proj, f in zip(projs, feats)], dim=1)
            for projs in (self.to0, self.to1, self.to2)
        )
