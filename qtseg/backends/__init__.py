"""One inference interface over every runtime: :func:`open_backend`.

```python
from qtseg.backends import open_backend
with open_backend("exports/qtseg-v2_onnx") as be:
    logits = be.infer(x)          # (N, 3, H, W) float32 -> (N, C, H, W) float32
```

``open_backend`` reads ``manifest.json`` of an artifact directory and picks
the runtime from ``manifest["format"]`` through a plain table; a checkpoint
directory (or an ``nn.Module``) opens the PyTorch backend. Runtime modules are
imported only when a backend of theirs is opened.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qtseg.backends.base import (
    Backend,
    BackendError,
    BackendUnavailable,
    NotExecutableHere,
    TensorMeta,
)

MANIFEST_FILENAME = "manifest.json"


def _open_torch(path: Any, manifest: dict[str, Any], device: str, **kw: Any) -> Backend:
    from qtseg.backends.torch_backend import TorchBackend

    return TorchBackend(path, device=device, **kw)


def _open_onnx(path: Path, manifest: dict[str, Any], device: str, **kw: Any) -> Backend:
    from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend

    model = path / manifest["files"]["model"]
    kw.setdefault("session_config", manifest.get("onnxruntime", {}).get("session_config"))
    return OnnxRuntimeBackend(model, device=device, precision=manifest.get("precision", "fp32"), **kw)


def _open_openvino(path: Path, manifest: dict[str, Any], device: str, **kw: Any) -> Backend:
    from qtseg.backends.openvino_backend import OpenVINOBackend

    model = path / manifest["files"]["model"]
    return OpenVINOBackend(model, device=device, precision=manifest.get("precision", "fp32"), **kw)


def _open_tensorrt(path: Path, manifest: dict[str, Any], device: str, **kw: Any) -> Backend:
    from qtseg.backends.tensorrt_backend import TensorRTBackend

    engine = path / manifest["files"]["engine"]
    library = manifest.get("tensorrt", {}).get("library", "tensorrt")
    dev = device if device.startswith("cuda") else "cuda"
    return TensorRTBackend(
        engine, library=library, device=dev, precision=manifest.get("precision", "fp32"), **kw
    )


def _open_aoti(path: Path, manifest: dict[str, Any], device: str, **kw: Any) -> Backend:
    from qtseg.backends.aoti_backend import AotiBackend

    inputs = [TensorMeta.from_dict(t) for t in manifest.get("inputs", [])]
    dev = device if device.startswith("cuda") else None  # None: the device the package was built for
    return AotiBackend(path / manifest["files"]["model"], device=dev, inputs=inputs or None, **kw)


# manifest["format"] -> opener; "checkpoint" is a qtseg checkpoint directory.
OPENERS: dict[str, Callable[..., Backend]] = {
    "checkpoint": _open_torch,
    "onnx": _open_onnx,
    "openvino": _open_openvino,
    "tensorrt": _open_tensorrt,
    "aoti": _open_aoti,
}


def read_artifact_manifest(path: str | Path) -> dict[str, Any]:
    """``manifest.json`` of an artifact directory (minimal checks only)."""
    file = Path(path) / MANIFEST_FILENAME
    try:
        manifest = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BackendError(f"cannot read {file}: {exc}") from None
    if not isinstance(manifest, dict) or "format" not in manifest or "files" not in manifest:
        raise BackendError(f"{file} is not a qtseg manifest (needs 'format' and 'files')")
    return manifest


def open_backend(path_or_checkpoint: Any, *, device: str = "cpu", **options: Any) -> Backend:
    """Open an artifact directory, a checkpoint directory or an ``nn.Module``.

    Args:
        path_or_checkpoint: ``exports/<model>_<target>/`` (has ``manifest.json``),
            a checkpoint directory (has ``checkpoint.json``) or an ``nn.Module``.
        device: ``"cpu"``, ``"cuda[:N]"``, or an OpenVINO device name.
        options: passed to the backend's constructor (e.g. ``threads=2``).

    Raises:
        BackendError: not an artifact/checkpoint, or an unknown format.
        BackendUnavailable: the runtime is not installed (names the pip extra).
    """
    if not isinstance(path_or_checkpoint, (str, Path)):
        return _open_torch(path_or_checkpoint, {}, device, **options)
    path = Path(path_or_checkpoint)
    if (path / MANIFEST_FILENAME).is_file():
        manifest = read_artifact_manifest(path)
    elif (path / "checkpoint.json").is_file():
        manifest = {"format": "checkpoint"}
    else:
        raise BackendError(f"{path} is neither an artifact directory nor a qtseg checkpoint")
    fmt = manifest["format"]
    if fmt not in OPENERS:
        raise BackendError(f"{path}: no backend for format {fmt!r}; known: {', '.join(sorted(OPENERS))}")
    return OPENERS[fmt](path, manifest, device, **options)


__all__ = [
    "MANIFEST_FILENAME",
    "OPENERS",
    "Backend",
    "BackendError",
    "BackendUnavailable",
    "NotExecutableHere",
    "TensorMeta",
    "open_backend",
    "read_artifact_manifest",
]
