"""Score backends on a folder, image by image: the loop behind ``qtseg-val``, ``qtseg-predict``
and the accuracy columns of ``qtseg-bench``.

One pass over the samples, ``batch`` images at a time; nothing else is kept
in memory but one small :class:`ImageRecord` per image and backend, so a
folder of any size fits. For each chunk of decoded images, every
:class:`Candidate` runs the end-to-end pipeline (``spec.preprocess`` ->
``infer`` -> ``spec.postprocess``), timed per call on the host clock, and
its masks are scored against the ground truth (:func:`qtseg.metrics.score_image`)
and compared with its PyTorch reference (:func:`qtseg.evaluation.agreement`,
the one definition). The definitions are those of :mod:`qtseg.evaluation`:
scores at the original size, agreement at the model's input resolution.

Failures never stop the pass unless ``strict``: an image that cannot be
decoded (or whose mask does not fit it) is recorded in
:attr:`PassResult.unreadable` and skipped for every backend; a backend that
fails on a chunk (a :class:`~qtseg.backends.base.BackendError` such as
non-finite logits, or a runtime error) has those images recorded in its
:attr:`CandidateResult.failures` and goes on with the next chunk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qtseg.backends import open_backend
from qtseg.data.folder import (
    DatasetError,
    Sample,
    default_split_file,
    discover,
    split_samples,
)
from qtseg.evaluation import agreement, as_predictor, infer_logits, masks_of
from qtseg.imageio import ImageReadError, read_image, read_mask
from qtseg.manifest import Manifest, is_artifact_dir, read_manifest_file
from qtseg.metrics import SegScores, mean_scores, score_image
from qtseg.preprocess import PreprocessSpec
from qtseg.timing import latency_stats

CI_LEVEL = 0.95
CI_RESAMPLES = 2000
CI_METHOD = "percentile bootstrap over images (resampled with replacement), seeded"

# What a backend may raise for one chunk without the pass being wrong for the
# others: BackendError is a RuntimeError; runtimes raise RuntimeError/ValueError.
CHUNK_ERRORS = (RuntimeError, ValueError)

MaskCallback = Callable[[str, Sample, np.ndarray, np.ndarray, "ImageRecord"], None]
"""``(candidate label, sample, (H, W, 3) uint8 image, (H, W) uint8 label map, record) -> None``."""


@dataclass(frozen=True)
class Reference:
    """The PyTorch FP32 backend a candidate is compared with.

    Attributes:
        label: how results name it (e.g. the checkpoint folder).
        backend: a backend or :data:`qtseg.evaluation.Predictor`; it is run one
            image at a time, as the export gate runs it.
        spec: its preprocessing (the candidate's, so logits have one shape).
    """

    label: str
    backend: Any
    spec: PreprocessSpec


@dataclass(frozen=True)
class Candidate:
    """A backend to score.

    Attributes:
        label: unique name in the results (e.g. the artifact folder name).
        backend: a backend (``infer``, ``input_metadata``) or a predictor.
        spec: the preprocessing it was built with.
        reference: what its agreement and Dice change are measured against.
        reference_note: why there is no reference (when ``reference`` is None).
    """

    label: str
    backend: Any
    spec: PreprocessSpec
    reference: Reference | None = None
    reference_note: str | None = None


@dataclass(frozen=True)
class ImageRecord:
    """One image scored for one candidate (scores are fractions; ``None`` without ground truth).

    Attributes:
        foreground: predicted fraction of pixels not of class 0, at original size.
        foreground_truth: the same fraction in the ground truth.
        agreement: with the reference (model resolution), ``None`` without one.
        dice_reference: the reference's Dice on this image.
        model_ms: ``infer`` time of the call that held the image, divided by
            the images of that call.
        e2e_ms: preprocess + ``infer`` + postprocess, likewise per image
            (decoding excluded, as in ``qtseg-bench``).
    """

    name: str
    height: int
    width: int
    dice: float | None
    iou: float | None
    mae: float | None
    accuracy: float | None
    foreground: float
    foreground_truth: float | None
    agreement: float | None
    dice_reference: float | None
    model_ms: float
    e2e_ms: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class Failure:
    """An image that produced no result: ``stage`` is ``"read"`` or ``"infer"``."""

    name: str
    path: str
    stage: str
    message: str

    def line(self) -> str:
        """One line for people: ``NAME: message``."""
        return f"{self.name}: {self.message}"


class StrictFailure(RuntimeError):
    """The first failure of a pass run with ``strict=True``."""

    def __init__(self, failure: Failure) -> None:
        self.failure = failure
        super().__init__(failure.line())


@dataclass
class CandidateResult:
    """Everything one candidate produced in a pass.

    Attributes:
        call_s: ``infer`` time of each full call (``batch`` images), seconds.
        call_e2e_s: end-to-end time of the same calls.
    """

    label: str
    batch: int
    reference: str | None
    reference_note: str | None
    records: list[ImageRecord] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    call_s: list[float] = field(default_factory=list)
    call_e2e_s: list[float] = field(default_factory=list)

    def summary(
        self, *, level: float = CI_LEVEL, resamples: int = CI_RESAMPLES, seed: int = 0
    ) -> dict[str, Any]:
        """Means with confidence intervals, agreement, Dice change and latency (JSON-ready).

        ``dice_delta_pp`` = 100 x (mean candidate Dice - mean reference Dice)
        over the images where both ran, against the ground truth.
        """
        scored = [r for r in self.records if r.dice is not None]
        out: dict[str, Any] = {
            "label": self.label,
            "num_images": len(self.records),
            "num_scored": len(scored),
            "num_failed": len(self.failures),
            "batch": self.batch,
            "reference": self.reference,
            "reference_note": self.reference_note,
        }
        for key in ("dice", "iou", "mae", "accuracy"):
            values = [getattr(r, key) for r in scored]
            out[key] = float(np.mean(values)) if values else None
            out[f"{key}_ci"] = (
                list(bootstrap_ci(values, level=level, resamples=resamples, seed=seed))
                if values else None
            )
        paired = [r for r in scored if r.agreement is not None and r.dice_reference is not None]
        agreed = [r.agreement for r in self.records if r.agreement is not None]
        out["agreement"] = float(np.mean(agreed)) if agreed else None
        out["agreement_min"] = float(np.min(agreed)) if agreed else None
        out["dice_reference"] = (
            float(np.mean([r.dice_reference for r in paired])) if paired else None
        )
        out["dice_delta_pp"] = (
            100.0 * (float(np.mean([r.dice for r in paired]))
                     - float(np.mean([r.dice_reference for r in paired])))
            if paired else None
        )
        out["latency"] = latency_stats(self.call_s, self.batch).to_dict() if self.call_s else None
        out["e2e"] = (
            latency_stats(self.call_e2e_s, self.batch).to_dict() if self.call_e2e_s else None
        )
        return out


@dataclass
class PassResult:
    """A pass over the samples: one result per candidate, and the images nobody could read."""

    num_samples: int
    candidates: dict[str, CandidateResult]
    unreadable: list[Failure] = field(default_factory=list)

    @property
    def failures(self) -> list[Failure]:
        """Every failure of the pass (unreadable images, then per candidate)."""
        out = list(self.unreadable)
        for result in self.candidates.values():
            out.extend(result.failures)
        return out


def bootstrap_ci(
    values: Sequence[float],
    *,
    level: float = CI_LEVEL,
    resamples: int = CI_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean of ``values``.

    ``resamples`` means of ``len(values)`` values drawn with replacement
    (``numpy.random.default_rng(seed)``); the interval is their
    ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles. One value gives
    a zero-width interval.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if not 0.0 < level < 1.0 or resamples < 1:
        raise ValueError(f"need 0 < level < 1 and resamples >= 1, got {level}, {resamples}")
    if v.size == 1:
        return float(v[0]), float(v[0])
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(resamples, v.size))].mean(axis=1)
    low, high = np.percentile(means, [50.0 * (1.0 - level), 50.0 * (1.0 + level)])
    return float(low), float(high)


@dataclass
class Opened:
    """A checkpoint or artifact opened for scoring.

    Attributes:
        path: the folder given.
        backend: its backend (close it, or use ``with``).
        spec: its preprocessing.
        manifest: the artifact's manifest (``None`` for a checkpoint).
    """

    path: Path
    backend: Any
    spec: PreprocessSpec
    manifest: Manifest | None

    @property
    def label(self) -> str:
        """How results name it: the folder name (e.g. ``qtseg-v2_onnx``)."""
        return self.path.name

    def __enter__(self) -> Opened:  # noqa: PYI034 - a final dataclass
        return self

    def __exit__(self, *exc: object) -> None:
        self.backend.close()


def open_target(path: str | Path, *, device: str | None = "auto", threads: int = 0) -> Opened:
    """Open a checkpoint or artifact folder through :func:`qtseg.backends.open_backend`.

    Raises what ``open_backend`` raises (``ManifestError``, ``BackendError``,
    ``CheckpointError``...), each with a one-line message.
    """
    path = Path(path)
    manifest = read_manifest_file(path) if is_artifact_dir(path) else None
    backend = open_backend(path, device=device, threads=threads)
    if manifest is not None:
        spec = manifest.preprocess
    else:
        from qtseg.checkpoint import resolve_checkpoint_dir  # torch: only for checkpoints

        spec = PreprocessSpec.load(resolve_checkpoint_dir(path))
    return Opened(path, backend, spec, manifest)


def resolve_batch(opened: Opened, requested: int | None) -> int:
    """Images per call for ``opened``: its static batch, else ``requested`` (default 1).

    Raises:
        ValueError: ``requested`` differs from a static batch, or exceeds the
            artifact's dynamic maximum.
    """
    static = static_batch(opened.backend)
    if static is not None:
        if requested is not None and requested != static:
            raise ValueError(
                f"{opened.label} has a static batch of {static}: it runs with --batch {static} only "
                "(export with --dynamic-batch N for other batch sizes)"
            )
        return static
    batch = requested or 1
    if batch < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    limit = opened.manifest.export.dynamic_batch_max if opened.manifest is not None else None
    if limit is not None and batch > limit:
        raise ValueError(f"{opened.label} takes batches of 1..{limit}, not --batch {batch}")
    return batch


def static_batch(backend: Any) -> int | None:
    """The static batch of a backend's input, ``None`` when dynamic (or a bare predictor)."""
    if not hasattr(backend, "input_metadata"):
        return None
    n = int(backend.input_metadata()[0].shape[0])
    return n if n > 0 else None


# -- the pass ---------------------------------------------------------------------------------
@dataclass
class _Decoded:
    sample: Sample
    image: np.ndarray
    truth: np.ndarray | None

    @property
    def size(self) -> tuple[int, int]:
        return int(self.image.shape[0]), int(self.image.shape[1])


def _decode(sample: Sample, num_classes: int, max_pixels: int | None) -> _Decoded:
    # max_pixels: the reader's decompression-bomb limit; None leaves the reader's default
    limit = {} if max_pixels is None else {"max_pixels": max_pixels}
    image = read_image(sample.image, **limit)
    truth = read_mask(sample.mask, num_classes, **limit) if sample.mask is not None else None
    if truth is not None and truth.shape != image.shape[:2]:
        raise ImageReadError(
            f"mask {sample.mask} is {truth.shape[1]}x{truth.shape[0]} but its image is "
            f"{image.shape[1]}x{image.shape[0]}"
        )
    return _Decoded(sample, image, truth)


def _chunks(
    samples: Sequence[Sample],
    batch: int,
    num_classes: int,
    max_pixels: int | None,
    unreadable: list[Failure],
    strict: bool,
    advance: Callable[[int], None],
):
    """Decoded chunks of up to ``batch`` images; unreadable ones recorded and skipped."""
    chunk: list[_Decoded] = []
    for sample in samples:
        try:
            chunk.append(_decode(sample, num_classes, max_pixels))
        except (ImageReadError, OSError) as exc:
            failure = Failure(sample.name, str(sample.image), "read", str(exc).splitlines()[0])
            unreadable.append(failure)
            advance(1)
            if strict:
                raise StrictFailure(failure) from None
            continue
        if len(chunk) == batch:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _reference_outputs(
    ref: Reference, chunk: list[_Decoded]
) -> tuple[list[np.ndarray], list[float | None]] | None:
    """Reference logits per image and its Dice (``None`` where no ground truth); None on error."""
    try:
        x = ref.spec.preprocess([d.image for d in chunk])
        logits = infer_logits(ref.backend, x)
    except CHUNK_ERRORS:
        return None
    masks = masks_of(logits, [d.size for d in chunk], ref.spec)
    dices = [
        score_image(m, d.truth, ref.spec.num_classes).dice if d.truth is not None else None
        for m, d in zip(masks, chunk)
    ]
    return logits, dices


def _run_chunk(
    cand: Candidate,
    result: CandidateResult,
    chunk: list[_Decoded],
    reference: tuple[list[np.ndarray], list[float | None]] | None,
    on_mask: MaskCallback | None,
    strict: bool,
) -> None:
    spec, n = cand.spec, len(chunk)
    call_batch = static_batch(cand.backend) or n
    try:
        t0 = time.perf_counter()
        x = spec.preprocess([d.image for d in chunk])
        t1 = time.perf_counter()
        logits = infer_logits(cand.backend, x, batch=call_batch)
        t2 = time.perf_counter()
        masks = masks_of(logits, [d.size for d in chunk], spec)
        t3 = time.perf_counter()
    except CHUNK_ERRORS as exc:
        if n > 1 and not strict:
            # find the image(s) at fault: the others of the call still get their masks
            for i, d in enumerate(chunk):
                single = None if reference is None else (reference[0][i:i + 1],
                                                         reference[1][i:i + 1])
                _run_chunk(cand, result, [d], single, on_mask, strict)
            return
        text = str(exc).strip()
        message = f"{cand.label}: {text.splitlines()[0] if text else type(exc).__name__}"
        for d in chunk:
            failure = Failure(d.sample.name, str(d.sample.image), "infer", message)
            result.failures.append(failure)
            if strict:
                raise StrictFailure(failure) from None
        return
    if n == result.batch:
        result.call_s.append(t2 - t1)
        result.call_e2e_s.append(t3 - t0)
    for i, (d, mask) in enumerate(zip(chunk, masks)):
        scores = score_image(mask, d.truth, spec.num_classes) if d.truth is not None else None
        ref_logits, ref_dices = reference if reference is not None else (None, None)
        record = ImageRecord(
            name=d.sample.name,
            height=d.size[0],
            width=d.size[1],
            dice=scores.dice if scores else None,
            iou=scores.iou if scores else None,
            mae=scores.mae if scores else None,
            accuracy=scores.accuracy if scores else None,
            foreground=float((mask > 0).mean()),
            foreground_truth=float((d.truth > 0).mean()) if d.truth is not None else None,
            agreement=agreement(ref_logits[i], logits[i]) if ref_logits is not None else None,
            dice_reference=ref_dices[i] if ref_dices is not None else None,
            model_ms=1000.0 * (t2 - t1) / n,
            e2e_ms=1000.0 * (t3 - t0) / n,
        )
        result.records.append(record)
        if on_mask is not None:
            on_mask(cand.label, d.sample, d.image, mask, record)


def score_samples(
    samples: Sequence[Sample],
    candidates: Sequence[Candidate],
    *,
    batch: int = 1,
    warmup: int = 1,
    strict: bool = False,
    on_mask: MaskCallback | None = None,
    progress: bool = False,
    max_pixels: int | None = None,
) -> PassResult:
    """Run and score every candidate on every sample, streaming (see the module docstring).

    Args:
        samples: image paths with their ground truth (``mask=None``: no scores).
        candidates: the backends; labels must be unique, all with the same
            number of classes.
        batch: images decoded and run together. A candidate with a static
            batch is called with that batch (the last call filled by
            repeating an image, see :func:`qtseg.evaluation.infer_logits`).
        warmup: untimed calls of each candidate on the first chunk before the pass.
        strict: raise :class:`StrictFailure` at the first failure.
        on_mask: called with every label map produced (e.g. to write it).
        progress: show a progress bar on stderr.
        max_pixels: images (and masks) of more pixels are refused as unreadable
            (default: :mod:`qtseg.imageio`'s limit).
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    labels = [c.label for c in candidates]
    if not candidates or len(set(labels)) != len(labels):
        raise ValueError(f"need at least one candidate and unique labels, got {labels}")
    classes = {c.spec.num_classes for c in candidates}
    if len(classes) != 1:
        raise ValueError(f"candidates disagree on the number of classes: {sorted(classes)}")
    num_classes = classes.pop()
    results = {
        c.label: CandidateResult(
            c.label, batch, c.reference.label if c.reference else None, c.reference_note
        )
        for c in candidates
    }
    unreadable: list[Failure] = []
    from tqdm import tqdm

    bar = tqdm(total=len(samples), desc="images", unit="img", disable=not progress, leave=False)
    warm = False
    try:
        for chunk in _chunks(samples, batch, num_classes, max_pixels, unreadable, strict,
                             bar.update):
            if not warm and warmup > 0:
                _warm_up(candidates, chunk, warmup)
            warm = True
            refs: dict[int, Any] = {}
            for cand in candidates:
                reference = None
                if cand.reference is not None:
                    key = id(cand.reference)
                    if key not in refs:
                        refs[key] = _reference_outputs(cand.reference, chunk)
                    reference = refs[key]
                _run_chunk(cand, results[cand.label], chunk, reference, on_mask, strict)
            bar.update(len(chunk))
    finally:
        bar.close()
    return PassResult(len(samples), results, unreadable)


def _warm_up(candidates: Sequence[Candidate], chunk: list[_Decoded], warmup: int) -> None:
    """Untimed calls (allocators, kernel selection); a failure here shows up in the pass."""
    for cand in candidates:
        predict = as_predictor(cand.backend)
        x = cand.spec.preprocess([chunk[0].image] * (static_batch(cand.backend) or len(chunk)))
        for _ in range(warmup):
            try:
                predict(x)
            except CHUNK_ERRORS:
                break


# -- which images ------------------------------------------------------------------------------
SPLITS = ("train", "val", "test", "all")


def dataset_root(folder: str | Path) -> Path:
    """The dataset folder of ``folder``: itself when it holds ``images/``; its parent when it
    is an ``images/`` folder with ``../masks`` beside it (the export gate's layout)."""
    folder = Path(folder)
    if not (folder / "images").is_dir() and folder.name == "images" and (
        folder.parent / "masks"
    ).is_dir():
        return folder.parent
    return folder


def select_samples(
    folder: str | Path,
    split: str | None = None,
    split_file: str | Path | None = None,
    *,
    require_masks: bool = True,
) -> tuple[list[Sample], str]:
    """The images of a dataset folder to score, and a description of the choice.

    Args:
        folder: a folder with ``images/`` (+ ``masks/``), or see :func:`dataset_root`.
        split: ``train``, ``val``, ``test`` or ``all``; default ``test`` when a
            split file exists, else ``all``.
        split_file: JSON lists of image names (default: ``FOLDER/splits.json``).
        require_masks: every image must have a mask.

    Raises:
        DatasetError: missing folder, split file or masks; duplicate names.
    """
    root = dataset_root(folder)
    samples = discover(root, require_masks=require_masks)
    file = Path(split_file) if split_file else default_split_file(root)
    if split_file and not file.is_file():
        raise DatasetError(f"split file not found: {split_file}")
    if split is None:
        split = "test" if file is not None else "all"
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r} (one of {', '.join(SPLITS)})")
    if split == "all":
        return samples, f"{len(samples)} images of {root}"
    if file is None:
        raise DatasetError(f"split {split!r} needs a split file: {root}/splits.json or --split-file")
    chosen = split_samples(samples, split_file=file)[split]
    if not chosen:
        raise DatasetError(f"{file}: the {split} split is empty")
    return chosen, f"{len(chosen)} images of the {split} split of {file}"


# -- training's validation ----------------------------------------------------------------------
@dataclass
class EvalResult:
    """Per-image and mean scores of one evaluation."""

    names: list[str]
    per_image: list[SegScores]
    mean: SegScores

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (mean + per image)."""
        return {
            "count": len(self.names),
            "mean": self.mean.to_dict(),
            "per_image": {n: s.to_dict() for n, s in zip(self.names, self.per_image)},
        }


def evaluate(
    model: Any,
    spec: PreprocessSpec,
    samples: Sequence[Sample],
    *,
    batch_size: int = 4,
    progress: bool = False,
) -> EvalResult:
    """Scores of a backend or predictor on ``samples``, every one with a mask (a pass of
    :func:`score_samples`, ``batch_size`` images per call; any failure raises).

    Raises:
        ValueError: a sample without a mask.
        StrictFailure: an image that cannot be read, or a failed call.
    """
    if any(s.mask is None for s in samples):
        raise ValueError("evaluate() needs a ground-truth mask for every sample")
    result = score_samples(
        samples, [Candidate("model", model, spec)], batch=batch_size, warmup=0, strict=True,
        progress=progress,
    )
    records = result.candidates["model"].records
    scores = [SegScores(r.dice, r.iou, r.mae, r.accuracy) for r in records]  # type: ignore[arg-type]
    return EvalResult([r.name for r in records], scores, mean_scores(scores))
