"""PyTorch rows on a CUDA GPU: eager FP32, eager FP16 (autocast), CUDA-graph replay of both.

Run on the GPU machine (needs torch, numpy, pillow, safetensors, tqdm and
qtseg installed; onnx, openvino and matplotlib are optional)::

    python -m qtseg.bench.gpu_torch --out DIR [--checkpoint CKPT] [--batch 1,32]

It is ``qtseg-bench --device cuda --torch-only`` with GPU-friendly defaults
(batch 1 and 32, 10 warm-up + 50 timed calls). Without ``--checkpoint`` it
uses the bundled checkpoint, or -- when that is absent -- qtseg-v2 at
``--imgsz`` with seed-0 random weights (the report says which). Prints the
tables and writes ``DIR/report.json`` and ``DIR/report.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    """Arguments (a subset of ``qtseg-bench``'s)."""
    p = argparse.ArgumentParser(
        prog="python -m qtseg.bench.gpu_torch", description=__doc__.splitlines()[0]
    )
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument(
        "--checkpoint", default=None, help="checkpoint (default: bundled, else random weights)"
    )
    p.add_argument("--batch", default="1,32", help="batch sizes (default 1,32)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--e2e-iters", type=int, default=20)
    p.add_argument(
        "--imgsz", type=int, default=512, help="input size for random weights (default 512)"
    )
    p.add_argument("--device", default="cuda", help="CUDA device (default cuda)")
    p.add_argument("--data", default=None, help="images with ../masks (default: bundled samples)")
    p.add_argument(
        "--num-images", type=int, default=8, help="images for accuracy and parity (default 8)"
    )
    p.add_argument("--no-isolate", action="store_true", help="run the rows in this process")
    return p


def bench_argv(args: argparse.Namespace, *, bundled_present: bool) -> list[str]:
    """The ``qtseg-bench`` arguments this run stands for."""
    argv = [
        "--device",
        args.device,
        "--torch-only",
        "--batch",
        args.batch,
        "--warmup",
        str(args.warmup),
        "--iters",
        str(args.iters),
        "--e2e-iters",
        str(args.e2e_iters),
        "--out",
        args.out,
    ]
    argv += ["--num-images", str(args.num_images)]
    if args.no_isolate:
        argv.append("--no-isolate")
    if args.data:
        argv += ["--data", args.data]
    if args.checkpoint:
        argv += ["--checkpoint", args.checkpoint]
    elif not bundled_present:
        argv += ["--random-weights", "--imgsz", str(args.imgsz)]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Run the PyTorch GPU rows; returns ``qtseg-bench``'s exit code."""
    import qtseg
    from qtseg.bench import cli

    args = build_parser().parse_args(argv)
    code = cli.main(bench_argv(args, bundled_present=qtseg.DEFAULT_CHECKPOINT.is_dir()))
    report_file = Path(args.out) / "report.json"
    if report_file.is_file():
        from qtseg.bench.markdown import e2e_table, latency_table

        report = json.loads(report_file.read_text())
        print("\n" + "\n".join(latency_table(report)))
        print("\n" + "\n".join(e2e_table(report)))
        gpu = report["system"].get("gpu") or {}
        print(
            f"\nGPU: {gpu.get('name', 'none')}; torch {report['system']['versions'].get('torch')}; "
            f"weights: {', '.join(m['weights'] for m in report['models'])}",
            file=sys.stderr,
        )
    return code


if __name__ == "__main__":
    raise SystemExit(main())
