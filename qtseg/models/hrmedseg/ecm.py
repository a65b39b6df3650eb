"""ECM-Decoder: the efficient cross-multiscale decoder of HRMedSeg.

One learned 256-d query per class. Self-attention updates the queries; a
bidirectional cross-attention (paper Eqs. 6-7) lets the queries read the
image embedding and writes the queries back into a multiscale-pooled image
embedding; two transposed convolutions lift the embedding by 4x and a
per-class MLP turns each query into a kernel that is dotted with it (Eq. 8).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from qtseg.models.hrmedseg.lgvit import LayerNorm2d


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v/out projections.

    ``internal_dim = dim // downsample`` is split over ``num_heads`` heads.
    """

    def __init__(self, dim: int, *, num_heads: int = 8, downsample: int = 1) -> None:
        """Arguments: dim: token width; num_heads: heads; downsample: dim / internal width."""
        super().__init__()
        inner = dim // downsample
        if inner % num_heads:
            raise ValueError(f"internal dim {inner} not divisible by {num_heads} heads")
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)
        self.num_heads = num_heads
        self.scale = 1.0 / math.sqrt(inner // num_heads)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q: (B, Nq, dim), k and v: (B, Nk, dim) -> (B, Nq, dim)."""
        q = self._heads(self.q_proj(q))
        k = self._heads(self.k_proj(k))
        v = self._heads(self.v_proj(v))
        attn = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        out = (attn @ v).transpose(1, 2)
        return self.out_proj(out.reshape(out.shape[0], out.shape[1], -1))


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
        dev = self.gaussian.device
        ys = (torch.arange(h, device=dev, dtype=torch.float32) + 0.5) / h
        xs = (torch.arange(w, device=dev, dtype=torch.float32) + 0.5) / w
        coords = torch.stack(
            [xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1
        )  # (h, w, 2)
        proj = (2.0 * coords - 1.0) @ self.gaussian * (2.0 * math.pi)
        pe = torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)
        return pe.permute(2, 0, 1).unsqueeze(0)


class MLP(nn.Module):
    """Plain MLP with ReLU between ``num_layers`` linear layers."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, *, num_layers: int = 3) -> None:
        """Arguments: in_dim, hidden, out_dim: widths; num_layers: linear layers."""
        super().__init__()
        dims = [in_dim] + [hidden] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in itertools.pairwise(dims)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_dim) -> (..., out_dim)."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


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
        self.self_attn = Attention(dim, num_heads=num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.attn_token_to_image = Attention(dim, num_heads=num_heads, downsample=cross_downsample)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.ReLU(), nn.Linear(mlp_dim, dim))
        self.norm3 = nn.LayerNorm(dim)
        self.attn_image_to_token = Attention(dim, num_heads=num_heads, downsample=cross_downsample)
        self.norm4 = nn.LayerNorm(dim)
        self.multiscale = MultiscalePool(pool_kernels)
        self.pe = RandomFourierPE(dim, seed=pe_seed)
        c1, c2 = up_dims
        self.upscale = nn.Sequential(
            nn.ConvTranspose2d(dim, c1, 2, stride=2),
            LayerNorm2d(c1),
            nn.GELU(),
            nn.ConvTranspose2d(c1, c2, 2, stride=2),
            nn.GELU(),
        )
        self.hypernets = nn.ModuleList([MLP(dim, dim, c2) for _ in range(num_classes)])

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
