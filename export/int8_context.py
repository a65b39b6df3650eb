"""What every INT8 target of one export job shares, built once per job.

- :class:`Int8Options`: the user's INT8 settings (calibration set, method,
  accuracy budget, held-out data) and the CLI flags that set them.
- :class:`Int8Context`: the loaded/built calibration set, the held-out images
  with FP32 PyTorch reference scores, and the layer groups of the FP32
  graph. Cached on the job so ``onnx-int8``, ``openvino-int8`` and the
  TensorRT INT8 targets of one run calibrate and score the reference once.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtseg.calibration.methods import DEFAULT_METHOD

if TYPE_CHECKING:
    from qtseg.calibration import CalibrationSet, HeldOut, LayerGroup, Scores
    from qtseg.export.pipeline import ExportJob

NOTES_KEY = "int8"
CONTEXT_KEY = "int8_context"


class Int8SetupError(ValueError):
    """INT8 settings that cannot be used (no calibration set, overlapping data, ...)."""


@dataclass(frozen=True)
class Int8Options:
    """INT8 settings of one export run.

    Attributes:
        calib: a calibration-set folder (``qtseg-calib build``) or a dataset
            folder (a set is then built from its ``train`` split and saved
            under ``<out>/calibration/<set id>/``).
        calib_size: images when building from a dataset folder.
        calib_seed: selection seed when building.
        calib_method: ``minmax``, ``entropy`` or ``percentile[:P]``.
        max_dice_drop: accuracy budget, percentage points of mean Dice vs FP32.
        guard_data: dataset folder of the held-out images (default: the
            calibration set's source dataset).
        guard_split: split of ``guard_data`` used by the guard (default ``val``).
        guard_limit: use only the first N held-out images (0 = all).
        search: run the sensitivity search when the budget is exceeded.
        max_kept: most layer groups the search may keep in float.
    """

    calib: str | None = None
    calib_size: int = 128
    calib_seed: int = 0
    calib_method: str = DEFAULT_METHOD
    max_dice_drop: float = 0.5
    guard_data: str | None = None
    guard_split: str = "val"
    guard_limit: int = 0
    search: bool = True
    max_kept: int = 8

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def add_int8_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the INT8 flags to ``qtseg-export``'s parser (no runtime imported)."""
    g = parser.add_argument_group("INT8 targets (onnx-int8, openvino-int8, trt-int8, trtrtx-int8)")
    g.add_argument("--calib", default=None, metavar="DIR",
                   help="calibration-set folder (qtseg-calib build) or dataset folder (its train split is used)")
    g.add_argument("--calib-size", type=int, default=128, help="images when building a set from a dataset (default 128)")
    g.add_argument("--calib-seed", type=int, default=0, help="selection seed when building a set (default 0)")
    g.add_argument("--calib-method", default=DEFAULT_METHOD,
                   help=f"minmax | entropy | percentile[:P] (default {DEFAULT_METHOD})")
    g.add_argument("--max-dice-drop", type=float, default=0.5, metavar="PP",
                   help="accuracy budget in Dice percentage points vs FP32 (default 0.5)")
    g.add_argument("--guard-data", default=None, metavar="DIR",
                   help="held-out dataset folder (default: the calibration set's source)")
    g.add_argument("--guard-split", default="val", help="held-out split (default val)")
    g.add_argument("--guard-limit", type=int, default=0, metavar="N", help="first N held-out images only (0 = all)")
    g.add_argument("--no-int8-search", action="store_true",
                   help="fail instead of searching for layers to keep in float")


def int8_options_from_args(args: argparse.Namespace) -> Int8Options:
    """:class:`Int8Options` from parsed flags; raises ``ValueError`` on bad values."""
    from qtseg.calibration.methods import CalibrationMethod

    CalibrationMethod.parse(args.calib_method)
    if args.calib_size < 1:
        raise ValueError(f"--calib-size must be >= 1, got {args.calib_size}")
    if args.max_dice_drop < 0:
        raise ValueError(f"--max-dice-drop must be >= 0, got {args.max_dice_drop}")
    if args.guard_limit < 0:
        raise ValueError(f"--guard-limit must be >= 0, got {args.guard_limit}")
    return Int8Options(
        calib=args.calib,
        calib_size=args.calib_size,
        calib_seed=args.calib_seed,
        calib_method=args.calib_method,
        max_dice_drop=args.max_dice_drop,
        guard_data=args.guard_data,
        guard_split=args.guard_split,
        guard_limit=args.guard_limit,
        search=not args.no_int8_search,
    )


def given_int8_flags(args: argparse.Namespace) -> list[str]:
    """The INT8 flags (other than ``--calib``) set to a non-default value, as typed; raises ``ValueError`` on bad values."""
    options, default = int8_options_from_args(args), Int8Options()
    flag = {"search": "--no-int8-search"}
    return [flag.get(f.name, "--" + f.name.replace("_", "-")) for f in fields(Int8Options)
            if f.name != "calib" and getattr(options, f.name) != getattr(default, f.name)]


def job_int8_options(job: "ExportJob") -> Int8Options:
    """The job's INT8 options: ``job.options.int8`` when the export options carry it, else ``job.notes["int8"]``."""
    options = getattr(job.options, "int8", None) or job.notes.get(NOTES_KEY)
    if options is None or not options.calib:
        raise Int8SetupError("INT8 targets need a calibration set: pass --calib DIR (a qtseg-calib set or a dataset)")
    return options


@dataclass
class Int8Context:
    """Shared INT8 state of one job (see module doc)."""

    options: Int8Options
    calib: "CalibrationSet"
    held: "HeldOut"
    reference: "Scores"
    groups: list["LayerGroup"]
    first_conv: str | None
    cache: dict[str, Any] = field(default_factory=dict)

    def calibration_summary(self, method_label: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """``manifest["calibration"]`` of an INT8 artifact."""
        summary = self.calib.summary()
        summary["method"] = method_label
        summary["held_out"] = dict(self.held.source, count=len(self.held.names))
        if extra:
            summary.update(extra)
        return summary


def _load_or_build_set(job: "ExportJob", options: Int8Options, out_dir: Path) -> "CalibrationSet":
    from qtseg.calibration import SelectionRule, build_set, is_set_dir, load_set, save_set, validate_set

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


def _held_out(job: "ExportJob", options: Int8Options, calib: "CalibrationSet") -> "HeldOut":
    from qtseg.calibration import HeldOut
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
        return HeldOut.load(samples, job.spec, source={"root": str(root), **where})


def _groups(job: "ExportJob") -> tuple[list["LayerGroup"], str | None]:
    import onnx

    from qtseg.calibration.groups import layer_groups
    from qtseg.calibration.onnx_qdq import QUANT_OP_TYPES

    model = onnx.load(str(job.graph_file("fp32")), load_external_data=False)
    names = [n.name for n in model.graph.node if n.op_type in QUANT_OP_TYPES and n.name]
    first = next((n.name for n in model.graph.node if n.op_type == "Conv"), None)
    return layer_groups(names, first_conv=first), first


def int8_context(job: "ExportJob", out_dir: Path) -> Int8Context:
    """The job's shared INT8 state, built on first use.

    Args:
        job: the export job.
        out_dir: the export output folder (a calibration set built from a
            dataset is saved under ``out_dir/calibration/``).
    """
    if CONTEXT_KEY in job.notes:
        return job.notes[CONTEXT_KEY]
    from qtseg.calibration import score
    from qtseg.evaluation import torch_predictor

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


def excluded_nodes(groups: list["LayerGroup"], kept: tuple[str, ...], node_names: list[str]) -> list[str]:
    """Node names of the kept groups."""
    chosen = [g for g in groups if g.name in kept]
    patterns = [re.compile(g.pattern) for g in chosen]
    return [n for n in node_names if any(p.match(n) for p in patterns)]
