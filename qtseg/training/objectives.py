"""Training objectives per model family: ``objective(model, images, masks) -> loss``.

Most models train on their logits with cross-entropy + Dice. IC-MoE trains
through its ground-truth-guided voting pass plus the semantic-guided
contrastive loss, which needs more than the logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from qtseg.training.loss import ce_dice_loss

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def logits_objective(model: nn.Module, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Cross-entropy + soft Dice on the model's logits."""
    return ce_dice_loss(model(images), masks)


def icmoe_objective(model: nn.Module, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """IC-MoE: guided PPAV + CE + Dice + semantic-guided contrastive loss."""
    from qtseg.models.icmoe.sgcl import icmoe_loss

    out = model.forward_train(images, masks.long())
    return icmoe_loss(out, masks.long(), model.sgcl)["loss"]


OBJECTIVES: dict[str, Objective] = {"icmoe": icmoe_objective}


def objective_for(model_name: str) -> Objective:
    """The objective of a registered model (default: :func:`logits_objective`)."""
    return OBJECTIVES.get(model_name, logits_objective)
