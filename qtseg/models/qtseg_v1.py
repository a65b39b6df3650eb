"""QTSeg v1: FPN encoder + MLFF + multi-query mask (MQM) decoder (arXiv 2412.17241v1).

Architecture facts are those of the v1 paper (Section III, Table I,
Algorithm 1) and ``specs/models.md``; the readings of the paper's ambiguous
points are listed in ``docs/models-v1.md``. With ``num_classes=2``,
``width=16`` and a 512x512 input the model has 9,687,184 parameters
(paper, Table V setting 6: 9.69 M).
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
class QTSegV1Config:
    """Configuration of QTSeg v1.

    Attributes:
        num_classes: output classes including background (>= 2); one query
            token per class.
        width: encoder base width ``n``; decoder widths are 4n, 8n, 16n.
        img_size: input ``(height, width)``, multiples of 32; positional
            encodings are precomputed for this size.
        depths: hidden blocks ``h`` per decoder stage ``(stage0, stage1, stage2)``.
        heads: attention heads.
        mlp_dim: hidden width of the token MLP inside each two-way block.
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
        if len(self.img_size) != 2 or any(v <= 0 or v % 32 for v in self.img_size):
            raise ValueError(f"img_size must be two positive multiples of 32, got {self.img_size}")
        if self.width <= 0 or self.width % 4:
            raise ValueError(f"width must be a positive multiple of 4, got {self.width}")
        if len(self.depths) != 3 or any(d < 1 for d in self.depths):
            raise ValueError(f"depths must be three values >= 1, got {self.depths}")


class TwoWayBlock(nn.Module):
    """One hidden block of a QM decoder stage (Algorithm 1, lines 6-18).

    Token self-attention, token-to-image cross-attention, token MLP and
    image-to-token cross-attention, each with a residual and a post-LayerNorm.

    Arguments:
        dim: channels of the stage (= token width).
        heads: attention heads.
        mlp_dim: hidden width of the token MLP.
        first: the first block of a stage does not add the query encoding
            before self-attention (the tokens still equal it there).
    """

    def __init__(self, dim: int, *, heads: int, mlp_dim: int, first: bool) -> None:
        super().__init__()
        self.first = first
        # Self-attention keeps the full width (SAM convention); this is what
        # brings the model to the paper's 9.69 M parameters.
        self.self_attn = Attention(dim, heads=heads, downsample=1)
        self.norm_self = nn.LayerNorm(dim)
        self.token_to_image = Attention(dim, heads=heads)
        self.norm_cross = nn.LayerNorm(dim)
        self.mlp = MLP((dim, mlp_dim, dim))
        self.norm_mlp = nn.LayerNorm(dim)
        self.image_to_token = Attention(dim, heads=heads)
        self.norm_image = nn.LayerNorm(dim)

    def forward(
        self,
        tokens: torch.Tensor,
        token_pe: torch.Tensor,
        image: torch.Tensor,
        image_pe: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Update tokens and image sequence.

        Arguments:
            tokens: (B, K, C) query tokens.
            token_pe: (B, K, C) the stage's input tokens, used as their encoding.
            image: (B, HW, C) image features as a sequence.
            image_pe: (1, HW, C) positional encoding of the image grid.

        Returns:
            updated ``(tokens (B, K, C), image (B, HW, C))``.
        """
        q = tokens if self.first else tokens + token_pe
        tokens = self.norm_self(tokens + self.self_attn(q, q, tokens))
        image_keys = image + image_pe
        q = tokens + token_pe
        tokens = self.norm_cross(tokens + self.token_to_image(q, image_keys, image))
        tokens = self.norm_mlp(tokens + self.mlp(tokens))
        k = tokens + token_pe
        image = self.norm_image(image + self.image_to_token(image_keys, k, tokens))
        return tokens, image


class QMStage(nn.Module):
    """One query mask (QM) decoder: ``depth`` two-way blocks + a final token-to-image attention.

    Arguments:
        dim: channels of the stage.
        depth: number of hidden blocks ``h``.
        heads: attention heads.
        mlp_dim: hidden width of the token MLPs inside the blocks.
    """

    def __init__(self, dim: int, *, depth: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            TwoWayBlock(dim, heads=heads, mlp_dim=mlp_dim, first=i == 0) for i in range(depth)
        )
        self.final_attn = Attention(dim, heads=heads)
        self.final_norm = nn.LayerNorm(dim)

    def forward(
        self, feat: torch.Tensor, pe: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """feat (B, C, H, W), pe (1, C, H, W), tokens (B, K, C) -> (feat, tokens), same shapes."""
        b, c, h, w = feat.shape
        image = feat.flatten(2).transpose(1, 2)
        image_pe = pe.flatten(2).transpose(1, 2)
        token_pe = tokens
        for block in self.blocks:
            tokens, image = block(tokens, token_pe, image, image_pe)
        q = tokens + token_pe
        tokens = self.final_norm(tokens + self.final_attn(q, image + image_pe, image))
        return image.transpose(1, 2).reshape(b, c, h, w), tokens


class MQMDecoder(nn.Module):
    """Multi-query mask decoder: QM stages from the coarsest stage to the finest.

    After each stage the features are upsampled (ConvTranspose + LayerNorm2d +
    GELU) and added to the next stage's features; the tokens go through one
    3-layer MLP per class to the next stage's width. The mask is the per-pixel
    dot product of tokens and features at half the input resolution.

    Arguments:
        channels: ``(c0, c1, c2)`` channels of the three feature stages.
        strides: their strides.
        num_classes: number of query tokens (one per class).
        img_size: input size the positional encodings are precomputed for.
        depths, heads, mlp_dim, pe_seed: see :class:`QTSegV1Config`.
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
            QMStage(c, depth=d, heads=heads, mlp_dim=mlp_dim) for c, d in zip(channels, depths)
        )
        # Table I: ConvTranspose_2 (-> 8n), ConvTranspose_1 (-> 4n), and two
        # steps at stage 0 (-> 2n -> 4n) ending at 1/2 resolution.
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


@register_model(
    "qtseg-v1", QTSegV1Config, description="QTSeg v1: FPN + MLFF + multi-query mask decoder"
)
def build_qtseg_v1(config: QTSegV1Config) -> QTSeg:
    """Build QTSeg v1 from its config."""
    encoder = FPNEncoder(width=config.width)
    channels = tuple(f.channels for f in encoder.feature_info)
    strides = tuple(f.stride for f in encoder.feature_info)
    decoder = MQMDecoder(
        channels=channels,
        strides=strides,
        num_classes=config.num_classes,
        img_size=config.img_size,
        depths=config.depths,
        heads=config.heads,
        mlp_dim=config.mlp_dim,
        pe_seed=config.pe_seed,
    )
    # The v1 paper's MLFF is the module implemented as MLFD.
    return QTSeg(encoder=encoder, bridge=MLFD(channels=channels), decoder=decoder)
