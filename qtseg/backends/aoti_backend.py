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

Before loading, the package's shared library is read (not loaded) to check
that it links the C++ runtime dynamically: a library with a private copy of
libstdc++ crashes torch 2.11's loader (issue 16, :mod:`qtseg.backends.elf`),
so it is refused with a :class:`BackendError` instead. The package is loaded
with ``torch._C._aoti.AOTIModelPackageLoader`` directly: the Python wrapper
``aoti_load_package`` first runs Inductor's CPU-ISA probe, which compiles
test programs (about 50 s per process on the lent H200 VM) only to log a
warning.
"""

from __future__ import annotations

import json
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from qtseg.backends.base import Backend, BackendError, NotExecutableHere, TensorMeta
from qtseg.backends.tf32 import TF32_SWITCHES

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


def package_library(package: str | Path) -> tuple[str, str]:
    """``(member name, C++ runtime)`` of the model's shared library inside ``package``.

    The runtime is ``"dynamic"``, ``"static"`` or ``"none"`` (see
    :class:`qtseg.backends.elf.DynamicInfo`); the library is read, not loaded.

    Raises:
        BackendError: no readable shared library for the model in the package.
    """
    from qtseg.backends.elf import read_dynamic

    marker = f"/data/aotinductor/{MODEL_NAME}/"
    try:
        with zipfile.ZipFile(package) as archive:
            names = [n for n in archive.namelist() if marker in n and n.endswith(".so")]
            if not names:
                raise BackendError(f"{package}: no shared library for {MODEL_NAME!r} in the package")
            with archive.open(names[0]) as member:
                return names[0], read_dynamic(member).cxx_runtime
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise BackendError(f"{package}: unreadable shared library in the package: {exc}") from None


def check_package_library(package: str | Path) -> None:
    """Refuse a package whose library carries its own libstdc++ (it would crash the loader).

    Raises:
        BackendError: one line naming the problem and the remedy.
    """
    member, runtime = package_library(package)
    if runtime == "static":
        raise BackendError(
            f"{Path(package).name}: its library {Path(member).name} contains its own copy of "
            "libstdc++ (linked with -static-libstdc++), which crashes the AOTInductor loader; "
            "export it again with a C++ compiler that links libstdc++ dynamically "
            "(qtseg-export checks its compiler; see docs/aoti.md)"
        )


def _input_meta_from_package(meta: dict[str, str]) -> TensorMeta | None:
    text = meta.get(META_PREFIX + "input")
    if not text:
        return None
    try:
        return TensorMeta.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError):
        return None


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
        cuda_graph: replay one CUDA graph per input shape (CUDA packages only;
            see :mod:`qtseg.backends.cuda_graph`). The package is then loaded
            with AOTInductor's single-threaded runner: the default one records
            and queries a CUDA event around every run to share model instances
            between threads, and that query invalidates a capture (measured on
            the H200, issue 16). The capture uses CUDA's relaxed mode as well.

    Thread safety: :meth:`infer` may be called from several threads at once
    and each call returns exactly its own logits. The default runner is
    thread-safe by itself (AOTInductor's model container hands each call a
    free model instance and makes the others wait; one instance is loaded,
    so calls are serialized); with ``cuda_graph`` (single-threaded runner,
    fixed graph buffers) a lock serializes :meth:`infer`. :meth:`run_device`
    is not locked. FP32 CUDA calls turn TF32 off process-wide while any of
    them runs, through the shared :data:`~qtseg.backends.tf32.TF32_SWITCHES`
    (calls that need TF32 on wait meanwhile).
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
        cuda_graph: bool = False,
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
        if cuda_graph and not self.device.startswith("cuda"):
            raise BackendError("aoti backend: cuda_graph needs a CUDA package")
        check_package_library(package)
        index = _device_index(self.device) if self.device.startswith("cuda") else -1
        try:
            self._run = _load(str(package), index, single_threaded=cuda_graph)
        except RuntimeError as exc:
            raise BackendError(f"AOTInductor could not load {package}: {exc}") from None
        self.cuda_graph = cuda_graph
        # the single-threaded runner and the graphs' fixed buffers take one call at a time
        self._serial = threading.Lock() if cuda_graph else None
        self._graphs = None
        if cuda_graph:
            from qtseg.backends.cuda_graph import GraphReplay

            self._graphs = GraphReplay(self._forward, device=self.device, relaxed=True)
        if self.device.startswith("cuda"):
            # the bench times a backend with CUDA events when it has a device_call
            self.device_call = self._device_call

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
        with TF32_SWITCHES.hold(self._torch, matmul=False, cudnn=False):
            yield

    def _forward(self, x: Any) -> Any:
        """float32 tensor on the package's device -> its logits (no graph)."""
        with self._torch.inference_mode(), self._ieee_fp32():
            out = self._run(x)
        return out[0] if isinstance(out, (list, tuple)) else out

    def run_device(self, x: Any) -> Any:
        """``(N, 3, H, W)`` float32 tensor on the package's device -> logits there.

        With ``cuda_graph`` the result is the graph's output buffer, overwritten
        by the next call with the same shape.
        """
        return self._graphs(x) if self._graphs is not None else self._forward(x)

    def _device_call(self, x: np.ndarray) -> Callable[[], Any]:
        """A no-argument callable running the package on ``x`` already copied to the GPU.

        Exposed as ``device_call`` for CUDA packages only.
        """
        self.check_input(x)
        xt = self._torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        return lambda: self.run_device(xt)

    def peak_memory_mb(self) -> float | None:
        """``torch.cuda.max_memory_allocated`` in MiB (``None`` for CPU packages)."""
        if not self.device.startswith("cuda"):
            return None
        return self._torch.cuda.max_memory_allocated(self.device) / 2**20

    def _infer(self, x: np.ndarray) -> np.ndarray:
        tensor = self._torch.from_numpy(x)
        if self.device.startswith("cuda"):
            tensor = tensor.to(self.device)
        if self._serial is None:
            return self.run_device(tensor).float().cpu().numpy()
        with self._serial:
            return self.run_device(tensor).float().cpu().numpy()

    def _describe(self) -> dict[str, Any]:
        meta = self.package_metadata
        return {
            "device": self.device,
            "compiled_for": self.compiled_for,
            "cpu_isa": meta.get("AOTI_CPU_ISA") or None,
            "compute_capability": meta.get("AOTI_COMPUTE_CAPABILITY") or None,
            "cuda_graph": self.cuda_graph,
            "versions": {"torch": self._torch.__version__},
        }

    def _close(self) -> None:
        if self._graphs is not None:
            self._graphs.clear()
        self._run = None


def _load(package: str, device_index: int, *, single_threaded: bool = False) -> Callable[[Any], Any]:
    """A callable ``tensor -> outputs`` for the package's model (see the module doc).

    ``single_threaded`` selects the runner without the per-run CUDA event
    (capturable into a CUDA graph; calls must not overlap, which one backend
    object calling from one thread guarantees).
    """
    import torch

    try:
        loader = torch._C._aoti.AOTIModelPackageLoader(
            package, MODEL_NAME, single_threaded, 1, device_index
        )
    except TypeError:  # another constructor signature: take the public API
        return torch._inductor.aoti_load_package(
            package, run_single_threaded=single_threaded, device_index=device_index
        )
    return lambda x: loader.run([x])
