"""Evaluation: samples, logits from a backend, scores, and the one definition of agreement.

Everything that runs a model on images and scores the result goes through
this module: the export parity gate, the INT8 accuracy guard, ``qtseg-bench``,
``qtseg-predict``/``qtseg-val`` and training's validation (the streaming pass
over a folder that those use is :mod:`qtseg.validation`).

Definitions (stated once, used everywhere):

- **logits**: what a backend returns for one preprocessed image, ``(1, C, h, w)``
  at the model's input resolution.
- **mask**: the label map at the image's original size,
  ``spec.postprocess(logits, (H, W))`` (bilinear resize of the logits, then
  arg-max; ties go to the lowest class).
- **agreement** of a candidate with a reference: the fraction of pixels at the
  model's input resolution whose arg-max class is the same in both logits,
  ``mean(argmax(ref) == argmax(cand))`` over the ``h x w`` pixels of one image;
  over several images, the mean of the per-image fractions. It compares what
  the two models computed, independent of each image's size.
- **scores** (Dice, IoU, MAE, accuracy): of a mask against the ground truth at
  the original size (:mod:`qtseg.metrics`); means over images are means of the
  per-image scores.
- **Dice change**: ``100 * (mean Dice of candidate - mean Dice of reference)``
  in percentage points, both against the ground truth when every image has
  one, else against the reference's masks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qtseg.backends.base import NonFiniteOutput
from qtseg.data.folder import Sample
from qtseg.imageio import IMAGE_SUFFIXES, ImageReadError, read_image, read_mask
from qtseg.metrics import SegScores, dice, mean_scores, score_image
from qtseg.preprocess import PreprocessSpec

Predictor = Callable[[np.ndarray], np.ndarray]
"""``(N, 3, h, w) float32 -> (N, C, h, w) float32`` logits (a backend's ``infer``)."""


def as_predictor(model: Any) -> Predictor:
    """A backend (anything with ``infer``) or a callable, as a :data:`Predictor`."""
    return model.infer if hasattr(model, "infer") else model


# -- samples -----------------------------------------------------------------------
@dataclass
class SampleSet:
    """Preprocessed images with their original sizes and ground truth.

    Attributes:
        names: image file names (or sample names).
        x: ``(N, 3, h, w)`` float32 model inputs.
        sizes: original ``(H, W)`` of each image.
        masks: ground-truth ``(H, W)`` label maps, ``None`` where an image has none.
        images: the decoded ``(H, W, 3)`` uint8 originals when kept (end-to-end timing).
        source: where the images came from (for reports).
    """

    names: list[str]
    x: np.ndarray
    sizes: list[tuple[int, int]]
    masks: list[np.ndarray | None]
    images: list[np.ndarray] | None = None
    source: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def has_ground_truth(self) -> bool:
        """True when every image has a mask."""
        return all(m is not None for m in self.masks)

    @classmethod
    def from_samples(
        cls,
        samples: Sequence[Sample],
        spec: PreprocessSpec,
        *,
        keep_images: bool = False,
        source: dict[str, Any] | None = None,
    ) -> SampleSet:
        """Read and preprocess image/mask pairs (a mask of ``None`` stays ``None``)."""
        if not samples:
            raise ValueError("no samples to evaluate")
        x = np.empty((len(samples), 3, *spec.input_size), dtype=np.float32)
        sizes, masks, images = [], [], []
        for i, sample in enumerate(samples):
            image = read_image(sample.image)
            mask = read_mask(sample.mask, spec.num_classes) if sample.mask is not None else None
            if mask is not None and mask.shape != image.shape[:2]:
                raise ImageReadError(
                    f"mask {sample.mask} is {mask.shape[1]}x{mask.shape[0]} but its image is "
                    f"{image.shape[1]}x{image.shape[0]}"
                )
            x[i] = spec.preprocess_one(image)
            sizes.append((int(image.shape[0]), int(image.shape[1])))
            masks.append(mask)
            if keep_images:
                images.append(image)
        return cls([s.name for s in samples], x, sizes, masks, images if keep_images else None,
                   dict(source or {}))

    @classmethod
    def from_folder(
        cls, folder: str | Path, spec: PreprocessSpec, *, limit: int = 8, keep_images: bool = True
    ) -> SampleSet:
        """The first ``limit`` images of ``folder`` by name (0 = all); masks from ``folder/../masks``."""
        files = list_images(folder, limit)
        samples = [Sample(p.name, p, _find_mask(p)) for p in files]
        return cls.from_samples(samples, spec, keep_images=keep_images, source={"dir": str(folder)})


def list_images(folder: str | Path, limit: int = 8) -> list[Path]:
    """The first ``limit`` images of a folder, sorted by name (``limit <= 0``: all)."""
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


# -- logits, masks, scores --------------------------------------------------------
def infer_logits(model: Any, x: np.ndarray, *, batch: int = 1) -> list[np.ndarray]:
    """``(1, C, h, w)`` logits of every image of ``x``, ``batch`` images per call.

    Args:
        model: a backend or a :data:`Predictor`.
        x: ``(N, 3, h, w)`` float32 inputs.
        batch: images per call. For a static batch larger than what is left,
            the last call is filled by repeating the last image; only each
            image's own rows are kept.
    """
    predict = as_predictor(model)
    n = x.shape[0]
    if batch <= 1:
        return [predict(x[i : i + 1]) for i in range(n)]
    out: list[np.ndarray] = []
    for start in range(0, n, batch):
        index = [min(start + j, n - 1) for j in range(batch)]
        logits = predict(np.ascontiguousarray(x[index]))
        out.extend(logits[j : j + 1] for j in range(min(batch, n - start)))
    return out


def label_map(logits: np.ndarray) -> np.ndarray:
    """Arg-max class of ``(1, C, h, w)`` or ``(C, h, w)`` logits at the model's resolution, ``(h, w)``."""
    arr = np.asarray(logits)
    return arr.reshape(arr.shape[-3:]).argmax(axis=0).astype(np.uint8)


def label_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Fraction of equal pixels of two :func:`label_map` results (the agreement of their logits)."""
    if reference.shape != candidate.shape:
        raise ValueError(f"label maps differ in shape: {reference.shape} vs {candidate.shape}")
    return float((reference == candidate).mean())


def agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Agreement of two ``(1, C, h, w)`` (or ``(C, h, w)``) logits: see the module docstring."""
    ref, cand = np.asarray(reference), np.asarray(candidate)
    if ref.shape != cand.shape:
        raise ValueError(f"logits differ in shape: {ref.shape} vs {cand.shape}")
    return label_agreement(label_map(ref), label_map(cand))


def masks_of(logits: Sequence[np.ndarray], sizes: Sequence[tuple[int, int]], spec: PreprocessSpec) -> list[np.ndarray]:
    """Label maps at the original sizes from per-image ``(1, C, h, w)`` logits."""
    return [spec.postprocess(lg, size)[0] for lg, size in zip(logits, sizes)]


def score_masks(masks: Sequence[np.ndarray], truth: Sequence[np.ndarray], num_classes: int) -> list[SegScores]:
    """Per-image Dice/IoU/MAE/accuracy of ``masks`` against ``truth``."""
    return [score_image(m, t, num_classes) for m, t in zip(masks, truth)]


def accuracy_summary(logits: Sequence[np.ndarray], samples: SampleSet, spec: PreprocessSpec) -> dict[str, Any] | None:
    """Mean scores against the ground truth at original size (``None`` without it)."""
    if not samples.has_ground_truth:
        return None
    scores = score_masks(masks_of(logits, samples.sizes, spec), samples.masks, spec.num_classes)  # type: ignore[arg-type]
    return {"num_images": len(scores), **mean_scores(scores).to_dict()}


# -- parity: a candidate against a reference ------------------------------------------
@dataclass(frozen=True)
class Thresholds:
    """Pass criteria; ``None`` disables a criterion.

    Attributes:
        max_abs_diff: largest allowed |logit difference|.
        min_agreement: smallest allowed agreement (fraction).
        max_dice_delta_pp: largest allowed |Dice change| in percentage points.
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
# one sample, 1.5 pp of mean Dice (docs/calibration.md).
THRESHOLDS: dict[str, Thresholds] = {
    "fp32": Thresholds(max_abs_diff=1e-3, min_agreement=0.9999, max_dice_delta_pp=None),
    "fp16": Thresholds(max_abs_diff=None, min_agreement=0.999, max_dice_delta_pp=0.1),
    "bf16": Thresholds(max_abs_diff=None, min_agreement=0.999, max_dice_delta_pp=0.1),
    "int8": Thresholds(max_abs_diff=None, min_agreement=0.98, max_dice_delta_pp=None),
}


@dataclass
class ParityResult:
    """Outcome of one parity comparison (saved in ``manifest.json``, bench rows, val reports)."""

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


def _failures(values: dict[str, float], limits: Thresholds) -> list[str]:
    failures = []
    if values["nonfinite_images"]:
        failures.append(f"NaN/Inf logits in {int(values['nonfinite_images'])} image(s)")
    if limits.max_abs_diff is not None and not values["max_abs_diff"] <= limits.max_abs_diff:
        failures.append(f"max|diff| {values['max_abs_diff']:.3g} > {limits.max_abs_diff:g}")
    if not values["agreement"] >= limits.min_agreement:
        failures.append(f"agreement {100 * values['agreement']:.4f}% < {100 * limits.min_agreement:g}%")
    if limits.max_dice_delta_pp is not None and not abs(values["dice_delta_pp"]) <= limits.max_dice_delta_pp:
        failures.append(f"|Dice delta| {abs(values['dice_delta_pp']):.3f} pp > {limits.max_dice_delta_pp:g} pp")
    return failures


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
    """Compare per-image ``(1, C, h, w)`` logits of a candidate with a reference.

    Reports ``max_abs_diff``/``mean_abs_diff`` of the logits, :func:`agreement`,
    and each side's mean Dice (see the module docstring), and checks them
    against the thresholds of ``precision`` (or ``thresholds``).
    """
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
        agree = agreement(ref, cand)
        agree_sum += agree
        size = samples.sizes[i]
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
    failures = _failures(values, limits)
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


def backend_label(backend: Any) -> str:
    """``"onnxruntime (cpu)"``: how results name the backend that produced them."""
    info = backend.describe()
    return f"{info.get('backend', '?')} ({info.get('device', '?')})"


def _logits_even_if_nonfinite(model: Any, x: np.ndarray) -> list[np.ndarray]:
    """Per-image logits; a backend's NaN/Inf refusal is kept as that image's logits.

    A backend refuses non-finite logits (:class:`NonFiniteOutput`); a parity
    check wants to record them as a failure with its numbers instead.
    """
    predict = as_predictor(model)
    out = []
    for i in range(x.shape[0]):
        try:
            out.append(predict(x[i : i + 1]))
        except NonFiniteOutput as exc:
            out.append(exc.logits)
    return out


def check_parity(
    reference: Any,
    candidate: Any,
    samples: SampleSet,
    spec: PreprocessSpec,
    *,
    precision: str,
    label: str = "",
    thresholds: Thresholds | None = None,
    reference_name: str = "torch fp32",
) -> ParityResult:
    """Run both backends (or reuse reference logits) on ``samples`` and compare them.

    Args:
        reference: the PyTorch FP32 backend, or its logits from :func:`infer_logits`.
        candidate: the backend of the artifact under test.
        samples: the images.
        spec: the artifact's preprocessing (for postprocessing to original size).
        precision: selects :data:`THRESHOLDS`.
        label: what was run, e.g. ``"model.onnx on onnxruntime CPU"``.
        thresholds: override the defaults of ``precision``.
        reference_name: how to name precomputed reference logits in the result.
    """
    if hasattr(reference, "infer"):
        ref_logits, ref_name = infer_logits(reference, samples.x), backend_label(reference)
    else:
        ref_logits, ref_name = list(reference), reference_name
    cand_logits = _logits_even_if_nonfinite(candidate, samples.x)
    return compare_logits(
        ref_logits, cand_logits, samples, spec, precision=precision, label=label,
        reference_name=ref_name, candidate_name=backend_label(candidate), thresholds=thresholds,
    )


def torch_predictor(model: Any, device: Any = "cpu") -> Predictor:
    """Wrap an eval-mode torch model as a :data:`Predictor`."""
    import torch

    @torch.no_grad()
    def predict(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return predict
