"""Pixel-probability adaptive voting (PPAV, IC-MoE Algorithm 1, Eqs. 1-5).

Probabilities are (B, K', H, W) per expert, K' = 1 for binary segmentation
(foreground probability) or K classes (softmax). The candidates are
``[P0 (basic), P1 (semantic), P3 = mean(P0, P1, P2)]``; P2 (adaptive expert)
is the main expert. Each candidate is scored by its agreement with a
reference mask (ground truth in training, the candidates' majority vote at
inference); the best one is fused into the main expert:
``P = (P2 + alpha * P_best) / (1 + alpha)``.

The inference path is pure tensor arithmetic (no loop over samples, no host
sync) and each sample is decided on its own. The load-balancing rule of
Algorithm 1 couples the samples of a batch, so it is applied in training only.
"""

from __future__ import annotations

import math

import torch


def hard_masks(probs: torch.Tensor, *, binary: bool) -> torch.Tensor:
    """Binary masks from probabilities, (..., K', H, W) -> same shape, float.

    binary (K' = 1): ``p > 0.5``; otherwise one-hot of the arg-max class
    (ties -> lowest). ``binary`` is passed in rather than read from the shape
    so that tracing sees no shape-dependent branch.
    """
    if binary:
        return (probs > 0.5).to(probs.dtype)
    idx = probs.argmax(dim=-3, keepdim=True)
    classes = torch.arange(probs.shape[-3], device=probs.device).reshape(-1, 1, 1)
    return (idx == classes).to(probs.dtype)


def pseudo_ground_truth(cand_masks: torch.Tensor) -> torch.Tensor:
    """Eq. 2: a pixel (class channel) is on when more than one of the three
    candidates votes for it. (B, 3, K', H, W) -> (B, K', H, W)."""
    return (cand_masks.sum(dim=1) > 1).to(cand_masks.dtype)


def candidate_scores(cand_masks: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Eq. 3 as a similarity: ``1 - mean |reference - M_e|`` per sample and candidate.

    cand_masks: (B, 3, K', H, W), reference: (B, K', H, W) -> (B, 3) in [0, 1].
    """
    diff = (cand_masks - reference.unsqueeze(1)).abs()
    return 1.0 - diff.flatten(2).mean(dim=2)


def select_best(scores: torch.Tensor) -> torch.Tensor:
    """Eq. 4 without balancing: one-hot (B, 3) of the best candidate (ties -> first)."""
    idx = scores.argmax(dim=1, keepdim=True)
    return (idx == torch.arange(scores.shape[1], device=scores.device)).to(scores.dtype)


def select_balanced(scores: torch.Tensor, capacity: int | None = None) -> torch.Tensor:
    """Algorithm 1 lines 3-10: greedy per-sample choice with a per-expert cap.

    Samples are visited in batch order; a sample whose best candidate has
    already been chosen ``capacity`` times takes its next best. The default
    cap ``ceil(B / 3)`` gives each candidate an equal share of the batch.
    Training only (it syncs to the host). scores: (B, 3) -> one-hot (B, 3).
    """
    b, e = scores.shape
    cap = capacity if capacity is not None else math.ceil(b / e)
    if cap * e < b:
        raise ValueError(f"capacity {cap} x {e} experts cannot cover a batch of {b}")
    counts = [0] * e
    chosen: list[int] = []
    for row in scores.detach().float().cpu().tolist():
        order = sorted(range(e), key=lambda j: (-row[j], j))
        pick = next(j for j in order if counts[j] < cap)
        counts[pick] += 1
        chosen.append(pick)
    idx = torch.tensor(chosen, device=scores.device)
    return (idx[:, None] == torch.arange(e, device=scores.device)).to(scores.dtype)


def fuse(
    main: torch.Tensor, cands: torch.Tensor, weights: torch.Tensor, alpha: float
) -> torch.Tensor:
    """Eq. 5, renormalised to a probability.

    main: (B, K', H, W), cands: (B, 3, K', H, W), weights: one-hot (B, 3)
    -> (B, K', H, W) = (main + alpha * chosen) / (1 + alpha).
    """
    chosen = torch.einsum("be,bekhw->bkhw", weights, cands)
    return (main + alpha * chosen) / (1.0 + alpha)


def candidates(expert_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split (B, 3, K', H, W) expert probabilities [basic, semantic, adaptive]
    into (main P2 (B, K', H, W), candidates [P0, P1, P3] (B, 3, K', H, W))."""
    mean = expert_probs.mean(dim=1, keepdim=True)
    return expert_probs[:, 2], torch.cat([expert_probs[:, :2], mean], dim=1)


def ppav_inference(expert_probs: torch.Tensor, alpha: float, *, binary: bool) -> torch.Tensor:
    """Inference PPAV: (B, 3, K', H, W) expert probabilities -> (B, K', H, W) fused
    (``binary``: K' = 1 foreground probabilities, else K class probabilities)."""
    main, cands = candidates(expert_probs)
    masks = hard_masks(cands, binary=binary)
    scores = candidate_scores(masks, pseudo_ground_truth(masks))
    return fuse(main, cands, select_best(scores), alpha)


def ppav_training(
    expert_probs: torch.Tensor,
    reference: torch.Tensor,
    alpha: float,
    *,
    binary: bool,
    capacity: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training PPAV against the ground truth with load balancing.

    expert_probs: (B, 3, K', H, W); reference: (B, K', H, W) ground-truth masks
    in the same encoding -> (fused (B, K', H, W), one-hot choice (B, 3), scores (B, 3)).
    """
    main, cands = candidates(expert_probs)
    scores = candidate_scores(hard_masks(cands, binary=binary), reference)
    weights = select_balanced(scores, capacity)
    return fuse(main, cands, weights, alpha), weights, scores
