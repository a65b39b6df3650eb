"""Segmentation metrics as the QTSeg papers report them: Dice, IoU, MAE, accuracy.

All functions take integer label maps ``(H, W)`` (or stacks ``(N, H, W)``).
Binary tasks (``num_classes == 2``) score the foreground class; multi-class
tasks average Dice/IoU over the foreground classes (1..C-1). MAE is the mean
absolute error between the predicted and true foreground masks (binary) or the
fraction of wrong pixels (multi-class); accuracy is pixel accuracy. Aggregates
are means of per-image scores (the convention of the polyp benchmarks).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

EPS = 1e-7


@dataclass(frozen=True)
class SegScores:
    """Scores of one image or the mean over images (fractions in [0, 1])."""

    dice: float
    iou: float
    mae: float
    accuracy: float

    def to_dict(self) -> dict[str, float]:
        """Plain dict for JSON."""
        return asdict(self)


def _class_dice_iou(pred: np.ndarray, gt: np.ndarray, cls: int) -> tuple[float, float]:
    p = pred == cls
    g = gt == cls
    inter = float(np.logical_and(p, g).sum())
    total = float(p.sum() + g.sum())
    union = total - inter
    if total == 0:  # class absent in both: perfect agreement
        return 1.0, 1.0
    return 2.0 * inter / (total + EPS), inter / (union + EPS)


def score_image(pred: np.ndarray, gt: np.ndarray, num_classes: int = 2) -> SegScores:
    """Scores of one ``(H, W)`` prediction against its ground truth."""
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} != ground truth shape {gt.shape}")
    dices, ious = zip(*(_class_dice_iou(pred, gt, c) for c in range(1, num_classes)))
    wrong = float((pred != gt).mean())
    if num_classes == 2:
        mae = float(np.abs((pred > 0).astype(np.float32) - (gt > 0).astype(np.float32)).mean())
    else:
        mae = wrong
    return SegScores(
        dice=float(np.mean(dices)), iou=float(np.mean(ious)), mae=mae, accuracy=1.0 - wrong
    )


def mean_scores(scores: Iterable[SegScores]) -> SegScores:
    """Mean of per-image scores."""
    scores = list(scores)
    if not scores:
        raise ValueError("no scores to average")
    return SegScores(
        dice=float(np.mean([s.dice for s in scores])),
        iou=float(np.mean([s.iou for s in scores])),
        mae=float(np.mean([s.mae for s in scores])),
        accuracy=float(np.mean([s.accuracy for s in scores])),
    )


def dice(pred: np.ndarray, gt: np.ndarray, num_classes: int = 2) -> float:
    """Dice of one image (mean over foreground classes)."""
    return score_image(pred, gt, num_classes).dice


def mask_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels where two label maps agree."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"label maps differ in shape: {a.shape} vs {b.shape}")
    return float((a == b).mean())
