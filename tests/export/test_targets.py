"""The target table: consistent, validated before work, open to INT8 entries."""

from __future__ import annotations

import dataclasses
import importlib

import pytest
from qtseg.evaluation import THRESHOLDS
from qtseg.export.cli import _plan
from qtseg.export.target import GRAPH_KEYS, TargetError
from qtseg.export.targets import TARGET_OPTIONS, TARGETS, check_options, resolve, target_names

from qtseg.backends import RUNTIMES as BACKEND_RUNTIMES
from qtseg.manifest import FORMATS, PRECISIONS
from qtseg.manifest import RUNTIMES as FORMAT_RUNTIMES


def test_table_is_consistent():
    for target in TARGETS.values():
        assert target.format in FORMATS and target.precision in PRECISIONS
        assert target.precision in THRESHOLDS
        assert target.graph in (*GRAPH_KEYS, None)
        assert (target.graph is None) == (target.format == "aoti")
        assert target.options <= TARGET_OPTIONS
        assert target.runtime in FORMAT_RUNTIMES[target.format]
        assert target.device is None or target.device in BACKEND_RUNTIMES[target.runtime].devices
        assert callable(importlib.import_module(target.builder).build)
    assert set(target_names()) == {*TARGETS, "all"}
    assert {t.runtime for t in TARGETS.values() if t.format == "tensorrt"} == {"tensorrt", "tensorrt_rtx"}


def test_cuda_only_targets_are_refused_without_a_gpu_and_skipped_by_all():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    for name in ("aoti-cuda", "aoti-cuda-fp16"):
        reason = TARGETS[name].unavailable_reason()
        assert reason == f"{name} is compiled on a CUDA GPU and this machine has none"
        with pytest.raises(TargetError, match="CUDA GPU"):
            _plan([TARGETS[name]], set(), single=True)
    run, skipped = _plan(resolve("all"), set(), single=False)
    assert {"aoti-cuda", "aoti-cuda-fp16"} <= set(skipped) and "aoti" in [t.name for t in run]


def test_trt_without_tensorrt_points_to_trtrtx():
    target = TARGETS["trt-fp16"]
    if not target.missing():
        pytest.skip("tensorrt is installed here")
    reason = target.unavailable_reason()
    assert "tensorrt" in reason and "trtrtx-fp16" in reason


def test_resolve_and_options():
    assert [t.name for t in resolve("all")] == list(TARGETS)
    with pytest.raises(TargetError, match="valid targets: onnx"):
        resolve("onnx-int3")
    check_options(TARGETS["onnx-fp16"], {"io_fp16", "dynamic_batch", "imgsz"})
    with pytest.raises(TargetError, match="--compute-capability"):
        check_options(TARGETS["trt-fp16"], {"compute_capability"})


def test_a_calibration_target_slots_in():
    """An INT8 entry is one more row; the planner skips it in `all` and refuses it alone."""
    int8 = dataclasses.replace(TARGETS["onnx"], name="onnx-int8", precision="int8", requires_calibration=True)
    run, skipped = _plan([TARGETS["onnx"], int8], set(), single=False)
    assert [t.name for t in run] == ["onnx"] and "calibration" in skipped["onnx-int8"]
    with pytest.raises(TargetError, match="calibration"):
        _plan([int8], set(), single=True)


def test_all_skips_targets_rejecting_an_option():
    run, skipped = _plan(resolve("all"), {"dynamic_hw"}, single=False)
    assert "trtrtx-fp16" in skipped and "does not accept --dynamic-hw" in skipped["trtrtx-fp16"]
    assert "onnx" in [t.name for t in run]
