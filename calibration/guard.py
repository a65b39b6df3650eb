"""Accuracy guard for INT8 artifacts, with a sensitivity search when it fails.

The guard scores the FP32 reference and an INT8 candidate on held-out images
(the dataset's ``val`` split by default; never calibration images) at each
image's original size, and passes when the candidate's mean Dice is at most
``max_dice_drop_pp`` percentage points below the reference's.

When it fails, layer groups (blocks of the network, matched by node-name
patterns) are ranked by how much Dice keeping each one in float alone wins
back on the probe images -- the held-out images INT8 hurts most -- with the
reduction of the logit error against FP32 as tie-break ("leave one group
out"); the most sensitive groups are then kept in float one at a time,
re-scoring the whole held-out set after each, until the budget holds or
``max_kept`` is reached.

Runtime-neutral: candidates come from a ``build(kept_groups) -> predictor``
callable supplied by the INT8 target (ONNX Runtime, OpenVINO, ...).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from qtseg.evaluation import (
    Predictor,
    SampleSet,
    infer_logits,
    label_agreement,
    label_map,
    masks_of,
    score_masks,
)
from qtseg.metrics import score_image
from qtseg.preprocess import PreprocessSpec

Log = Callable[[str], None]


@dataclass(frozen=True)
class GuardConfig:
    """Budget and search limits.

    Attributes:
        max_dice_drop_pp: largest allowed mean-Dice drop vs FP32, percentage points.
        probe_images: held-out images used to rank layer groups (those with
            the largest Dice loss under full INT8).
        max_kept: most layer groups kept in float before the guard gives up.
    """

    max_dice_drop_pp: float = 0.5
    probe_images: int = 8
    max_kept: int = 8

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class LayerGroup:
    """A block of the network: every node whose name matches ``pattern`` (regex, ``re.match``)."""

    name: str
    pattern: str

    def select(self, names: Sequence[str]) -> list[str]:
        """The members of ``names`` in this group."""
        rx = re.compile(self.pattern)
        return [n for n in names if rx.match(n)]


@dataclass
class Scores:
    """Mean Dice/IoU of one predictor on the held-out images, and its agreement with the reference.

    ``labels`` are the per-image arg-max label maps at the model's resolution
    (what :func:`qtseg.evaluation.agreement` compares); ``agreement`` is that
    of this predictor with the reference predictor (``None`` for the reference).
    """

    dice: float
    iou: float
    per_image_dice: list[float]
    labels: list[np.ndarray]
    agreement: float | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Summary numbers (no label maps)."""
        return {
            "dice": self.dice,
            "iou": self.iou,
            "agreement": self.agreement,
            "seconds": round(self.seconds, 1),
        }


def score(predict: Predictor, held: SampleSet, spec: PreprocessSpec, reference: Scores | None = None) -> Scores:
    """Run ``predict`` on every held-out image and score its masks at original size."""
    start = time.perf_counter()
    logits = infer_logits(predict, held.x)
    scores = score_masks(masks_of(logits, held.sizes, spec), held.masks, spec.num_classes)  # type: ignore[arg-type]
    labels = [label_map(lg) for lg in logits]
    agree = None
    if reference is not None:
        agree = float(np.mean([label_agreement(r, c) for r, c in zip(reference.labels, labels)]))
    return Scores(
        dice=float(np.mean([s.dice for s in scores])),
        iou=float(np.mean([s.iou for s in scores])),
        per_image_dice=[s.dice for s in scores],
        labels=labels,
        agreement=agree,
        seconds=time.perf_counter() - start,
    )


def probe_scores(
    predict: Predictor, held: SampleSet, spec: PreprocessSpec, indices: Sequence[int], reference: list[np.ndarray]
) -> tuple[float, float]:
    """``(mean Dice at original size, normalised logit error)`` of ``predict`` on the probe images.

    The logit error is ``sum((y - y_ref)^2) / sum(y_ref^2)`` against the FP32
    logits ``reference`` (one array per probe image).
    """
    dices, num, den = [], 0.0, 0.0
    for i, ref in zip(indices, reference):
        out = predict(held.x[i : i + 1])
        mask = spec.postprocess(out, held.sizes[i])[0]
        dices.append(score_image(mask, held.masks[i], spec.num_classes).dice)
        num += float(((out.astype(np.float64) - ref) ** 2).sum())
        den += float((ref**2).sum())
    return float(np.mean(dices)), num / max(den, 1e-30)


@dataclass
class GuardReport:
    """Everything the manifest records about the guard."""

    config: dict[str, Any]
    held_out: dict[str, Any]
    reference: dict[str, Any]
    initial: dict[str, Any]
    final: dict[str, Any]
    kept_float: list[str]
    passed: bool
    probe: dict[str, Any] = field(default_factory=dict)
    sensitivity: list[dict[str, Any]] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    def summary(self) -> str:
        """One line for the CLI."""
        verdict = "PASS" if self.passed else "FAIL"
        kept = ", ".join(self.kept_float) or "none"
        return (
            f"{verdict} accuracy guard on {self.held_out.get('count')} held-out images: Dice "
            f"{100 * self.final['dice']:.2f}% vs FP32 {100 * self.reference['dice']:.2f}% "
            f"(drop {self.final['drop_pp']:+.3f} pp, budget {self.config['max_dice_drop_pp']} pp), "
            f"agreement {100 * (self.final['agreement'] or 0):.3f}%; kept in float: {kept}"
        )


def _result(scores: Scores, reference: Scores) -> dict[str, Any]:
    out = scores.to_dict()
    out["drop_pp"] = 100.0 * (reference.dice - scores.dice)
    return out


def run_guard(
    reference: Scores,
    build: Callable[[tuple[str, ...]], Predictor],
    groups: Sequence[LayerGroup],
    held: SampleSet,
    spec: PreprocessSpec,
    *,
    config: GuardConfig = GuardConfig(),
    reference_predict: Predictor | None = None,
    log: Log | None = None,
) -> GuardReport:
    """Check a candidate against the budget; search layer groups to keep in float if needed.

    Args:
        reference: FP32 scores on ``held`` (from :func:`score`).
        build: ``kept group names -> predictor`` of the INT8 candidate with
            those groups in float (``()`` = fully quantized). The caller keeps
            the artifact built for ``report.kept_float``.
        groups: candidate groups for the sensitivity search.
        held: the held-out images.
        spec: preprocessing (for postprocessing to original size).
        config: budget and limits.
        reference_predict: FP32 predictor (needed only for the search's probe logits).
        log: receives progress lines.

    Returns:
        The report; ``kept_float`` lists the groups kept in float, in order.
    """
    say = log or (lambda _m: None)
    start = time.perf_counter()
    budget = config.max_dice_drop_pp
    candidate = score(build(()), held, spec, reference)
    initial = _result(candidate, reference)
    say(f"INT8 Dice {100 * candidate.dice:.2f}% vs FP32 {100 * reference.dice:.2f}% (drop {initial['drop_pp']:+.3f} pp)")
    report = GuardReport(
        config=config.to_dict(),
        held_out={"count": len(held), **held.source},
        reference=reference.to_dict(),
        initial=initial,
        final=initial,
        kept_float=[],
        passed=initial["drop_pp"] <= budget,
    )
    if report.passed or not groups:
        if not report.passed:
            say("no layer groups to search; the guard fails")
        report.seconds = time.perf_counter() - start
        return report
    if reference_predict is None:
        raise ValueError("the sensitivity search needs reference_predict")

    # Probe where INT8 hurts: the held-out images with the largest Dice loss.
    losses = np.asarray(reference.per_image_dice) - np.asarray(candidate.per_image_dice)
    probe = sorted(int(i) for i in np.argsort(-losses, kind="stable")[: max(1, config.probe_images)])
    ref_logits = [reference_predict(held.x[i : i + 1]).astype(np.float64) for i in probe]
    base_dice, base_error = probe_scores(build(()), held, spec, probe, ref_logits)
    say(f"sensitivity search over {len(groups)} layer groups on the {len(probe)} held-out images INT8 hurts most "
        f"(Dice {100 * base_dice:.2f}%, logit error {base_error:.3e})")
    table = []
    for group in groups:
        dice_g, err = probe_scores(build((group.name,)), held, spec, probe, ref_logits)
        table.append({"group": group.name, "probe_dice": dice_g, "gain_pp": 100.0 * (dice_g - base_dice),
                      "logit_error": err, "error_reduction": (base_error - err) / max(base_error, 1e-30)})
        say(f"  {group.name}: probe Dice {100 * dice_g:.2f}% ({100 * (dice_g - base_dice):+.2f} pp), "
            f"logit error {err:.3e}")
    # Rank by the Dice recovered on the probes; the logit error breaks ties.
    table.sort(key=lambda r: (-round(r["gain_pp"], 6), -r["error_reduction"]))
    report.probe = {"images": [held.names[i] for i in probe], "dice": base_dice, "logit_error": base_error}
    report.sensitivity = table
    kept: list[str] = []
    for row in table[: config.max_kept]:
        if row["gain_pp"] <= 0 and row["error_reduction"] <= 0:
            break
        kept.append(row["group"])
        result = _result(score(build(tuple(kept)), held, spec, reference), reference)
        report.rounds.append({"kept_float": list(kept), **result})
        say(f"keep {', '.join(kept)} in float: drop {result['drop_pp']:+.3f} pp")
        report.final = result
        if result["drop_pp"] <= budget:
            break
    report.kept_float = kept
    report.passed = report.final["drop_pp"] <= budget
    report.seconds = time.perf_counter() - start
    return report
