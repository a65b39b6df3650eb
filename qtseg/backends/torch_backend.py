"""PyTorch backend: a checkpoint directory or an ``nn.Module``, on CPU or CUDA.

With default :class:`TorchOptions` this is the FP32 reference every exported
artifact is compared with: the model as loaded, eval mode, no autograd. The
options select the other ways of running the same model -- FP16/BF16 by
autocast or by casting the weights, BatchNorm folded into the convolutions,
NHWC memory format, ``torch.compile`` (Inductor), attention as plain matrix
products, CUDA-graph replay -- so every PyTorch row of the bench and the GPU
fast path are this one class.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qtseg.backends.base import Backend, BackendError, NotExecutableHere, TensorMeta
from qtseg.backends.tf32 import TF32_SWITCHES

PRECISIONS = ("fp32", "fp16", "bf16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class TorchOptions:
    """How the PyTorch backend runs the model (defaults: the FP32 reference).

    Attributes:
        precision: compute precision, ``"fp32"``, ``"fp16"`` or ``"bf16"`` (CUDA only).
        autocast: for fp16/bf16, run FP32 weights under ``torch.autocast``
            (reductions stay FP32); ``False`` casts the weights instead.
        fold_bn: fold BatchNorm into the preceding convolutions.
        channels_last: NHWC memory format for weights and input.
        compile: ``torch.compile`` mode (see :data:`COMPILE_MODES`), or ``None``.
        cuda_graph: replay one CUDA graph per input shape (CUDA only).
        math_attention: attention as ``softmax(q k^T) v`` with plain matrix
            products (FP32 softmax) instead of fused SDPA; qtseg's attention
            always has 2..K tokens on one side, which the fused kernels handle
            poorly and Inductor fuses well.
        tf32: allow TF32 for FP32 matrix products while the model runs (CUDA;
            in FP16 models only the channel-attention affinity is FP32). The
            switch is process-wide: calls that need it off (an ``aoti-cuda``
            FP32 package) wait while it is on (:mod:`qtseg.backends.tf32`).
    """

    precision: str = "fp32"
    autocast: bool = True
    fold_bn: bool = False
    channels_last: bool = False
    compile: str | None = None
    cuda_graph: bool = False
    math_attention: bool = False
    tf32: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.compile is not None and self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be None or one of {', '.join(COMPILE_MODES)}")
        if self.cuda_graph and self.compile in ("reduce-overhead", "max-autotune"):
            raise ValueError(
                f"compile mode {self.compile!r} captures CUDA graphs itself; "
                "use 'default' or 'max-autotune-no-cudagraphs' with cuda_graph=True"
            )

    @property
    def needs_cuda(self) -> bool:
        """Options that only exist on CUDA (reduced precision, graph replay)."""
        return self.precision != "fp32" or self.cuda_graph or self.tf32

    @property
    def transforms_model(self) -> bool:
        """True when the backend rewrites (a copy of) the module."""
        return (
            self.fold_bn
            or self.channels_last
            or self.math_attention
            or (self.precision != "fp32" and not self.autocast)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (for ``describe()`` and reports)."""
        return dataclasses.asdict(self)


# The fastest PyTorch path measured on the H200 (tools/gpu/NOTES.md, calls 3-7). TF32 only
# touches the channel attention's FP32 affinity products: 7 % more images/s at batch 512,
# agreement with FP32 unchanged (99.997 %).
FAST_GPU = TorchOptions(
    precision="fp16",
    autocast=False,
    fold_bn=True,
    channels_last=True,
    compile="default",
    cuda_graph=True,
    math_attention=True,
    tf32=True,
)


@functools.cache
def _math_attention_class() -> type:
    from qtseg.models.attention import Attention

    class MathAttention(Attention):
        """:class:`Attention` with an explicit ``softmax(q k^T / sqrt(d)) v`` (FP32 softmax)."""

        def forward(self, q: Any, k: Any, v: Any) -> Any:
            import torch

            q = self._split(self.q_proj(q))
            k = self._split(self.k_proj(k))
            v = self._split(self.v_proj(v))
            scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
            weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
            out = weights @ v
            b, h, n, d = out.shape
            return self.out_proj(out.transpose(1, 2).reshape(b, n, h * d))

    return MathAttention


def prepare_model(module: Any, options: TorchOptions, device: Any) -> Any:
    """The module as ``options`` run it: a transformed copy, or ``module`` itself.

    The caller's module is never modified: any transform works on a deep copy.
    Returns the module on ``device`` in eval mode (not compiled).
    """
    import torch

    if options.transforms_model:
        module = copy.deepcopy(module)
    module = module.eval()
    if options.fold_bn:
        from qtseg.models.fuse import fuse_conv_bn

        module = fuse_conv_bn(module)
    if options.math_attention:
        from qtseg.models.attention import Attention

        math_cls = _math_attention_class()
        for sub in module.modules():
            if type(sub) is Attention:
                sub.__class__ = math_cls  # same parameters, other forward
    dtype = torch.float32
    if options.precision != "fp32" and not options.autocast:
        dtype = torch.float16 if options.precision == "fp16" else torch.bfloat16
    module = module.to(device=device, dtype=dtype)
    if options.channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module


class TorchBackend(Backend):
    """Run a qtseg model in PyTorch (eval mode, no autograd), as :class:`TorchOptions` say.

    Arguments:
        model: checkpoint directory (see :mod:`qtseg.checkpoint`) or an ``nn.Module``.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        input_size: ``(H, W)`` the input metadata states; default: the
            checkpoint's preprocessing size, or ``model.config.img_size``.
        options: how to run it (default: the FP32 reference).
        verify_hashes: check the checkpoint's recorded SHA-256 (explicit opt-out).
        threads: intra-op CPU threads (0 = torch default). This sets
            ``torch.set_num_threads`` for the whole process.

    Raises:
        NotExecutableHere: CUDA (or a CUDA-only option) without a CUDA GPU.

    Thread safety: :meth:`infer` may be called from several threads at once
    and each call returns exactly what a single-threaded call returns. With
    the default options (the reference) calls run in parallel: the eval-mode
    module is stateless and each call works on its own tensors under
    ``torch.inference_mode``. Any other option (compile, CUDA graphs with
    their fixed buffers, ...) makes a lock serialize :meth:`infer`.
    :meth:`run_device` is not locked. TF32 is held through the shared
    :data:`~qtseg.backends.tf32.TF32_SWITCHES`, so another backend's call in
    another thread never runs with this one's TF32 setting.
    """

    name = "torch"

    def __init__(
        self,
        model: Any,
        *,
        device: str = "cpu",
        input_size: tuple[int, int] | None = None,
        options: TorchOptions | None = None,
        verify_hashes: bool = True,
        threads: int = 0,
    ) -> None:
        import torch
        from torch import nn

        if threads > 0:
            torch.set_num_threads(int(threads))
        self.options = options or TorchOptions()
        opts = self.options
        if opts.needs_cuda and not device.startswith("cuda"):
            raise BackendError(
                f"torch backend: {opts.precision}/cuda_graph/tf32 options need a CUDA device"
            )
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise NotExecutableHere(f"no CUDA GPU visible to PyTorch {torch.__version__}")
        artifact = None
        if isinstance(model, nn.Module):
            module = model
        else:
            from qtseg.checkpoint import load_checkpoint

            artifact = Path(model)
            module, spec, _ = load_checkpoint(artifact, device="cpu", verify_hashes=verify_hashes)
            input_size = input_size or spec.input_size
        super().__init__(artifact=artifact, precision=opts.precision)
        self._torch = torch
        self.device = torch.device(device)
        if input_size is None:
            config = getattr(module, "config", None)
            input_size = getattr(config, "img_size", None)
        self._hw = tuple(int(v) for v in input_size) if input_size is not None else (-1, -1)
        if not opts.transforms_model:
            # the reference: eval() recurses, so no submodule keeps batch statistics or dropout
            self.model = module.to(self.device).float().eval()
        else:
            self.model = prepare_model(module, opts, self.device)
        first = next(self.model.parameters(), None)
        self._dtype = first.dtype if first is not None else torch.float32
        # dynamic=False: one specialised graph per input shape, like the CUDA graphs.
        # The input and output conversions are compiled with the model, so Inductor
        # fuses them into its first and last kernels instead of extra passes.
        self._call = (
            torch.compile(self._run_model, mode=opts.compile, dynamic=False)
            if opts.compile
            else self._run_model
        )
        self._graphs = None
        self._serial = threading.Lock() if opts != TorchOptions() else None
        if opts.cuda_graph:
            from qtseg.backends.cuda_graph import GraphReplay

            self._graphs = GraphReplay(self._forward, device=self.device)
        if self.device.type == "cuda":
            # the bench times a backend with CUDA events when it has a device_call
            self.device_call = self._device_call

    def input_metadata(self) -> list[TensorMeta]:
        return [TensorMeta("image", (-1, 3, *self._hw), "float32")]

    def _run_model(self, x: Any) -> Any:
        """Input in the model's dtype and memory format, the model, float32 logits."""
        torch = self._torch
        if self._dtype != x.dtype:
            x = x.to(self._dtype)
        if self.options.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.model(x)
        return out if out.dtype == torch.float32 else out.float()

    def _forward(self, x: Any) -> Any:
        """float32 device tensor ``(N, 3, H, W)`` -> float32 logits (no graph)."""
        torch = self._torch
        opts = self.options
        amp = opts.precision != "fp32" and opts.autocast
        dtype = torch.float16 if opts.precision == "fp16" else torch.bfloat16
        # autocast's weight-cast cache must be off while a CUDA graph is captured
        # (cached casts would live outside the graph's memory pool)
        with (
            torch.inference_mode(),
            torch.autocast(
                self.device.type, dtype=dtype, enabled=amp, cache_enabled=not opts.cuda_graph
            ),
            TF32_SWITCHES.hold(torch, matmul=True) if opts.tf32 else contextlib.nullcontext(),
        ):
            return self._call(x)

    def run_device(self, x: Any) -> Any:
        """float32 tensor ``(N, 3, H, W)`` on the backend's device -> float32 logits there.

        With ``cuda_graph`` the result is the graph's output buffer, overwritten
        by the next call with the same shape.
        """
        return self._graphs(x) if self._graphs is not None else self._forward(x)

    def _device_call(self, x: np.ndarray) -> Any:
        """A no-argument callable running the model on ``x`` already copied to the GPU.

        Exposed as ``device_call`` on CUDA devices only.
        """
        xt = self._torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        return lambda: self.run_device(xt)

    def peak_memory_mb(self) -> float | None:
        """``torch.cuda.max_memory_allocated`` in MiB (``None`` on CPU)."""
        if self.device.type != "cuda":
            return None
        return self._torch.cuda.max_memory_allocated(self.device) / 2**20

    def _infer(self, x: np.ndarray) -> np.ndarray:
        xt = self._torch.from_numpy(x).to(self.device)
        if self._serial is None:
            return self.run_device(xt).cpu().numpy()
        with self._serial:
            return self.run_device(xt).cpu().numpy()

    def _describe(self) -> dict[str, Any]:
        torch = self._torch
        info: dict[str, Any] = {
            "device": str(self.device),
            "versions": {"torch": torch.__version__},
            "model": getattr(self.model, "model_name", type(self.model).__name__),
        }
        if self.options != TorchOptions():
            info["options"] = self.options.to_dict()
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
            info["versions"]["cuda"] = torch.version.cuda
        return info

    def _close(self) -> None:
        if self._graphs is not None:
            self._graphs.clear()
