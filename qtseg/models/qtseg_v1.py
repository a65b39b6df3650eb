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
from qtseg.models.decoder_common import QTSeg, QTSegConfig, build_qtseg
from qtseg.models.registry import register_model


@dataclass(frozen=True)
class QTSegV1Config(QTSegConfig):
    """Configuration of QTSeg v1 (fields: :class:`QTSegConfig`; ``depths`` are the ``h``)."""


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


@register_model(
    "qtseg-v1", QTSegV1Config, description="QTSeg v1: FPN + MLFF + multi-query mask decoder"
)
def build_qtseg_v1(config: QTSegV1Config) -> QTSeg:
    """Build QTSeg v1 from its config: the v2 model with query-mask (QM) decoder stages."""
    return build_qtseg(config, stage=QMStage)
