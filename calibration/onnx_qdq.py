"""Explicit INT8 (QDQ) ONNX graphs: ranges from a calibration set, then quantization.

Two steps, so that the accuracy guard can re-quantize with other layers kept
in float without re-running calibration:

1. :func:`calibrate_ranges` runs the FP32 graph on the calibration set in
   ONNX Runtime and stores one range per tensor (a JSON range table).
2. :func:`quantize_qdq` writes the QDQ graph from the table: INT8 weights,
   symmetric, per output channel; INT8 activations, symmetric, per tensor;
   biases INT32 with scale ``s_in * s_w`` (what ONNX Runtime's CPU kernels
   fuse into ``QLinearConv``). Nodes listed in ``exclude`` stay float.

:func:`tensorrt_form` turns that graph into the form TensorRT parses: the
INT32 bias ``DequantizeLinear`` nodes are folded back into float biases
(TensorRT rejects INT32 Q/DQ and adds biases in float anyway); every weight
and activation scale stays exactly as calibrated.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qtseg.atomic import strict_json_loads
from qtseg.calibration.artifact import CalibrationSet, validate_set
from qtseg.calibration.histogram import bounded_collector
from qtseg.calibration.methods import CalibrationMethod

# Compute-heavy ops plus the element-wise ops between them, so that ONNX
# Runtime can keep whole Conv -> SiLU -> Conv chains in INT8. Softmax and
# LayerNormalization stay float: their outputs feed quantized MatMul/Gemm
# inputs, which is where the INT8 speed is.
QUANT_OP_TYPES = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Mul", "Sigmoid", "Concat", "MaxPool", "Resize")


@dataclass(frozen=True)
class QdqSettings:
    """How the QDQ graph is quantized.

    Attributes:
        op_types: op types whose inputs (and outputs) get Q/DQ pairs.
        per_channel: per-output-channel weight scales.
        quantize_bias: INT32 biases (ONNX Runtime CPU fusion); folded for TensorRT.
        chunk: calibration images per range-collection chunk (bounds memory).
        activations: ``"int8"`` (symmetric, the TensorRT form; the default) or
            ``"uint8"`` (asymmetric; ONNX Runtime's fast x86 form without
            VNNI, not accepted by TensorRT; used for comparisons only).
    """

    op_types: tuple[str, ...] = QUANT_OP_TYPES
    per_channel: bool = True
    quantize_bias: bool = True
    chunk: int = 4
    activations: str = "int8"

    def __post_init__(self) -> None:
        if self.activations not in ("int8", "uint8"):
            raise ValueError(f"activations must be 'int8' or 'uint8', got {self.activations!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (plus the fixed parts of the scheme)."""
        data = asdict(self)
        data.pop("chunk")
        data.update(
            {
                "format": "QDQ",
                "weights": "int8 symmetric, per output channel",
                "activations": "int8 symmetric (zero point 0), per tensor"
                if self.activations == "int8" else "uint8 asymmetric, per tensor",
                "bias": "int32, scale = input scale * weight scale" if self.quantize_bias else "float",
            }
        )
        return data


@contextlib.contextmanager
def _quiet() -> Any:
    """Silence onnxruntime.quantization's prints and warnings."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def input_name(onnx_path: str | Path) -> str:
    """Name of the graph's first input."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    return next(i.name for i in model.graph.input if i.name not in initializers)


def calibrate_ranges(
    onnx_path: str | Path,
    calib: CalibrationSet,
    method: CalibrationMethod,
    out_file: str | Path,
    *,
    settings: QdqSettings = QdqSettings(),
    workdir: str | Path,
) -> dict[str, Any]:
    """Collect per-tensor ranges of the FP32 graph on the set; write the range table.

    Args:
        onnx_path: FP32 graph (static or dynamic batch).
        calib: the calibration set (validated here).
        method: how ranges are read off the activations.
        out_file: JSON range table to write.
        settings: op types to calibrate and the chunk size.
        workdir: scratch folder for the augmented graph.

    Returns:
        ``{"method", "images", "tensors", "seconds"}``.
    """
    from onnxruntime.quantization.calibrate import create_calibrator

    from qtseg.calibration.readers import ort_reader

    validate_set(calib)
    ort_method, options = method.ort()
    collector = bounded_collector(method, options)
    start = time.perf_counter()
    reader = ort_reader(calib, input_name(onnx_path))
    with _quiet():
        calibrator = create_calibrator(
            Path(onnx_path),
            list(settings.op_types),
            augmented_model_path=str(Path(workdir) / "augmented.onnx"),
            calibrate_method=ort_method,
            extra_options=options,
        )
        if collector is not None:
            calibrator.collector = collector
        for begin in range(0, len(reader), settings.chunk):
            reader.set_range(begin, begin + settings.chunk)
            calibrator.collect_data(reader)
        table = calibrator.compute_data()
    count = write_ranges(table, method, out_file)
    return {
        "method": method.label,
        "images": len(calib),
        "tensors": count,
        "seconds": round(time.perf_counter() - start, 2),
    }


def quantize_qdq(
    onnx_path: str | Path,
    out_path: str | Path,
    ranges_file: str | Path,
    method: CalibrationMethod,
    *,
    exclude: Iterable[str] = (),
    settings: QdqSettings = QdqSettings(),
) -> dict[str, Any]:
    """Write the QDQ graph of ``onnx_path`` from a range table (no calibration run).

    Args:
        onnx_path: the FP32 graph the ranges were collected on.
        out_path: where to write the QDQ graph.
        ranges_file: from :func:`calibrate_ranges` with the same ``method``.
        method: must match the table.
        exclude: node names kept in float.
        settings: op types and scheme.

    Returns:
        Counts of quantized and float nodes, for the manifest.
    """
    excluded = sorted(set(exclude))
    start = time.perf_counter()
    with _quiet():
        _quantize_from_table(onnx_path, out_path, ranges_file, method, excluded, settings)
    counts = qdq_counts(out_path)
    counts["excluded_nodes"] = len(excluded)
    counts["seconds"] = round(time.perf_counter() - start, 2)
    return counts


RANGES_SCHEMA = "qtseg.ranges/1"


def write_ranges(table: Any, method: CalibrationMethod, path: str | Path) -> int:
    """Store an onnxruntime ``TensorsData`` as ``{"ranges": {tensor: [low, high]}}`` JSON."""
    import json

    # Some calibrators return 1-element arrays; min/max keeps any wider array conservative.
    ranges = {
        name: [float(np.min(d.range_value[0])), float(np.max(d.range_value[1]))] for name, d in table.data.items()
    }
    doc = {"schema": RANGES_SCHEMA, "method": method.label, "ranges": ranges}
    Path(path).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return len(ranges)


def read_ranges(path: str | Path, method: CalibrationMethod) -> dict[str, tuple[float, float]]:
    """Ranges written by :func:`write_ranges`; the method must match."""
    doc = strict_json_loads(Path(path).read_bytes())  # a NaN bound would become a NaN scale
    if not isinstance(doc, dict) or doc.get("schema") != RANGES_SCHEMA:
        raise ValueError(f"{path} is not a qtseg range table")
    if doc.get("method") != method.label:
        raise ValueError(f"{path} holds {doc.get('method')} ranges, not {method.label}")
    return {k: (float(v[0]), float(v[1])) for k, v in doc["ranges"].items()}


def _quantize_from_table(
    onnx_path: str | Path, out_path: str | Path, ranges_file: str | Path, method: CalibrationMethod,
    excluded: list[str], settings: QdqSettings,
) -> None:
    """What ``quantize_static`` does after calibration, fed from a stored range table.

    Uses onnxruntime's QDQ quantizer directly (available in every release
    with QDQ support), so no calibration pass is repeated.
    """
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.calibrate import TensorData, TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer

    ort_method, _ = method.ort()
    activation = QuantType.QInt8 if settings.activations == "int8" else QuantType.QUInt8
    options = {
        "ActivationSymmetric": settings.activations == "int8",
        "WeightSymmetric": True,
        "QuantizeBias": settings.quantize_bias,
    }
    ranges = read_ranges(ranges_file, method)
    table = TensorsData(
        ort_method,
        {k: TensorData(lowest=np.float32(lo), highest=np.float32(hi)) for k, (lo, hi) in ranges.items()},
    )
    model = load_model_with_shape_infer(Path(onnx_path))
    options["TensorQuantOverrides"] = _per_tensor_matmul_constants(model)
    quantizer = QDQQuantizer(
        model, settings.per_channel, False, QuantType.QInt8, activation, table, [], excluded,
        list(settings.op_types), options,
    )
    quantizer.quantize_model()
    quantizer.model.save_model_to_file(str(out_path), False)


def _per_tensor_matmul_constants(model: Any) -> dict[str, list[dict[str, Any]]]:
    """Per-tensor overrides for constants on a MatMul's *first* input.

    onnxruntime's QDQ quantizer makes every constant MatMul input per-channel
    along axis 1 -- right for a weight ``B`` ``(K, N)``, wrong for a constant
    ``A`` (QTSeg's learned tokens, folded by onnxslim): ONNX Runtime 1.30's
    ``QLinearMatMul`` rejects a per-channel ``A`` ("input zero point must be a
    scalar"), and TensorRT quantizes only weights per channel.
    """
    from onnxruntime.quantization import QuantType

    constants = {i.name for i in model.graph.initializer}
    return {
        node.input[0]: [{"quant_type": QuantType.QInt8, "symmetric": True}]
        for node in model.graph.node
        if node.op_type == "MatMul" and node.input[0] in constants
    }


def qdq_counts(path: str | Path) -> dict[str, Any]:
    """How many compute nodes read INT8 (DequantizeLinear) inputs, and how many do not."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    producers = {out: node.op_type for node in model.graph.node for out in node.output}
    int8, flt = 0, 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            if producers.get(node.input[0]) == "DequantizeLinear":
                int8 += 1
            else:
                flt += 1
    q = sum(1 for n in model.graph.node if n.op_type == "QuantizeLinear")
    return {"int8_compute_nodes": int8, "float_compute_nodes": flt, "quantize_nodes": q}


def keep_float(model: Any, fp32: Any, nodes: Iterable[str]) -> Any:
    """Copy of a QDQ graph with ``nodes`` computing in float (no calibration, no re-quantization).

    Each listed node is rewired to read the float tensors its
    ``DequantizeLinear`` inputs stood for: the same input of the same node
    in the FP32 graph ``fp32`` (activations keep their names through
    quantization; weights and biases are copied from ``fp32``).
    Q/DQ nodes and initializers left without consumers are removed. The
    result equals quantizing with those nodes excluded, but takes a
    fraction of a second instead of a full quantizer run.

    Args:
        model: ``onnx.ModelProto`` from :func:`quantize_qdq`.
        fp32: the FP32 ``onnx.ModelProto`` it was quantized from.
        nodes: names of the nodes to keep in float.
    """
    import onnx

    out = onnx.ModelProto()
    out.CopyFrom(model)
    wanted = set(nodes)
    if not wanted:
        return out
    graph = out.graph
    producer = {o: n for n in graph.node for o in n.output}
    inits = {i.name for i in graph.initializer}
    float_inits = {i.name: i for i in fp32.graph.initializer}
    float_inputs = {n.name: list(n.input) for n in fp32.graph.node}
    for node in graph.node:
        if node.name not in wanted:
            continue
        original = float_inputs.get(node.name)
        if original is None or len(original) != len(node.input):
            raise ValueError(f"node {node.name!r} of the QDQ graph has no counterpart in the FP32 graph")
        for k, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            source = original[k]
            if source in float_inits:
                # The bias DequantizeLinear may output the original name itself.
                target = source + "_float" if source in producer else source
                if target not in inits:
                    tensor = onnx.TensorProto()
                    tensor.CopyFrom(float_inits[source])
                    tensor.name = target
                    graph.initializer.append(tensor)
                    inits.add(target)
                source = target
            node.input[k] = source
    _float_outputs(graph, wanted)
    _prune(graph)
    return out


def _float_outputs(graph: Any, wanted: set[str]) -> None:
    """Graph outputs produced by a kept node through Q -> DQ: let the node write them directly."""
    producer = {o: n for n in graph.node for o in n.output}
    for output in graph.output:
        dq = producer.get(output.name)
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        src = producer.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
        if src is None or src.name not in wanted:
            continue
        old = q.input[0]
        for node in graph.node:
            if node is not q:
                for k, name in enumerate(node.input):
                    if name == old:
                        node.input[k] = output.name
        dq.output[0] = dq.output[0] + "_unused"
        src.output[list(src.output).index(old)] = output.name


def _prune(graph: Any) -> None:
    """Remove Q/DQ nodes without consumers, then unused initializers."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        dead = [
            n for n in graph.node
            if n.op_type in ("QuantizeLinear", "DequantizeLinear") and not any(o in used for o in n.output)
        ]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {i for n in graph.node for i in n.input}
    live = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(live)


WEIGHT_INPUTS = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}


def _dequantized(node: Any, inits: dict[str, Any]) -> np.ndarray:
    """Float value of a ``DequantizeLinear`` of initializers (per-tensor or per-axis)."""
    import onnx
    from onnx import numpy_helper

    q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float64)
    scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
    zero = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64) if len(node.input) > 2 and node.input[2] else 0.0
    if scale.ndim == 1 and q.ndim > 1:
        axis = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
        zero = np.reshape(zero, shape) if np.ndim(zero) else zero
    return ((q - zero) * scale).astype(np.float32)


def tensorrt_form(model: Any) -> Any:
    """Fold every constant ``DequantizeLinear`` that is not a layer weight into a float initializer.

    TensorRT accepts quantized constants only as weights of Conv/Gemm/MatMul:
    INT32 biases and INT8 scalars of element-wise ops (e.g. the 0.5 of GELU)
    are replaced by their exact dequantized float values, so the graph
    computes the same numbers. Activation Q/DQ pairs and weight DQs, with
    their scales, are untouched. Works in place and returns ``model``.
    """
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    consumers: dict[str, list[tuple[Any, int]]] = {}
    for node in model.graph.node:
        for k, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, k))
    keep = []
    for node in model.graph.node:
        constant = node.op_type == "DequantizeLinear" and node.input[0] in inits
        uses = consumers.get(node.output[0], []) if constant else []
        is_weight = bool(uses) and all(WEIGHT_INPUTS.get(c.op_type) == k for c, k in uses)
        if not constant or is_weight:
            keep.append(node)
            continue
        model.graph.initializer.append(numpy_helper.from_array(_dequantized(node, inits), node.output[0]))
    del model.graph.node[:]
    model.graph.node.extend(keep)
    _prune(model.graph)
    return model
