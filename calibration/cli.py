"""``qtseg-calib``: build, inspect and check calibration sets.

```
qtseg-calib build --data ../shared/data/kvasir-seg --out calib/kvasir-512 [--size 128] [--seed 0]
qtseg-calib inspect calib/kvasir-512
qtseg-calib check calib/kvasir-512 [--checkpoint DIR] [--imgsz 512]
```

Argument parsing imports no runtime; bad inputs give one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import qtseg
from qtseg.cli.common import fail

EXIT_OK, EXIT_USAGE = 0, 2


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``qtseg-calib``."""
    p = argparse.ArgumentParser(prog="qtseg-calib", description="Calibration sets for INT8 exports.")
    p.add_argument("--version", action="version", version=f"%(prog)s {qtseg.__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="select + preprocess images into a calibration-set folder")
    b.add_argument("--data", required=True, help="dataset folder (images/, masks/, optional splits.json)")
    b.add_argument("--out", required=True, help="output folder of the set")
    b.add_argument("--checkpoint", default=None, help="checkpoint whose preprocess.json to use (default: bundled)")
    b.add_argument("--imgsz", type=int, default=None, help="square input size (default: the checkpoint's)")
    b.add_argument("--size", type=int, default=128, help="number of images (default 128)")
    b.add_argument("--seed", type=int, default=0, help="selection seed (default 0)")
    b.add_argument("--strata", type=int, default=4, help="lesion-size quantile bins (default 4)")
    b.add_argument("--split", default="train", help="split to draw from (default train)")
    b.add_argument("--split-file", default=None, help="split JSON (default DATA/splits.json)")
    b.add_argument("--quiet", action="store_true", help="no progress lines")

    i = sub.add_parser("inspect", help="print a set's manifest summary")
    i.add_argument("set", help="calibration-set folder")

    c = sub.add_parser("check", help="validate a set against a model's preprocessing")
    c.add_argument("set", help="calibration-set folder")
    c.add_argument("--checkpoint", default=None, help="checkpoint (default: bundled)")
    c.add_argument("--imgsz", type=int, default=None, help="square input size (default: the checkpoint's)")
    return p


def model_spec(checkpoint: str | None, imgsz: int | None):  # noqa: ANN201 - PreprocessSpec
    """The preprocessing of a checkpoint (default: bundled), resized to ``imgsz``."""
    import qtseg
    from qtseg.preprocess import PreprocessSpec

    path = Path(checkpoint) if checkpoint else qtseg.DEFAULT_CHECKPOINT
    spec = PreprocessSpec.load(path)
    if imgsz is not None:
        spec = dataclasses.replace(spec, input_size=(imgsz, imgsz))
    return spec


def _build(args: argparse.Namespace) -> int:
    from qtseg.calibration import CalibrationError, SelectionRule, build_set, save_set
    from qtseg.preprocess import SpecError

    if args.imgsz is not None and (args.imgsz <= 0 or args.imgsz % 32):
        return fail(f"--imgsz must be a positive multiple of 32, got {args.imgsz}")
    if not Path(args.data).is_dir():
        return fail(f"dataset folder not found: {args.data}")
    try:
        rule = SelectionRule(size=args.size, seed=args.seed, strata=args.strata, split=args.split)
        spec = model_spec(args.checkpoint, args.imgsz)
    except (ValueError, SpecError) as exc:
        return fail(str(exc))
    log = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    start = time.perf_counter()
    try:
        calib = build_set(args.data, spec, rule=rule, split_file=args.split_file, log=log)
    except (CalibrationError, ValueError, OSError) as exc:
        return fail(str(exc))
    calib.manifest["build_seconds"] = round(time.perf_counter() - start, 2)
    out = save_set(calib, args.out)
    print(f"{calib.set_id}: {len(calib)} images -> {out} ({calib.manifest['build_seconds']} s)")
    return EXIT_OK


def _inspect(args: argparse.Namespace) -> int:
    from qtseg.calibration import CalibrationError, load_set

    try:
        calib = load_set(args.set)
    except CalibrationError as exc:
        return fail(str(exc))
    m = calib.manifest
    info = {
        "set_id": calib.set_id,
        "count": len(calib),
        "shape": m.get("data", {}).get("shape"),
        "source": m.get("source"),
        "selection": m.get("selection"),
        "input_size": list(calib.spec.input_size),
        "created": m.get("created"),
        "versions": m.get("versions"),
    }
    print(json.dumps(info, indent=2))
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    from qtseg.calibration import CalibrationError, load_set, validate_set
    from qtseg.preprocess import SpecError

    try:
        spec = model_spec(args.checkpoint, args.imgsz)
        calib = load_set(args.set)
        validate_set(calib, spec)
    except (CalibrationError, SpecError) as exc:
        return fail(str(exc))
    print(f"ok: {calib.set_id} ({len(calib)} images) fits input {spec.input_size[0]}x{spec.input_size[1]}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    return {"build": _build, "inspect": _inspect, "check": _check}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
