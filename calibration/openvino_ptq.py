"""NNCF post-training INT8 quantization of an OpenVINO model, and per-group float fallback.

:func:`quantize_openvino` runs ``nncf.quantize`` on the model with the
calibration set (``nncf.Dataset``), symmetric INT8 (``PERFORMANCE`` preset),
NNCF's default model type, the activation range estimator of the chosen method.

:func:`keep_float` returns a copy of the quantized model in which the ops of
the given names compute in float: their activation ``FakeQuantize`` inputs
are bypassed, and their INT8 weights and bias-corrected biases are replaced
by the FP32 constants of the unquantized model. Statistics are not collected again, so the accuracy
guard can try many groups cheaply.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from qtseg.calibration.artifact import CalibrationSet, validate_set
from qtseg.calibration.methods import CalibrationMethod


def quantize_openvino(model: Any, calib: CalibrationSet, method: CalibrationMethod) -> tuple[Any, dict[str, Any]]:
    """INT8 copy of an ``openvino.Model`` calibrated on ``calib``.

    Returns:
        ``(quantized model, info)`` with the NNCF settings used and the time.
    """
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    from qtseg.calibration.readers import nncf_dataset

    validate_set(calib)
    estimator, description = method.nncf_estimator()
    start = time.perf_counter()
    quantized = nncf.quantize(
        model.clone(),
        nncf_dataset(calib),
        preset=nncf.QuantizationPreset.PERFORMANCE,
        # NNCF's default (CNN) scheme, not ModelType.TRANSFORMER: the latter
        # loses half as much Dice unguarded (1.15 vs 2.34 pp on Kvasir val) but,
        # once the accuracy guard has kept what it needs in float, both pass
        # and the default-scheme IR is 1.2-1.35x faster on a VNNI/AMX Xeon
        # (docs/calibration.md, "OpenVINO: NNCF scheme").
        subset_size=len(calib),
        advanced_parameters=AdvancedQuantizationParameters(activations_range_estimator_params=estimator),
    )
    info = {
        "tool": f"nncf {nncf.__version__}",
        "preset": "performance (symmetric int8 weights and activations)",
        "model_type": "default (cnn)",
        "range_estimator": description,
        "subset_size": len(calib),
        "fake_quantize_nodes": count_fake_quantize(quantized),
        "seconds": round(time.perf_counter() - start, 2),
    }
    return quantized, info


def count_fake_quantize(model: Any) -> int:
    """Number of ``FakeQuantize`` ops (activation quantizers) in a model."""
    return sum(1 for op in model.get_ordered_ops() if op.get_type_name() == "FakeQuantize")


def _float_weight(reference: dict[str, Any], name: str, port: int) -> Any:
    """The FP32 ``Constant`` feeding input ``port`` of op ``name`` in the unquantized model, or None."""
    op = reference.get(name)
    if op is None or port >= op.get_input_size():
        return None
    src = op.input_value(port).get_node()
    while src.get_type_name() == "Convert":  # FP16-compressed weights decompress through Convert
        src = src.input_value(0).get_node()
    return src if src.get_type_name() == "Constant" else None


def _is_weight_path(node: Any) -> bool:
    """True for an INT8 weight-decompression chain (Constant -> Convert -> [Subtract] -> Multiply)."""
    seen = 0
    while node.get_type_name() in ("Multiply", "Subtract", "Convert", "Reshape") and seen < 6:
        node = node.input_value(0).get_node()
        seen += 1
    return node.get_type_name() == "Constant" and seen > 0


def keep_float(quantized: Any, reference: Any, patterns: Iterable[str]) -> tuple[Any, int]:
    """Copy of ``quantized`` with ops whose friendly name matches ``patterns`` back in float.

    Args:
        quantized: the NNCF-quantized ``openvino.Model``.
        reference: the FP32 ``openvino.Model`` it was quantized from.
        patterns: regexes (``re.match``) over op friendly names.

    Returns:
        ``(model, number of ops changed)``.
    """
    import openvino.opset13 as ops

    rx = [re.compile(p) for p in patterns]
    model = quantized.clone()
    if not rx:
        return model, 0
    by_name = {op.get_friendly_name(): op for op in reference.get_ordered_ops()}
    changed = 0
    for op in model.get_ordered_ops():
        name = op.get_friendly_name()
        if op.get_type_name() in ("FakeQuantize", "Constant") or not any(r.match(name) for r in rx):
            continue
        touched = False
        for port in range(op.get_input_size()):
            src = op.input_value(port).get_node()
            if src.get_type_name() == "FakeQuantize":
                op.input(port).replace_source_output(src.input_value(0))
                touched = True
            elif _is_weight_path(src) or src.get_type_name() == "Constant":
                # INT8 weights, or a bias that NNCF's bias correction changed: take the FP32 one.
                weight = _float_weight(by_name, name, port)
                if weight is None or weight.get_output_partial_shape(0) != src.get_output_partial_shape(0):
                    continue
                if src.get_type_name() == "Constant" and np.array_equal(src.get_data(), weight.get_data()):
                    continue
                op.input(port).replace_source_output(ops.constant(weight.get_data()).output(0))
                touched = True
        changed += int(touched)
    model.validate_nodes_and_infer_types()
    return model, changed
