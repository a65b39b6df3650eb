"""Attention pieces of the query-token decoders: projections, MLPs, positional encoding."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    """Multi-head attention with q/k/v/out projections and a reduced internal width.

    Arguments:
        dim: width of queries, keys and values (in and out).
        heads: number of heads.
        downsample: internal width is ``dim // downsample``.
    """

    def __init__(self, dim: int, *, heads: int = 8, downsample: int = 2) -> None:
        super().__init__()
        inner = dim // downsample
        if inner % heads:
            raise ValueError(f"internal width {inner} is not divisible by {heads} heads")
        self.heads = heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """q (B, Nq, dim), k/v (B, Nk, dim) -> (B, Nq, dim)."""
        q = self._split(self.q_proj(q))
        k = self._split(self.k_proj(k))
        v = self._split(self.v_proj(v))
        # Softmax statistics are accumulated in FP32 by SDPA even for FP16 inputs.
        out = F.scaled_dot_product_attention(q, k, v)
        b, h, n, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * d))


class MLP(nn.Module):
    """Stack of Linear layers with an activation between them (none after the last).

    Arguments:
        dims: layer widths, e.g. ``(256, 256, 256, 128)`` for three layers.
        activation: activation module class.
    """

    def __init__(self, dims: tuple[int, ...], *, activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.act = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., dims[0]) -> (..., dims[-1])."""
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < last:
                x = self.act(x)
        return x


def fourier_positional_encoding(gaussian: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Random-Fourier positional encoding of a ``height x width`` grid.

    Pixel centres are mapped to [-1, 1], projected by the fixed Gaussian
    matrix ``gaussian`` of shape ``(2, C // 2)`` and encoded as ``[sin, cos]``.

    Returns:
        ``(1, C, height, width)`` tensor of ``gaussian``'s dtype and device.
    """
    dev, dtype = gaussian.device, gaussian.dtype
    ys = (torch.arange(height, device=dev, dtype=dtype) + 0.5) / height
    xs = (torch.arange(width, device=dev, dtype=dtype) + 0.5) / width
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (H, W, 2) as (x, y)
    proj = (2.0 * grid - 1.0) @ gaussian * (2.0 * math.pi)
    pe = torch.cat([proj.sin(), proj.cos()], dim=-1)  # (H, W, C)
    return pe.permute(2, 0, 1).unsqueeze(0).contiguous()
