"""Build ``tests/assets/kvasir-mini`` from the full Kvasir-SEG folder (run once, output committed).

    python tools/make_kvasir_mini.py ../shared/data/kvasir-seg tests/assets/kvasir-mini

Per split of the full ``splits.json`` it keeps ``--train/--val/--test`` images chosen evenly
across polyp sizes (sorted by foreground fraction), excluding the bundled samples. Images are
downscaled (antialiased) to ``--side`` pixels on the longest side and saved as JPEG; masks are
downscaled as 0..1 coverage and thresholded at 0.5, saved as PNG 0/255.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

import qtseg
from qtseg.data.folder import discover, load_pair, split_samples


def evenly(items: list, count: int) -> list:
    """``count`` items spread evenly over ``items`` (first and last included)."""
    if count >= len(items):
        return list(items)
    idx = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in idx]


def shrink(image: np.ndarray, mask: np.ndarray, side: int) -> tuple[Image.Image, Image.Image]:
    """Image ``(H, W, 3)`` and label map ``(H, W)`` -> PIL image and 0/255 mask, longest side ``side``."""
    h, w = mask.shape
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = Image.fromarray(image).resize(size, Image.Resampling.LANCZOS)
    cover = Image.fromarray(mask.astype(np.float32)).resize(size, Image.Resampling.BOX)
    binary = (np.asarray(cover) >= 0.5).astype(np.uint8) * 255
    return small, Image.fromarray(binary, mode="L")


def main(argv: list[str] | None = None) -> int:
    """Write the mini dataset; returns 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--train", type=int, default=24)
    ap.add_argument("--val", type=int, default=16)
    ap.add_argument("--test", type=int, default=8)
    ap.add_argument("--side", type=int, default=224)
    ap.add_argument("--quality", type=int, default=90)
    args = ap.parse_args(argv)

    bundled = {p.stem for p in (qtseg.SAMPLES_DIR / "images").iterdir()}
    splits = split_samples(discover(args.source), split_file=args.source / "splits.json")
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    (args.out / "masks").mkdir(parents=True, exist_ok=True)
    chosen: dict[str, list[str]] = {}
    for split in ("train", "val", "test"):
        pairs = [(s, *load_pair(s)) for s in splits[split] if s.name not in bundled]
        pairs.sort(key=lambda p: (float(p[2].mean()), p[0].name))
        chosen[split] = []
        for sample, image, mask in evenly(pairs, getattr(args, split)):
            small, small_mask = shrink(image, mask, args.side)
            small.save(args.out / "images" / f"{sample.name}.jpg", quality=args.quality)
            small_mask.save(args.out / "masks" / f"{sample.name}.png", optimize=True)
            chosen[split].append(f"{sample.name}.jpg")
    (args.out / "splits.json").write_text(json.dumps(chosen, indent=1) + "\n")
    print({k: len(v) for k, v in chosen.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
