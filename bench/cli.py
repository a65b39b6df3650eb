"""``qtseg-bench``: accuracy, parity, complexity, latency and memory of every artifact here.

Argument parsing imports no runtime (no torch, onnxruntime, openvino,
tensorrt or matplotlib). Exit codes: 0 all rows ran (or could not run here,
with the reason), 1 a row failed parity or errored, or ``--compare`` found a
regression, 2 bad input.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from qtseg.cli.common import EXIT_FAILED, EXIT_OK, add_common_arguments, fail


def _batches(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("no batch size given")
    return values


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``qtseg-bench``."""
    p = argparse.ArgumentParser(
        prog="qtseg-bench",
        description="Benchmark exported qtseg artifacts (and the PyTorch reference) on real "
        "images: "
        "accuracy and parity vs PyTorch FP32, parameters/MACs, latency percentiles per batch size, "
        "end-to-end latency, peak memory. Writes report.json, report.md and PNG plots.",
    )
    p.add_argument(
        "paths",
        nargs="*",
        metavar="ARTIFACT_OR_DIR",
        help="artifact directories, checkpoints, or folders of them (default: exports/)",
    )
    p.add_argument(
        "--data",
        default=None,
        metavar="DIR",
        help="dataset for the accuracy columns: a folder with images/ + masks/ (all its images, "
        "or --split), scored as qtseg-val scores it (default: the gate's sample images)",
    )
    p.add_argument(
        "--split",
        choices=("train", "val", "test", "all"),
        default=None,
        help="split of --data (default: test when DIR/splits.json exists, else all)",
    )
    p.add_argument(
        "--num-images",
        type=int,
        default=8,
        help="images for parity (first N of the images folder) and, without --data, for "
        "accuracy (default 8, as the export gate)",
    )
    p.add_argument(
        "--batch",
        type=_batches,
        default=(1,),
        metavar="1,8,32",
        help="batch sizes to time (default 1)",
    )
    p.add_argument(
        "--threads", type=int, default=0, help="CPU threads per runtime (default: all usable CPUs)"
    )
    p.add_argument("--warmup", type=int, default=5, help="untimed calls before timing (default 5)")
    p.add_argument("--iters", type=int, default=20, help="timed calls per batch size (default 20)")
    p.add_argument(
        "--e2e-iters",
        type=int,
        default=None,
        help="timed end-to-end calls (default: --iters; 0 = skip)",
    )
    p.add_argument(
        "--out", default="runs/bench", metavar="DIR", help="report folder (default runs/bench)"
    )
    p.add_argument(
        "--layers", action="store_true", help="print and record the per-layer MACs/params table"
    )
    p.add_argument(
        "--torch-only",
        action="store_true",
        help="only the PyTorch rows (eager, FP16, CUDA graphs on GPU)",
    )
    p.add_argument(
        "--variants",
        default="",
        metavar="eager-fp32,fast-fp16",
        help="PyTorch variants to run (default: every one the device runs; see docs/bench.md)",
    )
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="with --device cuda: also time artifacts whose runtime can replay CUDA graphs "
        "(aoti-cuda*), one graph per batch size",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        metavar="DIR",
        help="reference checkpoint (default: the one recorded in each manifest, "
        "then the bundled one)",
    )
    p.add_argument(
        "--random-weights",
        action="store_true",
        help="with --torch-only and no checkpoint: benchmark --model at --imgsz "
        "with seed-0 weights",
    )
    p.add_argument(
        "--model", default="qtseg-v2", help="model for --random-weights (default qtseg-v2)"
    )
    p.add_argument(
        "--imgsz", type=int, default=512, help="input size for --random-weights (default 512)"
    )
    p.add_argument(
        "--no-isolate",
        action="store_true",
        help="run rows in this process (faster; peak RSS then covers all earlier rows)",
    )
    p.add_argument(
        "--row-timeout",
        type=float,
        default=1800.0,
        metavar="S",
        help="seconds before a row is abandoned",
    )
    p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    add_common_arguments(
        p,
        device=True,
        quiet_help="no progress lines",
        device_help="auto (default: cuda when PyTorch sees a GPU, else cpu), cpu or cuda; "
        "all rows of a report run on one device kind",
    )
    p.add_argument(
        "--compare",
        default=None,
        metavar="OLD_REPORT",
        help="compare with an earlier report.json; exit 1 on a regression",
    )
    p.add_argument(
        "--current",
        default=None,
        metavar="NEW_REPORT",
        help="with --compare: compare this report instead of running a benchmark",
    )
    p.add_argument(
        "--max-regression",
        type=float,
        default=0.2,
        help="allowed p50 slow-down for --compare (0.2 = 20%%)",
    )
    p.add_argument(
        "--max-dice-drop", type=float, default=0.5, help="allowed Dice drop in pp for --compare"
    )
    return p


def _compare(old_path: str, new: dict, args: argparse.Namespace) -> int:
    from qtseg.bench.compare import CompareLimits, compare_reports, format_comparison
    from qtseg.bench.report import read_report

    try:
        old = read_report(old_path)
    except (OSError, ValueError) as exc:
        return fail(f"cannot use --compare {old_path}: {exc}")
    result = compare_reports(old, new, CompareLimits(args.max_regression, args.max_dice_drop))
    print(format_comparison(result))
    return EXIT_OK if result.passed else EXIT_FAILED


def _config(args: argparse.Namespace):
    from qtseg.bench.config import BenchConfig

    device = args.device
    if device == "auto":
        from qtseg.backends import auto_device

        device = auto_device()
    return BenchConfig(
        paths=tuple(args.paths),
        data=args.data,
        split=args.split,
        num_images=args.num_images,
        device=device,
        batches=tuple(args.batch),
        threads=args.threads,
        warmup=args.warmup,
        iters=args.iters,
        e2e_iters=args.iters if args.e2e_iters is None else args.e2e_iters,
        out=args.out,
        layers=args.layers,
        torch_only=args.torch_only,
        variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
        cuda_graph=args.cuda_graph,
        checkpoint=args.checkpoint,
        random_weights=args.random_weights,
        model=args.model,
        imgsz=args.imgsz,
        isolate=not args.no_isolate,
        row_timeout_s=args.row_timeout,
        plots=not args.no_plots,
        quiet=args.quiet,
    )


def _problem(args: argparse.Namespace) -> str | None:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return f"--out {out} exists and is not a directory"
    if args.data is not None and not Path(args.data).is_dir():
        return f"--data {args.data}: folder not found"
    if args.split is not None and args.data is None:
        return "--split needs --data DIR"
    if args.checkpoint is not None and not Path(args.checkpoint).is_dir():
        return f"--checkpoint {args.checkpoint}: folder not found"
    if args.max_regression < 0 or args.max_dice_drop < 0:
        return "--max-regression and --max-dice-drop must be >= 0"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (see module doc)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.current is not None:
        if args.compare is None:
            return fail("--current needs --compare OLD_REPORT")
        from qtseg.bench.report import read_report

        try:
            new = read_report(args.current)
        except (OSError, ValueError) as exc:
            return fail(f"cannot use --current {args.current}: {exc}")
        return _compare(args.compare, new, args)
    problem = _problem(args)
    if problem:
        return fail(problem)
    from qtseg.bench.config import ConfigError

    try:
        cfg = _config(args)
    except ConfigError as exc:
        return fail(str(exc))
    if args.compare is not None and not Path(args.compare).is_file():
        return fail(f"--compare {args.compare}: file not found")

    from qtseg.bench.markdown import layers_table, main_table, write_markdown
    from qtseg.bench.plots import write_plots
    from qtseg.bench.recommend import describe
    from qtseg.bench.report import build_report, write_report
    from qtseg.bench.runner import PlanError, run_benchmark
    from qtseg.bench.system import system_info
    from qtseg.provenance import load_average

    load_before = load_average()
    try:
        result = run_benchmark(cfg)
    except PlanError as exc:
        return fail(str(exc))
    system = system_info(with_gpu=cfg.device.startswith("cuda"))
    system["load_average"] = {"before": load_before, "after": load_average()}
    report = build_report(
        command=shlex.join(["qtseg-bench", *argv]),
        config=cfg.to_dict(),
        system=system,
        result=result,
    )
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.plots:
        report["plots"], report["plots_note"] = write_plots(report, out)
    else:
        report["plots_note"] = "not written (--no-plots)"
    write_report(report, out)
    write_markdown(report, out)
    print("\n".join(main_table(report)))
    print("\n" + "\n".join(describe(e) for e in report["recommendation"]))
    if cfg.layers:
        for model in report["models"]:
            print(
                f"\nlayers of {model['key']} ({model['macs'] / 1e9:.3f} GMACs, "
                f"{model['params']:,} params)"
            )
            print("\n".join(layers_table(model)))
    print(
        f"\nwrote {out / 'report.json'}, {out / 'report.md'}"
        + (f", {', '.join(str(out / p) for p in report['plots'])}" if report["plots"] else "")
    )
    code = EXIT_OK
    bad = [r for r in report["rows"] if r["status"] in ("parity_failed", "error")]
    for row in bad:
        print(f"error: {row['id']}: {row['status']}: {row['reason']}", file=sys.stderr)
        code = EXIT_FAILED
    if args.compare is not None:
        code = max(code, _compare(args.compare, report, args))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
