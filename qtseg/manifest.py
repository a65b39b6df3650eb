"""The artifact contract: ``manifest.json`` (schema ``qtseg.manifest/2``).

Every exported artifact folder holds a manifest that says what the artifact
is (format, target, precision), how to run it (``runtime``: which runtime,
on which device kind, with which runtime properties), which files belong to
it (each with its size and SHA-256), its tensors and preprocessing, where it
came from (model, checkpoint hash, versions, git commit) and how it was
verified (``parity``, ``execution``).

``qtseg.export`` writes it; every loader reads it through
:func:`open_artifact`, which checks, before any runtime touches a file:

- the schema version and every required key (unknown keys are refused too);
- that each file entry is a plain relative path that stays inside the folder
  (no absolute paths, no ``..``, no symlink leading out);
- each file's size and SHA-256 (``verify_hashes=False`` skips the hashing,
  never the other checks);
- that ``preprocess.json`` equals the embedded spec and that the input and
  output tensors agree with it.

The C++ library (``cpp/src/manifest.cpp``) applies the same rules; the
format is documented in docs/design.md. A failure is one
:class:`ManifestError` line naming the file and the field.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from qtseg.atomic import atomic_write_text, strict_json_loads
from qtseg.preprocess import PREPROCESS_FILENAME, PreprocessSpec, SpecError
from qtseg.provenance import file_sha256

SCHEMA = "qtseg.manifest/2"
FILENAME = "manifest.json"
FORMATS = ("onnx", "openvino", "tensorrt", "aoti")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
# Runtimes that may execute each format.
RUNTIMES: dict[str, tuple[str, ...]] = {
    "onnx": ("onnxruntime",),
    "openvino": ("openvino",),
    "tensorrt": ("tensorrt", "tensorrt_rtx"),
    "aoti": ("aoti",),
}
# File roles each format must list (besides "preprocess", which every artifact lists).
REQUIRED_ROLES: dict[str, tuple[str, ...]] = {
    "onnx": ("model",),
    "openvino": ("model", "weights"),
    "tensorrt": ("engine",),
    "aoti": ("model",),
}
# Roles whose files the runtime loads (the rest are sources, tables, specs).
LOADED_ROLES = ("model", "weights", "engine")
DEVICE_KINDS = ("cpu", "cuda")
# OpenVINO's INFERENCE_PRECISION_HINT values an artifact may be verified at.
OPENVINO_PRECISIONS = ("f32", "bf16", "f16")
INFERENCE_PRECISION = "INFERENCE_PRECISION_HINT"
TENSOR_DTYPES = ("float32", "float16")
MAX_MANIFEST_BYTES = 16 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TOP_KEYS = (
    "schema", "format", "target", "precision", "runtime", "files", "inputs", "outputs",
    "preprocess", "model", "export", "versions", "git_sha", "calibration", "parity",
    "execution", "details",
)


class ManifestError(ValueError):
    """A manifest, or a file it lists, that breaks the contract (one line, names file and field)."""


def _fail(source: str, where: str, problem: str) -> ManifestError:
    return ManifestError(f"{source}: {where}: {problem}")


@dataclass(frozen=True)
class TensorMeta:
    """Name, shape (``-1`` = dynamic) and dtype name of one model input/output."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict as used in ``manifest.json``."""
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: Any, source: str = "tensor") -> TensorMeta:
        """Inverse of :meth:`to_dict`; raises :class:`ManifestError` on a malformed entry."""
        if not isinstance(data, dict) or set(data) != {"name", "shape", "dtype"}:
            raise ManifestError(f"{source}: needs exactly the keys name, shape, dtype")
        name, shape, dtype = data["name"], data["shape"], data["dtype"]
        if not isinstance(name, str) or not name:
            raise ManifestError(f"{source}.name: must be a non-empty string")
        if not isinstance(shape, list) or not all(type(v) is int and v >= -1 for v in shape):
            raise ManifestError(f"{source}.shape: must be a list of integers >= -1")
        if not isinstance(dtype, str):
            raise ManifestError(f"{source}.dtype: must be a string")
        return cls(name, tuple(shape), dtype)


@dataclass(frozen=True)
class ArtifactFile:
    """One file of an artifact: path relative to the folder, size and SHA-256."""

    path: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"path": self.path, "size": self.size, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: Any, source: str) -> ArtifactFile:
        """Parse and check one ``files`` entry (path confinement is checked lexically here)."""
        if not isinstance(data, dict) or set(data) != {"path", "size", "sha256"}:
            raise ManifestError(f"{source}: needs exactly the keys path, size, sha256")
        path, size, digest = data["path"], data["size"], data["sha256"]
        if not isinstance(path, str):
            raise ManifestError(f"{source}.path: must be a string")
        problem = relative_path_problem(path)
        if problem:
            raise ManifestError(f"{source}.path: {problem}")
        if type(size) is not int or size < 0:
            raise ManifestError(f"{source}.size: must be a non-negative integer")
        if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
            raise ManifestError(f"{source}.sha256: must be 64 lowercase hex digits")
        return cls(path, size, digest)

    @classmethod
    def of(cls, directory: str | Path, relative: str) -> ArtifactFile:
        """Describe ``directory/relative`` as it is now (size and hash)."""
        file = Path(directory) / relative
        return cls(relative, file.stat().st_size, file_sha256(file))


def relative_path_problem(path: str) -> str | None:
    """Why ``path`` is not a plain relative path inside a folder, or ``None``.

    Refused: empty, absolute, drive or backslash paths, ``.``/``..`` or empty
    components, NUL bytes.
    """
    if not path:
        return "empty path"
    if "\x00" in path or "\\" in path or ":" in path:
        return f"{path!r} must be a plain POSIX relative path (no NUL, backslash or drive)"
    if path.startswith("/"):
        return f"{path!r} is absolute; artifact files must be relative to the artifact folder"
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return f"{path!r} has an empty, '.' or '..' component; it must stay inside the artifact folder"
    return None


@dataclass(frozen=True)
class RuntimeSpec:
    """How loaders must run the artifact.

    Attributes:
        name: the runtime (:data:`RUNTIMES`), e.g. ``"openvino"``, ``"tensorrt_rtx"``.
        device: device kind it is built for (``"cpu"``, ``"cuda"``), ``None`` = any
            device its runtime offers.
        properties: runtime-native settings every loader applies, verbatim:
            OpenVINO compile properties (``INFERENCE_PRECISION_HINT`` is
            required: an IR cannot carry its inference precision), ONNX
            Runtime session config entries.
    """

    name: str
    device: str | None = None
    properties: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"name": self.name, "device": self.device, "properties": dict(self.properties)}

    @classmethod
    def from_dict(cls, data: Any, source: str) -> RuntimeSpec:
        """Parse the ``runtime`` block."""
        if not isinstance(data, dict) or set(data) != {"name", "device", "properties"}:
            raise ManifestError(f"{source}: needs exactly the keys name, device, properties")
        name, device, props = data["name"], data["device"], data["properties"]
        if not isinstance(name, str):
            raise ManifestError(f"{source}.name: must be a string")
        if device is not None and device not in DEVICE_KINDS:
            raise ManifestError(f"{source}.device: {device!r} is not one of {DEVICE_KINDS} or null")
        if not isinstance(props, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in props.items()
        ):
            raise ManifestError(f"{source}.properties: must map strings to strings")
        return cls(name, device, dict(props))


@dataclass(frozen=True)
class ModelInfo:
    """Which model and checkpoint the artifact was exported from."""

    name: str
    config: dict[str, Any]
    config_hash: str
    checkpoint: str
    checkpoint_sha256: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "name": self.name, "config": dict(self.config), "config_hash": self.config_hash,
            "checkpoint": self.checkpoint, "checkpoint_sha256": self.checkpoint_sha256,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str) -> ModelInfo:
        """Parse the ``model`` block."""
        keys = {"name", "config", "config_hash", "checkpoint", "checkpoint_sha256"}
        if not isinstance(data, dict) or set(data) != keys:
            raise ManifestError(f"{source}: needs exactly the keys {', '.join(sorted(keys))}")
        if not isinstance(data["name"], str) or not isinstance(data["config"], dict):
            raise ManifestError(f"{source}: name must be a string and config an object")
        return cls(
            data["name"], dict(data["config"]), str(data["config_hash"]),
            str(data["checkpoint"]), str(data["checkpoint_sha256"]),
        )


@dataclass(frozen=True)
class ExportSettings:
    """Batch and shape settings the artifact was exported with.

    Attributes:
        batch: static batch size, ``None`` for a dynamic batch.
        dynamic_batch_max: largest batch of a dynamic batch dimension, else ``None``.
        dynamic_hw: height and width are free.
        opset: ONNX opset of the source graph (``None`` without ONNX).
    """

    batch: int | None
    dynamic_batch_max: int | None
    dynamic_hw: bool
    opset: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "batch": self.batch, "dynamic_batch_max": self.dynamic_batch_max,
            "dynamic_hw": self.dynamic_hw, "opset": self.opset,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str) -> ExportSettings:
        """Parse the ``export`` block."""
        keys = {"batch", "dynamic_batch_max", "dynamic_hw", "opset"}
        if not isinstance(data, dict) or set(data) != keys:
            raise ManifestError(f"{source}: needs exactly the keys {', '.join(sorted(keys))}")
        for key in ("batch", "dynamic_batch_max", "opset"):
            value = data[key]
            if value is not None and (type(value) is not int or value < 1):
                raise ManifestError(f"{source}.{key}: must be a positive integer or null")
        if (data["batch"] is None) == (data["dynamic_batch_max"] is None):
            raise ManifestError(f"{source}: exactly one of batch and dynamic_batch_max must be set")
        if not isinstance(data["dynamic_hw"], bool):
            raise ManifestError(f"{source}.dynamic_hw: must be true or false")
        return cls(data["batch"], data["dynamic_batch_max"], data["dynamic_hw"], data["opset"])


@dataclass(frozen=True)
class Manifest:
    """The typed content of ``manifest.json`` (see the module docstring).

    ``parity``, ``execution``, ``calibration`` and ``details`` (target-specific
    blocks such as ``onnx``, ``fp16``, ``openvino``, ``tensorrt``, ``aoti``,
    ``int8``) are free-form records for people and reports; loaders rely on
    the typed fields only.
    """

    format: str
    target: str
    precision: str
    runtime: RuntimeSpec
    files: dict[str, ArtifactFile]
    inputs: tuple[TensorMeta, ...]
    outputs: tuple[TensorMeta, ...]
    preprocess: PreprocessSpec
    model: ModelInfo
    export: ExportSettings
    versions: dict[str, str]
    git_sha: str | None
    calibration: dict[str, Any] | None
    parity: dict[str, Any]
    execution: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    schema: str = SCHEMA

    # -- facts derived from the contract --------------------------------------------
    @property
    def max_batch(self) -> int:
        """Largest batch the artifact takes (its static batch, or the dynamic maximum)."""
        return self.export.batch or self.export.dynamic_batch_max or 1

    @property
    def static_batch(self) -> int | None:
        """The static batch size, ``None`` when the batch is dynamic."""
        return self.export.batch

    def loaded_bytes(self) -> int:
        """Bytes of the files the runtime loads (:data:`LOADED_ROLES`)."""
        return sum(f.size for role, f in self.files.items() if role in LOADED_ROLES)

    # -- serialization -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (validated when read back)."""
        return {
            "schema": self.schema,
            "format": self.format,
            "target": self.target,
            "precision": self.precision,
            "runtime": self.runtime.to_dict(),
            "files": {role: f.to_dict() for role, f in self.files.items()},
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "preprocess": self.preprocess.to_dict(),
            "model": self.model.to_dict(),
            "export": self.export.to_dict(),
            "versions": dict(self.versions),
            "git_sha": self.git_sha,
            "calibration": self.calibration,
            "parity": self.parity,
            "execution": self.execution,
            "details": self.details,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = FILENAME) -> Manifest:
        """Parse and validate a manifest dict; every problem is one :class:`ManifestError`."""
        if not isinstance(data, dict):
            raise ManifestError(f"{source}: not a JSON object")
        schema = data.get("schema")
        if schema != SCHEMA:
            if isinstance(schema, str) and schema.startswith("qtseg.manifest/"):
                raise _fail(source, "schema", f"unsupported version {schema!r}; this qtseg reads "
                            f"{SCHEMA!r} (re-export the artifact with this qtseg)")
            raise _fail(source, "schema", f"{schema!r} is not a qtseg manifest schema")
        missing = [k for k in _TOP_KEYS if k not in data]
        if missing:
            raise _fail(source, "keys", f"missing {', '.join(missing)}")
        unknown = sorted(set(data) - set(_TOP_KEYS))
        if unknown:
            raise _fail(source, "keys", f"unknown {', '.join(unknown)}")
        fmt, precision, target = data["format"], data["precision"], data["target"]
        if fmt not in FORMATS:
            raise _fail(source, "format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
        if precision not in PRECISIONS:
            raise _fail(source, "precision", f"{precision!r} is not one of {', '.join(PRECISIONS)}")
        if not isinstance(target, str) or not target:
            raise _fail(source, "target", "must be a non-empty string")
        runtime = RuntimeSpec.from_dict(data["runtime"], f"{source}: runtime")
        if runtime.name not in RUNTIMES[fmt]:
            raise _fail(source, "runtime.name", f"{runtime.name!r} cannot run format {fmt!r} "
                        f"(expected {' or '.join(RUNTIMES[fmt])})")
        if fmt == "openvino":
            hint = runtime.properties.get(INFERENCE_PRECISION)
            if hint not in OPENVINO_PRECISIONS:
                raise _fail(source, f"runtime.properties.{INFERENCE_PRECISION}",
                            f"{hint!r}: an OpenVINO artifact must state the inference precision it "
                            f"was verified at ({', '.join(OPENVINO_PRECISIONS)})")
        files = data["files"]
        if not isinstance(files, dict):
            raise _fail(source, "files", "must be an object of role -> {path, size, sha256}")
        parsed_files = {str(r): ArtifactFile.from_dict(f, f"{source}: files.{r}") for r, f in files.items()}
        for role in (*REQUIRED_ROLES[fmt], "preprocess"):
            if role not in parsed_files:
                raise _fail(source, f"files.{role}", f"missing (format {fmt!r} needs it)")
        if parsed_files["preprocess"].path != PREPROCESS_FILENAME:
            raise _fail(source, "files.preprocess.path", f"must be {PREPROCESS_FILENAME!r}")
        paths = [f.path for f in parsed_files.values()]
        if len(set(paths)) != len(paths):
            raise _fail(source, "files", "two roles name the same file")
        try:
            spec = PreprocessSpec.from_dict(data["preprocess"])
        except (SpecError, TypeError, ValueError) as exc:
            raise _fail(source, "preprocess", str(exc)) from None
        inputs = _tensors(data["inputs"], f"{source}: inputs")
        outputs = _tensors(data["outputs"], f"{source}: outputs")
        model = ModelInfo.from_dict(data["model"], f"{source}: model")
        export = ExportSettings.from_dict(data["export"], f"{source}: export")
        _check_io(inputs, outputs, spec, model, export, source)
        for key in ("versions", "parity", "execution", "details"):
            if not isinstance(data[key], dict):
                raise _fail(source, key, "must be an object")
        if data["calibration"] is not None and not isinstance(data["calibration"], dict):
            raise _fail(source, "calibration", "must be an object or null")
        if precision == "int8" and data["calibration"] is None:
            raise _fail(source, "calibration", "an int8 artifact must name its calibration set")
        if data["git_sha"] is not None and not isinstance(data["git_sha"], str):
            raise _fail(source, "git_sha", "must be a string or null")
        return cls(
            format=fmt, target=target, precision=precision, runtime=runtime, files=parsed_files,
            inputs=inputs, outputs=outputs, preprocess=spec, model=model, export=export,
            versions={str(k): str(v) for k, v in data["versions"].items()}, git_sha=data["git_sha"],
            calibration=data["calibration"], parity=data["parity"], execution=data["execution"],
            details=data["details"],
        )


def _tensors(data: Any, source: str) -> tuple[TensorMeta, ...]:
    if not isinstance(data, list) or not data:
        raise ManifestError(f"{source}: must be a non-empty list")
    metas = tuple(TensorMeta.from_dict(t, f"{source}[{i}]") for i, t in enumerate(data))
    for i, meta in enumerate(metas):
        if meta.dtype not in TENSOR_DTYPES:
            raise ManifestError(f"{source}[{i}].dtype: {meta.dtype!r} is not one of {TENSOR_DTYPES}")
    return metas


def _dim_ok(declared: int, expected: int | None) -> bool:
    return declared == -1 or expected is None or declared == expected


def _check_io(
    inputs: tuple[TensorMeta, ...],
    outputs: tuple[TensorMeta, ...],
    spec: PreprocessSpec,
    model: ModelInfo,
    export: ExportSettings,
    source: str,
) -> None:
    """Inputs/outputs must be what the preprocessing spec produces and the model returns."""
    if len(inputs) != 1:
        raise _fail(source, "inputs", f"expected exactly one model input, got {len(inputs)}")
    h, w = spec.input_size
    batch = export.batch if export.batch is not None else -1
    (tin,) = inputs
    want_in = (batch, 3, -1 if export.dynamic_hw else h, -1 if export.dynamic_hw else w)
    if len(tin.shape) != 4 or not all(_dim_ok(d, e) for d, e in zip(tin.shape, want_in)) or (
        tin.shape[1] != 3
    ):
        raise _fail(source, "inputs[0].shape", f"{list(tin.shape)} does not match the preprocess spec "
                    f"and export settings, which make {list(want_in)} tensors (-1 = any)")
    if export.batch is not None and tin.shape[0] != export.batch:
        raise _fail(source, "inputs[0].shape", f"batch {tin.shape[0]} but export.batch is {export.batch}")
    tout = outputs[0]
    want_out = (batch, spec.num_classes, want_in[2], want_in[3])
    if len(tout.shape) != 4 or not all(_dim_ok(d, e) for d, e in zip(tout.shape, want_out)) or (
        tout.shape[1] != spec.num_classes
    ):
        raise _fail(source, "outputs[0].shape", f"{list(tout.shape)} but the preprocess spec has "
                    f"num_classes={spec.num_classes} (expected {list(want_out)}, -1 = any)")
    classes = model.config.get("num_classes")
    if classes is not None and classes != spec.num_classes:
        raise _fail(source, "model.config.num_classes",
                    f"{classes} but the preprocess spec has num_classes={spec.num_classes}")


@dataclass(frozen=True)
class Artifact:
    """A verified artifact folder: its resolved location and its manifest."""

    directory: Path
    manifest: Manifest

    def path(self, role: str) -> Path:
        """Absolute path of the file listed under ``role`` (e.g. ``"model"``, ``"engine"``)."""
        entry = self.manifest.files.get(role)
        if entry is None:
            raise ManifestError(f"{self.directory / FILENAME}: files.{role}: not listed")
        return self.directory / entry.path


def _confined(root: Path, entry: ArtifactFile, source: str, role: str) -> Path:
    """``root/entry.path`` resolved, refused if it leaves ``root`` or is not a regular file."""
    candidate = root / entry.path
    try:
        real = candidate.resolve(strict=True)
    except FileNotFoundError:
        raise _fail(source, f"files.{role}", f"{entry.path} does not exist in the artifact folder") from None
    except (OSError, RuntimeError) as exc:  # symlink loops and the like
        raise _fail(source, f"files.{role}", f"{entry.path} cannot be resolved: {exc}") from None
    if real != root and root not in real.parents:
        raise _fail(source, f"files.{role}", f"{entry.path} resolves outside the artifact folder "
                    f"(to {real}); refused")
    if not real.is_file():
        raise _fail(source, f"files.{role}", f"{entry.path} is not a regular file")
    return real


def verify_file(
    root: Path, entry: ArtifactFile, *, source: str, role: str, verify_hashes: bool = True
) -> Path:
    """Check one listed file: confined to ``root``, a regular file, its size and SHA-256.

    Shared by artifacts (``manifest.json``) and checkpoints (``checkpoint.json``).

    Args:
        root: the folder, already resolved (``Path.resolve()``).
        entry: the recorded path, size and hash.
        source: the record file, for the message.
        role: the file's role, for the message (``files.<role>``).
        verify_hashes: hash the file (``False``: size and confinement only).

    Returns:
        The resolved path of the file.

    Raises:
        ManifestError: one line naming ``source``, ``files.<role>`` and the problem.
    """
    real = _confined(root, entry, source, role)
    size = real.stat().st_size
    if size != entry.size:
        raise _fail(source, f"files.{role}", f"{entry.path} has {size} bytes, {Path(source).name} "
                    f"recorded {entry.size} (changed or truncated after it was written)")
    if verify_hashes and file_sha256(real) != entry.sha256:
        raise _fail(source, f"files.{role}", f"{entry.path} does not match its recorded SHA-256 "
                    "(changed or corrupted after it was written); refused")
    return real


def read_manifest_file(directory: str | Path) -> Manifest:
    """Parse and validate ``directory/manifest.json`` (no file checks; see :func:`open_artifact`)."""
    root = Path(directory)
    file = root / FILENAME
    if not root.is_dir():
        raise ManifestError(f"{root}: artifact folder not found")
    if not file.is_file():
        raise ManifestError(f"{file}: missing (not a qtseg artifact folder)")
    if file.stat().st_size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{file}: larger than {MAX_MANIFEST_BYTES >> 20} MiB; refused")
    try:
        data = strict_json_loads(file.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ManifestError(f"{file}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise ManifestError(f"{file}: cannot be read ({exc.strerror or exc})") from None
    return Manifest.from_dict(data, str(file))


def open_artifact(directory: str | Path, *, verify_hashes: bool = True) -> Artifact:
    """Read, validate and verify an artifact folder (see the module docstring).

    Args:
        directory: the artifact folder (holds ``manifest.json``).
        verify_hashes: check every file's SHA-256 (sizes, paths and specs are
            always checked). Turning it off is an explicit opt-out for very
            large engines; docs/design.md gives the cost.

    Raises:
        ManifestError: one line naming the file and the field that is wrong.
    """
    root = Path(directory).resolve()
    manifest = read_manifest_file(root)
    source = str(root / FILENAME)
    for role, entry in manifest.files.items():
        verify_file(root, entry, source=source, role=role, verify_hashes=verify_hashes)
    try:
        on_disk = PreprocessSpec.load(root / manifest.files["preprocess"].path)
    except SpecError as exc:
        raise _fail(source, "files.preprocess", str(exc)) from None
    if on_disk != manifest.preprocess:
        raise _fail(source, "preprocess", f"differs from {PREPROCESS_FILENAME}")
    return Artifact(root, manifest)


def write_manifest(directory: str | Path, manifest: Manifest) -> Path:
    """Validate ``manifest`` (round trip) and write ``directory/manifest.json`` atomically."""
    data = manifest.to_dict()
    Manifest.from_dict(json.loads(json.dumps(data)), f"{Path(directory) / FILENAME} (being written)")
    return atomic_write_text(Path(directory) / FILENAME, json.dumps(data, indent=2) + "\n")


def describe_files(directory: str | Path, roles: dict[str, str]) -> dict[str, ArtifactFile]:
    """``role -> ArtifactFile`` for files already written into ``directory``.

    Raises:
        ManifestError: a path that is not a plain relative path inside the folder.
    """
    out = {}
    for role, relative in roles.items():
        rel = PurePosixPath(relative).as_posix()
        problem = relative_path_problem(rel)
        if problem:
            raise ManifestError(f"files.{role}: {problem}")
        out[role] = ArtifactFile.of(directory, rel)
    return out


def is_artifact_dir(path: str | Path) -> bool:
    """True when ``path`` holds a ``manifest.json`` (validity is checked by :func:`open_artifact`)."""
    return os.path.isfile(os.path.join(path, FILENAME))
