"""Fast PyTorch path for NVIDIA GPUs: BN folded, channels_last, FP16, CUDA-graph replay.

The model is prepared once (BatchNorm folded into the convolutions, weights
cast to the requested precision, NHWC memory format) and, per batch size, one
CUDA graph is captured after a warm-up on a side stream. An inference call
then costs one host-to-device copy, one graph replay and one device-to-host
copy -- no per-kernel launch overhead, which dominates this small model at
batch 1. Normalization and softmax statistics stay in FP32 inside the model
(LayerNorm and SDPA accumulate in FP32; the channel-attention affinity is
computed in FP32 explicitly).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from qtseg.backends.base import Backend, NotExecutableHere, TensorMeta

_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class TorchCudaBackend(Backend):
    """QTSeg checkpoint on a CUDA GPU with optional FP16 and CUDA graphs.

    Arguments:
        checkpoint: checkpoint folder (default: the bundled model) or an
            already built ``nn.Module`` (with ``model.config.img_size``).
        precision: ``"fp32"``, ``"fp16"`` or ``"bf16"`` weights and compute.
        cuda_graphs: capture and replay one CUDA graph per batch size.
        channels_last: use NHWC memory format for the convolutions.
        compile: run the model through ``torch.compile`` (Inductor) first.
        device: CUDA device string.

    Thread safety: a captured CUDA graph replays into fixed input/output
    buffers, so :meth:`infer` holds a lock: concurrent calls are serialized
    and each returns exactly its own logits. :meth:`run_device` is not
    locked (its result is the graph's buffer; device-side callers own it).
    """

    name = "torch-cuda"

    def __init__(
        self,
        checkpoint: str | Path | Any | None = None,
        *,
        precision: str = "fp16",
        cuda_graphs: bool = True,
        channels_last: bool = True,
        compile: bool = False,
        device: str = "cuda",
    ) -> None:
        import torch

        import qtseg
        from qtseg.checkpoint import load_checkpoint
        from qtseg.models.fuse import fuse_conv_bn

        if not torch.cuda.is_available():
            raise NotExecutableHere("no CUDA GPU visible to PyTorch")
        if precision not in _DTYPES:
            raise ValueError(f"precision must be one of {', '.join(_DTYPES)}, got {precision!r}")
        super().__init__(artifact=None if not isinstance(checkpoint, (str, Path)) else checkpoint,
                         precision=precision)
        self.torch = torch
        if checkpoint is None or isinstance(checkpoint, (str, Path)):
            model, self.spec, _ = load_checkpoint(checkpoint or qtseg.DEFAULT_CHECKPOINT)
        else:
            model, self.spec = checkpoint, None
        self.img_size = tuple(model.config.img_size)
        self.num_classes = int(model.config.num_classes)
        self.device = torch.device(device)
        self.dtype = getattr(torch, _DTYPES[precision])
        model = fuse_conv_bn(model.eval()).to(self.device, self.dtype)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = torch.compile(model) if compile else model
        self.use_graphs = cuda_graphs
        self.compiled = compile
        self._graphs: dict[int, tuple[Any, Any, Any]] = {}
        self._lock = threading.Lock()

    def input_metadata(self) -> list[TensorMeta]:
        """One float32 NCHW image input with a free batch dimension."""
        return [TensorMeta("image", (-1, 3, *self.img_size), "float32")]

    # -- device-side API (used by the GPU benchmarks) ------------------------
    def _forward(self, x):
        return self.model(x.to(memory_format=self.memory_format))

    def _graph_for(self, batch: int):
        torch = self.torch
        if batch not in self._graphs:
            static_in = torch.zeros(batch, 3, *self.img_size, device=self.device, dtype=self.dtype)
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream), torch.inference_mode():
                for _ in range(3):  # warm-up: cuDNN algorithm choice, lazy init
                    self._forward(static_in)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.inference_mode():
                static_out = self._forward(static_in)
            self._graphs[batch] = (graph, static_in, static_out)
        return self._graphs[batch]

    def run_device(self, x):
        """Run on a device tensor ``(N, 3, H, W)`` of the backend's dtype; returns device logits.

        With CUDA graphs the returned tensor is the graph's static output
        buffer: it is overwritten by the next call with the same batch size.
        """
        torch = self.torch
        if not self.use_graphs:
            with torch.inference_mode():
                return self._forward(x)
        graph, static_in, static_out = self._graph_for(x.shape[0])
        static_in.copy_(x)
        graph.replay()
        return static_out

    # -- Backend interface ---------------------------------------------------
    def _infer(self, x: np.ndarray) -> np.ndarray:
        torch = self.torch
        with self._lock:
            xt = torch.from_numpy(x).to(self.device, non_blocking=True).to(self.dtype)
            out = self.run_device(xt)
            return out.float().cpu().numpy()

    def _describe(self) -> dict[str, Any]:
        torch = self.torch
        return {
            "device": torch.cuda.get_device_name(self.device),
            "precision": self.precision,
            "cuda_graphs": self.use_graphs,
            "channels_last": self.memory_format == torch.channels_last,
            "torch_compile": self.compiled,
            "bn_folded": True,
            "versions": {"torch": torch.__version__, "cuda": torch.version.cuda},
        }

    def _close(self) -> None:
        self._graphs.clear()
