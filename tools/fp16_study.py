"""Measure FP16 block-list candidates on real images: ``python tools/fp16_study.py``.

For each candidate block list the FP32 graph of a checkpoint is converted
to FP16, run on ONNX Runtime CPU and compared with PyTorch FP32 through the
parity gate. It also records the largest channel-attention affinity value
seen in PyTorch FP32 (FP16 overflows above 65504). This is how the default
block list in :mod:`qtseg.export.onnx_fp16` was chosen (docs/export.md).

Caveat: ONNX Runtime's CPU provider has FP16 kernels for only some ops
(MatMul, Gemm, Add, Mul, some Conv) and runs the rest in FP32 behind
inserted Casts, so these numbers bound, but do not equal, a GPU's FP16 error.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from qtseg.export.onnx_fp16 import BlockList

CANDIDATES: dict[str, BlockList] = {
    "none": BlockList(),
    "layernorm": BlockList(op_types=("LayerNormalization",)),
    "layernorm+channel-attn": BlockList(op_types=("LayerNormalization",), name_patterns=("/channel/",)),
    "layernorm+channel-attn+softmax": BlockList(
        op_types=("LayerNormalization", "Softmax"), name_patterns=("/channel/",)
    ),
    "layernorm+channel-attn+softmax+reduce+resize": BlockList(
        op_types=("LayerNormalization", "Softmax", "ReduceMean", "ReduceMax", "Resize"),
        name_patterns=("/channel/",),
    ),
}


def channel_affinity_peak(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Largest |C x C affinity| of every ChannelAttention module on input ``x`` (FP32)."""
    from qtseg.models.qtseg_v2 import ChannelAttention

    peak = 0.0

    def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal peak
        flat = args[0].flatten(2).float()
        peak = max(peak, float((flat @ flat.transpose(1, 2)).abs().max()))

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, ChannelAttention)]
    with torch.inference_mode():
        for i in range(x.shape[0]):
            model(x[i : i + 1])
    for h in handles:
        h.remove()
    return peak


def main(argv: Sequence[str] | None = None) -> int:
    """Print one parity line per candidate block list."""
    from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend
    from qtseg.backends.torch_backend import TorchBackend
    from qtseg.checkpoint import load_checkpoint
    from qtseg.evaluation import SampleSet, check_parity, infer_logits
    from qtseg.export import onnx_graph
    from qtseg.export.onnx_fp16 import convert_to_fp16
    from qtseg.export.wrapper import ExportIO

    p = argparse.ArgumentParser(prog="python tools/fp16_study.py")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--samples", required=True)
    p.add_argument("--num-samples", type=int, default=8)
    p.add_argument("--candidates", default=",".join(CANDIDATES), help="comma list of candidate names")
    args = p.parse_args(argv)

    model, spec, _ = load_checkpoint(args.checkpoint)
    samples = SampleSet.from_folder(args.samples, spec, limit=args.num_samples)
    peak = channel_affinity_peak(model, torch.from_numpy(samples.x))
    print(f"channel-attention affinity peak (FP32): {peak:.4g} (FP16 max 65504)")
    io_spec = ExportIO(spec.input_size, spec.num_classes)
    base = onnx_graph.simplify(onnx_graph.export_fp32(model, io_spec))
    onnx_graph.set_io_shapes(base, io_spec)
    with TorchBackend(model, input_size=spec.input_size) as ref:
        reference = infer_logits(ref, samples.x)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.candidates.split(","):
            fp16 = convert_to_fp16(base, block=CANDIDATES[name])
            path = Path(tmp) / f"{name}.onnx"
            path.write_bytes(onnx_graph.serialize(fp16))
            with OnnxRuntimeBackend(path) as be:
                r = check_parity(reference, be, samples, spec, precision="fp16", label=name)
            print(r.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
