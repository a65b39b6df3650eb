"""``qtseg-val``: score checkpoints and exported artifacts on a labelled image folder.

For every checkpoint/artifact given, one streaming pass over DATA's images
(:func:`qtseg.validation.score_samples`): Dice, IoU and MAE against the
ground truth with 95 % bootstrap confidence intervals, the agreement of its
masks with its PyTorch FP32 reference (the checkpoint it was exported from)
and the Dice change against it, model-only and end-to-end latency. Writes
``OUT/per_image.csv``, ``OUT/summary.json`` and ``OUT/summary.md`` and
prints the summary table.

Exit codes: 0 every artifact ran on every readable image (and met
``--min-dice``); 1 an artifact is below ``--min-dice`` or failed on an image;
2 bad arguments or inputs (one ``error:`` line, nothing written).
Undecodable images are reported and skipped, not fatal.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from qtseg.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_common_arguments,
    add_max_pixels,
    fail,
    non_negative_int,
    positive_int,
)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1] (0.85 = 85 %), got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``qtseg-val``."""
    p = argparse.ArgumentParser(
        prog="qtseg-val",
        description="Score checkpoints and exported artifacts on a folder with images/ and masks/: "
        "Dice/IoU/MAE with 95%% bootstrap intervals, agreement with the PyTorch reference, Dice "
        "change, latency. Writes OUT/per_image.csv, OUT/summary.json, OUT/summary.md.",
    )
    p.add_argument("paths", nargs="*", metavar="ARTIFACT_OR_CHECKPOINT",
                   help="artifact folders (manifest.json) or checkpoint folders "
                   "(default: the bundled qtseg-v2 checkpoint)")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="folder with images/ and masks/ (default: the bundled samples)")
    p.add_argument("--split", choices=("train", "val", "test", "all"), default=None,
                   help="split of the split file to score (default: test when DIR/splits.json "
                   "or --split-file exists, else all)")
    p.add_argument("--split-file", default=None, metavar="JSON",
                   help="train/val/test lists of image names (default: DIR/splits.json)")
    p.add_argument("--reference", default=None, metavar="CKPT",
                   help="PyTorch reference checkpoint of the artifacts (default: the one recorded "
                   "in each manifest if its weights hash matches, then the bundled one)")
    p.add_argument("--no-reference", action="store_true",
                   help="skip the reference (no agreement, no Dice change; faster)")
    p.add_argument("--min-dice", type=_fraction, default=None, metavar="X",
                   help="exit 1 when any artifact's mean Dice is below X (a fraction, e.g. 0.85)")
    p.add_argument("--batch", type=positive_int, default=None,
                   help="images per call (default: the artifact's static batch, else 1)")
    p.add_argument("--threads", type=non_negative_int, default=0,
                   help="CPU threads of each runtime (default 0: the runtime's own default)")
    p.add_argument("--warmup", type=non_negative_int, default=2,
                   help="untimed calls of each artifact before the pass (default 2)")
    p.add_argument("--limit", type=non_negative_int, default=0,
                   help="score only the first N images of the split (default 0: all)")
    add_max_pixels(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.add_argument("--out", default="runs/val", help="output folder (default: runs/val)")
    add_common_arguments(p, device=True, quiet_help="no progress bar")
    return p


def _references(opened: list, args: argparse.Namespace, stack: Any) -> tuple[dict, dict]:
    """``{label: Reference}`` and ``{label: why not}`` for the opened targets."""
    from qtseg.backends import open_backend
    from qtseg.reference import WeightHashes, resolve_checkpoint
    from qtseg.validation import Reference

    refs: dict[str, Any] = {}
    notes: dict[str, str] = {}
    if args.no_reference:
        return refs, {o.label: "--no-reference" for o in opened}
    override = Path(args.reference) if args.reference else None
    hashes = WeightHashes()
    cache: dict[tuple[str, str], Any] = {}
    for o in opened:
        if o.manifest is None:
            ckpt = override or o.path
        else:
            ckpt, note = resolve_checkpoint(o.manifest, o.path, override, hashes,
                                            override_flag="--reference")
            if ckpt is None:
                notes[o.label] = note
                continue
        key = (str(Path(ckpt).resolve()), json.dumps(o.spec.to_dict(), sort_keys=True))
        if key not in cache:
            backend = stack.enter_context(
                open_backend(ckpt, device="cpu", input_size=tuple(o.spec.input_size))
            )
            cache[key] = Reference(f"{Path(ckpt).name} (torch fp32 cpu)", backend, o.spec)
        refs[o.label] = cache[key]
    return refs, notes


def _open_all(args: argparse.Namespace, stack: Any) -> tuple[list, dict[str, str]]:
    """Open every path; ``(opened, {label: reason})`` for those that cannot run here."""
    import qtseg
    from qtseg.backends import BackendUnavailable, NotExecutableHere
    from qtseg.validation import open_target

    paths = [Path(p) for p in args.paths] or [qtseg.DEFAULT_CHECKPOINT]
    names = [p.name for p in paths]
    if len(set(names)) != len(names):
        raise ValueError(f"two paths share a folder name ({', '.join(names)}); results are "
                         "named by folder")
    opened, skipped = [], {}
    for path in paths:
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such artifact or checkpoint folder")
        try:
            opened.append(stack.enter_context(
                open_target(path, device=args.device, threads=args.threads)))
        except (NotExecutableHere, BackendUnavailable) as exc:
            skipped[path.name] = str(exc)
    return opened, skipped


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    import contextlib

    import qtseg
    from qtseg.backends import BackendError
    from qtseg.checkpoint import CheckpointError
    from qtseg.cli import val_report
    from qtseg.data.folder import DatasetError
    from qtseg.manifest import ManifestError
    from qtseg.provenance import load_average
    from qtseg.validation import Candidate, resolve_batch, score_samples, select_samples

    data = Path(args.data) if args.data else qtseg.SAMPLES_DIR
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return fail(f"--out {out} exists and is not a directory")
    if args.reference and args.no_reference:
        return fail("--reference and --no-reference exclude each other")
    usage_errors = (DatasetError, CheckpointError, ManifestError, BackendError, ValueError, OSError)
    with contextlib.ExitStack() as stack:
        try:
            samples, data_note = select_samples(data, args.split, args.split_file)
            if args.limit and args.limit < len(samples):
                samples = samples[: args.limit]
                data_note = f"the first {args.limit} of {data_note}"
            opened, skipped = _open_all(args, stack)
            batch = {o.label: resolve_batch(o, args.batch) for o in opened}
            if len(set(batch.values())) > 1:
                raise ValueError(f"the artifacts need different batch sizes {batch}; "
                                 "score them in separate runs")
            refs, notes = _references(opened, args, stack)
        except usage_errors as exc:
            return fail(str(exc))
        if not opened:
            return fail("nothing can run here: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
        candidates = [Candidate(o.label, o.backend, o.spec, refs.get(o.label), notes.get(o.label))
                      for o in opened]
        load_before = load_average()
        if not args.quiet:
            print(f"scoring {len(candidates)} model(s) on {data_note}", file=sys.stderr)
        result = score_samples(samples, candidates, batch=next(iter(batch.values())),
                               warmup=args.warmup, progress=not args.quiet,
                               max_pixels=args.max_pixels)
        load_after = load_average()
        summaries = [result.candidates[o.label].summary(seed=args.seed) for o in opened]
        for o, s in zip(opened, summaries):
            s.update(val_report.describe_target(o))
    report = val_report.build(
        command=shlex.join(["qtseg-val", *argv]), data=str(data), data_note=data_note,
        result=result, summaries=summaries, skipped=skipped, min_dice=args.min_dice,
        load=(load_before, load_after), seed=args.seed,
    )
    try:
        val_report.write_all(report, result, out)
    except OSError as exc:
        return fail(f"cannot write to {out}: {exc}")
    print("\n".join(val_report.table(report)))
    for failure in result.failures:
        print(f"error: {failure.line()}", file=sys.stderr)
    for label, reason in skipped.items():
        print(f"warning: {label} not run here: {reason}", file=sys.stderr)
    print(f"\nwrote {out / val_report.CSV}, {out / val_report.JSON}, {out / val_report.MD}")
    for line in report["verdict"]["problems"]:
        print(f"error: {line}", file=sys.stderr)
    return EXIT_OK if report["verdict"]["passed"] else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
