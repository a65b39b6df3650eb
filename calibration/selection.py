"""Deterministic, stratified choice of calibration images.

INT8 ranges are set by the activations the calibration images produce, so
the set must cover what the model meets: tiny and large lesions alike, and
images without any lesion when the dataset has them. Images are put into
strata by their foreground fraction (one stratum for empty masks, then
equal-count quantile bins of the non-empty ones) and each stratum gives a
share of the set proportional to its size, at least one image each when the
set is large enough. Within a stratum the choice is a seeded shuffle of the
names, so the same files, rule and seed give the same set on every machine.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from qtseg.data.folder import Sample
from qtseg.imageio import read_mask

EMPTY = "empty"


@dataclass(frozen=True)
class SelectionRule:
    """How a calibration set is drawn from a split.

    Attributes:
        size: number of images (the whole split when it has fewer).
        seed: seed of the within-stratum shuffle.
        strata: number of lesion-size quantile bins for non-empty masks.
        split: split the images come from (``train``: never the evaluation images).
    """

    size: int = 128
    seed: int = 0
    strata: int = 4
    split: str = "train"

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"calibration size must be >= 1, got {self.size}")
        if self.strata < 1:
            raise ValueError(f"strata must be >= 1, got {self.strata}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class Selection:
    """Chosen samples and how they were chosen.

    Attributes:
        samples: the chosen samples, sorted by name.
        fractions: foreground fraction of each chosen sample (``None`` without masks).
        strata: stratum label of each chosen sample.
        summary: per-stratum counts and bin edges, for the manifest.
    """

    samples: list[Sample]
    fractions: list[float | None]
    strata: list[str]
    summary: dict[str, Any]


def foreground_fraction(sample: Sample, num_classes: int = 2) -> float:
    """Fraction of pixels of the sample's mask that are not background."""
    if sample.mask is None:
        raise ValueError(f"{sample.name} has no mask")
    mask = read_mask(sample.mask, num_classes)
    return float((mask > 0).mean())


def _allocate(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Split ``total`` over strata proportionally (largest remainder), >= 1 each if possible."""
    population = sum(sizes.values())
    total = min(total, population)
    keys = sorted(sizes)
    if total >= len(keys):
        share = {k: 1 for k in keys}
        rest = total - len(keys)
        spare = {k: sizes[k] - 1 for k in keys}
    else:
        share = {k: 0 for k in keys}
        rest = total
        spare = dict(sizes)
    spare_total = sum(spare.values())
    if rest and spare_total:
        exact = {k: rest * spare[k] / spare_total for k in keys}
        add = {k: int(exact[k]) for k in keys}
        left = rest - sum(add.values())
        # Largest remainder first; ties broken by name so the result is stable.
        for k in sorted(keys, key=lambda k: (-(exact[k] - add[k]), k))[:left]:
            add[k] += 1
        share = {k: share[k] + add[k] for k in keys}
    return share


def _quantile_strata(fractions: dict[str, float], bins: int) -> tuple[dict[str, str], list[float]]:
    """Assign non-empty samples to equal-count bins of their foreground fraction."""
    names = sorted(fractions, key=lambda n: (fractions[n], n))
    bins = max(1, min(bins, len(names)))
    labels: dict[str, str] = {}
    edges: list[float] = []
    for b in range(bins):
        lo, hi = b * len(names) // bins, (b + 1) * len(names) // bins
        for name in names[lo:hi]:
            labels[name] = f"size-q{b + 1}"
        if hi > lo:
            edges.append(fractions[names[hi - 1]])
    return labels, edges


def select_samples(
    samples: Sequence[Sample], rule: SelectionRule, *, num_classes: int = 2
) -> Selection:
    """Choose ``rule.size`` samples, stratified by lesion size (see module doc).

    Samples without masks (a plain image folder) are chosen by a seeded
    shuffle alone; the summary says so.
    """
    if not samples:
        raise ValueError("no samples to choose calibration images from")
    by_name = {s.name: s for s in samples}
    if any(s.mask is None for s in samples):
        names = sorted(by_name)
        random.Random(rule.seed).shuffle(names)
        chosen = sorted(names[: rule.size])
        summary = {"method": "seeded shuffle (no masks to stratify by)", "population": len(names)}
        return Selection([by_name[n] for n in chosen], [None] * len(chosen), ["all"] * len(chosen), summary)

    fractions = {s.name: foreground_fraction(s, num_classes) for s in samples}
    labels = {n: EMPTY for n, f in fractions.items() if f == 0.0}
    sized, edges = _quantile_strata({n: f for n, f in fractions.items() if f > 0.0}, rule.strata)
    labels.update(sized)
    members: dict[str, list[str]] = {}
    for name, label in labels.items():
        members.setdefault(label, []).append(name)
    share = _allocate({k: len(v) for k, v in members.items()}, rule.size)
    chosen: list[str] = []
    for label in sorted(members):
        names = sorted(members[label])
        random.Random(f"{rule.seed}:{label}").shuffle(names)
        chosen.extend(names[: share[label]])
    chosen.sort()
    summary = {
        "method": "stratified by foreground fraction: empty masks + equal-count quantile bins",
        "population": len(samples),
        "bin_upper_edges": [round(e, 6) for e in edges],
        "per_stratum": {k: {"population": len(members[k]), "chosen": share[k]} for k in sorted(members)},
    }
    return Selection(
        [by_name[n] for n in chosen], [fractions[n] for n in chosen], [labels[n] for n in chosen], summary
    )
