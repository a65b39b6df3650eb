"""The target table: consistent, validated before work, open to INT8 entries."""

from __future__ import annotations

import dataclasses

import pytest
from qtseg.export.cli import _plan
from qtseg.export.manifest import FORMATS
from qtseg.export.parity import THRESHOLDS
from qtseg.export.targets import (
    GRAPHS,
    TARGET_OPTIONS,
    TARGETS,
    TargetError,
    check_options,
    resolve,
    target_names,
)


def test_table_is_consistent():
    for target in TARGETS.values():
        assert target.format in FORMATS
        assert target.precision in THRESHOLDS
        assert target.graph in GRAPHS
        assert target.options <= TARGET_OPTIONS
        assert callable(target.build)
    assert set(target_names()) == {*TARGETS, "all"}
    assert {t.library for t in TARGETS.values() if t.format == "tensorrt"} == {"tensorrt", "tensorrt_rtx"}


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
