"""``qtseg-train``: train a QTSeg model on a folder-pair dataset."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from qtseg.cli.common import DefaultsHelpFormatter, add_common_arguments, fail


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``qtseg-train``."""
    p = argparse.ArgumentParser(
        prog="qtseg-train",
        description="Train a segmentation model on DIR/images + DIR/masks (optional DIR/splits.json). "
        "Writes OUT/best (checkpoint: weights.safetensors, checkpoint.json, preprocess.json), "
        "OUT/last.pt (resume state) and OUT/summary.json.",
        formatter_class=DefaultsHelpFormatter,
    )
    p.add_argument("--data", required=True, help="dataset folder with images/ and masks/")
    p.add_argument("--model", default="qtseg-v2", help="registered model name")
    p.add_argument("--out", default="runs/train", help="output folder")
    p.add_argument("--epochs", type=int, default=150, help="training epochs")
    p.add_argument("--batch", type=int, default=16, help="images per step")
    p.add_argument("--imgsz", type=int, default=512, help="square input size, multiple of 32")
    p.add_argument("--num-classes", type=int, default=2, help="classes including background")
    p.add_argument("--width", type=int, default=None, help="encoder base width n (default: the model's own, 16 for QTSeg)")
    p.add_argument(
        "--model-config", default=None, metavar="JSON",
        help='further model config fields as a JSON object, e.g. \'{"depth": 2}\' '
        "(checked against the model's config; unknown keys are refused)",
    )
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=1e-5, help="AdamW weight decay")
    p.add_argument("--lr-step", type=int, default=50, help="multiply the lr by 0.1 every N epochs")
    p.add_argument("--amp", action="store_true", help="mixed precision (bf16 on GPUs that have it)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, split and augmentation")
    p.add_argument("--split-file", default=None, help="JSON train/val/test lists (default: DATA/splits.json if present, else a seeded "
                   "80/10/10 split)")
    p.add_argument("--workers", type=int, default=4, help="processes decoding images")
    p.add_argument("--limit", type=int, default=0, help="use at most N images per split (smoke runs; 0 = all)")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop cleanly after this much training time (0 = no limit)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    add_common_arguments(
        p, device=True, quiet_help="no progress lines",
        device_help="auto (CUDA when a GPU is present, else CPU), cpu or cuda[:N]",
    )
    return p


def parse_model_config(text: str | None) -> dict[str, Any]:
    """``--model-config`` text -> dict (empty when not given).

    Raises:
        ValueError: not JSON.
        TypeError: JSON, but not an object.
    """
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--model-config is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise TypeError(f"--model-config must be a JSON object, got {type(value).__name__}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    from qtseg.data.folder import default_split_file
    from qtseg.training.trainer import TrainConfig, train

    if args.imgsz % 32:
        return fail(f"--imgsz must be a multiple of 32, got {args.imgsz}")
    try:
        model_config = parse_model_config(args.model_config)
    except (ValueError, TypeError) as exc:
        return fail(str(exc))
    split_file = args.split_file or default_split_file(args.data)
    cfg = TrainConfig(
        data=args.data, out=args.out, model=args.model, num_classes=args.num_classes, width=args.width,
        imgsz=args.imgsz, epochs=args.epochs, batch=args.batch, lr=args.lr, weight_decay=args.weight_decay,
        lr_step=args.lr_step, amp=args.amp, seed=args.seed, model_config=model_config,
        split_file=str(split_file) if split_file else None, device=args.device, workers=args.workers,
        limit=args.limit, max_minutes=args.max_minutes,
    )
    try:
        train(cfg, resume=args.resume, quiet=args.quiet)
    except (ValueError, TypeError, RuntimeError, KeyError, OSError) as exc:
        return fail(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
