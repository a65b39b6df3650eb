"""One inference interface over every runtime: :func:`open_backend`.

```python
from qtseg.backends import open_backend
with open_backend("exports/qtseg-v2_onnx") as be:
    logits = be.infer(x)          # (N, 3, H, W) float32 -> (N, C, H, W) float32
```

This package is the only code that knows runtimes. :data:`RUNTIMES` is the
one table: for each runtime its name, the artifact formats it runs, the
device kinds it offers, whether it takes a thread count, the pip extra that
installs it, and its opener. ``open_backend`` verifies an artifact folder
through :func:`qtseg.manifest.open_artifact` (schema, confined paths,
sizes, SHA-256, specs) and opens it with the runtime and the runtime
properties its manifest names; a checkpoint directory (or an ``nn.Module``)
opens the PyTorch backend. Runtime modules are imported only when a backend
of theirs is opened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qtseg.backends.base import (
    Backend,
    BackendError,
    BackendUnavailable,
    NonFiniteError,
    NonFiniteInput,
    NonFiniteOutput,
    NotExecutableHere,
    TensorMeta,
)
from qtseg.manifest import Artifact, ManifestError, is_artifact_dir, open_artifact

CHECKPOINT_FILENAME = "checkpoint.json"


def _open_torch(target: Any, device: str, **kw: Any) -> Backend:
    from qtseg.backends.torch_backend import TorchBackend

    return TorchBackend(target, device=device, **kw)


def _open_onnxruntime(art: Artifact, device: str, **kw: Any) -> Backend:
    from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend

    m = art.manifest
    return OnnxRuntimeBackend(
        art.path("model"), device=device, precision=m.precision,
        session_config=m.runtime.properties, **kw,
    )


def _open_openvino(art: Artifact, device: str, **kw: Any) -> Backend:
    from qtseg.backends.openvino_backend import OpenVINOBackend

    m = art.manifest
    return OpenVINOBackend(
        art.path("model"), device=device, precision=m.precision, properties=m.runtime.properties, **kw
    )


def _open_tensorrt(art: Artifact, device: str, **kw: Any) -> Backend:
    from qtseg.backends.tensorrt_backend import TensorRTBackend

    m = art.manifest
    return TensorRTBackend(
        art.path("engine"), library=m.runtime.name, device=device, precision=m.precision, **kw
    )


def _open_aoti(art: Artifact, device: str, **kw: Any) -> Backend:
    from qtseg.backends.aoti_backend import AotiBackend

    m = art.manifest
    return AotiBackend(
        art.path("model"), device=device, precision=m.precision, inputs=list(m.inputs),
        max_batch=m.max_batch if m.static_batch is None else None, **kw,
    )


@dataclass(frozen=True)
class Runtime:
    """What qtseg knows about one runtime.

    Attributes:
        name: runtime name as manifests write it (``manifest["runtime"]["name"]``).
        formats: artifact formats it runs (``"checkpoint"`` = a qtseg checkpoint).
        devices: device kinds it can offer (``"cpu"``, ``"cuda"``); the artifact's
            ``runtime.device`` narrows this to one.
        takes_threads: its backend accepts ``threads=N`` (intra-op CPU threads).
        extra: the pip extra that installs it (``pip install 'qtseg[EXTRA]'``).
        open: ``(artifact or checkpoint, device, **options) -> Backend``.
        cuda_graph: its backend takes ``cuda_graph=True`` (CUDA-graph replay
            per input shape) for artifacts built for CUDA.
    """

    name: str
    formats: tuple[str, ...]
    devices: tuple[str, ...]
    takes_threads: bool
    extra: str
    open: Callable[..., Backend]
    cuda_graph: bool = False


RUNTIMES: dict[str, Runtime] = {
    r.name: r
    for r in (
        Runtime("torch", ("checkpoint",), ("cpu", "cuda"), True, "all", _open_torch),
        Runtime("onnxruntime", ("onnx",), ("cpu", "cuda"), True, "ort", _open_onnxruntime),
        Runtime("openvino", ("openvino",), ("cpu",), True, "openvino", _open_openvino),
        Runtime("tensorrt", ("tensorrt",), ("cuda",), False, "trt", _open_tensorrt),
        Runtime("tensorrt_rtx", ("tensorrt",), ("cuda",), False, "trt", _open_tensorrt),
        Runtime("aoti", ("aoti",), ("cpu", "cuda"), True, "all", _open_aoti, cuda_graph=True),
    )
}


def runtime_for(art: Artifact) -> Runtime:
    """The :class:`Runtime` an artifact's manifest names."""
    name = art.manifest.runtime.name
    if name not in RUNTIMES:  # the manifest schema and this table are kept in step; defensive
        raise BackendError(f"{art.directory}: no backend for runtime {name!r}")
    return RUNTIMES[name]


def artifact_device(art: Artifact, requested: str | None) -> str:
    """The device to open ``art`` on: ``requested``, or the kind it was built for, else ``cpu``.

    Raises:
        BackendError: ``requested`` is a device kind the artifact was not built for.
    """
    built_for = art.manifest.runtime.device
    if requested is None:
        return built_for or "cpu"
    kind = requested.split(":")[0].lower()
    if built_for is not None and kind != built_for:
        raise BackendError(
            f"{art.directory.name} ({art.manifest.target}) is built for {built_for}; "
            f"it cannot run on {requested!r}"
        )
    return requested


AUTO = "auto"


def auto_device() -> str:
    """``"cuda"`` when PyTorch sees a CUDA GPU, else ``"cpu"`` (what ``--device auto`` means)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def open_backend(
    target: Any,
    *,
    device: str | None = None,
    verify_hashes: bool = True,
    **options: Any,
) -> Backend:
    """Open an artifact directory, a checkpoint directory or an ``nn.Module``.

    Args:
        target: ``exports/<model>_<target>/`` (holds ``manifest.json``), a
            checkpoint directory (holds ``checkpoint.json``; a ``qtseg-train``
            output folder means its ``best/``) or an ``nn.Module``.
        device: ``"cpu"``, ``"cuda[:N]"`` or ``"auto"``; default (``None``):
            the device kind the artifact was built for, else ``"cpu"``.
            ``"auto"``: for an artifact the same as ``None``; for a checkpoint
            or module :func:`auto_device` (CUDA when available).
        verify_hashes: check the SHA-256 of every artifact (or checkpoint) file
            before loading (explicit opt-out; paths, sizes and specs are always checked).
        options: passed to the backend's constructor (e.g. ``threads=2``).

    Raises:
        ManifestError: the artifact breaks the contract (one line: file and field).
        BackendError: not an artifact/checkpoint, or the runtime refused it.
        BackendUnavailable: the runtime is not installed (names the pip extra).
        NotExecutableHere: valid, but this machine cannot run it (e.g. no GPU).
    """
    torch_device = auto_device() if device == AUTO else device or "cpu"
    if not isinstance(target, (str, Path)):
        return _open_torch(target, torch_device, **options)
    path = Path(target)
    if is_artifact_dir(path):
        device = None if device == AUTO else device
        art = open_artifact(path, verify_hashes=verify_hashes)
        runtime = runtime_for(art)
        if "threads" in options and not runtime.takes_threads and options.pop("threads"):
            raise BackendError(f"{runtime.name} takes no thread count (threads=...)")
        return runtime.open(art, artifact_device(art, device), **options)
    if (path / CHECKPOINT_FILENAME).is_file() or (path / "best" / CHECKPOINT_FILENAME).is_file():
        return _open_torch(path, torch_device, verify_hashes=verify_hashes, **options)
    if not path.exists():
        raise BackendError(f"{path}: no such artifact or checkpoint folder")
    raise BackendError(f"{path} is neither an artifact directory nor a qtseg checkpoint")


__all__ = [
    "AUTO",
    "RUNTIMES",
    "Artifact",
    "Backend",
    "BackendError",
    "BackendUnavailable",
    "ManifestError",
    "NonFiniteError",
    "NonFiniteInput",
    "NonFiniteOutput",
    "NotExecutableHere",
    "Runtime",
    "TensorMeta",
    "artifact_device",
    "auto_device",
    "open_artifact",
    "open_backend",
    "runtime_for",
]
