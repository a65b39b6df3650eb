"""AOTInductor backend: a ``model.pt2`` from ``torch._inductor.aoti_compile_and_package``.

A package is native code compiled for one device: CPU (for the vector ISA of
the machine it was built on, e.g. AVX2) or CUDA (for the GPU architecture it
was built on). The device comes from the package's own metadata
(``AOTI_DEVICE_KEY``), read before the shared library is loaded, so a CUDA
package on a machine without a GPU raises :class:`NotExecutableHere` instead
of failing inside the loader.

Packages written by ``qtseg-export --target aoti`` also carry ``qtseg.*``
metadata (input shape, batch range, precision); the compiled code itself does
not check input shapes unless ``AOTI_RUNTIME_CHECK_INPUTS=1`` is set, so this
backend enforces them (including the batch maximum of a dynamic batch).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from qtseg.backends.base import Backend, BackendError, NotExecutableHere, TensorMeta

MODEL_NAME = "model"  # name of the model inside the package (aoti_compile_and_package default)
META_PREFIX = "qtseg."
_ANY_INPUT = TensorMeta("image", (-1, 3, -1, -1), "float32")


def read_package_metadata(package: str | Path) -> dict[str, str]:
    """Metadata of a ``.pt2`` package without loading its compiled code.

    Holds AOTInductor's keys (``AOTI_DEVICE_KEY``: ``"cpu"``/``"cuda"``,
    ``AOTI_CPU_ISA``, ``AOTI_COMPUTE_CAPABILITY``, ...) and the ``qtseg.*``
    keys written by the exporter.

    Raises:
        BackendError: the file is missing or is not an AOTInductor package.
    """
    import torch

    path = Path(package)
    if not path.is_file():
        raise BackendError(f"AOTInductor package not found: {path}")
    try:
        meta = torch._C._aoti.AOTIModelPackageLoader.load_metadata_from_package(
            str(path), MODEL_NAME
        )
    except RuntimeError as exc:
        raise BackendError(f"{path} is not a readable AOTInductor package: {exc}") from None
    return dict(meta)


def _input_meta_from_package(meta: dict[str, str]) -> TensorMeta | None:
    text = meta.get(META_PREFIX + "input")
    if not text:
        return None
    try:
        return TensorMeta.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError):
        return None


class _Tf32Off:
    """Process-wide "TF32 off" switch shared by concurrent calls (reference counted).

    The switches are global to the process; with a plain save/restore per
    call, one thread could restore TF32 while another's FP32 call is running.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved: tuple[bool, bool] = (False, False)

    @contextmanager
    def __call__(self, torch: Any) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self._saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
                torch.backends.cudnn.allow_tf32 = False
                torch.backends.cuda.matmul.allow_tf32 = False
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self._saved


_TF32_OFF = _Tf32Off()


def _device_index(device: str) -> int:
    """``"cuda:1"`` -> 1; ``"cuda"`` -> -1 (AOTInductor's "current device")."""
    _, _, index = device.partition(":")
    if not index:
        return -1
    if not index.isdigit():
        raise BackendError(f"aoti backend: bad device {device!r} (cpu, cuda or cuda:N)")
    return int(index)


class AotiBackend(Backend):
    """Run an AOTInductor ``.pt2`` package through ``torch._inductor.aoti_load_package``.

    Arguments:
        package: path of the ``.pt2`` file.
        device: ``None`` (the device the package was compiled for), ``"cpu"``,
            ``"cuda"`` or ``"cuda:N"``; must match the package's device kind.
        precision: label reported by :meth:`describe`; default: the package's
            ``qtseg.precision`` metadata, else ``"fp32"``.
        inputs: input metadata (e.g. from ``manifest.json``); default: the
            package's ``qtseg.input`` metadata, else ``(-1, 3, -1, -1)``.
        max_batch: largest batch accepted; default: ``qtseg.max_batch``
            metadata (a dynamic batch is compiled for 1..max), else no limit.
        threads: intra-op threads for CPU packages (0 = torch default). This
            sets ``torch.set_num_threads`` for the whole process.

    Thread safety: the loaded package's runner is safe to call from several
    threads (AOTInductor's model container hands each call a free model
    instance and makes the others wait; one instance is loaded, so calls are
    serialized); each call returns exactly its own logits. FP32 CUDA calls
    turn TF32 off process-wide while any of them runs.
    """

    name = "aoti"

    def __init__(
        self,
        package: str | Path,
        *,
        device: str | None = None,
        precision: str | None = None,
        inputs: list[TensorMeta] | None = None,
        max_batch: int | None = None,
        threads: int = 0,
    ) -> None:
        import torch

        self._torch = torch
        self.package_metadata = read_package_metadata(package)
        meta = self.package_metadata
        super().__init__(
            artifact=package, precision=precision or meta.get(META_PREFIX + "precision", "fp32")
        )
        self.compiled_for = meta.get("AOTI_DEVICE_KEY", "cpu")
        self.device = self._pick_device(device)
        self._inputs = list(inputs) if inputs else [_input_meta_from_package(meta) or _ANY_INPUT]
        if max_batch is None and meta.get(META_PREFIX + "max_batch", "").isdigit():
            max_batch = int(meta[META_PREFIX + "max_batch"])
        self.max_batch = max_batch
        if threads > 0:
            torch.set_num_threads(int(threads))
        index = _device_index(self.device) if self.device.startswith("cuda") else -1
        try:
            self._model = torch._inductor.aoti_load_package(str(package), device_index=index)
        except RuntimeError as exc:
            raise BackendError(f"AOTInductor could not load {package}: {exc}") from None

    def _pick_device(self, requested: str | None) -> str:
        torch = self._torch
        kind = (requested or self.compiled_for).split(":")[0]
        if kind not in ("cpu", "cuda"):
            raise BackendError(
                f"aoti backend: unsupported device {requested!r} (cpu, cuda or cuda:N)"
            )
        if kind != self.compiled_for:
            raise BackendError(
                f"{self.artifact} was compiled for {self.compiled_for}, "
                f"it cannot run on {requested}; "
                f"export it again for {kind} (qtseg.export.aoti)"
            )
        if kind == "cuda" and not torch.cuda.is_available():
            arch = self.package_metadata.get("AOTI_COMPUTE_CAPABILITY") or "?"
            raise NotExecutableHere(
                f"{self.artifact.name if self.artifact else 'package'} was compiled for CUDA "
                f"(compute capability {arch}) and torch {torch.__version__} sees no CUDA device"
            )
        return requested or kind

    def input_metadata(self) -> list[TensorMeta]:
        return list(self._inputs)

    def check_input(self, x: Any) -> np.ndarray:
        x = super().check_input(x)
        if self.max_batch is not None and x.shape[0] > self.max_batch:
            raise ValueError(
                f"{self.name}: batch {x.shape[0]} exceeds the package's "
                f"maximum batch {self.max_batch} "
                "(export again with a larger --dynamic-batch)"
            )
        return x

    @contextmanager
    def _ieee_fp32(self) -> Iterator[None]:
        """Keep FP32 convolutions/matmuls in IEEE FP32 (no TF32) on CUDA for fp32 packages.

        Compiled CUDA packages call cuDNN/cuBLAS through ATen, which reads the
        process-wide TF32 switches at run time; cuDNN's defaults to on.
        """
        if not self.device.startswith("cuda") or self.precision != "fp32":
            yield
            return
        with _TF32_OFF(self._torch):
            yield

    def _infer(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        tensor = torch.from_numpy(x)
        if self.device.startswith("cuda"):
            tensor = tensor.to(self.device)
        with torch.inference_mode(), self._ieee_fp32():
            out = self._model(tensor)
        if isinstance(out, (list, tuple)):
            out = out[0]
        return out.float().cpu().numpy()

    def _describe(self) -> dict[str, Any]:
        meta = self.package_metadata
        return {
            "device": self.device,
            "compiled_for": self.compiled_for,
            "cpu_isa": meta.get("AOTI_CPU_ISA") or None,
            "compute_capability": meta.get("AOTI_COMPUTE_CAPABILITY") or None,
            "versions": {"torch": self._torch.__version__},
        }

    def _close(self) -> None:
        self._model = None
