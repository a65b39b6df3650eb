"""Find what to benchmark: artifact directories, checkpoints, and the reference checkpoint of each.

Artifacts are grouped by model: the same model config, the same checkpoint
weights (``checkpoint_sha256`` of the manifest) and the same preprocessing.
Each group gets one PyTorch reference, run on the checkpoint recorded in
the manifests when its weights still hash to the recorded value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qtseg.checkpoint import CheckpointError, read_checkpoint_info
from qtseg.manifest import FILENAME as MANIFEST_FILENAME
from qtseg.manifest import Manifest, ManifestError, read_manifest_file
from qtseg.preprocess import PreprocessSpec
from qtseg.reference import WeightHashes, resolve_checkpoint

CHECKPOINT_META = "checkpoint.json"


@dataclass
class Found:
    """What the command-line paths contain."""

    artifacts: list[Path] = field(default_factory=list)
    checkpoints: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def discover(paths: list[str | Path]) -> Found:
    """Artifact and checkpoint directories in ``paths``.

    Each path is an artifact directory (has ``manifest.json``), a checkpoint
    directory (has ``checkpoint.json``), or a folder whose direct
    subdirectories are searched (e.g. ``exports/``). Order: as given, then by name.
    """
    found = Found()
    for raw in paths:
        path = Path(raw)
        if (path / MANIFEST_FILENAME).is_file():
            found.artifacts.append(path)
        elif (path / CHECKPOINT_META).is_file():
            found.checkpoints.append(path)
        elif path.is_dir():
            children = sorted(
                p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")
            )
            arts = [p for p in children if (p / MANIFEST_FILENAME).is_file()]
            found.artifacts.extend(arts)
            found.checkpoints.extend(p for p in children if (p / CHECKPOINT_META).is_file())
            if not arts and not any((p / CHECKPOINT_META).is_file() for p in children):
                found.problems.append(f"{path}: no artifact (manifest.json) or checkpoint found")
        else:
            found.problems.append(f"{path}: not found")
    return found


@dataclass
class ModelGroup:
    """Artifacts of one model (config + weights + preprocessing) and its reference checkpoint.

    Attributes:
        key: short unique id, e.g. ``"qtseg-v2@512x512"``.
        name: registered model name.
        config: model config (from the manifest or checkpoint).
        spec: preprocessing of the group.
        checkpoint: reference checkpoint directory, ``None`` when not found.
        checkpoint_note: how the checkpoint was found, or why not.
        weights: ``"checkpoint"`` or ``"random (seed 0)"``.
        artifacts: artifact directories.
        manifests: their manifests (same order).
    """

    key: str
    name: str
    config: dict[str, Any]
    spec: PreprocessSpec
    checkpoint: Path | None
    checkpoint_note: str
    weights: str = "checkpoint"
    artifacts: list[Path] = field(default_factory=list)
    manifests: list[Manifest] = field(default_factory=list)


def _identity(manifest: Manifest) -> str:
    model = manifest.model
    return json.dumps(
        [model.name, model.config_hash, model.checkpoint_sha256, manifest.preprocess.to_dict()],
        sort_keys=True,
        default=str,
    )


def _key(name: str, spec: PreprocessSpec, taken: set[str]) -> str:
    base = f"{name}@{spec.input_size[0]}x{spec.input_size[1]}"
    key, n = base, 2
    while key in taken:
        key, n = f"{base}#{n}", n + 1
    taken.add(key)
    return key


def group_artifacts(
    artifacts: list[Path], override: Path | None
) -> tuple[list[ModelGroup], list[tuple[Path, str]]]:
    """Group artifacts by model; also ``(path, problem)`` of unreadable manifests."""
    hashes = WeightHashes()
    groups: dict[str, ModelGroup] = {}
    taken: set[str] = set()
    bad: list[tuple[Path, str]] = []
    for path in artifacts:
        try:
            manifest = read_manifest_file(path)
        except ManifestError as exc:
            bad.append((path, f"unreadable manifest: {exc}"))
            continue
        spec, name = manifest.preprocess, manifest.model.name
        ident = _identity(manifest)
        if ident not in groups:
            ckpt, note = resolve_checkpoint(manifest, path, override, hashes)
            groups[ident] = ModelGroup(
                key=_key(name, spec, taken),
                name=name,
                config=dict(manifest.model.config),
                spec=spec,
                checkpoint=ckpt,
                checkpoint_note=note,
            )
        groups[ident].artifacts.append(path)
        groups[ident].manifests.append(manifest)
    return list(groups.values()), bad


def checkpoint_group(
    checkpoint: Path, taken: set[str], *, weights: str = "checkpoint"
) -> ModelGroup:
    """A group for a bare checkpoint (PyTorch rows only)."""
    try:
        info = read_checkpoint_info(checkpoint)
        spec = PreprocessSpec.load(checkpoint)
    except (CheckpointError, ValueError) as exc:
        raise CheckpointError(f"{checkpoint}: {exc}") from None
    return ModelGroup(
        key=_key(info.model, spec, taken),
        name=info.model,
        config=info.config,
        spec=spec,
        checkpoint=checkpoint,
        checkpoint_note=f"{checkpoint} (given)",
        weights=weights,
    )
