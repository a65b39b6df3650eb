"""ECM-Decoder: the efficient cross-multiscale decoder of HRMedSeg.

One learned 256-d query per class. Self-attention updates the queries; a
bidirectional cross-attention (paper Eqs. 6-7) lets the queries read the
image embedding and writes the queries back into a multiscale-pooled image
embedding; two transposed convolutions lift the embedding by 4x and a
per-class MLP turns each query into a kernel that is dotted with it (Eq. 8).
"""

from __future__ import annotations

import torch
from torch import nn

from qtseg.models.attention import MLP, fourier_positional_encoding
from qtseg.models.sam_layers import SamAttention, upscaling


class MultiscalePool(nn.Module):
    """Parameter-free multiscale module delta(H).

    Average of the input and its stride-1 average pools (kernels 5, 9, 13,
    padding excluded from the mean) - PoolFormer-style pooling at three
    receptive fields, no weights.
    """

    def __init__(self, kernels: tuple[int, ...] = (5, 9, 13)) -> None:
        """Arguments: kernels: odd pooling kernel sizes."""
        super().__init__()
        self.pools = nn.ModuleList(
            [nn.AvgPool2d(k, stride=1, padding=k // 2, count_include_pad=False) for k in kernels]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C, h, w)."""
        out = x
        for pool in self.pools:
            out = out + pool(x)
        return out / (len(self.pools) + 1)


class RandomFourierPE(nn.Module):
    """SAM-style positional encoding: sin/cos of a fixed Gaussian projection of
    normalised (x, y) pixel-centre coordinates. The Gaussian matrix is a
    persistent buffer so a checkpoint reproduces the encoding exactly."""

    def __init__(self, dim: int, *, seed: int = 0) -> None:
        """Arguments: dim: encoding width (even); seed: seed of the Gaussian matrix."""
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        values = torch.randn(2, dim // 2, generator=gen, device="cpu")
        # empty() follows the default device (e.g. "meta" while counting MACs).
        self.register_buffer("gaussian", torch.empty(2, dim // 2).copy_(values))

    def forward(self, h: int, w: int) -> torch.Tensor:
        """Grid size -> (1, dim, h, w)."""
        return fourier_positional_encoding(self.gaussian, h, w)


class ECMDecoder(nn.Module):
    """Efficient cross-multiscale decoder.

    Output masks are at 4x the embedding resolution; the model resizes them
    to the input size.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        dim: int = 256,
        num_heads: int = 8,
        cross_downsample: int = 1,
        mlp_dim: int = 1280,
        up_dims: tuple[int, int] = (128, 64),
        pool_kernels: tuple[int, ...] = (5, 9, 13),
        pe_seed: int = 0,
    ) -> None:
        """Arguments: num_classes: C2 queries; dim: query/embedding width;
        num_heads: attention heads; cross_downsample: dim / cross-attention width;
        mlp_dim: query MLP hidden width; up_dims: channels after each transposed
        conv; pool_kernels: multiscale pooling kernels; pe_seed: seed of the
        positional encoding."""
        super().__init__()
        self.queries = nn.Embedding(num_classes, dim)
        self.self_attn = SamAttention(dim, num_heads=num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.attn_token_to_image = SamAttention(
            dim, num_heads=num_heads, downsample=cross_downsample
        )
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.ReLU(), nn.Linear(mlp_dim, dim))
        self.norm3 = nn.LayerNorm(dim)
        self.attn_image_to_token = SamAttention(
            dim, num_heads=num_heads, downsample=cross_downsample
        )
        self.norm4 = nn.LayerNorm(dim)
        self.multiscale = MultiscalePool(pool_kernels)
        self.pe = RandomFourierPE(dim, seed=pe_seed)
        c1, c2 = up_dims
        self.upscale = upscaling(dim, c1, c2)
        self.hypernets = nn.ModuleList([MLP((dim, dim, dim, c2)) for _ in range(num_classes)])

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        """feat: (B, dim, h, w) image embedding -> (B, num_classes, 4h, 4w) mask logits."""
        b, _, h, w = feat.shape
        pe = self.pe(h, w).flatten(2).transpose(1, 2)  # (1, N, dim)
        img = feat.flatten(2).transpose(1, 2)  # H
        ms = self.multiscale(feat).flatten(2).transpose(1, 2)  # delta(H)

        q = self.queries.weight.unsqueeze(0).expand(b, -1, -1)
        q = self.norm1(q + self.self_attn(q, q, q))
        # Eq. 6: queries read keys H + psi, values delta(H).
        q = self.norm2(q + self.attn_token_to_image(q, img + pe, ms))
        q = self.norm3(q + self.mlp(q))
        # Eq. 7: image tokens delta(H) + psi read the queries.
        img = self.norm4(ms + self.attn_image_to_token(ms + pe, q, q))

        up = self.upscale(img.transpose(1, 2).reshape_as(feat))
        kernels = torch.stack([mlp(q[:, i]) for i, mlp in enumerate(self.hypernets)], dim=1)
        return torch.einsum("bkc,bchw->bkhw", kernels, up)
