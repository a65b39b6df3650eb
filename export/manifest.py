"""``manifest.json`` beside every artifact (schema ``qtseg.manifest/1``, docs/design.md)."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from qtseg.atomic import atomic_write_text

SCHEMA = "qtseg.manifest/1"
FILENAME = "manifest.json"
FORMATS = ("onnx", "openvino", "tensorrt", "aoti")
REQUIRED_KEYS = ("schema", "format", "target", "precision", "files", "inputs", "outputs", "preprocess")
# Distribution names whose versions are recorded (absent ones are skipped).
TOOLS = (
    "torch", "onnx", "onnxruntime", "onnxslim", "openvino", "tensorrt", "tensorrt_rtx",
    "cuda-python", "numpy",
)


class ManifestError(ValueError):
    """A manifest that is missing or malformed."""


def tool_versions(names: tuple[str, ...] = TOOLS) -> dict[str, str]:
    """Installed versions of the tools (read from package metadata, nothing imported)."""
    import qtseg

    versions = {"qtseg": qtseg.__version__}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def config_hash(model_name: str, config: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``{"model": name, "config": config}``."""
    text = json.dumps({"model": model_name, "config": config}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def git_sha() -> str | None:
    """Commit of the qtseg source tree, ``None`` outside a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def host_description() -> str:
    """Where the artifact was built, e.g. ``"Linux x86_64, Python 3.11.7, no CUDA GPU"``."""
    from qtseg.backends.tensorrt_backend import cuda_device_problem

    try:
        gpu = cuda_device_problem()
    except Exception:  # noqa: BLE001 - a broken CUDA install must not stop a CPU export
        gpu = "CUDA state unknown"
    where = "CUDA GPU present" if gpu is None else f"no CUDA GPU: {gpu}"
    return f"{platform.system()} {platform.machine()}, Python {platform.python_version()}, {where}"


def validate(manifest: dict[str, Any], source: str = "manifest") -> dict[str, Any]:
    """Check schema, required keys and format; return the manifest."""
    if not isinstance(manifest, dict):
        raise ManifestError(f"{source}: not a JSON object")
    if manifest.get("schema") != SCHEMA:
        raise ManifestError(f"{source}: unsupported schema {manifest.get('schema')!r} (expected {SCHEMA})")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ManifestError(f"{source}: missing keys {', '.join(missing)}")
    if manifest["format"] not in FORMATS:
        raise ManifestError(f"{source}: unknown format {manifest['format']!r}")
    return manifest


def write_manifest(directory: str | Path, manifest: dict[str, Any]) -> Path:
    """Validate and write ``manifest.json`` atomically."""
    validate(manifest)
    return atomic_write_text(Path(directory) / FILENAME, json.dumps(manifest, indent=2) + "\n")


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Read and validate ``<directory>/manifest.json``."""
    path = Path(directory) / FILENAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"no {FILENAME} in {directory}") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"malformed {path}: {exc}") from None
    return validate(data, str(path))
