"""Evaluate a predictor on image/mask pairs at each image's original size."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from qtseg.data.folder import Sample, load_pair
from qtseg.metrics import SegScores, mean_scores, score_image
from qtseg.preprocess import PreprocessSpec

Predictor = Callable[[np.ndarray], np.ndarray]
"""``(N, 3, H, W) float32 -> (N, C, H, W) float32 logits``."""


@dataclass
class EvalResult:
    """Per-image and mean scores of one evaluation."""

    names: list[str]
    per_image: list[SegScores]
    mean: SegScores

    def to_dict(self) -> dict:
        """JSON-ready summary (mean + per image)."""
        return {
            "count": len(self.names),
            "mean": self.mean.to_dict(),
            "per_image": {n: s.to_dict() for n, s in zip(self.names, self.per_image)},
        }


def torch_predictor(model: nn.Module, device: str | torch.device = "cpu") -> Predictor:
    """Wrap an eval-mode torch model as a numpy predictor."""

    @torch.no_grad()
    def predict(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return predict


def evaluate(
    predictor: Predictor,
    spec: PreprocessSpec,
    samples: Sequence[Sample],
    *,
    batch_size: int = 4,
    progress: bool = False,
) -> EvalResult:
    """Score a predictor on ``samples`` with the full pre/post-processing pipeline."""
    from tqdm import tqdm

    names: list[str] = []
    scores: list[SegScores] = []
    bar = tqdm(total=len(samples), desc="evaluate", unit="img", disable=not progress, leave=False)
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        pairs = [load_pair(s, spec.num_classes) for s in chunk]
        logits = predictor(spec.preprocess([img for img, _ in pairs]))
        for sample, (img, gt), lg in zip(chunk, pairs, logits):
            pred = spec.postprocess(lg, img.shape[:2])
            names.append(sample.name)
            scores.append(score_image(pred, gt, spec.num_classes))
        bar.update(len(chunk))
    bar.close()
    return EvalResult(names=names, per_image=scores, mean=mean_scores(scores))
