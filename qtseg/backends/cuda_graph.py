"""CUDA-graph replay of a device function, one graph per input shape (the one capture in qtseg).

A small model at batch 1 spends most of its time launching kernels. After a
warm-up on a side stream (lazy initialisation, cuDNN/cuBLAS algorithm choice
and workspace allocation happen outside the capture), the function's kernels
are recorded once into a CUDA graph; a call then costs one copy into the
graph's static input, one graph launch, and returns the graph's static output.
Used by the PyTorch backend and the AOTInductor backend (the C++ libtorch
backend does the same with ``at::cuda::CUDAGraph``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

WARMUP_CALLS = 3


class GraphReplay:
    """Call ``fn`` through CUDA graphs captured per input shape.

    Arguments:
        fn: device function ``(N, ...) tensor -> tensor`` that only launches
            device work (no host synchronisation, no data-dependent shapes).
        device: the CUDA device of its inputs.
        relaxed: capture in CUDA's relaxed mode, which lets ``fn`` make calls
            that are illegal in the default mode (e.g. querying an event of an
            earlier call, as AOTInductor's model container does).

    The returned tensor is the graph's output buffer: the next call with the
    same input shape overwrites it (copy it if it must outlive that call).
    """

    def __init__(self, fn: Callable[[Any], Any], *, device: Any, relaxed: bool = False) -> None:
        import torch

        self._torch = torch
        self._fn = fn
        self._mode = "relaxed" if relaxed else "global"
        self.device = torch.device(device)
        self._graphs: dict[tuple[tuple[int, ...], Any], tuple[Any, Any, Any]] = {}

    def _capture(self, x: Any) -> tuple[Any, Any, Any]:
        torch = self._torch
        static_in = x.detach().clone()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(WARMUP_CALLS):
                self._fn(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, capture_error_mode=self._mode), torch.inference_mode():
            static_out = self._fn(static_in)
        return graph, static_in, static_out

    def __call__(self, x: Any) -> Any:
        """Replay the graph for ``x.shape`` (captured on first use); returns its output buffer."""
        key = (tuple(x.shape), x.dtype)
        if key not in self._graphs:
            self._graphs[key] = self._capture(x)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(x)
        graph.replay()
        return static_out

    @property
    def captured_shapes(self) -> list[tuple[int, ...]]:
        """Input shapes with a captured graph."""
        return [shape for shape, _ in self._graphs]

    def clear(self) -> None:
        """Drop every graph (and its memory pool)."""
        self._graphs.clear()
