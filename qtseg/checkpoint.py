"""Checkpoint directories: ``weights.safetensors`` + ``preprocess.json`` + ``checkpoint.json``.

``checkpoint.json`` (schema ``qtseg.checkpoint/2``) names the model and its
config and records the size and SHA-256 of the weights and of
``preprocess.json``. :func:`load_checkpoint` (and :func:`qtseg.load`) refuse,
each with one :class:`CheckpointError` line, before any weight reaches the
model: a malformed or older ``checkpoint.json``, files that differ from their
record (``verify_hashes=False`` skips only the hashing), an unknown model or a
config it does not take, weights that are not a safetensors file or whose
tensors do not fit the model (checked on the header, before the model is
allocated), NaN/Inf weights, and a ``preprocess.json`` that disagrees with the
model (input size vs ``img_size``, ``num_classes``).

A ``qtseg.checkpoint/1`` folder (no hashes) is refused; if its files are
trusted, ``python -m qtseg.checkpoint upgrade DIR`` records their hashes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qtseg.atomic import atomic_write_bytes, atomic_write_text, staging_dir, strict_json_loads
from qtseg.manifest import ArtifactFile, ManifestError, describe_files, verify_file
from qtseg.models import config_dict, create, get_entry, make_config
from qtseg.preprocess import PREPROCESS_FILENAME, PreprocessSpec, SpecError

SCHEMA = "qtseg.checkpoint/2"
OLD_SCHEMAS = ("qtseg.checkpoint/1",)
WEIGHTS_FILENAME = "weights.safetensors"
META_FILENAME = "checkpoint.json"
TRAIN_BEST = "best"  # qtseg-train writes its checkpoint to OUT/best
FILE_ROLES = {"weights": WEIGHTS_FILENAME, "preprocess": PREPROCESS_FILENAME}
_REQUIRED_KEYS = ("schema", "model", "config", "files")
_OPTIONAL_KEYS = ("training", "metrics")
MAX_META_BYTES = 16 << 20


class CheckpointError(ValueError):
    """A checkpoint that is missing, malformed or does not fit the requested model."""


@dataclass
class CheckpointInfo:
    """What a checkpoint says about itself besides the weights.

    ``weights_sha256`` is the hash recorded in ``checkpoint.json`` (verified
    against the file unless the caller opted out).
    """

    path: Path
    model: str
    config: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    weights_sha256: str = ""
    files: dict[str, ArtifactFile] = field(default_factory=dict)


def resolve_checkpoint_dir(directory: str | Path) -> Path:
    """``directory``, or ``directory/best`` for a ``qtseg-train`` output folder."""
    directory = Path(directory)
    if not (directory / META_FILENAME).is_file() and (directory / TRAIN_BEST / META_FILENAME).is_file():
        return directory / TRAIN_BEST
    return directory


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

    The folder is written beside ``directory`` and swapped into place
    (:func:`qtseg.atomic.staging_dir`), so an interrupted save leaves the
    previous checkpoint intact.

    Args:
        directory: target folder; if it exists it must hold only checkpoint files.
        model: the model; its ``model_name``/``config`` attributes are recorded.
        spec: preprocessing the model was trained with.
        training: free-form training summary (command, epochs, time, ...).
        metrics: evaluation results.
        half: store floating-point weights as float16 (halves the size; they
            are cast back to float32 when loaded).

    Raises:
        CheckpointError: ``directory`` holds files that are not part of a checkpoint.
    """
    from safetensors.torch import save as st_save

    directory = Path(directory)
    if directory.is_dir():
        foreign = sorted(p.name for p in directory.iterdir() if p.name not in {*FILE_ROLES.values(), META_FILENAME})
        if foreign:
            raise CheckpointError(f"{directory} holds files that are not part of a checkpoint "
                                  f"({', '.join(foreign[:3])}); save into an empty folder")
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        if half and value.is_floating_point():
            value = value.half()
        state[key] = value
    with staging_dir(directory) as staging:
        atomic_write_bytes(staging / WEIGHTS_FILENAME, st_save(state))
        spec.save(staging)
        meta = {
            "schema": SCHEMA,
            "model": model.model_name,
            "config": config_dict(model),
            "files": {r: f.to_dict() for r, f in describe_files(staging, FILE_ROLES).items()},
            "training": training or {},
            "metrics": metrics or {},
        }
        atomic_write_text(staging / META_FILENAME, json.dumps(meta, indent=2) + "\n")
    return directory


def _meta_problem(meta: Any, source: str) -> str | None:
    """Why ``meta`` is not a ``qtseg.checkpoint/2`` record, or ``None``."""
    if not isinstance(meta, dict):
        return "not a JSON object"
    schema = meta.get("schema")
    if schema in OLD_SCHEMAS:
        return (f"schema {schema!r} records no weight hashes and is no longer loaded; if you trust "
                f"these files, run: python -m qtseg.checkpoint upgrade {Path(source).parent}")
    if schema != SCHEMA:
        return f"schema {schema!r} is not {SCHEMA!r}"
    missing = [k for k in _REQUIRED_KEYS if k not in meta]
    if missing:
        return f"missing {', '.join(missing)}"
    unknown = sorted(set(meta) - {*_REQUIRED_KEYS, *_OPTIONAL_KEYS})
    if unknown:
        return f"unknown keys {', '.join(unknown)}"
    if not isinstance(meta["model"], str) or not meta["model"]:
        return "model: must be a non-empty string"
    for key in ("config", "files", *_OPTIONAL_KEYS):
        if key in meta and not isinstance(meta[key], dict):
            return f"{key}: must be an object"
    if set(meta["files"]) != set(FILE_ROLES):
        return f"files: must list exactly {', '.join(FILE_ROLES)}"
    return None


def _read_meta(directory: Path) -> dict[str, Any]:
    meta_path = directory / META_FILENAME
    if not directory.exists():
        raise CheckpointError(f"checkpoint not found: {directory}")
    if not meta_path.is_file() or not (directory / WEIGHTS_FILENAME).is_file():
        raise CheckpointError(
            f"{directory} is not a qtseg checkpoint (needs {META_FILENAME} and {WEIGHTS_FILENAME})"
        )
    if meta_path.stat().st_size > MAX_META_BYTES:
        raise CheckpointError(f"{meta_path}: larger than {MAX_META_BYTES >> 20} MiB; refused")
    try:
        return strict_json_loads(meta_path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"malformed {meta_path}: {exc}") from None


def read_checkpoint_info(directory: str | Path, *, verify_hashes: bool = True) -> CheckpointInfo:
    """Read and check ``checkpoint.json`` and the files it records.

    Args:
        directory: the checkpoint folder (a ``qtseg-train`` output folder means its ``best/``).
        verify_hashes: hash the weights and ``preprocess.json`` against the
            record (explicit opt-out; paths and sizes are always checked).

    Raises:
        CheckpointError: one line naming the file and the problem.
    """
    directory = resolve_checkpoint_dir(directory)
    meta = _read_meta(directory)
    source = str(directory / META_FILENAME)
    problem = _meta_problem(meta, source)
    if problem:
        raise CheckpointError(f"{source}: {problem}")
    root = directory.resolve()
    files: dict[str, ArtifactFile] = {}
    try:
        for role, name in FILE_ROLES.items():
            entry = ArtifactFile.from_dict(meta["files"][role], f"{source}: files.{role}")
            if entry.path != name:
                raise ManifestError(f"{source}: files.{role}.path: must be {name!r}")
            verify_file(root, entry, source=source, role=role, verify_hashes=verify_hashes)
            files[role] = entry
    except ManifestError as exc:
        raise CheckpointError(str(exc)) from None
    return CheckpointInfo(
        path=directory,
        model=meta["model"],
        config=meta["config"],
        training=meta.get("training", {}),
        metrics=meta.get("metrics", {}),
        weights_sha256=files["weights"].sha256,
        files=files,
    )


def _weights_header(path: Path, where: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from the safetensors header (no tensor data is read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118 - safe_open is not iterable
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own and OS errors
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{where}: {WEIGHTS_FILENAME} is not a readable safetensors file "
                              f"({first})") from None


def _expected_shapes(name: str, config: dict[str, Any]) -> dict[str, tuple[int, ...]] | None:
    """Shapes of the model's state on the meta device (nothing allocated); ``None`` if unbuildable there."""
    try:
        with torch.device("meta"):
            model = create(name, **config)
    except Exception:  # noqa: BLE001 - a builder that cannot run on meta is simply built for real
        return None
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _shape_problem(header: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]]) -> str | None:
    missing = sorted(set(expected) - set(header))
    unexpected = sorted(set(header) - set(expected))
    if missing or unexpected:
        return (f"{len(missing)} missing and {len(unexpected)} unexpected tensors "
                f"(e.g. {(missing or unexpected)[0]})")
    for key, shape in expected.items():
        if header[key] != shape:
            return f"{key} has shape {list(header[key])}, the model needs {list(shape)}"
    return None


def _check_spec(spec: PreprocessSpec, model: nn.Module, where: str) -> None:
    """``preprocess.json`` must describe the model's input size and classes."""
    config = model.config
    classes = getattr(config, "num_classes", None)
    if classes is not None and spec.num_classes != classes:
        raise CheckpointError(f"{where}: {PREPROCESS_FILENAME} has num_classes={spec.num_classes} "
                              f"but the model has {classes}")
    size = getattr(config, "img_size", None)
    if size is not None and tuple(spec.input_size) != tuple(size):
        raise CheckpointError(f"{where}: {PREPROCESS_FILENAME} has input_size "
                              f"{list(spec.input_size)} but the model was built for img_size {list(size)}")


_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _type_problem(values: Any, defaults: Any, what: str) -> str | None:
    """Why the JSON ``values`` do not have the types of the dataclass ``defaults``' fields, or ``None``.

    Only fields with a plain default are checked: a tuple default needs a
    list of its elements' kind, a number a number, a string a string, a bool a bool.
    """
    if not isinstance(values, dict):
        return f"{what}: must be an object"
    for f in fields(defaults):
        if f.name not in values or f.default is MISSING:
            continue
        value, default = values[f.name], f.default
        if isinstance(default, tuple):
            ok = isinstance(value, list) and all(_same_kind(v, d) for v, d in zip(value, default))
            if not ok:
                return f"{what}.{f.name}: must be a list like {list(default)}, got {value!r:.60}"
        elif default is not None and not _same_kind(value, default):
            return f"{what}.{f.name}: must be {_KIND_NAMES.get(type(default), type(default).__name__)}, got {value!r:.60}"
    return None


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def _read_spec(directory: Path, where: str) -> PreprocessSpec:
    try:
        data = strict_json_loads((directory / PREPROCESS_FILENAME).read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{where}: {PREPROCESS_FILENAME}: not readable JSON ({exc})") from None
    problem = _type_problem(data, PreprocessSpec, PREPROCESS_FILENAME)
    if problem:
        raise CheckpointError(f"{where}: {problem}")
    try:
        return PreprocessSpec.load(directory)
    except (SpecError, TypeError, ValueError, AttributeError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{where}: {PREPROCESS_FILENAME}: {exc}") from None


def _build(info: CheckpointInfo) -> nn.Module:
    where = str(info.path)
    try:
        entry = get_entry(info.model)
    except KeyError as exc:  # UnknownModelError
        raise CheckpointError(f"{where}: {exc}") from None
    problem = _type_problem(info.config, entry.config_cls, "config")
    if problem:
        raise CheckpointError(f"{where}: {META_FILENAME}: {problem}")
    try:
        make_config(info.model, **info.config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: config does not fit {info.model}: {exc}") from None
    header = _weights_header(info.path / WEIGHTS_FILENAME, where)
    expected = _expected_shapes(info.model, info.config)
    if expected is not None:
        problem = _shape_problem(header, expected)
        if problem:
            raise CheckpointError(f"{where}: weights do not fit {info.model}: {problem}")
    try:
        return create(info.model, **info.config)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{where}: config does not fit {info.model}: {exc}") from None


def load_checkpoint(
    directory: str | Path,
    *,
    expect_model: str | None = None,
    device: str | torch.device = "cpu",
    verify_hashes: bool = True,
) -> tuple[nn.Module, PreprocessSpec, CheckpointInfo]:
    """Rebuild the model of a checkpoint, load its weights strictly, eval mode.

    Args:
        directory: checkpoint folder written by :func:`save_checkpoint` (or a
            ``qtseg-train`` output folder: its ``best/`` is used).
        expect_model: if given, refuse a checkpoint of another model.
        device: where to put the model.
        verify_hashes: check the recorded SHA-256 of the weights and of
            ``preprocess.json`` (explicit opt-out; every other check runs).

    Returns:
        ``(model, spec, info)`` with the model in eval mode, float32.

    Raises:
        CheckpointError: one line for every kind of bad checkpoint (module docstring).
    """
    info = read_checkpoint_info(directory, verify_hashes=verify_hashes)
    if expect_model is not None and info.model != expect_model:
        raise CheckpointError(f"checkpoint {info.path} holds model {info.model!r}, not {expect_model!r}")
    model, spec = _load(info)
    return model.to(device).eval(), spec, info


def _load(info: CheckpointInfo) -> tuple[nn.Module, PreprocessSpec]:
    """Spec and model of an already checked record (CPU, float32)."""
    from safetensors.torch import load_file

    where = str(info.path)
    spec = _read_spec(info.path, where)
    model = _build(info)
    _check_spec(spec, model, where)
    try:
        state = load_file(str(info.path / WEIGHTS_FILENAME))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own and OS errors
        raise CheckpointError(f"{where}: {WEIGHTS_FILENAME} cannot be read: {exc}") from None
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{where}: weight {key} contains NaN or Inf; refused")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(f"checkpoint {where}: weights do not fit {info.model}: {first}") from None
    return model, spec


def upgrade_checkpoint(directory: str | Path) -> Path:
    """Rewrite a ``qtseg.checkpoint/1`` folder's ``checkpoint.json`` as ``/2`` (hashes recorded).

    The weights are not touched. The folder must load (weights fit the model,
    ``preprocess.json`` fits its config) before its hashes are recorded; the
    hashes vouch for the files as they are now, so upgrade only folders you trust.

    Raises:
        CheckpointError: not a ``/1`` checkpoint, or one that does not load.
    """
    directory = Path(directory)
    meta = _read_meta(directory)
    source = str(directory / META_FILENAME)
    schema = meta.get("schema") if isinstance(meta, dict) else None
    if schema not in OLD_SCHEMAS:
        raise CheckpointError(f"{source}: schema {schema!r} is not one of {', '.join(OLD_SCHEMAS)}; "
                              "nothing to upgrade")
    files = describe_files(directory, FILE_ROLES)
    upgraded = {
        "schema": SCHEMA, "model": meta.get("model"), "config": meta.get("config", {}),
        "files": {r: f.to_dict() for r, f in files.items()},
        "training": meta.get("training", {}), "metrics": meta.get("metrics", {}),
    }
    problem = _meta_problem(upgraded, source)
    if problem:
        raise CheckpointError(f"{source}: {problem}")
    info = CheckpointInfo(directory, upgraded["model"], upgraded["config"],
                          weights_sha256=files["weights"].sha256, files=files)
    _load(info)  # it must load before its files are vouched for
    atomic_write_text(directory / META_FILENAME, json.dumps(upgraded, indent=2) + "\n")
    return directory


def main(argv: list[str] | None = None) -> int:
    """``python -m qtseg.checkpoint upgrade DIR [DIR ...]``: record hashes in ``/1`` checkpoints."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "upgrade":
        print("usage: python -m qtseg.checkpoint upgrade DIR [DIR ...]", file=sys.stderr)
        return 2
    for folder in args[1:]:
        try:
            upgrade_checkpoint(folder)
        except CheckpointError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"upgraded {folder} to {SCHEMA}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
