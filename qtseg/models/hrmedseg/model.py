"""HRMedSeg (Xu et al.): LGViT encoder + ECM-Decoder, registered as ``hrmedseg``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from qtseg.models.hrmedseg.ecm import ECMDecoder
from qtseg.models.hrmedseg.lgvit import LGViT
from qtseg.models.registry import register_model, size_pair


@dataclass(frozen=True)
class HRMedSegConfig:
    """HRMedSeg hyper-parameters; defaults are the paper's model (C1=96, L=10).

    Attributes:
        num_classes: output classes including background (>= 2).
        img_size: training/export ``(height, width)`` (an int means square);
            any input whose sides are multiples of ``patch_size`` runs.
        patch_size: S, stride of the token grid.
        embed_dim: C1; depth: L token-interactive (DGLA) layers;
        num_mbconv: channel-interactive layers; mlp_ratio: MBConv/MLP expansion.
        decoder_dim: query and embedding width of the ECM decoder.
        decoder_heads, cross_downsample: attention heads, width divisor of
            the cross-attentions.
        decoder_mlp_dim, up_dims: token-MLP hidden width and the two
            transposed-conv widths (calibrated, see docs/models-peers.md).
        pool_kernels: kernels of the multiscale pooling.
        pe_seed: seed of the fixed random-Fourier positional encoding.
    """

    num_classes: int = 2
    img_size: tuple[int, int] = (1024, 1024)
    patch_size: int = 16
    embed_dim: int = 96
    depth: int = 10
    num_mbconv: int = 2
    mlp_ratio: float = 2.0
    decoder_dim: int = 256
    decoder_heads: int = 8
    cross_downsample: int = 1
    decoder_mlp_dim: int = 1280
    up_dims: tuple[int, int] = (128, 64)
    pool_kernels: tuple[int, ...] = (5, 9, 13)
    pe_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "img_size", size_pair(self.img_size))
        object.__setattr__(self, "up_dims", tuple(int(v) for v in self.up_dims))
        object.__setattr__(self, "pool_kernels", tuple(int(v) for v in self.pool_kernels))
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if any(v <= 0 or v % self.patch_size for v in self.img_size):
            raise ValueError(
                f"img_size {self.img_size} must be positive multiples of "
                f"patch_size {self.patch_size}"
            )
        if len(self.up_dims) != 2 or any(k % 2 == 0 for k in self.pool_kernels):
            raise ValueError("up_dims needs two widths and pool_kernels odd sizes")


class HRMedSeg(nn.Module):
    """Encoder + decoder + bilinear resize to the input size."""

    def __init__(self, encoder: LGViT, decoder: ECMDecoder) -> None:
        """Arguments: encoder: LGViT; decoder: ECMDecoder of the encoder's width."""
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float32 in [0, 1] -> (B, num_classes, H, W) logits."""
        masks = self.decoder(self.encoder(x))
        return F.interpolate(masks, size=x.shape[-2:], mode="bilinear", align_corners=False)


@register_model(
    "hrmedseg",
    HRMedSegConfig,
    description="HRMedSeg: LGViT linear-attention encoder + ECM cross-multiscale decoder",
)
def build_hrmedseg(cfg: HRMedSegConfig) -> HRMedSeg:
    """Build HRMedSeg from its config."""
    encoder = LGViT(
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_mbconv=cfg.num_mbconv,
        patch_size=cfg.patch_size,
        mlp_ratio=cfg.mlp_ratio,
        out_channels=cfg.decoder_dim,
    )
    decoder = ECMDecoder(
        num_classes=cfg.num_classes,
        dim=cfg.decoder_dim,
        num_heads=cfg.decoder_heads,
        cross_downsample=cfg.cross_downsample,
        mlp_dim=cfg.decoder_mlp_dim,
        up_dims=cfg.up_dims,
        pool_kernels=cfg.pool_kernels,
        pe_seed=cfg.pe_seed,
    )
    return HRMedSeg(encoder, decoder)
