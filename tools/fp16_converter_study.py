"""qtseg's FP16 rewrite vs onnxruntime's float16 converter, through the FP16 parity gate.

```
python tools/fp16_converter_study.py --out docs/measurements/fp16_converter.json
```

A measurement script (not part of the installed package). For every case
(the bundled checkpoint at 512x512, random-weight QTSeg v1/v2, HRMedSeg and
IC-MoE at test sizes, QTSeg v2 with dynamic H/W) the simplified FP32 graph
is converted three ways with the model's block list
(:func:`qtseg.export.onnx_fp16.block_list_for`):

- ``qtseg``: :func:`qtseg.export.onnx_fp16.convert_to_fp16`;
- ``onnxruntime``: ``onnxruntime.transformers.float16.convert_float_to_float16``
  with ``keep_io_types=True``, the op types as ``op_block_list`` and the
  name-pattern and ``fp32_after`` nodes as ``node_block_list`` (the
  converter appends its Casts after the last node, so the graph is sorted);
- ``onnxruntime+fold``: the same, then every ``float32 -> float16 -> float32``
  Cast pair removed (the converter casts each blocked node's output back to
  FP16, also between two blocked nodes).

Each graph is checked (onnx.checker, strict shape inference) and run through
the FP16 parity gate on ONNX Runtime CPU against PyTorch FP32 on the bundled
samples. With ``--engines`` each graph is also built as a strongly typed
TensorRT-RTX engine (ahead of time, no GPU needed).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx
import torch

import qtseg
from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend
from qtseg.backends.torch_backend import TorchBackend
from qtseg.evaluation import SampleSet, check_parity, infer_logits
from qtseg.export import onnx_graph
from qtseg.export.onnx_fp16 import BlockList, block_list_for, convert_to_fp16, precision_counts
from qtseg.export.tensorrt_engine import build_engine
from qtseg.export.wrapper import ExportIO
from qtseg.models import create
from qtseg.preprocess import PreprocessSpec
from qtseg.provenance import cpu_description, package_versions

# name -> (model, config, dynamic H/W); None config = the bundled checkpoint
CASES: dict[str, tuple[str, dict[str, Any] | None, bool]] = {
    "bundled-qtseg-v2-512": ("qtseg-v2", None, False),
    "qtseg-v2-128": ("qtseg-v2", {"img_size": (128, 128)}, False),
    "qtseg-v2-128-dynamic-hw": ("qtseg-v2", {"img_size": (128, 128)}, True),
    "qtseg-v1-128": ("qtseg-v1", {"img_size": (128, 128)}, False),
    "hrmedseg-128": ("hrmedseg", {
        "img_size": 128, "embed_dim": 32, "depth": 2, "decoder_dim": 64, "decoder_heads": 4,
        "decoder_mlp_dim": 128, "up_dims": (32, 16)}, False),
    "icmoe-64": ("icmoe", {
        "img_size": 64, "patch_size": 16, "embed_dim": 32, "depth": 2, "num_heads": 2,
        "window_size": 2, "global_attn_indexes": (1,), "prompt_dim": 32, "decoder_depth": 1,
        "decoder_heads": 2, "decoder_mlp_dim": 64, "sgcl_dim": 16}, False),
}
CONVERTERS = ("qtseg", "onnxruntime", "onnxruntime+fold")
FLOAT, FLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16


def blocked_node_names(model: onnx.ModelProto, block: BlockList) -> list[str]:
    """Names of the data-path nodes a name pattern or an ``fp32_after`` tail keeps in FP32."""
    data, tail, names = {i.name for i in model.graph.input}, set(), []
    for node in model.graph.node:
        if node.op_type in ("Shape", "Size") or not any(n in data for n in node.input):
            continue
        data.update(node.output)
        if node.op_type in block.fp32_after or any(n in tail for n in node.input):
            tail.update(node.output)
            names.append(node.name)
        elif any(p in node.name for p in block.name_patterns):
            names.append(node.name)
    return names


def topological_sort(model: onnx.ModelProto) -> None:
    """Reorder ``model.graph.node`` so that every input is produced before it is used."""
    graph = model.graph
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise ValueError("graph has a cycle")
        for node in ready:
            known.update(node.output)
        ordered += ready
        done = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in done]
    del graph.node[:]
    graph.node.extend(ordered)


def fold_cast_pairs(model: onnx.ModelProto) -> int:
    """Bypass each ``Cast(to fp32)`` of a ``Cast(fp32 -> fp16)``; drop dead nodes; count them."""
    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    types.update({v.name: v.type.tensor_type.elem_type for v in graph.input})
    types.update({t.name: t.data_type for t in graph.initializer})
    producer = {o: n for n in graph.node for o in n.output}

    def to(node: onnx.NodeProto) -> int:
        return next(a.i for a in node.attribute if a.name == "to")

    rename = {}
    for node in graph.node:
        src = producer.get(node.input[0]) if node.op_type == "Cast" else None
        if src is not None and src.op_type == "Cast" and to(node) == FLOAT and to(src) == FLOAT16 \
                and types.get(src.input[0]) == FLOAT:
            rename[node.output[0]] = src.input[0]
    for node in graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        alive = [n for n in graph.node if any(o in used for o in n.output)]
        if len(alive) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(alive)
    return len(rename)


def ort_fp16(base: onnx.ModelProto, block: BlockList, *, fold: bool) -> onnx.ModelProto:
    """onnxruntime's converter with ``block`` (op types + the nodes named by patterns/tails)."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.ModelProto()
    model.CopyFrom(base)
    # Its default op block list (Range, Min, Max, ...) is kept: without it a
    # dynamic-H/W graph gets an FP16 Range, which ONNX does not allow.
    ops = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(block.op_types))
    nodes = blocked_node_names(base, block)
    model = convert_float_to_float16(
        model, keep_io_types=True, op_block_list=ops, node_block_list=nodes
    )
    topological_sort(model)
    if fold:
        fold_cast_pairs(model)
    return model


def _case_model(
    model_name: str, config: dict[str, Any] | None
) -> tuple[torch.nn.Module, PreprocessSpec]:
    if config is None:
        return qtseg.load()
    torch.manual_seed(0)
    model = create(model_name, **config).eval()
    gen = torch.Generator().manual_seed(0)
    for mod in model.modules():  # non-trivial BatchNorm statistics, as in the tests
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.copy_(torch.rand(mod.num_features, generator=gen) - 0.5)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=gen) + 0.5)
    size = model.config.img_size
    return model, PreprocessSpec(input_size=tuple(size))


def run_case(name: str, *, num_samples: int, engines: bool, tmp: Path) -> dict[str, Any]:
    """Convert one case three ways and gate each graph; returns a JSON-ready dict."""
    model_name, config, dynamic_hw = CASES[name]
    model, spec = _case_model(model_name, config)
    samples = SampleSet.from_folder(qtseg.SAMPLES_DIR / "images", spec, limit=num_samples)
    io_spec = ExportIO(spec.input_size, spec.num_classes, dynamic_hw=dynamic_hw)
    base = onnx_graph.simplify(onnx_graph.export_fp32(model, io_spec))
    onnx_graph.set_io_shapes(base, io_spec)
    with TorchBackend(model, input_size=spec.input_size) as ref:
        reference = infer_logits(ref, samples.x)
    block = block_list_for(model_name)
    rows: dict[str, Any] = {
        "model": model_name, "dynamic_hw": dynamic_hw, "block_list": block.to_dict()
    }
    for conv in CONVERTERS:
        row: dict[str, Any] = {}
        try:
            graph = convert_to_fp16(base, block=block) if conv == "qtseg" else \
                ort_fp16(base, block, fold=conv.endswith("+fold"))
            row.update(nodes=len(graph.graph.node), precision=precision_counts(graph))
            onnx_graph.check_graph(graph, io_spec)
            path = tmp / f"{name}-{conv}.onnx"
            path.write_bytes(onnx_graph.serialize(graph))
            with OnnxRuntimeBackend(path, threads=1) as be:
                result = check_parity(reference, be, samples, spec, precision="fp16", label=conv)
            keys = ("passed", "max_abs_diff", "mean_abs_diff", "agreement", "dice_delta_pp")
            row["parity"] = {k: getattr(result, k) for k in (*keys, "failures")}
            if engines and not dynamic_hw:
                info = build_engine(path, path.with_suffix(".engine"), library="tensorrt_rtx")
                row["trtrtx_engine_bytes"] = info["engine_bytes"]
        except Exception as exc:  # a converter's failure is a measurement result
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        print(name, conv, json.dumps(row, default=float), flush=True)
        rows[conv] = row
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the cases and write the JSON."""
    p = argparse.ArgumentParser(prog="python tools/fp16_converter_study.py")
    p.add_argument("--cases", default=",".join(CASES), help="comma list of case names")
    p.add_argument("--num-samples", type=int, default=8)
    p.add_argument("--engines", action="store_true", help="also build TensorRT-RTX engines")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    report: dict[str, Any] = {
        "command": " ".join(["python tools/fp16_converter_study.py", *(argv or sys.argv[1:])]),
        "versions": package_versions(),
        "cpu": cpu_description(),
        "cases": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            report["cases"][name] = run_case(
                name, num_samples=args.num_samples, engines=args.engines, tmp=Path(tmp)
            )
    args.out.write_text(json.dumps(report, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
