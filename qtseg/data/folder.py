"""Folder-pair datasets: ``images/`` and ``masks/`` with matching file stems.

This is the layout of ``shared/data/kvasir-seg``. A split file (JSON with
``train``/``val``/``test`` lists of image file names) is used when present;
otherwise a deterministic split is drawn from a seed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qtseg.imageio import IMAGE_SUFFIXES, ImageReadError, read_image, read_mask

SPLIT_NAMES = ("train", "val", "test")


class DatasetError(ValueError):
    """A dataset folder that cannot be used as given."""


@dataclass(frozen=True)
class Sample:
    """One image/mask pair on disk."""

    name: str
    image: Path
    mask: Path | None


def _index(folder: Path) -> dict[str, Path]:
    """``{stem: path}`` of the images in ``folder``.

    Raises:
        DatasetError: two files share a stem (``a.jpg`` and ``a.png``): samples
            are named by stem, so one of them would silently be lost.
    """
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in files:
                raise DatasetError(
                    f"{folder}: {files[path.stem].name} and {path.name} have the same name "
                    f"{path.stem!r}; samples are named by file stem, rename one of them"
                )
            files[path.stem] = path
    return files


def discover(root: str | Path, *, require_masks: bool = True) -> list[Sample]:
    """All image/mask pairs under ``root`` (``root/images`` + ``root/masks``).

    ``root`` may also be a plain folder of images (then masks are ``None``,
    allowed only with ``require_masks=False``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    image_dir = root / "images" if (root / "images").is_dir() else root
    images = _index(image_dir)
    if not images:
        raise DatasetError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found in {image_dir}")
    mask_dir = root / "masks"
    masks = _index(mask_dir) if mask_dir.is_dir() else {}
    if require_masks:
        if not masks:
            raise DatasetError(f"no masks found in {mask_dir} (expected images/ and masks/)")
        missing = sorted(set(images) - set(masks))
        if missing:
            raise DatasetError(
                f"{len(missing)} image(s) in {image_dir} have no mask in {mask_dir}, e.g. {missing[0]}"
            )
    return [Sample(stem, path, masks.get(stem)) for stem, path in images.items()]


def split_samples(
    samples: list[Sample],
    *,
    split_file: str | Path | None = None,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> dict[str, list[Sample]]:
    """Split samples into train/val/test.

    With ``split_file`` (JSON lists of image file names or stems) that split
    is used exactly; otherwise a seeded shuffle of the sorted names is cut by
    ``fractions`` (same seed and files -> same split on every machine).
    """
    by_name = {s.name: s for s in samples}
    if split_file is not None:
        data = json.loads(Path(split_file).read_text())
        out = {}
        for split in SPLIT_NAMES:
            names = [Path(n).stem for n in data.get(split, [])]
            unknown = [n for n in names if n not in by_name]
            if unknown:
                raise DatasetError(f"{split_file}: {split} lists unknown image {unknown[0]!r}")
            out[split] = [by_name[n] for n in names]
        return out
    names = sorted(by_name)
    random.Random(seed).shuffle(names)
    n_train = round(fractions[0] * len(names))
    n_val = round(fractions[1] * len(names))
    cuts = {
        "train": names[:n_train],
        "val": names[n_train : n_train + n_val],
        "test": names[n_train + n_val :],
    }
    return {k: [by_name[n] for n in v] for k, v in cuts.items()}


def load_pair(sample: Sample, num_classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Read an image ``(H, W, 3)`` uint8 and its label map ``(H, W)`` uint8, sizes checked."""
    image = read_image(sample.image)
    if sample.mask is None:
        raise DatasetError(f"{sample.image} has no mask")
    mask = read_mask(sample.mask, num_classes)
    if mask.shape != image.shape[:2]:
        raise ImageReadError(
            f"mask {sample.mask} is {mask.shape[1]}x{mask.shape[0]} but image {sample.image} "
            f"is {image.shape[1]}x{image.shape[0]}"
        )
    return image, mask


def default_split_file(root: str | Path) -> Path | None:
    """``root/splits.json`` if it exists."""
    path = Path(root) / "splits.json"
    return path if path.is_file() else None
