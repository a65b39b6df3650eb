"""``qtseg-export``: checkpoint -> verified deployable artifacts.

Argument parsing imports no runtime (no torch, onnx, openvino or tensorrt);
everything is validated before the first artifact is started, and each bad
input is reported as one ``error: ...`` line with exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qtseg.cli.common import EXIT_FAILED, EXIT_OK, add_common_arguments, fail
from qtseg.export.options import (
    ExportOptions,
    add_int8_arguments,
    given_int8_flags,
    int8_options_from_args,
    parse_compute_capabilities,
)
from qtseg.export.target import Target, TargetError
from qtseg.export.targets import ALL, COMMON_OPTIONS, TARGETS, check_options, resolve, target_names


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``qtseg-export``."""
    p = argparse.ArgumentParser(
        prog="qtseg-export",
        description="Export a qtseg checkpoint to deployable artifacts in OUT/<model>_<target>/ "
        "(model files + manifest.json + preprocess.json), each checked against PyTorch FP32 "
        "on real sample images before it is put in place.",
    )
    p.add_argument(
        "--target", required=True,
        help=f"one of: {', '.join(target_names())}; or a comma-separated list (one shared export)",
    )
    p.add_argument("--checkpoint", default=None, help="checkpoint directory (default: the bundled QTSeg v2)")
    p.add_argument("--model", default=None, help="expected model name; refuse a checkpoint of another model")
    p.add_argument("--imgsz", type=int, default=None, help="square input size, multiple of 32 (default: the checkpoint's)")
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--batch", type=int, default=1, help="static batch size (default 1)")
    batch.add_argument("--dynamic-batch", type=int, default=0, metavar="MAX", help="dynamic batch 1..MAX")
    p.add_argument("--dynamic-hw", action="store_true", help="dynamic height/width (ONNX and OpenVINO targets)")
    p.add_argument("--out", default="exports", help="output folder (default: exports)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 17..20 (default 17)")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxslim")
    p.add_argument("--io-fp16", action="store_true", help="float16 graph input/output (onnx-fp16)")
    p.add_argument("--no-verify", action="store_true", help="skip the parity gate (prints a warning)")
    p.add_argument("--samples", default=None, help="folder of sample images for the gate (default: bundled samples)")
    p.add_argument("--num-samples", type=int, default=8, help="images used by the gate (default 8)")
    p.add_argument("--workspace", type=int, default=1024, metavar="MIB", help="TensorRT workspace limit in MiB")
    p.add_argument(
        "--compute-capability", default=None, metavar="LIST",
        help="TensorRT-RTX target GPUs, e.g. 86,89,120 or 'current' (default: 80,86,89,120)",
    )
    p.add_argument("--timing-cache", default=None, help="TensorRT timing-cache file (default under ~/.cache/qtseg)")
    add_common_arguments(p, quiet_help="no progress lines")
    add_int8_arguments(p)
    return p


def _writable(out: Path) -> str | None:
    """Why ``out`` cannot hold artifacts, or ``None``."""
    if out.exists() and not out.is_dir():
        return f"output path {out} exists and is not a directory"
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        return f"output directory {out} is not writable"
    return None


def _options(args: argparse.Namespace) -> ExportOptions:
    return ExportOptions(
        batch=args.batch,
        dynamic_batch=args.dynamic_batch,
        dynamic_hw=args.dynamic_hw,
        opset=args.opset,
        simplify=not args.no_simplify,
        io_fp16=args.io_fp16,
        verify=not args.no_verify,
        samples=args.samples,
        num_samples=args.num_samples,
        workspace_mib=args.workspace,
        compute_capability=parse_compute_capabilities([args.compute_capability] if args.compute_capability else []),
        timing_cache=args.timing_cache,
        int8=int8_options_from_args(args) if args.calib else None,
    )


def _plan(
    targets: list[Target], given: set[str], single: bool, *, calibrated: bool = False
) -> tuple[list[Target], dict[str, str]]:
    """Targets to build and ``{target: reason}`` for those skipped.

    Named targets (one or a list) fail on any problem (TargetError); ``all`` skips
    targets that are not installed, need calibration (no ``--calib``) or reject
    an option.
    """
    run, skipped = [], {}
    for target in targets:
        reason = None
        try:
            check_options(target, given)
        except TargetError as exc:
            reason = str(exc)
        if reason is None and target.requires_calibration and not calibrated:
            reason = (f"target {target.name} needs a calibration set: pass --calib DIR "
                      "(a qtseg-calib set or a dataset folder)")
        if reason is None:
            reason = target.unavailable_reason()
        if reason is not None:
            if single:
                raise TargetError(reason)
            skipped[target.name] = reason
        else:
            run.append(target)
    if not single:
        unused = sorted(
            o for o in given if o not in COMMON_OPTIONS and all(o not in t.options for t in TARGETS.values())
        )
        if unused:
            raise TargetError(f"no target accepts --{unused[0].replace('_', '-')}")
    return run, skipped


def _validate(args: argparse.Namespace) -> str | None:
    if args.imgsz is not None and (args.imgsz <= 0 or args.imgsz % 32):
        return f"--imgsz must be a positive multiple of 32, got {args.imgsz}"
    if not 17 <= args.opset <= 20:
        return f"--opset must be between 17 and 20, got {args.opset}"
    if args.batch < 1:
        return f"--batch must be >= 1, got {args.batch}"
    if args.dynamic_batch < 0:
        return f"--dynamic-batch must be >= 1, got {args.dynamic_batch}"
    if args.num_samples < 1:
        return f"--num-samples must be >= 1, got {args.num_samples}"
    if args.workspace < 1:
        return f"--workspace must be >= 1 MiB, got {args.workspace}"
    if args.calib is not None and not Path(args.calib).is_dir():
        return f"calibration set or dataset folder not found: {args.calib}"
    if args.calib is None:
        try:
            int8_flags = given_int8_flags(args)
        except ValueError as exc:
            return str(exc)
        if int8_flags:
            return f"{int8_flags[0]} is an INT8 option: pass --calib DIR too"
    return _writable(Path(args.out))


def _load(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """Checkpoint -> (model, spec, info); spec resized to --imgsz."""
    import dataclasses

    import qtseg
    from qtseg.checkpoint import load_checkpoint

    if args.checkpoint is None:
        path = qtseg.DEFAULT_CHECKPOINT
        if not path.exists():
            raise FileNotFoundError(f"bundled checkpoint not found at {path}; pass --checkpoint DIR")
    else:
        path = Path(args.checkpoint)
        if not path.exists():
            raise FileNotFoundError(f"checkpoint not found: {path}")
    model, spec, info = load_checkpoint(path, expect_model=args.model)
    if args.imgsz is not None and spec.input_size != (args.imgsz, args.imgsz):
        spec = dataclasses.replace(spec, input_size=(args.imgsz, args.imgsz))
    return model, spec, info


def _samples_problem(args: argparse.Namespace) -> str | None:
    if args.no_verify:
        return None
    import qtseg

    folder = Path(args.samples) if args.samples else qtseg.SAMPLES_DIR / "images"
    if not folder.is_dir():
        return f"sample images not found at {folder}; pass --samples DIR (or --no-verify)"
    from qtseg.imageio import IMAGE_SUFFIXES

    if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
        return f"no images ({', '.join(IMAGE_SUFFIXES)}) in --samples {folder}"
    return None


def _fmt_parity(outcome: Any) -> str:
    if not outcome.parity:
        return "-"
    worst = min(outcome.parity, key=lambda r: r.agreement)
    diff = max(r.max_abs_diff for r in outcome.parity)
    delta = max((r.dice_delta_pp for r in outcome.parity), key=abs)
    return f"max|d| {diff:.2e}  agree {100 * worst.agreement:.3f}%  dDice {delta:+.3f}pp"


def outcome_status(outcome: Any) -> tuple[str, str | None]:
    """``(status, why)`` of a target as the summary shows it.

    An artifact is ``ok`` only when every check of its gate ran; one written
    with a check that could not run here (a TensorRT-RTX engine without an RTX
    GPU: only its source ONNX graph was run) is ``built, not run``, and one
    written with ``--no-verify`` is ``built, not verified``; ``why`` comes from
    the manifest's ``execution`` record.
    """
    if outcome.status != "ok" or outcome.path is None:
        return outcome.status, None
    from qtseg.manifest import ManifestError, read_manifest_file

    try:
        manifest = read_manifest_file(outcome.path)
    except ManifestError as exc:  # just written and read back by the pipeline; defensive
        return "error", str(exc)
    not_run = manifest.execution.get("not_run")
    if not manifest.parity.get("verified"):
        return "built, not verified", not_run
    if not_run:
        return "built, not run", not_run
    return "ok", None


def print_summary(outcomes: list[Any], skipped: dict[str, str], stream: Any = None) -> None:
    """Table of built, failed and skipped targets."""
    stream = stream or sys.stdout
    rows = [("target", "status", "parity (worst run)", "time", "artifact / reason")]
    for o in outcomes:
        status, why = outcome_status(o)
        where = str(o.path) if o.path else o.message.splitlines()[0][:160]
        if why:
            where += f" ({why})"
        rows.append((o.target, status, _fmt_parity(o), f"{o.seconds:.0f}s", where))
    for name, reason in skipped.items():
        rows.append((name, "skipped", "-", "-", reason))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4], file=stream)
        if i == 0:
            print("  ".join("-" * w for w in widths) + "  " + "-" * 17, file=stream)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 1 a target failed, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        targets = resolve(args.target)
    except TargetError as exc:
        return fail(str(exc))
    problem = _validate(args)
    if problem:
        return fail(problem)
    try:
        options = _options(args)
        run, skipped = _plan(targets, options.non_default(), single=args.target != ALL,
                             calibrated=options.int8 is not None)
        if options.int8 is not None and not any(t.requires_calibration for t in run):
            raise TargetError("--calib is used only by the INT8 targets "
                              f"({', '.join(t.name for t in TARGETS.values() if t.requires_calibration)})")
    except (TargetError, ValueError) as exc:
        return fail(str(exc))
    problem = _samples_problem(args)
    if problem:
        return fail(problem)
    if not run:
        print_summary([], skipped)
        return fail("no target can be built here")

    # The job imports torch and the exporters: only once the arguments are known to be good.
    from qtseg.checkpoint import CheckpointError
    from qtseg.export.job import ExportJob, Progress, TargetOutcome
    from qtseg.export.pipeline import export_target

    try:
        model, spec, info = _load(args)
    except (FileNotFoundError, CheckpointError, KeyError) as exc:
        return fail(str(exc))
    if args.no_verify:
        print("WARNING: --no-verify: artifacts will not be checked against PyTorch", file=sys.stderr)
    job = ExportJob(model, spec, info, options, progress=Progress(quiet=args.quiet))
    outcomes = []
    try:
        for target in run:
            try:
                outcome = export_target(job, target, Path(args.out))
            except Exception as exc:  # noqa: BLE001 - report per target, keep going for `all`
                job.progress.info(f"FAILED: {type(exc).__name__}: {exc}")
                outcome = TargetOutcome(target.name, "failed", None, f"{type(exc).__name__}: {exc}")
            outcomes.append(outcome)
    finally:
        job.close()
    failed = [o for o in outcomes if o.status != "ok"]
    print_summary(outcomes, skipped)
    for o in failed:
        print(f"error: {o.message}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
