"""FP32 ONNX -> explicit-precision FP16 ONNX (own graph rewrite, no extra dependency).

Every node on the data path (anything computed from the ``image`` input,
not through ``Shape``) runs in FP16: its float inputs are FP16 and its float
outputs are FP16. Nodes on the block list run in FP32 with ``Cast`` nodes
inserted at the boundaries. Float initializers whose consumers all want FP16
are stored as FP16; shape arithmetic and constant subgraphs are left alone.
Graph I/O stays float32 unless ``io_fp16``.

The result is *strongly typed*: TensorRT (STRONGLY_TYPED networks) and
TensorRT-RTX build exactly these precisions, so the ONNX file is the precise
description of what the engine computes.

The default block list was decided by measurement (docs/export.md,
"FP16 block list"): LayerNormalization (single-op LayerNorm, which every
runtime accumulates in FP32 when its input is FP32) and the DANet channel
attention (its ``C x C`` affinity sums ``H*W`` products and overflows FP16 at
512x512; the PyTorch model computes it in FP32 for the same reason). Models
that need more name it in :data:`MODEL_BLOCK_LISTS` (:func:`block_list_for`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from qtseg.export.onnx_graph import Step, check_graph, set_io_shapes
from qtseg.export.wrapper import ExportIO

# Inputs that keep their FP32 type even on FP16 nodes (Resize roi/scales).
KEEP_FP32_SLOTS: dict[str, frozenset[int]] = {"Resize": frozenset({1, 2})}
_NON_DATA_OPS = frozenset({"Shape", "Size"})


@dataclass(frozen=True)
class BlockList:
    """Nodes kept in FP32: by op type, by a substring of the node name, or downstream.

    Attributes:
        op_types: ONNX op types computed in FP32 (e.g. ``"LayerNormalization"``).
        name_patterns: substrings of node names (module scopes such as
            ``"/channel/"``) whose nodes are computed in FP32.
        fp32_after: op types that start an FP32 tail: such a node and every
            data-path node computed from its output run in FP32 (e.g. a
            probability head after ``"Sigmoid"``).
    """

    op_types: tuple[str, ...] = ()
    name_patterns: tuple[str, ...] = ()
    fp32_after: tuple[str, ...] = ()

    def blocks(self, node: Any) -> bool:
        """True if ``node`` must run in FP32 by op type or name (tails: :func:`convert_to_fp16`)."""
        return node.op_type in self.op_types or any(p in node.name for p in self.name_patterns)

    def to_dict(self) -> dict[str, list[str]]:
        """JSON-ready form (recorded in the manifest); ``fp32_after`` only when set."""
        out = {"op_types": list(self.op_types), "name_patterns": list(self.name_patterns)}
        if self.fp32_after:
            out["fp32_after"] = list(self.fp32_after)
        return out


DEFAULT_BLOCK_LIST = BlockList(op_types=("LayerNormalization",), name_patterns=("/channel/",))

# Models that need more than the default, by registered name.
MODEL_BLOCK_LISTS: dict[str, BlockList] = {
    # IC-MoE's head maps the fused probability p to logits log p - log(1 - p)
    # with p clamped to [1e-6, 1 - 1e-6]; 1 - 1e-6 rounds to 1.0 in FP16, so a
    # confident pixel gives an infinite logit. The voting (p > 0.5 decisions,
    # candidate scores) is kept in FP32 with it: from the experts' sigmoids on.
    "icmoe": BlockList(
        op_types=DEFAULT_BLOCK_LIST.op_types,
        name_patterns=DEFAULT_BLOCK_LIST.name_patterns,
        fp32_after=("Sigmoid",),
    ),
}


def block_list_for(model_name: str) -> BlockList:
    """FP32 block list of a registered model (:data:`DEFAULT_BLOCK_LIST` unless listed)."""
    return MODEL_BLOCK_LISTS.get(model_name, DEFAULT_BLOCK_LIST)


def _float_types(model: Any) -> dict[str, int]:
    """Element type of every tensor name the graph knows (after shape inference)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    types: dict[str, int] = {}
    for vi in list(graph.value_info) + list(graph.input) + list(graph.output):
        types[vi.name] = vi.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    types[node.output[0]] = attr.t.data_type
    return types


def _to_fp16_tensor(tensor: Any) -> Any:
    """FP16 copy of an FP32 TensorProto (same name)."""
    from onnx import numpy_helper

    arr = numpy_helper.to_array(tensor).astype(np.float16)
    return numpy_helper.from_array(arr, tensor.name)


def convert_to_fp16(model: Any, *, block: BlockList = DEFAULT_BLOCK_LIST, io_fp16: bool = False) -> Any:
    """Return an FP16 copy of an FP32 ``onnx.ModelProto``.

    Args:
        model: FP32 model with one float32 input and one float32 output.
        block: nodes kept in FP32.
        io_fp16: make the graph input and output float16 too.

    Returns:
        A new ``onnx.ModelProto`` (the input model is not modified).
    """
    import onnx
    from onnx import TensorProto, helper

    FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
    src = onnx.ModelProto()
    src.CopyFrom(model)
    graph = src.graph
    types = _float_types(src)
    nodes = list(graph.node)

    # Pass 1: which nodes are on the data path, in which precision, and what
    # dtype each of their float inputs must have.
    data = {i.name for i in graph.input}
    tail: set[str] = set()  # data-path tensors inside an FP32 tail (block.fp32_after)
    mode: list[int | None] = []
    wants: dict[str, set[int]] = defaultdict(set)
    for node in nodes:
        on_path = node.op_type not in _NON_DATA_OPS and any(n in data for n in node.input if n)
        if not on_path:
            # Off the data path (shape math, constant branches such as the
            # query-token projections of a dynamic-batch graph): left in FP32.
            mode.append(None)
            for name in node.input:
                if name and types.get(name) == FLOAT:
                    wants[name].add(FLOAT)
            continue
        data.update(node.output)
        in_tail = node.op_type in block.fp32_after or any(n in tail for n in node.input if n)
        if in_tail:
            tail.update(node.output)
        precision = FLOAT if in_tail or block.blocks(node) else FLOAT16
        mode.append(precision)
        keep = KEEP_FP32_SLOTS.get(node.op_type, frozenset())
        for slot, name in enumerate(node.input):
            if name and types.get(name) == FLOAT:
                wants[name].add(FLOAT if slot in keep else precision)

    # Constants (initializers, Constant nodes) wanted only as FP16 are stored as FP16.
    dtype: dict[str, int] = {name: t for name, t in types.items()}
    inits = {t.name: t for t in graph.initializer}
    for name, want in wants.items():
        if want == {FLOAT16} and name in inits and inits[name].data_type == FLOAT:
            inits[name].CopyFrom(_to_fp16_tensor(inits[name]))
            dtype[name] = FLOAT16
    for node, m in zip(nodes, mode):
        if m is None and node.op_type == "Constant" and wants.get(node.output[0]) == {FLOAT16}:
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == FLOAT:
                    attr.t.CopyFrom(_to_fp16_tensor(attr.t))
                    dtype[node.output[0]] = FLOAT16

    input_name, output_name = graph.input[0].name, graph.output[0].name
    if io_fp16:
        dtype[input_name] = FLOAT16
        graph.input[0].type.tensor_type.elem_type = FLOAT16

    # Pass 2: emit nodes with Casts where the produced and wanted dtypes differ.
    casts: dict[tuple[str, int], str] = {}
    out_nodes = []

    def cast_to(name: str, to: int) -> str:
        key = (name, to)
        if key not in casts:
            suffix = "fp16" if to == FLOAT16 else "fp32"
            casts[key] = f"{name}__{suffix}"
            out_nodes.append(
                helper.make_node("Cast", [name], [casts[key]], name=f"{name}__cast_{suffix}", to=to)
            )
        return casts[key]

    for node, m in zip(nodes, mode):
        if m is None:
            out_nodes.append(node)
            continue
        keep = KEEP_FP32_SLOTS.get(node.op_type, frozenset())
        for slot, name in enumerate(node.input):
            if not name or types.get(name) != FLOAT:
                continue
            want = FLOAT if slot in keep else m
            if dtype.get(name, FLOAT) != want:
                node.input[slot] = cast_to(name, want)
        if node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to" and attr.i == FLOAT:
                    attr.i = m
        for name in node.output:
            if types.get(name) == FLOAT:
                dtype[name] = m
        out_nodes.append(node)

    out_type = FLOAT16 if io_fp16 else FLOAT
    if dtype.get(output_name) != out_type:
        # Rename the producer's output and cast it back to the graph's output name.
        internal = f"{output_name}__{'fp16' if out_type == FLOAT else 'fp32'}"
        for node in out_nodes:
            node.output[:] = [internal if o == output_name else o for o in node.output]
            node.input[:] = [internal if i == output_name else i for i in node.input]
        out_nodes.append(helper.make_node("Cast", [internal], [output_name], name=f"{output_name}__cast", to=out_type))
    graph.output[0].type.tensor_type.elem_type = out_type

    del graph.node[:]
    graph.node.extend(out_nodes)
    del graph.value_info[:]
    return src


def precision_counts(model: Any) -> dict[str, int]:
    """How many compute nodes run in FP16 and FP32 (Casts and shape ops excluded)."""
    import onnx

    types = _float_types(model)
    counts = {"fp16": 0, "fp32": 0, "cast": 0}
    for node in model.graph.node:
        if node.op_type == "Cast":
            counts["cast"] += 1
            continue
        out = types.get(node.output[0]) if node.output else None
        if out == onnx.TensorProto.FLOAT16:
            counts["fp16"] += 1
        elif out == onnx.TensorProto.FLOAT:
            counts["fp32"] += 1
    return counts


def fp16_graph(
    base: Any, io_spec: ExportIO, *, block: BlockList, io_fp16: bool, step: Step
) -> tuple[Any, dict[str, int]]:
    """FP16 graph (explicit precision, ``block`` in FP32) derived from the FP32 graph ``base``.

    Returns:
        ``(model, precision_counts(model))``.
    """
    import onnx

    tails = tuple(f"everything after {t}" for t in block.fp32_after)
    label = ", ".join(block.op_types + block.name_patterns + tails) or "none"
    with step(f"convert to FP16 (FP32 kept for: {label}; I/O {'fp16' if io_fp16 else 'fp32'})"):
        model = convert_to_fp16(base, block=block, io_fp16=io_fp16)
        if io_fp16:
            set_io_shapes(model, io_spec, io_dtype=onnx.TensorProto.FLOAT16)
    with step("check FP16 graph (onnx.checker, strict shape inference)"):
        check_graph(model, io_spec)
    return model, precision_counts(model)
