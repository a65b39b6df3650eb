"""QTSeg v2: FPN encoder + MLFD + dual-mix attention (DMA) query-token decoder.

Architecture facts are those of ``specs/models.md``. With ``num_classes=2``,
``width=16`` and a 512x512 input the model has 9,214,850 parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from qtseg.models.attention import MLP, Attention
from qtseg.models.decoder_common import QTSeg, StagePositionalEncoding, UpsampleBlock
from qtseg.models.encoder import MLFD, FPNEncoder
from qtseg.models.registry import register_model


@dataclass(frozen=True)
class QTSegV2Config:
    """Configuration of QTSeg v2.

    Attributes:
        num_classes: output classes including background (>= 2).
        width: encoder base width ``n``; decoder widths are 4n, 8n, 16n.
        img_size: input ``(height, width)``, multiples of 32; positional
            encodings are precomputed for this size.
        depths: DMA layers per decoder stage ``(stage0, stage1, stage2)``.
        heads: attention heads.
        mlp_dim: hidden width of the token MLP inside each DMA layer.
        pe_seed: seed of the fixed random-Fourier positional encoding.
    """

    num_classes: int = 2
    width: int = 16
    img_size: tuple[int, int] = (512, 512)
    depths: tuple[int, int, int] = (1, 2, 3)
    heads: int = 8
    mlp_dim: int = 2048
    pe_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "img_size", tuple(int(v) for v in self.img_size))
        object.__setattr__(self, "depths", tuple(int(v) for v in self.depths))
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if any(v <= 0 or v % 32 for v in self.img_size):
            raise ValueError(f"img_size must be positive multiples of 32, got {self.img_size}")
        if self.width % 4:
            raise ValueError(f"width must be a multiple of 4, got {self.width}")


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


class DMADecoder(nn.Module):
    """Query-token decoder running DMA stages from the coarsest stage to the finest.

    Arguments:
        channels: ``(c0, c1, c2)`` channels of the three feature stages.
        strides: their strides.
        num_classes: number of query tokens (one per class).
        img_size: input size the positional encodings are precomputed for.
        depths, heads, mlp_dim, pe_seed: see :class:`QTSegV2Config`.
    """

    def __init__(
        self,
        *,
        channels: tuple[int, int, int],
        strides: tuple[int, int, int],
        num_classes: int,
        img_size: tuple[int, int],
        depths: tuple[int, int, int],
        heads: int,
        mlp_dim: int,
        pe_seed: int,
    ) -> None:
        super().__init__()
        c0, c1, c2 = channels
        self.query_tokens = nn.Embedding(num_classes, c2)
        self.pos_enc = StagePositionalEncoding(
            channels=channels, strides=strides, img_size=img_size, seed=pe_seed
        )
        self.stages = nn.ModuleList(
            DMAStage(c, depth=d, heads=heads, mlp_dim=mlp_dim) for c, d in zip(channels, depths)
        )
        # Feature upsampling after each stage; stage 0 goes to 1/2 resolution in two steps.
        self.upsample = nn.ModuleList([
            nn.Sequential(UpsampleBlock(c0, c0 // 2), UpsampleBlock(c0 // 2, c0)),
            UpsampleBlock(c1, c0),
            UpsampleBlock(c2, c1),
        ])
        out_dims = (c0, c0, c1)
        self.token_mlps = nn.ModuleList(
            nn.ModuleList(MLP((c, c, c, o)) for _ in range(num_classes))
            for c, o in zip(channels, out_dims)
        )

    def forward(self, feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """(F0, F1, F2) -> mask logits (B, num_classes, H/2, W/2)."""
        batch = feats[0].shape[0]
        tokens = self.query_tokens.weight.unsqueeze(0).repeat(batch, 1, 1)
        carry = None
        for i in (2, 1, 0):
            feat = feats[i] if carry is None else feats[i] + carry
            pe = self.pos_enc(i, feat)
            feat, tokens = self.stages[i](feat, pe, tokens)
            carry = self.upsample[i](feat)
            tokens = torch.stack(
                [mlp(tokens[:, k]) for k, mlp in enumerate(self.token_mlps[i])], dim=1
            )
        b, c, h, w = carry.shape
        return (tokens @ carry.flatten(2)).reshape(b, -1, h, w)


@register_model("qtseg-v2", QTSegV2Config, description="QTSeg v2: FPN + MLFD + dual-mix attention decoder")
def build_qtseg_v2(config: QTSegV2Config) -> QTSeg:
    """Build QTSeg v2 from its config."""
    encoder = FPNEncoder(width=config.width)
    channels = tuple(f.channels for f in encoder.feature_info)
    strides = tuple(f.stride for f in encoder.feature_info)
    decoder = DMADecoder(
        channels=channels,
        strides=strides,
        num_classes=config.num_classes,
        img_size=config.img_size,
        depths=config.depths,
        heads=config.heads,
        mlp_dim=config.mlp_dim,
        pe_seed=config.pe_seed,
    )
    return QTSeg(encoder=encoder, bridge=MLFD(channels=channels), decoder=decoder)

