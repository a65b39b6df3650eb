"""Parity gate: does an artifact compute what the PyTorch FP32 model computes?

Importable on its own (numpy + qtseg core only); the bench reuses it.

For N real images (preprocessed with the artifact's :class:`PreprocessSpec`)
both backends produce logits; the gate reports

- ``max_abs_diff`` / ``mean_abs_diff`` of the logits,
- ``agreement``: fraction of pixels whose arg-max class agrees (model input
  resolution),
- Dice of each side at the original image size (postprocessed) against the
  ground truth when masks exist, else against the reference's masks, and
  ``dice_delta_pp`` = candidate - reference in percentage points,

and checks them against the thresholds of the artifact's precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from qtseg.imageio import IMAGE_SUFFIXES, read_image, read_mask
from qtseg.metrics import dice, mask_agreement
from qtseg.preprocess import PreprocessSpec


class InferenceBackend(Protocol):
    """What the gate needs of a backend (see :class:`qtseg.backends.Backend`)."""

    def infer(self, x: np.ndarray) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Thresholds:
    """Pass criteria; ``None`` disables a criterion.

    Attributes:
        max_abs_diff: largest allowed |logit difference|.
        min_agreement: smallest allowed mask agreement (fraction).
        max_dice_delta_pp: largest allowed |Dice delta| in percentage points.
    """

    max_abs_diff: float | None
    min_agreement: float
    max_dice_delta_pp: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


# INT8 has no Dice criterion here: its accuracy budget is enforced by the
# accuracy guard on the held-out split (90 images for Kvasir), where it means
# something. On the gate's 8 samples one small polyp decides the mean: the
# guarded Kvasir model agrees with FP32 on 99.5% of pixels yet loses 10 pp on
# one sample, 1.5 pp of mean Dice (docs/calibration.md). The gate checks that
# the written artifact runs in its runtime and follows FP32 mask by mask.
THRESHOLDS: dict[str, Thresholds] = {
    "fp32": Thresholds(max_abs_diff=1e-3, min_agreement=0.9999, max_dice_delta_pp=None),
    "fp16": Thresholds(max_abs_diff=None, min_agreement=0.999, max_dice_delta_pp=0.1),
    "int8": Thresholds(max_abs_diff=None, min_agreement=0.98, max_dice_delta_pp=None),
}


@dataclass
class SampleSet:
    """Preprocessed images for the gate.

    Attributes:
        names: file names.
        images: ``(H, W, 3)`` uint8 originals (for their sizes).
        x: ``(N, 3, h, w)`` float32 model inputs.
        masks: ground-truth ``(H, W)`` label maps, or ``None`` per image.
    """

    names: list[str]
    images: list[np.ndarray]
    x: np.ndarray
    masks: list[np.ndarray | None]

    @property
    def has_ground_truth(self) -> bool:
        """True when every image has a mask."""
        return all(m is not None for m in self.masks)


def list_images(folder: str | Path, limit: int = 8) -> list[Path]:
    """The first ``limit`` images of a folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"sample folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images in {folder}")
    return files[:limit] if limit > 0 else files


def _find_mask(image: Path) -> Path | None:
    masks = image.parent.parent / "masks"
    for suffix in (image.suffix, *IMAGE_SUFFIXES):
        candidate = masks / (image.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def load_samples(folder: str | Path, spec: PreprocessSpec, *, limit: int = 8) -> SampleSet:
    """Read and preprocess sample images; masks from ``folder/../masks`` if present."""
    files = list_images(folder, limit)
    images = [read_image(p) for p in files]
    masks = []
    for p in files:
        mask_path = _find_mask(p)
        masks.append(read_mask(mask_path, spec.num_classes) if mask_path else None)
    return SampleSet([p.name for p in files], images, spec.preprocess(images), masks)


@dataclass
class ParityResult:
    """Outcome of one parity run (saved in ``manifest.json``)."""

    label: str
    precision: str
    reference: str
    candidate: str
    num_images: int
    input_shape: list[int]
    max_abs_diff: float
    mean_abs_diff: float
    agreement: float
    dice_reference: float
    dice_candidate: float
    dice_delta_pp: float
    dice_basis: str
    thresholds: dict[str, Any]
    passed: bool
    failures: list[str] = field(default_factory=list)
    per_image: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParityResult:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)

    def summary(self) -> str:
        """One line with the numbers, e.g. for the CLI."""
        verdict = "PASS" if self.passed else "FAIL"
        return (
            f"{verdict} {self.label}: max|diff| {self.max_abs_diff:.3g}, mean|diff| "
            f"{self.mean_abs_diff:.3g}, agreement {100 * self.agreement:.4f}%, Dice "
            f"{100 * self.dice_candidate:.2f}% vs {100 * self.dice_reference:.2f}% "
            f"(delta {self.dice_delta_pp:+.3f} pp, vs {self.dice_basis}) on {self.num_images} images"
            + (f" -- {'; '.join(self.failures)}" if self.failures else "")
        )


def _check(values: dict[str, float], limits: Thresholds) -> list[str]:
    failures = []
    if values["nonfinite_images"]:
        failures.append(f"NaN/Inf logits in {int(values['nonfinite_images'])} image(s)")
    if limits.max_abs_diff is not None and not values["max_abs_diff"] <= limits.max_abs_diff:
        failures.append(f"max|diff| {values['max_abs_diff']:.3g} > {limits.max_abs_diff:g}")
    if not values["agreement"] >= limits.min_agreement:
        failures.append(
            f"agreement {100 * values['agreement']:.4f}% < {100 * limits.min_agreement:g}%"
        )
    if limits.max_dice_delta_pp is not None and not abs(values["dice_delta_pp"]) <= limits.max_dice_delta_pp:
        failures.append(f"|Dice delta| {abs(values['dice_delta_pp']):.3f} pp > {limits.max_dice_delta_pp:g} pp")
    return failures


def _name(backend: Any) -> str:
    info = backend.describe()
    return f"{info.get('backend', '?')} ({info.get('device', '?')})"


def compare_logits(
    reference_logits: Sequence[np.ndarray],
    candidate_logits: Sequence[np.ndarray],
    samples: SampleSet,
    spec: PreprocessSpec,
    *,
    precision: str,
    label: str = "",
    reference_name: str = "reference",
    candidate_name: str = "candidate",
    thresholds: Thresholds | None = None,
) -> ParityResult:
    """Score precomputed ``(1, C, h, w)`` logits per image (see module doc)."""
    limits = thresholds or THRESHOLDS[precision]
    max_diff, sum_diff, count, agree_sum, nonfinite = 0.0, 0.0, 0, 0.0, 0
    dices_ref, dices_cand, per_image = [], [], []
    for i, (ref, cand) in enumerate(zip(reference_logits, candidate_logits)):
        if ref.shape != cand.shape:
            raise ValueError(f"{samples.names[i]}: logits shape {cand.shape} != reference {ref.shape}")
        diff = np.abs(ref.astype(np.float64) - cand.astype(np.float64))
        finite = bool(np.isfinite(cand).all())
        nonfinite += 0 if finite else 1
        img_max = float(diff.max()) if finite else float("inf")
        max_diff = max(max_diff, img_max)
        sum_diff += float(diff.sum()) if finite else float("inf")
        count += diff.size
        agree = mask_agreement(ref.argmax(axis=1), cand.argmax(axis=1))
        agree_sum += agree
        size = samples.images[i].shape[:2]
        ref_mask = spec.postprocess(ref, size)[0]
        cand_mask = spec.postprocess(cand, size)[0]
        truth = samples.masks[i] if samples.has_ground_truth else ref_mask
        d_ref, d_cand = dice(ref_mask, truth, spec.num_classes), dice(cand_mask, truth, spec.num_classes)
        dices_ref.append(d_ref)
        dices_cand.append(d_cand)
        per_image.append({"name": samples.names[i], "max_abs_diff": img_max, "agreement": agree,
                          "dice_reference": d_ref, "dice_candidate": d_cand})
    n = len(per_image)
    if n == 0:
        raise ValueError("parity needs at least one image")
    values = {
        "max_abs_diff": max_diff,
        "mean_abs_diff": sum_diff / count,
        "agreement": agree_sum / n,
        "dice_delta_pp": 100.0 * (float(np.mean(dices_cand)) - float(np.mean(dices_ref))),
        "nonfinite_images": nonfinite,
    }
    failures = _check(values, limits)
    return ParityResult(
        label=label or candidate_name,
        precision=precision,
        reference=reference_name,
        candidate=candidate_name,
        num_images=n,
        input_shape=list(reference_logits[0].shape[:1]) + list(samples.x.shape[1:]),
        max_abs_diff=values["max_abs_diff"],
        mean_abs_diff=values["mean_abs_diff"],
        agreement=values["agreement"],
        dice_reference=float(np.mean(dices_ref)),
        dice_candidate=float(np.mean(dices_cand)),
        dice_delta_pp=values["dice_delta_pp"],
        dice_basis="ground truth" if samples.has_ground_truth else "reference masks",
        thresholds=limits.to_dict(),
        passed=not failures,
        failures=failures,
        per_image=per_image,
    )


def run_logits(backend: InferenceBackend, samples: SampleSet) -> list[np.ndarray]:
    """Logits of every sample, one image per call (works for static batch 1)."""
    return [backend.infer(samples.x[i : i + 1]) for i in range(samples.x.shape[0])]


def check_parity(
    reference: InferenceBackend | Sequence[np.ndarray],
    candidate: InferenceBackend,
    samples: SampleSet,
    spec: PreprocessSpec,
    *,
    precision: str,
    label: str = "",
    thresholds: Thresholds | None = None,
    reference_name: str = "torch fp32",
) -> ParityResult:
    """Run both backends (or reuse reference logits) and compare them.

    Args:
        reference: the PyTorch FP32 backend, or its logits from :func:`run_logits`.
        candidate: the backend of the artifact under test.
        samples: from :func:`load_samples`.
        spec: the artifact's preprocessing (for postprocessing to original size).
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"`` (selects thresholds).
        label: what was run, e.g. ``"model.onnx on onnxruntime CPU"``.
        thresholds: override the defaults of ``precision``.
        reference_name: how to name precomputed reference logits in the result.
    """
    if hasattr(reference, "infer"):
        ref_logits = run_logits(reference, samples)
        ref_name = _name(reference)
    else:
        ref_logits, ref_name = list(reference), reference_name
    cand_logits = run_logits(candidate, samples)
    return compare_logits(
        ref_logits, cand_logits, samples, spec, precision=precision, label=label,
        reference_name=ref_name, candidate_name=_name(candidate), thresholds=thresholds,
    )
