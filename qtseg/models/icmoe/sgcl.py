"""Semantic-guided contrastive loss (SgCL, IC-MoE Eqs. 6-10).

Features are image embeddings (B, C, h, w) listed as
``[basic, semantic, adaptive, mean-of-three]``. ``norm`` is L2 normalisation
over channels of each projected pixel feature and ``||.||_1`` the mean
absolute difference, so every term lies in [0, 2]:

- L1 (maximised): foreground vs background features of every expert and the mean;
- L2 (minimised): semantic, adaptive and mean features vs the basic expert;
- L3 (maximised): semantic and mean features vs the adaptive expert;
- ``L_sgcl = L2 / (L1 + L3 + eps)``.

The anchor of L2 (basic) and L3 (adaptive) follows the paper's text; its
equations index the anchors the other way round (see docs/models-peers.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from qtseg.models.icmoe.model import ICMoETrainOutput

BASIC, SEMANTIC, ADAPTIVE, MEAN = 0, 1, 2, 3


class SgCLProjections(nn.Module):
    """The learnable projections W1, W2, W3 of Eqs. 6-8 (per-pixel linear maps)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        """Arguments: in_dim: embedding channels C; out_dim: projected width."""
        super().__init__()
        self.w1 = nn.Linear(in_dim, out_dim)
        self.w2 = nn.Linear(in_dim, out_dim)
        self.w3 = nn.Linear(in_dim, out_dim)


@dataclass(frozen=True)
class SgCLTerms:
    """The three distances and the loss (scalar tensors)."""

    l1: torch.Tensor
    l2: torch.Tensor
    l3: torch.Tensor
    loss: torch.Tensor


def _distance(w: nn.Linear, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean |norm(W a) - norm(W b)| over pixels and channels; a, b: (B, C, h, w)."""
    pa = F.normalize(w(a.flatten(2).transpose(1, 2)), dim=-1)
    pb = F.normalize(w(b.flatten(2).transpose(1, 2)), dim=-1)
    return (pa - pb).abs().mean()


def sgcl_terms(
    proj: SgCLProjections,
    img: Sequence[torch.Tensor],
    fg: Sequence[torch.Tensor],
    bg: Sequence[torch.Tensor],
    *,
    eps: float = 1e-6,
) -> SgCLTerms:
    """Compute L1, L2, L3 and L_sgcl.

    img, fg, bg: four (B, C, h, w) embeddings each, ordered [basic, semantic,
    adaptive, mean], of the image, the image masked to its foreground and the
    image masked to its background.
    """
    if not (len(img) == len(fg) == len(bg) == 4):
        raise ValueError("expected four feature maps [basic, semantic, adaptive, mean] per input")
    l1 = torch.stack([_distance(proj.w1, fg[i], bg[i]) for i in range(4)]).mean()
    l2 = torch.stack(
        [_distance(proj.w2, img[j], img[BASIC]) for j in (SEMANTIC, ADAPTIVE, MEAN)]
    ).mean()
    l3 = torch.stack([_distance(proj.w3, img[k], img[ADAPTIVE]) for k in (SEMANTIC, MEAN)]).mean()
    return SgCLTerms(l1=l1, l2=l2, l3=l3, loss=l2 / (l1 + l3 + eps))


def sgcl_loss(
    proj: SgCLProjections,
    img: Sequence[torch.Tensor],
    fg: Sequence[torch.Tensor],
    bg: Sequence[torch.Tensor],
    *,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Eq. 9, ``L2 / (L1 + L3 + eps)`` as a scalar tensor (arguments as :func:`sgcl_terms`)."""
    return sgcl_terms(proj, img, fg, bg, eps=eps).loss


def soft_dice_loss(probs: torch.Tensor, onehot: torch.Tensor, *, eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over samples and classes; probs, onehot: (B, K, H, W)."""
    inter = (probs * onehot).flatten(2).sum(-1)
    total = probs.flatten(2).sum(-1) + onehot.flatten(2).sum(-1)
    return 1.0 - ((2.0 * inter + eps) / (total + eps)).mean()


def icmoe_loss(
    out: ICMoETrainOutput,
    target: torch.Tensor,
    proj: SgCLProjections,
    *,
    ce_weight: float = 1.0,
    dice_weight: float = 1.0,
    sgcl_weight: float = 0.1,
) -> dict[str, torch.Tensor]:
    """Eq. 10: ``ce_weight * CE + dice_weight * Dice + sgcl_weight * L_sgcl``.

    out: :meth:`ICMoE.forward_train` result; target: (B, H, W) int64 labels.
    Returns the scalar terms and their weighted sum under ``"loss"``.
    """
    logits = out.logits
    ce = F.cross_entropy(logits, target)
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
    dice = soft_dice_loss(torch.softmax(logits, dim=1), onehot)
    terms = {"ce": ce, "dice": dice}
    loss = ce_weight * ce + dice_weight * dice
    if out.fg_feats is not None and out.bg_feats is not None:
        sg = sgcl_loss(proj, out.img_feats, out.fg_feats, out.bg_feats)
        terms["sgcl"] = sg
        loss = loss + sgcl_weight * sg
    terms["loss"] = loss
    return terms
