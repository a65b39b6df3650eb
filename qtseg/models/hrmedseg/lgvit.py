"""LGViT: the lightweight gated ViT image encoder of HRMedSeg.

Two-stage layout on one grid of patch embeddings (stride ``patch_size``):
channel-interactive MBConv layers first, then token-interactive layers built
on dual-gated linear attention (DGLA). A SAM-style neck (1x1 conv + 3x3 conv)
lifts the C1 channels to the decoder width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qtseg.models.sam_layers import neck


class MBConv(nn.Module):
    """Channel-interactive layer (paper Eq. 1).

    ``x <- act(proj(act(dw3x3(act(expand1x1(x))))) + x)``; each conv is
    followed by BatchNorm (the paper names the convs only; BN is the MBConv
    convention and folds away at export).
    """

    def __init__(self, channels: int, *, expand_ratio: float = 2.0) -> None:
        """Arguments: channels: C1; expand_ratio: hidden width / C1 (paper: 2)."""
        super().__init__()
        hidden = round(channels * expand_ratio)
        self.expand = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.GELU()
        )
        self.dw = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.GELU(),
        )
        self.proj = nn.Sequential(
            nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels)
        )
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C1, h, w) -> (B, C1, h, w)."""
        return self.act(self.proj(self.dw(self.expand(x))) + x)


class DualGatedLinearAttention(nn.Module):
    """Token-interactive layer (paper Eqs. 3-5).

    ``V_gated = SiLU(V) W_gate`` (inter-gate), linear attention with the
    ``elu + 1`` kernel over ``V_gated``, exter-gate ``SiLU(x W_x)`` multiplies
    the result, then ``H = MLP(LN(.)) + x``. The projection width d equals C1
    because the exter-gate (N x d) multiplies V' (N x C1) element-wise.
    """

    def __init__(self, dim: int, *, mlp_ratio: float = 2.0, eps: float = 1e-6) -> None:
        """Arguments: dim: C1; mlp_ratio: MLP hidden / C1 (paper: 2); eps: normaliser floor."""
        super().__init__()
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.gate = nn.Linear(dim, dim)  # W_gate (inter-gate)
        self.x_gate = nn.Linear(dim, dim)  # W_x (exter-gate)
        self.norm = nn.LayerNorm(dim)
        hidden = round(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C1) tokens -> (B, N, C1)."""
        q = F.elu(self.q(x)) + 1.0
        k = F.elu(self.k(x)) + 1.0
        v = self.gate(F.silu(self.v(x)))
        n = x.shape[1]
        # Means instead of sums over the N tokens: the factor cancels in the
        # ratio and keeps the running sums small enough for FP16 engines.
        kv = torch.einsum("bnd,bnc->bdc", k, v) / n
        k_mean = k.mean(dim=1)  # (B, d)
        num = torch.einsum("bnd,bdc->bnc", q, kv)
        den = torch.einsum("bnd,bd->bn", q, k_mean).unsqueeze(-1)
        attn = num / (den + self.eps)
        return self.mlp(self.norm(F.silu(self.x_gate(x)) * attn)) + x


class LGViT(nn.Module):
    """LGViT encoder: patch embedding, MBConvs, DGLA layers, neck.

    ``out_channels`` and ``stride`` describe the output feature map.
    """

    def __init__(
        self,
        *,
        in_chans: int = 3,
        embed_dim: int = 96,
        depth: int = 10,
        num_mbconv: int = 2,
        patch_size: int = 16,
        mlp_ratio: float = 2.0,
        out_channels: int = 256,
    ) -> None:
        """Arguments: embed_dim: C1; depth: L token-interactive layers;
        num_mbconv: channel-interactive layers; patch_size: S;
        mlp_ratio: expansion in MBConv and MLP; out_channels: neck width."""
        super().__init__()
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
        self.mbconvs = nn.Sequential(
            *[MBConv(embed_dim, expand_ratio=mlp_ratio) for _ in range(num_mbconv)]
        )
        self.blocks = nn.ModuleList(
            [DualGatedLinearAttention(embed_dim, mlp_ratio=mlp_ratio) for _ in range(depth)]
        )
        self.neck = neck(embed_dim, out_channels)
        self.out_channels = out_channels
        self.stride = patch_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, out_channels, H/S, W/S)."""
        x = self.mbconvs(self.patch_embed(x))
        t = x.flatten(2).transpose(1, 2)
        for blk in self.blocks:
            t = blk(t)
        return self.neck(t.transpose(1, 2).reshape_as(x))
