"""SAM-style ViT image encoder (windowed attention with decomposed relative
positions, absolute position embedding, conv neck), with optional bottleneck
adapters for IC-MoE's adaptive expert.

Sub-module and parameter names follow the Segment Anything checkpoint layout
(``blocks.0.attn.qkv.weight``, ``neck.0.weight``, ...) so that a SAM state
dict maps onto an expert by prefix only. Activations are (B, H, W, C) inside
the trunk, as in SAM.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qtseg.models.sam_layers import neck


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection: (B, 3, H, W) -> (B, H/p, W/p, C)."""

    def __init__(self, *, patch_size: int, in_chans: int, embed_dim: int) -> None:
        """Arguments: patch_size: p; in_chans: image channels; embed_dim: C."""
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, H/p, W/p, C)."""
        return self.proj(x).permute(0, 2, 3, 1)


class ViTMLP(nn.Module):
    """Transformer MLP ``lin2(GELU(lin1(x)))``."""

    def __init__(self, dim: int, hidden: int) -> None:
        """Arguments: dim: width; hidden: hidden width."""
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> (..., dim)."""
        return self.lin2(F.gelu(self.lin1(x)))


class Adapter(nn.Module):
    """Bottleneck adapter ``fc2(GELU(fc1(x)))`` (+ x when ``skip``).

    ``fc2`` starts at zero, so a freshly built adaptive expert computes
    exactly what the pretrained SAM block computes.
    """

    def __init__(self, dim: int, *, ratio: float = 0.25, skip: bool = True) -> None:
        """Arguments: dim: width; ratio: bottleneck / dim; skip: add the input back."""
        super().__init__()
        hidden = round(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> (..., dim)."""
        y = self.fc2(F.gelu(self.fc1(x)))
        return x + y if self.skip else y


def _rel_index(size: int) -> torch.Tensor:
    """(size, size) index into a (2*size-1, d) relative-position table."""
    coords = torch.arange(size)
    return coords[:, None] - coords[None, :] + (size - 1)


class RelPosAttention(nn.Module):
    """Multi-head self-attention on a square (B, g, g, C) grid with SAM's
    decomposed relative position bias (separate height and width tables).

    All sizes except the batch are module constants, so the exported graph
    carries no shape arithmetic.
    """

    def __init__(self, dim: int, *, num_heads: int, grid: int) -> None:
        """Arguments: dim: C; num_heads: heads; grid: side g of the token grid this
        attention sees (window size, or the full grid for global blocks)."""
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.grid = grid
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * grid - 1, self.head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * grid - 1, self.head_dim))
        self.register_buffer("rel_index", _rel_index(grid), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, g, g, C) -> (B, g, g, C)."""
        g, nh, hd = self.grid, self.num_heads, self.head_dim
        qkv = self.qkv(x).reshape(-1, g * g, 3, nh, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, -1, g * g, hd).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)

        rh = self.rel_pos_h[self.rel_index]  # (g, g, hd)
        rw = self.rel_pos_w[self.rel_index]
        rq = q.reshape(-1, g, g, hd)
        bias_h = torch.einsum("bhwc,hkc->bhwk", rq, rh)
        bias_w = torch.einsum("bhwc,wkc->bhwk", rq, rw)
        attn = attn.reshape(-1, g, g, g, g) + bias_h[:, :, :, :, None] + bias_w[:, :, :, None, :]
        attn = torch.softmax(attn.reshape(-1, g * g, g * g), dim=-1)

        out = (attn @ v).reshape(-1, nh, g, g, hd).permute(0, 2, 3, 1, 4).reshape(-1, g, g, nh * hd)
        return self.proj(out)


def window_partition(x: torch.Tensor, window: int, grid: int) -> torch.Tensor:
    """(B, g, g, C) -> (B * nWin, window, window, C), zero-padding g up to a
    multiple of ``window``."""
    pad = (-grid) % window
    if pad:
        x = F.pad(x, (0, 0, 0, pad, 0, pad))
    n, c = (grid + pad) // window, x.shape[-1]
    x = x.reshape(-1, n, window, n, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window, window, c)


def window_unpartition(win: torch.Tensor, window: int, grid: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nWin, window, window, C) -> (B, g, g, C)."""
    pad = (-grid) % window
    n, c = (grid + pad) // window, win.shape[-1]
    x = win.reshape(-1, n, n, window, window, c).permute(0, 1, 3, 2, 4, 5)
    x = x.reshape(-1, n * window, n * window, c)
    return x[:, :grid, :grid, :] if pad else x


class ViTBlock(nn.Module):
    """Pre-norm transformer block; windowed unless ``window_size == 0``.

    With ``adapter_ratio > 0`` (adaptive expert) an adapter refines the
    attention output (with skip) and a second adapter runs parallel to the MLP
    on the normalised input, scaled by ``adapter_scale``.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        mlp_ratio: float,
        window_size: int,
        grid: int,
        adapter_ratio: float = 0.0,
        adapter_scale: float = 0.5,
    ) -> None:
        """Arguments: dim: C; num_heads: heads; mlp_ratio: MLP hidden / C;
        window_size: window side (0 = global attention over the whole grid);
        grid: token grid side; adapter_ratio: adapter bottleneck / C (0 = none);
        adapter_scale: weight of the MLP-parallel adapter."""
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RelPosAttention(dim, num_heads=num_heads, grid=window_size or grid)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = ViTMLP(dim, int(dim * mlp_ratio))
        self.window_size = window_size
        self.grid = grid
        self.attn_adapter = Adapter(dim, ratio=adapter_ratio) if adapter_ratio > 0 else None
        self.mlp_adapter = (
            Adapter(dim, ratio=adapter_ratio, skip=False) if adapter_ratio > 0 else None
        )
        self.adapter_scale = adapter_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C)."""
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            x = self.attn(window_partition(x, self.window_size, self.grid))
            x = window_unpartition(x, self.window_size, self.grid)
        else:
            x = self.attn(x)
        if self.attn_adapter is not None:
            x = self.attn_adapter(x)
        x = shortcut + x
        xn = self.norm2(x)
        out = x + self.mlp(xn)
        if self.mlp_adapter is not None:
            out = out + self.adapter_scale * self.mlp_adapter(xn)
        return out


class ImageEncoderViT(nn.Module):
    """SAM image encoder: (B, 3, S, S) normalised image -> (B, out_chans, S/p, S/p)."""

    def __init__(
        self,
        *,
        img_size: int = 1024,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        out_chans: int = 256,
        window_size: int = 14,
        global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11),
        adapter_ratio: float = 0.0,
    ) -> None:
        """Arguments: img_size: square input side S; patch_size: p; embed_dim,
        depth, num_heads, mlp_ratio: ViT trunk; out_chans: neck width;
        window_size: local attention window; global_attn_indexes: blocks with
        global attention; adapter_ratio: adapter bottleneck / C (0 = none)."""
        super().__init__()
        grid = img_size // patch_size
        self.img_size = img_size
        self.patch_embed = PatchEmbed(patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, embed_dim))
        self.blocks = nn.ModuleList(
            [
                ViTBlock(
                    embed_dim,
                    num_heads=num_heads,
                    mlp_ratio=mlp_ratio,
                    window_size=0 if i in global_attn_indexes else window_size,
                    grid=grid,
                    adapter_ratio=adapter_ratio,
                )
                for i in range(depth)
            ]
        )
        self.neck = neck(embed_dim, out_chans)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, out_chans, S/p, S/p)."""
        x = self.patch_embed(x) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.neck(x.permute(0, 3, 1, 2))
