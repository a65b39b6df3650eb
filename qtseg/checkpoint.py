"""Checkpoint directories: ``weights.safetensors`` + ``checkpoint.json`` + ``preprocess.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from qtseg.atomic import atomic_write_bytes, atomic_write_text
from qtseg.models import config_dict, create, get_entry
from qtseg.preprocess import PreprocessSpec, SpecError
from qtseg.provenance import file_sha256

SCHEMA = "qtseg.checkpoint/1"
WEIGHTS_FILENAME = "weights.safetensors"
META_FILENAME = "checkpoint.json"


class CheckpointError(ValueError):
    """A checkpoint that is missing, malformed or does not fit the requested model."""


@dataclass
class CheckpointInfo:
    """What a checkpoint says about itself besides the weights."""

    path: Path
    model: str
    config: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""


def save_checkpoint(
    directory: str | Path,
    model: nn.Module,
    spec: PreprocessSpec,
    *,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    half: bool = False,
) -> Path:
    """Write a checkpoint directory for a model built by :func:`qtseg.models.create`.

    Args:
        directory: target folder (created if needed).
        model: the model; its ``model_name``/``config`` attributes are recorded.
        spec: preprocessing the model was trained with.
        training: free-form training summary (command, epochs, time, ...).
        metrics: evaluation results.
        half: store floating-point weights as float16 (halves the size; they
            are cast back to float32 when loaded).
    """
    from safetensors.torch import save as st_save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        if half and value.is_floating_point():
            value = value.half()
        state[key] = value
    atomic_write_bytes(directory / WEIGHTS_FILENAME, st_save(state))
    meta = {
        "schema": SCHEMA,
        "model": model.model_name,
        "config": config_dict(model),
        "training": training or {},
        "metrics": metrics or {},
    }
    atomic_write_text(directory / META_FILENAME, json.dumps(meta, indent=2) + "\n")
    spec.save(directory)
    return directory


def read_checkpoint_info(directory: str | Path) -> CheckpointInfo:
    """Read ``checkpoint.json`` of a checkpoint directory."""
    directory = Path(directory)
    meta_path = directory / META_FILENAME
    if not directory.exists():
        raise CheckpointError(f"checkpoint not found: {directory}")
    if not meta_path.is_file() or not (directory / WEIGHTS_FILENAME).is_file():
        raise CheckpointError(
            f"{directory} is not a qtseg checkpoint (needs {META_FILENAME} and {WEIGHTS_FILENAME})"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"malformed {meta_path}: {exc}") from None
    if meta.get("schema") != SCHEMA:
        raise CheckpointError(f"{meta_path}: unsupported schema {meta.get('schema')!r}")
    return CheckpointInfo(
        path=directory,
        model=meta["model"],
        config=meta.get("config", {}),
        training=meta.get("training", {}),
        metrics=meta.get("metrics", {}),
        weights_sha256=file_sha256(directory / WEIGHTS_FILENAME),
    )


def load_checkpoint(
    directory: str | Path, *, expect_model: str | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, PreprocessSpec, CheckpointInfo]:
    """Rebuild the model of a checkpoint, load its weights strictly, eval mode.

    Args:
        directory: checkpoint folder written by :func:`save_checkpoint`.
        expect_model: if given, refuse a checkpoint of another model.
        device: where to put the model.

    Returns:
        ``(model, spec, info)`` with the model in eval mode, float32.
    """
    from safetensors.torch import load_file

    info = read_checkpoint_info(directory)
    if expect_model is not None and info.model != expect_model:
        raise CheckpointError(
            f"checkpoint {info.path} holds model {info.model!r}, not {expect_model!r}"
        )
    get_entry(info.model)  # clear error for an unknown model name
    try:
        model = create(info.model, **info.config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {info.path}: config does not fit {info.model}: {exc}") from None
    state = load_file(str(Path(directory) / WEIGHTS_FILENAME))
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"checkpoint {info.path}: weights do not fit {info.model}: {first}") from None
    try:
        spec = PreprocessSpec.load(directory)
    except SpecError as exc:
        raise CheckpointError(str(exc)) from None
    return model.to(device).eval(), spec, info
