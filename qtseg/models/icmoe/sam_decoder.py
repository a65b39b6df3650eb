"""SAM-style prompt encoder and two-way-transformer mask decoder.

IC-MoE segments without prompts: the prompt encoder contributes only its
"no mask" dense embedding and the random-Fourier image positional encoding.
Its point/mask modules are kept so a SAM checkpoint loads one-to-one (they
are frozen and unused). Names follow the SAM checkpoint layout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qtseg.models.attention import MLP, fourier_positional_encoding
from qtseg.models.sam_layers import LayerNorm2d, SamAttention, upscaling


class PositionEmbeddingRandom(nn.Module):
    """sin/cos of a fixed Gaussian projection of (x, y) pixel-centre
    coordinates in [-1, 1] (the matrix is a checkpoint buffer in SAM)."""

    def __init__(self, num_pos_feats: int) -> None:
        """Arguments: num_pos_feats: half the encoding width."""
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_pos_feats))

    def forward(self, h: int, w: int) -> torch.Tensor:
        """Grid size -> (1, 2 * num_pos_feats, h, w)."""
        return fourier_positional_encoding(self.positional_encoding_gaussian_matrix, h, w)


class PromptEncoder(nn.Module):
    """SAM prompt encoder, used here in its no-prompt mode."""

    def __init__(self, *, embed_dim: int, grid: int, mask_in_chans: int = 16) -> None:
        """Arguments: embed_dim: prompt/decoder width; grid: image-embedding side;
        mask_in_chans: width of the (unused) mask-prompt branch."""
        super().__init__()
        self.grid = grid
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.point_embeddings = nn.ModuleList([nn.Embedding(1, embed_dim) for _ in range(4)])
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, 2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, 2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, 1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def dense_pe(self) -> torch.Tensor:
        """Positional encoding of the image-embedding grid: (1, C, g, g)."""
        return self.pe_layer(self.grid, self.grid)

    def no_prompt_dense(self) -> torch.Tensor:
        """Dense embedding for "no mask prompt": (1, C, 1, 1), broadcast by the caller."""
        return self.no_mask_embed.weight.reshape(1, -1, 1, 1)


class MLPBlock(nn.Module):
    """``lin2(act(lin1(x)))`` (ReLU in SAM's mask decoder)."""

    def __init__(self, dim: int, hidden: int) -> None:
        """Arguments: dim: width; hidden: hidden width."""
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> (..., dim)."""
        return self.lin2(F.relu(self.lin1(x)))


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, token->image, token MLP, image->token (SAM)."""

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int,
        mlp_dim: int,
        downsample_rate: int,
        skip_first_layer_pe: bool,
    ) -> None:
        """Arguments: dim: width; num_heads: heads; mlp_dim: token MLP hidden;
        downsample_rate: cross-attention width divisor; skip_first_layer_pe:
        the first block attends without positional terms."""
        super().__init__()
        self.self_attn = SamAttention(dim, num_heads=num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = SamAttention(
            dim, num_heads=num_heads, downsample=downsample_rate
        )
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = SamAttention(
            dim, num_heads=num_heads, downsample=downsample_rate
        )
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """queries: (B, Nq, C), keys: (B, N, C) -> updated (queries, keys)."""
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """Stack of two-way blocks plus a final token->image attention."""

    def __init__(
        self, *, depth: int, dim: int, num_heads: int, mlp_dim: int, downsample_rate: int = 2
    ) -> None:
        """Arguments: depth: blocks; dim: width; num_heads: heads; mlp_dim: token
        MLP hidden; downsample_rate: cross-attention width divisor."""
        super().__init__()
        self.layers = nn.ModuleList(
            [
                TwoWayAttentionBlock(
                    dim,
                    num_heads=num_heads,
                    mlp_dim=mlp_dim,
                    downsample_rate=downsample_rate,
                    skip_first_layer_pe=i == 0,
                )
                for i in range(depth)
            ]
        )
        self.final_attn_token_to_image = SamAttention(
            dim, num_heads=num_heads, downsample=downsample_rate
        )
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(
        self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """image: (B, C, h, w), image_pe: (1, C, h, w), tokens: (B, T, C)
        -> (tokens (B, T, C), image tokens (B, h*w, C))."""
        keys = image.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        attn = self.final_attn_token_to_image(queries + tokens, keys + key_pe, keys)
        return self.norm_final_attn(queries + attn), keys


class MaskDecoder(nn.Module):
    """SAM mask decoder. ``forward`` returns the masks of the first
    ``num_outputs`` mask tokens at 4x the embedding resolution (the IoU head is
    kept for checkpoint compatibility and not evaluated)."""

    def __init__(
        self,
        *,
        dim: int = 256,
        num_mask_tokens: int = 4,
        depth: int = 2,
        num_heads: int = 8,
        mlp_dim: int = 2048,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        """Arguments: dim: transformer width; num_mask_tokens: mask tokens (SAM: 4);
        depth, num_heads, mlp_dim: two-way transformer; iou_head_*: IoU head."""
        super().__init__()
        self.transformer = TwoWayTransformer(
            depth=depth, dim=dim, num_heads=num_heads, mlp_dim=mlp_dim
        )
        self.num_mask_tokens = num_mask_tokens
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(num_mask_tokens, dim)
        self.output_upscaling = upscaling(dim, dim // 4, dim // 8)
        self.output_hypernetworks_mlps = nn.ModuleList(
            [MLP((dim, dim, dim, dim // 8)) for _ in range(num_mask_tokens)]
        )
        iou_dims = (dim, *[iou_head_hidden_dim] * (iou_head_depth - 1), num_mask_tokens)
        self.iou_prediction_head = MLP(iou_dims)

    def forward(
        self, image: torch.Tensor, image_pe: torch.Tensor, dense: torch.Tensor, num_outputs: int
    ) -> torch.Tensor:
        """image: (B, C, h, w) embedding, image_pe: (1, C, h, w), dense: (1 or B, C, 1 or h, 1 or w)
        -> (B, num_outputs, 4h, 4w) mask logits."""
        b = image.shape[0]
        tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = tokens.unsqueeze(0).expand(b, -1, -1)
        src = image + dense
        hs, keys = self.transformer(src, image_pe, tokens)
        up = self.output_upscaling(keys.transpose(1, 2).reshape_as(src))
        hyper = torch.stack(
            [self.output_hypernetworks_mlps[i](hs[:, 1 + i]) for i in range(num_outputs)], dim=1
        )
        return torch.einsum("bkc,bchw->bkhw", hyper, up)
