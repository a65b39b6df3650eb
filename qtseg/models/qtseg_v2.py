"""QTSeg v2: FPN encoder + MLFD + dual-mix attention (DMA) query-token decoder.

Architecture facts are those of ``specs/models.md``. With ``num_classes=2``,
``width=16`` and a 512x512 input the model has 9,214,850 parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from qtseg.models.attention import MLP, Attention
from qtseg.models.decoder_common import QTSeg, QTSegConfig, build_qtseg
from qtseg.models.registry import register_model


@dataclass(frozen=True)
class QTSegV2Config(QTSegConfig):
    """Configuration of QTSeg v2 (fields: :class:`QTSegConfig`; ``depths`` counts DMA layers)."""


class SpatialAttention(nn.Module):
    """CBAM spatial attention: channel mean/max -> 7x7 conv -> sigmoid gate, residual."""

    def __init__(self, *, kernel: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel, padding=kernel // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled)) + x


class ChannelAttention(nn.Module):
    """DANet channel attention: C x C affinity, max-minus-energy softmax, gated residual."""

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        # The affinity sums H*W products and overflows FP16. Autocast would
        # cast the matmuls to FP16 even for FP32 operands, so it is switched
        # off here; outside autocast (export, FP32, explicit FP16 weights)
        # the plain path is traced.
        if torch.is_autocast_enabled(x.device.type):
            with torch.autocast(device_type=x.device.type, enabled=False):
                return self._attend(x)
        return self._attend(x)

    def _attend(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat32 = x.reshape(b, c, h * w).float()
        energy = flat32 @ flat32.transpose(1, 2)
        energy = energy.amax(dim=-1, keepdim=True) - energy
        attn = torch.softmax(energy, dim=-1)
        out = (attn @ flat32).to(x.dtype).reshape(b, c, h, w)
        return self.gamma.to(x.dtype) * out + x


class DualMixLayer(nn.Module):
    """One DMA layer: spatial and channel branches, two-way token/image attention.

    Arguments:
        dim: channels of the stage (= token width).
        heads: attention heads.
        mlp_dim: hidden width of the token MLP.
    """

    def __init__(self, dim: int, *, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.spatial = SpatialAttention()
        self.channel = ChannelAttention()
        self.token_from_spatial = Attention(dim, heads=heads)
        self.token_from_channel = Attention(dim, heads=heads)
        self.norm_mix = nn.LayerNorm(dim)
        self.mlp = MLP((dim, mlp_dim, dim), activation=nn.GELU)
        self.norm_mlp = nn.LayerNorm(dim)
        self.image_from_token = Attention(dim, heads=heads)

    def forward(
        self, feat: torch.Tensor, pe: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """feat (B, C, H, W), pe (1, C, H, W), tokens (B, K, C) -> updated (feat, tokens)."""
        b, c, h, w = feat.shape
        with_pe = feat + pe
        spatial = self.spatial(with_pe).flatten(2).transpose(1, 2)  # (B, HW, C)
        channel = self.channel(with_pe).flatten(2).transpose(1, 2)
        mixed = (
            self.token_from_spatial(tokens, spatial, spatial)
            + self.token_from_channel(tokens, channel, channel)
            + tokens
        )
        mixed = self.norm_mix(mixed)
        tokens = self.norm_mlp(self.mlp(mixed)) + mixed
        pe_seq = pe.flatten(2).transpose(1, 2)
        image = self.image_from_token(spatial + channel + pe_seq, tokens, tokens)
        feat = feat + image.transpose(1, 2).reshape(b, c, h, w)
        return feat, tokens


class DMAStage(nn.Module):
    """``depth`` DMA layers followed by a final token-to-image attention + LayerNorm."""

    def __init__(self, dim: int, *, depth: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DualMixLayer(dim, heads=heads, mlp_dim=mlp_dim) for _ in range(depth)
        )
        self.final_attn = Attention(dim, heads=heads)
        self.final_norm = nn.LayerNorm(dim)

    def forward(
        self, feat: torch.Tensor, pe: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """feat (B, C, H, W), pe (1, C, H, W), tokens (B, K, C) -> (feat, tokens)."""
        for layer in self.layers:
            feat, tokens = layer(feat, pe, tokens)
        keys = (feat + pe).flatten(2).transpose(1, 2)
        values = feat.flatten(2).transpose(1, 2)
        tokens = self.final_norm(tokens + self.final_attn(tokens, keys, values))
        return feat, tokens


@register_model(
    "qtseg-v2", QTSegV2Config, description="QTSeg v2: FPN + MLFD + dual-mix attention decoder"
)
def build_qtseg_v2(config: QTSegV2Config) -> QTSeg:
    """Build QTSeg v2 from its config."""
    return build_qtseg(config, stage=DMAStage)
