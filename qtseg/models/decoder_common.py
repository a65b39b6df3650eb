"""What QTSeg v1 and v2 share: config, query-token decoder, top-level model, builder.

The two versions differ only in the decoder stage (v1: query-mask stages of
two-way blocks, v2: dual-mix attention stages) and in their docs; both are
``QTSeg(FPNEncoder, MLFD, QueryTokenDecoder(stage=...))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F

from qtseg.models.attention import MLP, fourier_positional_encoding
from qtseg.models.blocks import LayerNorm2d
from qtseg.models.encoder import MLFD, FPNEncoder
from qtseg.models.registry import size_pair


@dataclass(frozen=True)
class QTSegConfig:
    """Configuration shared by QTSeg v1 and v2.

    Attributes:
        num_classes: output classes including background (>= 2); one query
            token per class.
        width: encoder base width ``n``; decoder widths are 4n, 8n, 16n.
        img_size: input ``(height, width)`` (an int means square), multiples
            of 32; positional encodings are precomputed for this size.
        depths: decoder blocks per stage ``(stage0, stage1, stage2)`` (v2:
            DMA layers; v1: hidden two-way blocks ``h``).
        heads: attention heads.
        mlp_dim: hidden width of the token MLP inside each block.
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
        object.__setattr__(self, "img_size", size_pair(self.img_size))
        object.__setattr__(self, "depths", tuple(int(v) for v in self.depths))
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if any(v <= 0 or v % 32 for v in self.img_size):
            raise ValueError(f"img_size must be positive multiples of 32, got {self.img_size}")
        if self.width <= 0 or self.width % 4:
            raise ValueError(f"width must be a positive multiple of 4, got {self.width}")
        if len(self.depths) != 3 or any(d < 1 for d in self.depths):
            raise ValueError(f"depths must be three values >= 1, got {self.depths}")


class StageType(Protocol):
    """Builds one decoder stage: ``stage(dim, depth=, heads=, mlp_dim=)``.

    The stage maps ``(feat (B, C, H, W), pe (1, C, H, W), tokens (B, K, C))``
    to updated ``(feat, tokens)`` of the same shapes.
    """

    def __call__(self, dim: int, *, depth: int, heads: int, mlp_dim: int) -> nn.Module: ...


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


class QueryTokenDecoder(nn.Module):
    """Query-token decoder: one stage per feature map, from the coarsest to the finest.

    After each stage the features are upsampled (ConvTranspose + LayerNorm2d
    + GELU; stage 0 in two steps to 1/2 resolution) and added to the next
    stage's features; the tokens go through one 3-layer MLP per class to the
    next stage's width. The mask is the per-pixel dot product of tokens and
    features at half the input resolution.

    Arguments:
        stage: the stage type (v2: ``DMAStage``, v1: ``QMStage``).
        channels: ``(c0, c1, c2)`` channels of the three feature stages.
        strides: their strides.
        num_classes: number of query tokens (one per class).
        img_size: input size the positional encodings are precomputed for.
        depths, heads, mlp_dim, pe_seed: see :class:`QTSegConfig`.
    """

    def __init__(
        self,
        *,
        stage: StageType,
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
            stage(c, depth=d, heads=heads, mlp_dim=mlp_dim) for c, d in zip(channels, depths)
        )
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
        # repeat (a copy) rather than expand (a view): under torch.no_grad a view
        # of a parameter still reports requires_grad without a grad_fn, which
        # breaks torch.utils.flop_counter's module tracking.
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


def build_qtseg(config: QTSegConfig, *, stage: StageType) -> QTSeg:
    """QTSeg with decoder stages of type ``stage`` (the builders of v1 and v2)."""
    encoder = FPNEncoder(width=config.width)
    channels = tuple(f.channels for f in encoder.feature_info)
    strides = tuple(f.stride for f in encoder.feature_info)
    decoder = QueryTokenDecoder(
        stage=stage,
        channels=channels,
        strides=strides,
        num_classes=config.num_classes,
        img_size=config.img_size,
        depths=config.depths,
        heads=config.heads,
        mlp_dim=config.mlp_dim,
        pe_seed=config.pe_seed,
    )
    # MLFD is the v2 name of the module the v1 paper calls MLFF.
    return QTSeg(encoder=encoder, bridge=MLFD(channels=channels), decoder=decoder)
