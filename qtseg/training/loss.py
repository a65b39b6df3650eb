"""Training objective: cross-entropy + soft Dice over the foreground classes."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over foreground classes.

    Args:
        logits: ``(B, C, H, W)``.
        target: ``(B, H, W)`` integer labels.
    """
    probs = logits.float().softmax(dim=1)[:, 1:]
    onehot = F.one_hot(target.long(), logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].float()
    inter = (probs * onehot).sum(dim=(2, 3))
    total = probs.sum(dim=(2, 3)) + onehot.sum(dim=(2, 3))
    return 1.0 - ((2 * inter + eps) / (total + eps)).mean()


def ce_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy + soft Dice (equal weights)."""
    return F.cross_entropy(logits.float(), target.long()) + soft_dice_loss(logits, target)
