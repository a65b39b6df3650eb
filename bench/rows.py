"""One benchmark row: open a backend, score it, time it, measure its memory.

:func:`run_row` is what a worker process runs (see :mod:`qtseg.bench.worker`);
it never raises for a backend problem: a runtime that is missing or a device
that is absent gives ``status: "not_executed"`` with the reason, anything else
that goes wrong gives ``status: "error"``. Numbers are only ever those
measured on the backend named in the row.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qtseg.backends import (
    RUNTIMES,
    BackendError,
    BackendUnavailable,
    NotExecutableHere,
    open_backend,
)
from qtseg.bench.system import current_rss_mb, peak_rss_mb
from qtseg.bench.torch_variants import REFERENCE_VARIANT, VARIANTS, open_variant
from qtseg.evaluation import (
    ParityResult,
    SampleSet,
    backend_label,
    compare_logits,
    infer_logits,
)
from qtseg.manifest import Manifest, ManifestError, read_manifest_file
from qtseg.preprocess import PreprocessSpec
from qtseg.timing import latency_stats, time_calls
from qtseg.validation import Candidate, score_samples, select_samples

# Row statuses (report schema).
OK, PARITY_FAILED, NOT_EXECUTED, ERROR = "ok", "parity_failed", "not_executed", "error"
STATUSES = (OK, PARITY_FAILED, NOT_EXECUTED, ERROR)
REFERENCE_NAME = "torch fp32 (cpu)"
GRAPH_VARIANT = "cuda-graph"  # the ``variant`` of an artifact row timed through CUDA graphs
GATE_KEYS = (
    "max_abs_diff",
    "mean_abs_diff",
    "agreement",
    "dice_reference",
    "dice_candidate",
    "dice_delta_pp",
)


@dataclass(frozen=True)
class RowSpec:
    """Everything a worker needs to produce one row (JSON round-trips).

    Attributes:
        id: unique row id, e.g. ``"qtseg-v2_onnx-fp16@cpu"``.
        kind: ``"artifact"`` (an export directory) or ``"torch"`` (a checkpoint).
        path: artifact or checkpoint directory.
        model_key: the model group of the row (see the report's ``models``).
        device: ``"cpu"`` or ``"cuda[:N]"`` requested for the run.
        threads: CPU threads given to the runtime.
        batches: batch sizes timed.
        warmup: untimed calls before each timing loop.
        iters: timed calls per batch size.
        e2e_iters: timed end-to-end calls (0 = skip).
        images_dir: folder of images (ground truth in ``../masks``); parity runs
            on its first ``num_images`` images.
        num_images: images used for parity (and for accuracy without ``data``).
        variant: PyTorch variant (``kind == "torch"``), see :data:`VARIANTS`.
        reference_logits: ``.npz`` with the PyTorch FP32 CPU logits per image.
        reference_note: why there is no reference (when ``reference_logits`` is None).
        preprocess: ``PreprocessSpec`` dict of a PyTorch row (default: the checkpoint's).
        is_reference: the speed reference of its model group.
        cuda_graph: open the artifact with ``cuda_graph=True`` (one CUDA graph
            per input shape; runtimes with ``Runtime.cuda_graph``).
        quiet: no progress lines.
        data: dataset folder of the accuracy columns (``--data``); ``None``:
            the first ``num_images`` images of ``images_dir`` (the gate's).
        split: split of ``data`` (see :func:`qtseg.validation.select_samples`).
    """

    id: str
    kind: str
    path: str
    model_key: str
    device: str
    threads: int
    batches: tuple[int, ...]
    warmup: int
    iters: int
    e2e_iters: int
    images_dir: str
    num_images: int
    variant: str = ""
    reference_logits: str | None = None
    reference_note: str | None = None
    preprocess: dict[str, Any] | None = None
    is_reference: bool = False
    cuda_graph: bool = False
    quiet: bool = False
    data: str | None = None
    split: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        data = asdict(self)
        data["batches"] = list(self.batches)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RowSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "batches": tuple(int(b) for b in data["batches"])})


@dataclass
class _Progress:
    prefix: str
    quiet: bool
    start: float = field(default_factory=time.perf_counter)

    def __call__(self, message: str) -> None:
        if not self.quiet:
            elapsed = time.perf_counter() - self.start
            print(f"  [{self.prefix} +{elapsed:.1f}s] {message}", file=sys.stderr, flush=True)


# -- reference logits ---------------------------------------------------------------
def save_logits(path: str | Path, names: list[str], logits: list[np.ndarray]) -> Path:
    """Write per-image logits (``(1, C, h, w)`` each) and their image names to ``.npz``."""
    arrays = {f"logits_{i}": a for i, a in enumerate(logits)}
    np.savez(path, names=np.array(names), **arrays)
    return Path(path)


def load_logits(path: str | Path) -> tuple[list[str], list[np.ndarray]]:
    """Inverse of :func:`save_logits`."""
    with np.load(path) as data:
        names = [str(n) for n in data["names"]]
        return names, [data[f"logits_{i}"] for i in range(len(names))]


# -- helpers ------------------------------------------------------------------------
def _manifest(path: Path) -> Manifest:
    return read_manifest_file(path)


def batch_of(x: np.ndarray, batch: int) -> np.ndarray:
    """``(batch, 3, H, W)`` made of the sample images in turn (real data, never zeros)."""
    index = [i % x.shape[0] for i in range(batch)]
    return np.ascontiguousarray(x[index])


def gate_block(
    manifest: Manifest, parity: ParityResult | None, names: list[str]
) -> dict[str, Any] | None:
    """What the export gate recorded for this artifact, and whether the bench reproduced it.

    ``equal`` is True when the manifest holds a result for the same runtime on
    the same images and all of :data:`GATE_KEYS` match (relative 1e-9);
    ``None`` when there is nothing comparable.
    """
    block = manifest.parity
    if not block:
        return None
    gate_names = (block.get("samples") or {}).get("names")
    same_images = gate_names == names
    match = None
    if parity is not None:
        match = next(
            (r for r in block.get("results", []) if r.get("candidate") == parity.candidate), None
        )
    equal = None
    if match is not None and same_images:
        equal = all(
            math.isclose(float(match[k]), float(getattr(parity, k)), rel_tol=1e-9, abs_tol=1e-12)
            for k in GATE_KEYS
        )
    return {
        "verified": block.get("verified"),
        "passed": block.get("passed"),
        "same_images": same_images,
        "result": {k: match.get(k) for k in ("label", "candidate", *GATE_KEYS)} if match else None,
        "equal": equal,
    }


# -- the row ------------------------------------------------------------------------
def _base_row(spec: RowSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "model": spec.model_key,
        "kind": spec.kind,
        "backend": "torch",
        "variant": spec.variant or (GRAPH_VARIANT if spec.cuda_graph else None),
        "format": "checkpoint" if spec.kind == "torch" else None,
        "target": f"torch-{spec.variant}" if spec.kind == "torch" else None,
        "precision": VARIANTS[spec.variant].precision if spec.kind == "torch" else None,
        "device": spec.device,
        "artifact": spec.path,
        "is_reference": spec.is_reference,
        "status": ERROR,
        "reason": None,
        "notes": [],
        "threads": spec.threads,
        "size_mb": None,
        "accuracy": None,
        "parity": None,
        "export_gate": None,
        "latency": [],
        "e2e": None,
        "memory": {"peak_rss_mb": None, "rss_before_load_mb": None, "peak_gpu_allocated_mb": None},
        "describe": None,
        "seconds": None,
    }


def _open(spec: RowSpec, manifest: Manifest | None, pre: PreprocessSpec) -> Any:
    if spec.kind == "torch":
        size = tuple(pre.input_size)
        if spec.variant == REFERENCE_VARIANT and spec.device == "cpu":
            # the export gate's reference backend
            return open_backend(spec.path, device="cpu", input_size=size)
        if not spec.device.startswith("cuda"):
            raise NotExecutableHere(f"torch variant {spec.variant} needs a CUDA device")
        return open_variant(spec.path, variant=spec.variant, device=spec.device, input_size=size)
    assert manifest is not None
    fixed = manifest.runtime.device
    if fixed is not None and fixed != spec.device.split(":")[0]:
        # rows of one report run on one device kind; the artifact belongs to another table
        raise NotExecutableHere(
            f"{manifest.target} artifact runs on {fixed}; run qtseg-bench --device {fixed}"
        )
    runtime = RUNTIMES[manifest.runtime.name]
    options: dict[str, Any] = {"threads": spec.threads} if runtime.takes_threads else {}
    if spec.cuda_graph:
        options["cuda_graph"] = True
    return open_backend(spec.path, device=spec.device, **options)


def _static_batch(backend: Any) -> int:
    return int(backend.input_metadata()[0].shape[0])


def _time_batches(
    spec: RowSpec,
    backend: Any,
    samples: SampleSet,
    max_batch: int | None,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    static = _static_batch(backend)
    device_timer = hasattr(backend, "device_call")
    entries = []
    for b in spec.batches:
        entry: dict[str, Any] = {
            "batch": b,
            "status": OK,
            "reason": None,
            "timer": "cuda_events" if device_timer else "perf_counter",
        }
        if static > 0 and static != b:
            entry.update(
                status=NOT_EXECUTED,
                reason=f"artifact has a static batch of {static} (export with --dynamic-batch {b})",
            )
        elif max_batch and b > max_batch:
            entry.update(status=NOT_EXECUTED, reason=f"artifact allows batch <= {max_batch}")
        else:
            x = batch_of(samples.x, b)
            log(f"batch {b}: {spec.warmup} warm-up + {spec.iters} timed calls")
            try:
                if device_timer:
                    from qtseg.timing import time_cuda

                    durations = time_cuda(
                        backend.device_call(x), warmup=spec.warmup, iters=spec.iters
                    )
                else:
                    durations = time_calls(
                        lambda x=x: backend.infer(x), warmup=spec.warmup, iters=spec.iters
                    )
                entry.update(latency_stats(durations, b).to_dict())
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory at a large batch: keep the row
                entry.update(status=ERROR, reason=f"{type(exc).__name__}: {exc}".splitlines()[0])
        entries.append(entry)
    return entries


def _time_e2e(
    spec: RowSpec, backend: Any, samples: SampleSet, pre: PreprocessSpec
) -> dict[str, Any]:
    """Decoded uint8 RGB image(s) in -> label map(s) at original size out, host clock."""
    static = _static_batch(backend)
    batch = static if static > 0 else 1
    counter = itertools.count()
    images = samples.images

    def call() -> None:
        k = next(counter)
        chosen = [images[(k * batch + j) % len(images)] for j in range(batch)]
        logits = backend.infer(pre.preprocess(chosen))
        for img, lg in zip(chosen, logits):
            pre.postprocess(lg, img.shape[:2])

    durations = time_calls(call, warmup=min(spec.warmup, 2), iters=spec.e2e_iters)
    return {
        **latency_stats(durations, batch).to_dict(),
        "status": OK,
        "reason": None,
        "timer": "perf_counter",
        "includes": "preprocess (uint8 RGB, resize, normalize) + inference + postprocess "
        "(resize logits to original size, arg-max); JPEG decoding excluded",
    }


def accuracy_block(
    spec: RowSpec, backend: Any, pre: PreprocessSpec, notes: list[str]
) -> dict[str, Any] | None:
    """Dice/IoU/MAE/accuracy with 95 % CIs, by the code ``qtseg-val`` uses (``None``: no masks).

    The images: ``spec.data`` (its ``split``), else the first ``num_images``
    images of ``images_dir`` (the export gate's).
    """
    if spec.data is None:
        samples, source = select_samples(spec.images_dir, "all", require_masks=False)
        samples = samples[: spec.num_images]
        source = f"the first {len(samples)} of {source}"
    else:
        samples, source = select_samples(spec.data, spec.split, require_masks=False)
    result = score_samples(samples, [Candidate(spec.id, backend, pre)], warmup=0)
    summary = result.candidates[spec.id].summary()
    for failure in result.failures:
        notes.append(f"accuracy: {failure.line()}")
    if not summary["num_scored"]:
        return None
    keys = ("dice", "iou", "mae", "accuracy", "dice_ci", "iou_ci", "mae_ci")
    return {
        "num_images": summary["num_scored"],
        **{k: summary[k] for k in keys},
        "failed": len(result.failures),
        "images": source,
    }


def _gpu_reset(spec: RowSpec) -> None:
    if spec.kind == "torch" and spec.device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()


def run_row(spec: RowSpec) -> dict[str, Any]:
    """Produce one report row (see docs/bench.md for the fields)."""
    start = time.perf_counter()
    row = _base_row(spec)
    log = _Progress(spec.id, spec.quiet)
    try:
        _fill_row(spec, row, log)
    except (BackendUnavailable, NotExecutableHere) as exc:
        row.update(status=NOT_EXECUTED, reason=getattr(exc, "reason", None) or str(exc))
    except Exception as exc:  # noqa: BLE001 - a broken artifact is one row, not a crashed bench
        row.update(
            status=ERROR, reason=f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:500]
        )
    row["memory"]["peak_rss_mb"] = peak_rss_mb()
    row["seconds"] = round(time.perf_counter() - start, 2)
    if row["status"] == NOT_EXECUTED:
        # a row that did not run carries no numbers of any kind
        row.update(accuracy=None, parity=None, latency=[], e2e=None)
        row["memory"] = {k: None for k in row["memory"]}
    log(f"{row['status']}" + (f": {row['reason']}" if row["reason"] else ""))
    return row


def _fill_row(spec: RowSpec, row: dict[str, Any], log: Callable[[str], None]) -> None:
    path = Path(spec.path)
    manifest = None
    if spec.kind == "artifact":
        manifest = _manifest(path)
        pre = manifest.preprocess
        row.update(
            backend=manifest.runtime.name,
            format=manifest.format,
            target=manifest.target,
            precision=manifest.precision,
            size_mb=manifest.loaded_bytes() / 2**20,
            device=spec.device,
        )
        max_batch = manifest.export.dynamic_batch_max
    else:
        pre = (
            PreprocessSpec.from_dict(spec.preprocess)
            if spec.preprocess
            else PreprocessSpec.load(path)
        )
        weights = path / "weights.safetensors"
        row["size_mb"] = weights.stat().st_size / 2**20 if weights.is_file() else None
        max_batch = None
        if spec.device == "cpu":
            import torch

            torch.set_num_threads(spec.threads)
    row["memory"]["rss_before_load_mb"] = current_rss_mb()
    _gpu_reset(spec)
    log(f"open {row['backend']} {row['precision']} on {row['device']}")
    with _open(spec, manifest, pre) as backend:
        row["describe"] = json.loads(json.dumps(backend.describe(), default=str))
        samples = SampleSet.from_folder(spec.images_dir, pre, limit=spec.num_images)
        log(f"accuracy and parity on {len(samples.names)} images")
        logits = infer_logits(backend, samples.x, batch=max(1, _static_batch(backend)))
        log("accuracy " + ("on the gate's images" if spec.data is None else f"on {spec.data}"))
        row["accuracy"] = accuracy_block(spec, backend, pre, row["notes"])
        parity = None
        if spec.reference_logits:
            ref_names, ref_logits = load_logits(spec.reference_logits)
            if ref_names != samples.names:
                raise BackendError("reference logits were computed on other images")
            parity = compare_logits(
                ref_logits,
                logits,
                samples,
                pre,
                precision=row["precision"],
                label=spec.id,
                reference_name=REFERENCE_NAME,
                candidate_name=backend_label(backend),
            )
            row["parity"] = parity.to_dict()
        elif spec.reference_note:
            row["notes"].append(f"no parity: {spec.reference_note}")
        if manifest is not None:
            row["export_gate"] = gate_block(manifest, parity, samples.names)
        row["latency"] = _time_batches(spec, backend, samples, max_batch, log)
        if spec.e2e_iters > 0:
            log(f"end-to-end: {spec.e2e_iters} timed calls")
            row["e2e"] = _time_e2e(spec, backend, samples, pre)
        if hasattr(backend, "peak_memory_mb"):
            row["memory"]["peak_gpu_allocated_mb"] = backend.peak_memory_mb()
    if parity is not None and not parity.passed:
        row.update(status=PARITY_FAILED, reason="; ".join(parity.failures))
    else:
        row["status"] = OK


def failed_row(spec: RowSpec, status: str, reason: str) -> dict[str, Any]:
    """A row decided without running it (not executable, worker crashed, timed out)."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    row = _base_row(spec)
    if spec.kind == "artifact":
        try:
            manifest = _manifest(Path(spec.path))
            row.update(
                backend=manifest.runtime.name,
                format=manifest.format,
                target=manifest.target,
                precision=manifest.precision,
                device=spec.device,
            )
        except ManifestError:
            pass
    row.update(status=status, reason=reason)
    return row
