"""``qtseg-predict``: segment images with a checkpoint or any exported artifact.

Writes ``OUT/masks/NAME.png`` (class ``k`` as ``round(k * 255 / (C - 1))``,
so binary masks are 0/255, exactly as ``qtseg_infer --output`` writes them;
``--mask-values labels`` writes ``k``) and ``OUT/overlays/NAME.jpg``, each
file written atomically. When the source has ground-truth masks the Dice of
every image is printed along with the mean.

An image that cannot be decoded or whose result is not finite is reported
on stderr and skipped; the others are processed, and the exit code is 1 at
the end with a summary (``--strict``: stop at the first failure). Exit 2:
bad arguments or inputs (one ``error:`` line, nothing written).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

from qtseg.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_common_arguments,
    add_max_pixels,
    fail,
    non_negative_int,
    positive_int,
)

OVERLAY_COLOURS = np.array(
    [[0, 0, 0], [0, 255, 0], [255, 0, 0], [0, 0, 255], [255, 255, 0]], np.float32
)


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``qtseg-predict``."""
    p = argparse.ArgumentParser(
        prog="qtseg-predict",
        description="Segment every image of SOURCE (a folder, a folder with images/ [+ masks/], or "
        "one image file) with a checkpoint or an exported artifact. Writes OUT/masks/NAME.png and "
        "OUT/overlays/NAME.jpg; prints Dice per image when ground-truth masks are present.",
    )
    p.add_argument("source", nargs="?", default=None,
                   help="images to segment (default: the bundled Kvasir-SEG samples)")
    p.add_argument(
        "--artifact", "--checkpoint", dest="artifact", default=None, metavar="DIR",
        help="checkpoint folder or exported artifact folder (holds manifest.json), e.g. "
        "exports/qtseg-v2_openvino-fp32 (default: the bundled qtseg-v2 checkpoint)",
    )
    p.add_argument("--out", default="runs/predict", help="output folder (default: runs/predict)")
    p.add_argument(
        "--batch", type=positive_int, default=None,
        help="images per call (default: the artifact's static batch, else 1); more than 1 "
        "needs a checkpoint or an artifact exported with --dynamic-batch",
    )
    p.add_argument("--threads", type=non_negative_int, default=0,
                   help="CPU threads of the runtime (default 0: the runtime's own default)")
    p.add_argument("--limit", type=non_negative_int, default=0,
                   help="segment only the first N images by name (default 0: all)")
    p.add_argument(
        "--mask-values", choices=("scaled", "labels"), default="scaled",
        help="mask pixel values: 'scaled' = round(k*255/(C-1)) (binary 0/255, the default, as "
        "qtseg_infer) or 'labels' = the class index k",
    )
    p.add_argument("--no-overlay", action="store_true", help="do not write overlay images")
    add_max_pixels(p)
    p.add_argument("--strict", action="store_true",
                   help="stop at the first image that fails (default: report it and go on)")
    add_common_arguments(p, device=True, quiet_help="no progress bar and no per-image lines")
    return p


def collect(source: Path, limit: int = 0) -> list:
    """Samples of ``source`` sorted by name (a file, a folder, or a folder with images/)."""
    from qtseg.data.folder import Sample, discover
    from qtseg.imageio import IMAGE_SUFFIXES

    if source.is_file():
        if source.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"{source} is not an image ({', '.join(IMAGE_SUFFIXES)})")
        return [Sample(source.stem, source, None)]
    samples = discover(source, require_masks=False)
    return samples[:limit] if limit else samples


def mask_png(labels: np.ndarray, num_classes: int, values: str = "scaled") -> bytes:
    """PNG bytes of an ``(H, W)`` label map, encoded as ``qtseg_infer`` encodes it.

    ``scaled``: class ``k`` -> ``round(k * 255 / (C - 1))`` (half away from
    zero, as C++ ``std::lround``); ``labels``: ``k`` itself.
    """
    from PIL import Image

    if values == "scaled":
        lut = np.floor(np.arange(256) * 255.0 / (num_classes - 1) + 0.5)
        lut = np.minimum(lut, 255).astype(np.uint8)
        pixels = lut[np.minimum(labels, num_classes - 1)]
    else:
        pixels = labels.astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def overlay_jpeg(image: np.ndarray, labels: np.ndarray) -> bytes:
    """JPEG bytes of ``image`` ``(H, W, 3)`` with the foreground classes tinted."""
    from PIL import Image

    tint = OVERLAY_COLOURS[np.minimum(labels, len(OVERLAY_COLOURS) - 1)]
    alpha = (labels > 0)[..., None] * 0.45
    buf = io.BytesIO()
    Image.fromarray((image * (1 - alpha) + tint * alpha).astype(np.uint8)).save(
        buf, format="JPEG", quality=90
    )
    return buf.getvalue()


class _Writer:
    """Writes each mask (and overlay) atomically as it is produced; prints Dice lines."""

    def __init__(self, out: Path, num_classes: int, values: str, overlay: bool, quiet: bool):
        self.out, self.num_classes, self.values = out, num_classes, values
        self.overlay, self.quiet = overlay, quiet
        self.written = 0

    def __call__(self, label, sample, image, labels, record) -> None:
        from tqdm import tqdm

        from qtseg.atomic import atomic_write_bytes

        atomic_write_bytes(
            self.out / "masks" / f"{sample.name}.png",
            mask_png(labels, self.num_classes, self.values),
        )
        if self.overlay:
            atomic_write_bytes(
                self.out / "overlays" / f"{sample.name}.jpg", overlay_jpeg(image, labels)
            )
        self.written += 1
        if record.dice is not None and not self.quiet:
            tqdm.write(f"{sample.name}: dice {record.dice:.4f}", file=sys.stdout)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 1 some image failed, 2 bad input)."""
    args = build_parser().parse_args(argv)
    import qtseg
    from qtseg.backends import BackendError
    from qtseg.checkpoint import CheckpointError
    from qtseg.data.folder import DatasetError
    from qtseg.manifest import ManifestError
    from qtseg.validation import Candidate, StrictFailure, open_target, resolve_batch, score_samples

    source = Path(args.source) if args.source else qtseg.SAMPLES_DIR
    model = Path(args.artifact) if args.artifact else qtseg.DEFAULT_CHECKPOINT
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        return fail(f"--out {out} exists and is not a directory")
    if not source.exists():
        return fail(f"source not found: {source}")
    try:
        samples = collect(source, args.limit)
        opened = open_target(model, device=args.device, threads=args.threads)
    except (DatasetError, CheckpointError, ManifestError, BackendError, ValueError, OSError) as exc:
        return fail(str(exc))
    with opened:
        try:
            batch = resolve_batch(opened, args.batch)
        except ValueError as exc:
            return fail(str(exc))
        writer = _Writer(out, opened.spec.num_classes, args.mask_values,
                         not args.no_overlay, args.quiet)
        try:
            result = score_samples(
                samples, [Candidate(opened.label, opened.backend, opened.spec)], batch=batch,
                warmup=0, strict=args.strict, on_mask=writer, progress=not args.quiet,
                max_pixels=args.max_pixels,
            )
        except StrictFailure as exc:
            return fail(f"{exc} (--strict: stopped; {writer.written} masks written)", EXIT_FAILED)
        except OSError as exc:  # the output folder: full disk, permissions
            return fail(f"cannot write to {out}: {exc}")
    failures = result.failures
    for failure in failures:
        print(f"error: {failure.line()}", file=sys.stderr)
    records = result.candidates[opened.label].records
    print(f"wrote {writer.written} of {len(samples)} masks to {out / 'masks'}"
          + (f"; {len(failures)} image(s) failed: {', '.join(f.name for f in failures)}"
             if failures else ""))
    dices = [r.dice for r in records if r.dice is not None]
    if dices:
        print(f"mean dice {np.mean(dices):.4f} over {len(dices)} images with ground truth")
    return EXIT_FAILED if failures else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
