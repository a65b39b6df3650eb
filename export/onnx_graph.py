"""PyTorch -> FP32 ONNX: export, simplify, fix I/O, check, stamp metadata.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)``.
Measured with torch 2.13 on QTSeg v2 (128x128, 2 CPU cores): it takes ~3-8 s,
emits opset 17 with one ``LayerNormalization`` node per LayerNorm (19) and
byte-identical files on repeated runs. The dynamo exporter gave the same 19
LayerNormalization nodes and identical bytes too, but took ~30-40 s, could
not produce opset 17 (its version converter failed, leaving opset 18) and
ignored a size-1 dynamic batch; see docs/export.md.

Simplifier: onnxslim (pure Python, already in the ``ort`` extra, deterministic
output, standard-domain ops only). onnx-simplifier needs a native build that
has no wheels for every Python we support.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch

from qtseg.export.wrapper import INPUT_NAME, OUTPUT_NAME, ExportIO, assert_eval, prepare
from qtseg.manifest import TensorMeta

Step = Callable[[str], AbstractContextManager[Any]]
"""A progress step: ``with step("what") : ...`` prints the step and its time."""

MIN_OPSET = 17
MAX_OPSET = 20  # highest opset of the TorchScript exporter in torch 2.4 .. 2.13
METADATA_PREFIX = "qtseg."


class GraphCheckError(RuntimeError):
    """The exported ONNX graph fails onnx.checker or shape inference."""


def export_fp32(model: torch.nn.Module, io_spec: ExportIO, *, opset: int = MIN_OPSET) -> Any:
    """Trace ``model`` to an FP32 ``onnx.ModelProto`` with named, shaped I/O.

    The whole module tree is put in eval mode first and checked to still be
    in eval mode afterwards (see :mod:`qtseg.export.wrapper`).
    """
    import onnx

    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset must be in [{MIN_OPSET}, {MAX_OPSET}], got {opset}")
    wrapper = prepare(model)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Tracer warnings about shape-dependent Python branches are expected:
        # the positional-encoding branch is resolved per export on purpose.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (io_spec.example_input(),),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_axes=io_spec.dynamic_axes() or None,
            do_constant_folding=True,
            training=torch.onnx.TrainingMode.EVAL,
            dynamo=False,
        )
    assert_eval(wrapper)
    model_proto = onnx.load_from_string(buffer.getvalue())
    set_io_shapes(model_proto, io_spec)
    return model_proto


def fp32_graph(
    model: torch.nn.Module, io_spec: ExportIO, *, opset: int, slim: bool, step: Step, batch_label: str
) -> Any:
    """Exported, simplified (``slim``: with onnxslim) and checked FP32 graph of ``model``."""
    with step(f"export PyTorch -> ONNX (opset {opset}, {batch_label}, TorchScript exporter)"):
        proto = export_fp32(model, io_spec, opset=opset)
    if slim:
        with step("simplify with onnxslim"):
            proto = simplify(proto)
            set_io_shapes(proto, io_spec)
    with step("check graph (onnx.checker, strict shape inference)"):
        check_graph(proto, io_spec)
    return proto


def io_metadata(model: Any) -> tuple[list[TensorMeta], list[TensorMeta]]:
    """Input and output :class:`TensorMeta` of an ONNX model (``-1`` for symbolic dims)."""
    import onnx

    def meta(value: Any) -> TensorMeta:
        t = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
        return TensorMeta(value.name, tuple(d.dim_value if not d.dim_param else -1 for d in t.shape.dim), dtype)

    return [meta(v) for v in model.graph.input], [meta(v) for v in model.graph.output]


def set_io_shapes(model: Any, io_spec: ExportIO, *, io_dtype: int | None = None) -> None:
    """Rewrite the graph's input/output shapes (and optionally dtypes) in place."""
    graph = model.graph
    for value, dims in ((graph.input[0], io_spec.input_shape()), (graph.output[0], io_spec.output_shape())):
        tensor_type = value.type.tensor_type
        if io_dtype is not None:
            tensor_type.elem_type = io_dtype
        tensor_type.shape.ClearField("dim")
        for d in dims:
            dim = tensor_type.shape.dim.add()
            if isinstance(d, str):
                dim.dim_param = d
            else:
                dim.dim_value = int(d)


def simplify(model: Any) -> Any:
    """Constant folding, dead-node elimination and fusions with onnxslim."""
    import onnxslim

    return onnxslim.slim(model)


def check_graph(model: Any, io_spec: ExportIO) -> None:
    """``onnx.checker`` (full) + strict shape inference; the output shape must match.

    Raises:
        GraphCheckError: with the checker's or inference's first message line.
    """
    import onnx

    try:
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise GraphCheckError(f"ONNX check failed: {str(exc).strip().splitlines()[0]}") from None
    names = ([i.name for i in inferred.graph.input], [o.name for o in inferred.graph.output])
    if names != ([INPUT_NAME], [OUTPUT_NAME]):
        raise GraphCheckError(f"graph I/O must be ['{INPUT_NAME}'] -> ['{OUTPUT_NAME}'], got {names}")
    dims = [
        d.dim_param or d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim
    ]
    if dims != io_spec.output_shape():
        raise GraphCheckError(f"output shape {dims} != expected {io_spec.output_shape()}")


def set_metadata(model: Any, items: dict[str, Any]) -> None:
    """Replace ``metadata_props`` with ``qtseg.<key>`` entries (sorted, strings)."""
    import json

    del model.metadata_props[:]
    for key in sorted(items):
        value = items[key]
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        entry = model.metadata_props.add()
        entry.key = METADATA_PREFIX + key
        entry.value = text
    model.producer_name = "qtseg.export"


def read_metadata(model: Any) -> dict[str, str]:
    """``qtseg.*`` metadata of an ONNX model, prefix stripped."""
    return {
        p.key[len(METADATA_PREFIX):]: p.value
        for p in model.metadata_props
        if p.key.startswith(METADATA_PREFIX)
    }


def serialize(model: Any) -> bytes:
    """Deterministic protobuf bytes of a model."""
    return model.SerializeToString(deterministic=True)
