"""The PyTorch rows of a benchmark: named :class:`~qtseg.backends.torch_backend.TorchOptions`.

On CPU the one PyTorch row is the reference a user would otherwise run:
eager FP32 through :func:`qtseg.backends.open_backend` on the checkpoint
(the same backend the export gate uses). On CUDA the rows are plain PyTorch
as a user runs it -- eager FP32, eager FP16 (``torch.autocast``), CUDA-graph
replay of both, the model as loaded -- and the tuned fast path
(:data:`~qtseg.backends.torch_backend.FAST_GPU`: FP16 weights, BatchNorm
folded, NHWC, ``torch.compile``, attention as matrix products, CUDA graph).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qtseg.backends.torch_backend import FAST_GPU, TorchBackend, TorchOptions


@dataclass(frozen=True)
class TorchVariant:
    """One way to run the PyTorch model.

    Attributes:
        name: row label, e.g. ``"graph-fp16"``.
        options: the backend options of the row.
        devices: device kinds the variant runs on.
    """

    name: str
    options: TorchOptions
    devices: tuple[str, ...]

    @property
    def precision(self) -> str:
        """``"fp32"`` or ``"fp16"`` (selects parity thresholds)."""
        return self.options.precision


VARIANTS: dict[str, TorchVariant] = {
    v.name: v
    for v in (
        TorchVariant("eager-fp32", TorchOptions(), devices=("cpu", "cuda")),
        TorchVariant("eager-fp16", TorchOptions(precision="fp16"), devices=("cuda",)),
        TorchVariant("graph-fp32", TorchOptions(cuda_graph=True), devices=("cuda",)),
        TorchVariant(
            "graph-fp16", TorchOptions(precision="fp16", cuda_graph=True), devices=("cuda",)
        ),
        TorchVariant("fast-fp16", FAST_GPU, devices=("cuda",)),
    )
}
REFERENCE_VARIANT = "eager-fp32"


def variants_for(device: str) -> list[TorchVariant]:
    """Variants that run on ``device`` (``"cpu"`` or ``"cuda[:N]"``), reference first."""
    kind = device.split(":")[0]
    return [v for v in VARIANTS.values() if kind in v.devices]


def open_variant(
    checkpoint: str | Path,
    *,
    variant: str,
    device: str = "cuda",
    input_size: tuple[int, int] | None = None,
) -> TorchBackend:
    """The checkpoint as a :class:`TorchBackend` running ``variant``.

    Raises:
        ValueError: unknown variant, or a device the variant does not run on.
        NotExecutableHere: a CUDA variant on a machine without a GPU.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown torch variant {variant!r}; known: {', '.join(VARIANTS)}")
    chosen = VARIANTS[variant]
    if device.split(":")[0] not in chosen.devices:
        raise ValueError(f"torch variant {variant} runs on {', '.join(chosen.devices)}, not {device!r}")
    return TorchBackend(checkpoint, device=device, input_size=input_size, options=chosen.options)
