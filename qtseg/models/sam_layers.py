"""SAM-style layers shared by the peer models HRMedSeg and IC-MoE.

Parameter names follow SAM's checkpoint layout (``weight``/``bias`` of the
channel norm, ``q_proj``..``out_proj``, ``neck.0``..``neck.3``), which both
peers keep. QTSeg's own layers are in :mod:`qtseg.models.blocks` and
:mod:`qtseg.models.attention`; they differ on purpose (QTSeg's
``LayerNorm2d`` wraps ``nn.LayerNorm`` so that it exports as one ONNX op, its
attention uses ``scaled_dot_product_attention``).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) tensor (SAM's eps 1e-6).

    Arguments:
        channels: C.
        eps: variance floor.
    """

    def __init__(self, channels: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class SamAttention(nn.Module):
    """Multi-head attention with q/k/v/out projections to ``dim // downsample`` channels.

    The softmax is written out (``softmax(q k^T / sqrt(d)) v``) as in SAM's
    decoder, so the exported graph and its FP16 behaviour match the peers'
    published models.

    Arguments:
        dim: token width (in and out).
        num_heads: heads.
        downsample: ``dim`` / internal width.
    """

    def __init__(self, dim: int, *, num_heads: int, downsample: int = 1) -> None:
        super().__init__()
        inner = dim // downsample
        if inner % num_heads:
            raise ValueError(f"internal dim {inner} not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = inner // num_heads
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q: (B, Nq, dim), k and v: (B, Nk, dim) -> (B, Nq, dim)."""
        q = self._heads(self.q_proj(q))
        k = self._heads(self.k_proj(k))
        v = self._heads(self.v_proj(v))
        attn = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1)
        out = (attn @ v).transpose(1, 2)
        return self.out_proj(out.reshape(out.shape[0], -1, self.num_heads * self.head_dim))


def neck(in_channels: int, out_channels: int) -> nn.Sequential:
    """SAM's encoder neck: 1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d (no biases)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        LayerNorm2d(out_channels),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        LayerNorm2d(out_channels),
    )


def upscaling(in_channels: int, mid_channels: int, out_channels: int) -> nn.Sequential:
    """SAM's mask upscaling, 4x: ConvTranspose (k2, s2), LayerNorm2d, GELU, ConvTranspose, GELU."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, mid_channels, 2, stride=2),
        LayerNorm2d(mid_channels),
        nn.GELU(),
        nn.ConvTranspose2d(mid_channels, out_channels, 2, stride=2),
        nn.GELU(),
    )
