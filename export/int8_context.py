"""What every INT8 target of one export job shares, built once per job.

- :class:`Int8Context`: the loaded/built calibration set, the held-out images
  with FP32 PyTorch reference scores, and the layer groups of the FP32
  graph. Cached on the job so ``onnx-int8``, ``openvino-int8`` and the
  TensorRT INT8 targets of one run calibrate and score the reference once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtseg.calibration import CalibrationSet, LayerGroup, Scores
from qtseg.evaluation import SampleSet, torch_predictor
from qtseg.export.job import ExportJob
from qtseg.export.options import NOTES_KEY, Int8Options, Int8SetupError

CONTEXT_KEY = "int8_context"


def job_int8_options(job: ExportJob) -> Int8Options:
    """The job's INT8 options: ``job.options.int8`` when the export options carry it, else ``job.notes["int8"]``."""
    options = getattr(job.options, "int8", None) or job.notes.get(NOTES_KEY)
    if options is None or not options.calib:
        raise Int8SetupError("INT8 targets need a calibration set: pass --calib DIR (a qtseg-calib set or a dataset)")
    return options


@dataclass
class Int8Context:
    """Shared INT8 state of one job (see module doc)."""

    options: Int8Options
    calib: CalibrationSet
    held: SampleSet
    reference: Scores
    groups: list[LayerGroup]
    first_conv: str | None
    cache: dict[str, Any] = field(default_factory=dict)

    def calibration_summary(self, method_label: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """``manifest["calibration"]`` of an INT8 artifact."""
        summary = self.calib.summary()
        summary["method"] = method_label
        summary["held_out"] = dict(self.held.source, count=len(self.held))
        if extra:
            summary.update(extra)
        return summary


def _load_or_build_set(job: ExportJob, options: Int8Options, out_dir: Path) -> CalibrationSet:
    from qtseg.calibration import (
        SelectionRule,
        build_set,
        is_set_dir,
        load_set,
        save_set,
        validate_set,
    )

    source = Path(options.calib)
    if not source.exists():
        raise Int8SetupError(f"--calib {source}: not found")
    if is_set_dir(source):
        with job.progress.step(f"load calibration set {source}"):
            calib = load_set(source)
    else:
        rule = SelectionRule(size=options.calib_size, seed=options.calib_seed)
        with job.progress.step(f"build calibration set: {rule.size} train images of {source}"):
            calib = build_set(source, job.spec, rule=rule)
            target = out_dir / "calibration" / calib.set_id
            calib = load_set(target) if is_set_dir(target) else calib
            if calib.path is None:
                save_set(calib, target)
        job.progress.info(f"calibration set {calib.set_id} saved at {calib.path}")
    validate_set(calib, job.spec)
    return calib


def _held_out(job: ExportJob, options: Int8Options, calib: CalibrationSet) -> SampleSet:
    from qtseg.calibration.build import split_pool

    source = calib.manifest.get("source") or {}
    root = Path(options.guard_data or source.get("root") or "")
    if not (root / "images").is_dir():
        raise Int8SetupError(f"held-out data not found at {root or '?'}: pass --guard-data DATASET_DIR")
    split_file = source.get("split_file") if not options.guard_data else None
    samples, where = split_pool(root, options.guard_split, split_file=split_file, seed=0)
    if options.guard_limit:
        samples = samples[: options.guard_limit]
    overlap = sorted({s.name for s in samples} & set(calib.names))
    if overlap and Path(source.get("root", "")).resolve() == root.resolve():
        raise Int8SetupError(
            f"{len(overlap)} held-out image(s) are also calibration images (e.g. {overlap[0]}); "
            "the guard must use images the calibration never saw"
        )
    with job.progress.step(f"load {len(samples)} held-out images ({options.guard_split} split of {root})"):
        return SampleSet.from_samples(samples, job.spec, source={"root": str(root), **where})


def _groups(job: ExportJob) -> tuple[list[LayerGroup], str | None]:
    import onnx

    from qtseg.calibration.groups import layer_groups
    from qtseg.calibration.onnx_qdq import QUANT_OP_TYPES

    model = onnx.load(str(job.graph_file("fp32")), load_external_data=False)
    names = [n.name for n in model.graph.node if n.op_type in QUANT_OP_TYPES and n.name]
    first = next((n.name for n in model.graph.node if n.op_type == "Conv"), None)
    return layer_groups(names, first_conv=first), first


def int8_context(job: ExportJob, out_dir: Path) -> Int8Context:
    """The job's shared INT8 state, built on first use.

    Args:
        job: the export job.
        out_dir: the export output folder (a calibration set built from a
            dataset is saved under ``out_dir/calibration/``).
    """
    if CONTEXT_KEY in job.notes:
        return job.notes[CONTEXT_KEY]
    from qtseg.calibration import score

    options = job_int8_options(job)
    calib = _load_or_build_set(job, options, out_dir)
    held = _held_out(job, options, calib)
    with job.progress.step(f"FP32 PyTorch reference on {len(held.names)} held-out images"):
        reference = score(torch_predictor(job.model), held, job.spec)
    job.progress.info(f"FP32 reference: Dice {100 * reference.dice:.2f}%, IoU {100 * reference.iou:.2f}%")
    groups, first_conv = _groups(job)
    context = Int8Context(options, calib, held, reference, groups, first_conv)
    job.notes[CONTEXT_KEY] = context
    return context


def excluded_nodes(groups: list[LayerGroup], kept: tuple[str, ...], node_names: list[str]) -> list[str]:
    """Node names of the kept groups."""
    chosen = [g for g in groups if g.name in kept]
    patterns = [re.compile(g.pattern) for g in chosen]
    return [n for n in node_names if any(p.match(n) for p in patterns)]
