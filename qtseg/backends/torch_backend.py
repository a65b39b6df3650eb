"""PyTorch backend: a checkpoint directory or an ``nn.Module``, on CPU or CUDA.

This is the FP32 reference every exported artifact is compared with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qtseg.backends.base import Backend, BackendError, TensorMeta


class TorchBackend(Backend):
    """Run a qtseg model in PyTorch (FP32, eval mode, no autograd).

    Arguments:
        model: checkpoint directory (see :mod:`qtseg.checkpoint`) or an ``nn.Module``.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        input_size: ``(H, W)`` the input metadata states; default: the
            checkpoint's preprocessing size, or ``model.config.img_size``.
        threads: intra-op CPU threads (0 = torch default). This sets
            ``torch.set_num_threads`` for the whole process.
    """

    name = "torch"

    def __init__(
        self,
        model: Any,
        *,
        device: str = "cpu",
        input_size: tuple[int, int] | None = None,
        threads: int = 0,
    ) -> None:
        import torch
        from torch import nn

        if threads > 0:
            torch.set_num_threads(int(threads))

        artifact = None
        if isinstance(model, nn.Module):
            module = model
        else:
            from qtseg.checkpoint import load_checkpoint

            artifact = Path(model)
            module, spec, _ = load_checkpoint(artifact, device="cpu")
            input_size = input_size or spec.input_size
        super().__init__(artifact=artifact, precision="fp32")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError("torch backend: CUDA requested but torch.cuda.is_available() is False")
        self._torch = torch
        self.device = torch.device(device)
        # eval() recurses, so no submodule keeps batch statistics or dropout.
        self.model = module.to(self.device).float().eval()
        if input_size is None:
            config = getattr(module, "config", None)
            input_size = getattr(config, "img_size", None)
        self._hw = tuple(int(v) for v in input_size) if input_size is not None else (-1, -1)

    def input_metadata(self) -> list[TensorMeta]:
        return [TensorMeta("image", (-1, 3, *self._hw), "float32")]

    def _infer(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            out = self.model(torch.from_numpy(x).to(self.device))
        return out.float().cpu().numpy()

    def _describe(self) -> dict[str, Any]:
        return {
            "device": str(self.device),
            "versions": {"torch": self._torch.__version__},
            "model": getattr(self.model, "model_name", type(self.model).__name__),
        }
