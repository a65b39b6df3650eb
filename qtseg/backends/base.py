"""The one inference interface every runtime implements.

A :class:`Backend` loads one artifact (or a checkpoint), reports its input
metadata, and maps an ``(N, 3, H, W)`` float32 array to ``(N, C, H, W)``
float32 logits. The base class checks inputs against the metadata and
measures the wall time of each call; it does nothing runtime-specific.
Heavy runtime imports happen inside each subclass's constructor, so importing
this module (or :mod:`qtseg.backends`) never pulls in a runtime.
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from qtseg.manifest import TensorMeta


class BackendError(RuntimeError):
    """A backend that failed to load or run an artifact."""


class BackendUnavailable(BackendError):
    """The runtime a backend needs is not installed.

    Arguments:
        package: the missing Python package (e.g. ``"onnxruntime"``).
        extra: the qtseg pip extra that installs it (e.g. ``"ort"``).
        detail: optional extra sentence (e.g. where to get a wheel).
    """

    def __init__(self, package: str, extra: str, detail: str = "") -> None:
        self.package = package
        self.extra = extra
        message = f"{package} is not installed: pip install 'qtseg[{extra}]'"
        super().__init__(f"{message} ({detail})" if detail else message)


class NotExecutableHere(BackendError):
    """The artifact is valid but cannot run on this machine (e.g. no GPU).

    The message always starts with ``"not executable here: "`` and names the
    reason; backends raise this instead of returning made-up numbers.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"not executable here: {reason}")


class Backend(ABC):
    """Base class: input checks, timing, context manager.

    Subclasses implement :meth:`input_metadata`, :meth:`_infer`,
    :meth:`_describe` and (if they hold resources) :meth:`_close`.

    Attributes:
        name: short backend name (``"onnxruntime"``, ``"openvino"``, ...).
        last_infer_s: wall time of the latest :meth:`infer` call (host arrays
            in and out, so device work is finished when it is measured).
    """

    name: str = "backend"

    def __init__(self, *, artifact: str | Path | None = None, precision: str = "fp32") -> None:
        self.artifact = Path(artifact) if artifact is not None else None
        self.precision = precision
        self.last_infer_s = float("nan")
        self._closed = False

    # -- what subclasses provide -------------------------------------------
    @abstractmethod
    def input_metadata(self) -> list[TensorMeta]:
        """Inputs of the loaded model (one image input for qtseg models)."""

    @abstractmethod
    def _infer(self, x: np.ndarray) -> np.ndarray:
        """Run the model on a checked, C-contiguous float32 batch."""

    @abstractmethod
    def _describe(self) -> dict[str, Any]:
        """Runtime-specific part of :meth:`describe` (device, versions, ...)."""

    def _close(self) -> None:
        """Release runtime resources (default: nothing to release)."""

    # -- the interface -----------------------------------------------------
    def infer(self, x: np.ndarray) -> np.ndarray:
        """Run the model.

        Args:
            x: ``(N, 3, H, W)`` float32 array (already preprocessed).

        Returns:
            ``(N, C, H, W)`` float32 logits.
        """
        if self._closed:
            raise BackendError(f"{self.name} backend is closed")
        x = self.check_input(x)
        start = time.perf_counter()
        out = self._infer(x)
        self.last_infer_s = time.perf_counter() - start
        out = np.asarray(out)
        if out.ndim != 4 or out.shape[0] != x.shape[0]:
            raise BackendError(f"{self.name}: unexpected output shape {out.shape} for input {x.shape}")
        return out.astype(np.float32, copy=False)

    def check_input(self, x: Any) -> np.ndarray:
        """Validate ``x`` against :meth:`input_metadata`; return it C-contiguous.

        Raises:
            TypeError: not a numpy array.
            ValueError: wrong dtype, rank or a static dimension mismatch.
        """
        if not isinstance(x, np.ndarray):
            raise TypeError(f"{self.name}: input must be a numpy array, got {type(x).__name__}")
        meta = self.input_metadata()[0]
        if x.dtype != np.float32:
            raise ValueError(f"{self.name}: input {meta.name!r} must be float32, got {x.dtype}")
        if x.ndim != len(meta.shape):
            raise ValueError(
                f"{self.name}: input {meta.name!r} must have {len(meta.shape)} dims "
                f"{list(meta.shape)}, got shape {list(x.shape)}"
            )
        for axis, (want, got) in enumerate(zip(meta.shape, x.shape)):
            if want >= 0 and want != got:
                raise ValueError(
                    f"{self.name}: input {meta.name!r} has shape {list(x.shape)}, the model expects "
                    f"{list(meta.shape)} (-1 = any; axis {axis} differs)"
                )
        if x.shape[0] < 1:
            raise ValueError(f"{self.name}: empty batch")
        return np.ascontiguousarray(x)

    def describe(self) -> dict[str, Any]:
        """``{"backend", "precision", "device", "artifact", "versions", ...}``."""
        info: dict[str, Any] = {
            "backend": self.name,
            "precision": self.precision,
            "artifact": str(self.artifact) if self.artifact is not None else None,
        }
        info.update(self._describe())
        return info

    def close(self) -> None:
        """Release resources; further :meth:`infer` calls raise."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> Backend:  # noqa: PYI034 - subclasses need no Self type here
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # best effort; close() is the real API
        # At interpreter shutdown the runtime's modules may already be gone.
        with contextlib.suppress(Exception):
            self.close()
