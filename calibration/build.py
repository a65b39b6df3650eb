"""Build a calibration set from a dataset folder (``images/`` + ``masks/`` + ``splits.json``)."""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qtseg.calibration.artifact import MIN_IMAGES, CalibrationError, CalibrationSet
from qtseg.calibration.selection import SelectionRule, select_samples
from qtseg.data.folder import DatasetError, Sample, default_split_file, discover, split_samples
from qtseg.preprocess import PreprocessSpec
from qtseg.provenance import file_sha256, package_versions

Log = Callable[[str], None]


def split_pool(root: Path, split: str, *, split_file: str | Path | None, seed: int) -> tuple[list[Sample], dict[str, Any]]:
    """Samples of one split of a dataset folder, and where the split came from."""
    has_masks = (root / "masks").is_dir()
    samples = discover(root, require_masks=has_masks)
    split_path = Path(split_file) if split_file else default_split_file(root)
    if split == "all":
        return samples, {"split": "all", "split_file": None}
    parts = split_samples(samples, split_file=split_path, seed=seed)
    if split not in parts:
        raise CalibrationError(f"unknown split {split!r}; use train, val, test or all")
    source = {"split": split, "split_file": str(split_path) if split_path else None}
    if split_path:
        source["split_file_sha256"] = file_sha256(split_path)
    else:
        source["split_seed"] = seed
    return parts[split], source


def build_set(
    root: str | Path,
    spec: PreprocessSpec,
    *,
    rule: SelectionRule = SelectionRule(),
    split_file: str | Path | None = None,
    log: Log | None = None,
) -> CalibrationSet:
    """Select, preprocess and describe a calibration set (not yet saved).

    Args:
        root: dataset folder with ``images/`` (and ``masks/`` for stratification).
        spec: the model's preprocessing.
        rule: size, seed, strata and split (default: 128 images from ``train``).
        split_file: JSON split file (default: ``root/splits.json`` if present,
            else a seeded 80/10/10 split).
        log: receives progress lines.

    Returns:
        The set, with ``manifest`` filled in (sources with SHA-256, rule,
        selection summary, spec, versions, tensor statistics).

    Raises:
        CalibrationError: the split is missing or has fewer than 8 images.
    """
    root = Path(root)
    say = log or (lambda _msg: None)
    try:
        pool, source = split_pool(root, rule.split, split_file=split_file, seed=rule.seed)
    except DatasetError as exc:
        raise CalibrationError(str(exc)) from None
    if len(pool) < MIN_IMAGES:
        raise CalibrationError(
            f"split {rule.split!r} of {root} has {len(pool)} image(s); a calibration set needs at least {MIN_IMAGES}"
        )
    say(f"selecting {min(rule.size, len(pool))} of {len(pool)} {rule.split} images ({rule.strata} size strata)")
    selection = select_samples(pool, rule, num_classes=spec.num_classes)
    say(f"preprocessing {len(selection.samples)} images to {spec.input_size[0]}x{spec.input_size[1]}")
    x = np.empty((len(selection.samples), 3, *spec.input_size), dtype=np.float32)
    files = []
    for i, (sample, fraction, stratum) in enumerate(zip(selection.samples, selection.fractions, selection.strata)):
        x[i] = spec.preprocess_one(sample.image)
        entry: dict[str, Any] = {
            "name": sample.name,
            "image": sample.image.relative_to(root).as_posix(),
            "image_sha256": file_sha256(sample.image),
            "stratum": stratum,
        }
        if sample.mask is not None:
            entry["mask"] = sample.mask.relative_to(root).as_posix()
            entry["mask_sha256"] = file_sha256(sample.mask)
            entry["foreground_fraction"] = round(float(fraction), 6) if fraction is not None else None
        files.append(entry)
    listing = hashlib.sha256("\n".join(f"{f['name']}:{f['image_sha256']}" for f in files).encode()).hexdigest()
    manifest: dict[str, Any] = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": {"root": str(root.resolve()), **source, "files_sha256": listing},
        "selection": {"rule": rule.to_dict(), **selection.summary},
        "files": files,
        "stats": {
            "min": float(x.min()),
            "max": float(x.max()),
            "mean_per_channel": [round(float(v), 6) for v in x.mean(axis=(0, 2, 3))],
        },
        "versions": package_versions(("numpy", "pillow")),
    }
    return CalibrationSet(x=x, spec=spec, names=[s.name for s in selection.samples], manifest=manifest)
