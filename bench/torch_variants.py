"""The PyTorch rows of a benchmark: plain eager FP32 and its GPU variants.

On CPU the one PyTorch row is the reference a user would otherwise run:
eager FP32 through :func:`qtseg.backends.open_backend` on the checkpoint
(the same backend the export gate uses). On CUDA the rows are eager FP32,
eager FP16 (``torch.autocast(float16)``: matrix products and convolutions in
FP16, reductions kept in FP32 by autocast) and CUDA-graph replay of both.
The model is the checkpoint as loaded -- no BatchNorm folding, NCHW -- so
these rows show what plain PyTorch does; the tuned GPU path lives in
:mod:`qtseg.backends.torch_cuda_backend`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qtseg.backends.base import Backend, NotExecutableHere, TensorMeta


@dataclass(frozen=True)
class TorchVariant:
    """One way to run the PyTorch model.

    Attributes:
        name: row label, e.g. ``"graph-fp16"``.
        precision: ``"fp32"`` or ``"fp16"`` (selects parity thresholds).
        autocast: run under ``torch.autocast(device_type="cuda", dtype=float16)``.
        cuda_graph: capture one CUDA graph per batch size and replay it.
        devices: device kinds the variant runs on.
    """

    name: str
    precision: str
    autocast: bool
    cuda_graph: bool
    devices: tuple[str, ...]


VARIANTS: dict[str, TorchVariant] = {
    v.name: v
    for v in (
        TorchVariant(
            "eager-fp32", "fp32", autocast=False, cuda_graph=False, devices=("cpu", "cuda")
        ),
        TorchVariant("eager-fp16", "fp16", autocast=True, cuda_graph=False, devices=("cuda",)),
        TorchVariant("graph-fp32", "fp32", autocast=False, cuda_graph=True, devices=("cuda",)),
        TorchVariant("graph-fp16", "fp16", autocast=True, cuda_graph=True, devices=("cuda",)),
    )
}
REFERENCE_VARIANT = "eager-fp32"


def variants_for(device: str) -> list[TorchVariant]:
    """Variants that run on ``device`` (``"cpu"`` or ``"cuda[:N]"``), reference first."""
    kind = device.split(":")[0]
    return [v for v in VARIANTS.values() if kind in v.devices]


class TorchVariantBackend(Backend):
    """A checkpoint on a CUDA GPU run as one :class:`TorchVariant`.

    Besides the host-array :meth:`infer`, :meth:`device_call` gives a
    callable on a device tensor for model-only timing with CUDA events.

    Arguments:
        checkpoint: checkpoint directory.
        variant: a key of :data:`VARIANTS`.
        device: ``"cuda"`` or ``"cuda:N"``.
        input_size: ``(H, W)`` of the inputs (default: the checkpoint's preprocessing).
    """

    name = "torch"

    def __init__(
        self,
        checkpoint: str | Path,
        *,
        variant: str,
        device: str = "cuda",
        input_size: tuple[int, int] | None = None,
    ) -> None:
        import torch

        from qtseg.checkpoint import load_checkpoint

        if variant not in VARIANTS:
            raise ValueError(f"unknown torch variant {variant!r}; known: {', '.join(VARIANTS)}")
        if not device.startswith("cuda"):
            raise ValueError(f"TorchVariantBackend runs on CUDA, not {device!r}")
        if not torch.cuda.is_available():
            raise NotExecutableHere("no CUDA GPU visible to PyTorch")
        self.variant = VARIANTS[variant]
        super().__init__(artifact=checkpoint, precision=self.variant.precision)
        self.torch = torch
        self.device = torch.device(device)
        model, spec, _ = load_checkpoint(checkpoint, device=self.device)
        self.model = model.float().eval()
        self._hw = tuple(input_size or spec.input_size)
        self._graphs: dict[tuple[int, ...], tuple[Any, Any, Any]] = {}

    def input_metadata(self) -> list[TensorMeta]:
        return [TensorMeta("image", (-1, 3, *self._hw), "float32")]

    def _forward(self, x: Any) -> Any:
        torch = self.torch
        # Autocast's weight-cast cache must be off while a CUDA graph is captured
        # (cached casts would live outside the graph's memory pool).
        with (
            torch.inference_mode(),
            torch.autocast(
                "cuda",
                dtype=torch.float16,
                enabled=self.variant.autocast,
                cache_enabled=not self.variant.cuda_graph,
            ),
        ):
            return self.model(x)

    def _graph(self, shape: tuple[int, ...]) -> tuple[Any, Any, Any]:
        torch = self.torch
        if shape not in self._graphs:
            static_in = torch.zeros(shape, device=self.device)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):  # lazy init and cuDNN algorithm choice before capture
                    self._forward(static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self._forward(static_in)
            self._graphs[shape] = (graph, static_in, static_out)
        return self._graphs[shape]

    def run_device(self, x: Any) -> Any:
        """``(N, 3, H, W)`` float32 device tensor -> device logits (graph's buffer on replay)."""
        if not self.variant.cuda_graph:
            return self._forward(x)
        graph, static_in, static_out = self._graph(tuple(x.shape))
        static_in.copy_(x)
        graph.replay()
        return static_out

    def device_call(self, x: np.ndarray) -> Callable[[], Any]:
        """A no-argument callable running the model on ``x`` already copied to the GPU."""
        xt = self.torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        return lambda: self.run_device(xt)

    def peak_memory_mb(self) -> float:
        """``torch.cuda.max_memory_allocated`` of the device in MiB."""
        return self.torch.cuda.max_memory_allocated(self.device) / 2**20

    def _infer(self, x: np.ndarray) -> np.ndarray:
        xt = self.torch.from_numpy(x).to(self.device)
        return self.run_device(xt).float().cpu().numpy()

    def _describe(self) -> dict[str, Any]:
        torch = self.torch
        return {
            "device": str(self.device),
            "gpu": torch.cuda.get_device_name(self.device),
            "variant": self.variant.name,
            "autocast_fp16": self.variant.autocast,
            "cuda_graph": self.variant.cuda_graph,
            "versions": {"torch": torch.__version__, "cuda": torch.version.cuda},
        }

    def _close(self) -> None:
        self._graphs.clear()
