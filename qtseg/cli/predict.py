"""``qtseg-predict``: segment a folder of images, write masks and overlays.

When the source folder has ``images/`` and ``masks/`` (or a ``masks/`` folder
beside the images), the Dice of every prediction against its ground truth is
printed along with the mean.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from qtseg.cli.common import fail


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``qtseg-predict``."""
    p = argparse.ArgumentParser(
        prog="qtseg-predict",
        description="Segment every image of SOURCE (a folder, a folder with images/ [+ masks/], or one "
        "image file). Writes OUT/masks/NAME.png (binary: 0/255; multi-class: class ids) and "
        "OUT/overlays/NAME.jpg. Prints Dice per image when ground-truth masks are present.",
    )
    p.add_argument("source", nargs="?", default=None,
                   help="images to segment (default: the bundled Kvasir-SEG samples)")
    p.add_argument("--checkpoint", default=None, help="checkpoint folder (default: bundled qtseg-v2)")
    p.add_argument("--out", default="runs/predict", help="output folder (default: runs/predict)")
    p.add_argument("--batch", type=int, default=4, help="images per forward pass")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--no-overlay", action="store_true", help="do not write overlay images")
    return p


def _collect(source: Path):
    from qtseg.data.folder import Sample, discover
    from qtseg.imageio import IMAGE_SUFFIXES

    if source.is_file():
        if source.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"{source} is not an image ({', '.join(IMAGE_SUFFIXES)})")
        return [Sample(source.stem, source, None)]
    return discover(source, require_masks=False)


def _overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    colours = np.array([[0, 0, 0], [0, 255, 0], [255, 0, 0], [0, 0, 255], [255, 255, 0]], np.float32)
    tint = colours[np.minimum(mask, len(colours) - 1)]
    alpha = (mask > 0)[..., None] * 0.45
    return (image * (1 - alpha) + tint * alpha).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    import torch
    from PIL import Image
    from tqdm import tqdm

    import qtseg
    from qtseg.checkpoint import CheckpointError
    from qtseg.data.folder import DatasetError
    from qtseg.imageio import ImageReadError, read_image, read_mask
    from qtseg.metrics import score_image

    source = Path(args.source) if args.source else qtseg.SAMPLES_DIR
    out = Path(args.out)
    try:
        samples = _collect(source)
        model, spec = qtseg.load(args.checkpoint, device=args.device)
        (out / "masks").mkdir(parents=True, exist_ok=True)
        if not args.no_overlay:
            (out / "overlays").mkdir(parents=True, exist_ok=True)
    except (DatasetError, CheckpointError, ValueError, OSError, RuntimeError) as exc:
        return fail(str(exc))

    dices = []
    bar = tqdm(total=len(samples), desc="predict", unit="img", file=sys.stderr)
    for start in range(0, len(samples), args.batch):
        chunk = samples[start : start + args.batch]
        try:
            images = [read_image(s.image) for s in chunk]
        except ImageReadError as exc:
            bar.close()
            return fail(str(exc))
        with torch.no_grad():
            logits = model(torch.from_numpy(spec.preprocess(images)).to(args.device))
        for sample, image, lg in zip(chunk, images, logits):
            mask = spec.postprocess(lg, image.shape[:2])
            scale = 255 if spec.num_classes == 2 else 1
            Image.fromarray((mask * scale).astype(np.uint8)).save(out / "masks" / f"{sample.name}.png")
            if not args.no_overlay:
                Image.fromarray(_overlay(image, mask)).save(out / "overlays" / f"{sample.name}.jpg", quality=90)
            if sample.mask is not None:
                gt = read_mask(sample.mask, spec.num_classes)
                if gt.shape != mask.shape:
                    bar.close()
                    return fail(f"mask {sample.mask} size {gt.shape} differs from image size {mask.shape}")
                d = score_image(mask, gt, spec.num_classes).dice
                dices.append(d)
                tqdm.write(f"{sample.name}: dice {d:.4f}", file=sys.stdout)
        bar.update(len(chunk))
    bar.close()
    print(f"wrote {len(samples)} masks to {out / 'masks'}")
    if dices:
        print(f"mean dice {np.mean(dices):.4f} over {len(dices)} images with ground truth")
    return 0


if __name__ == "__main__":
    sys.exit(main())
