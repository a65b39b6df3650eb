"""The target table: consistent, validated before work, open to INT8 entries."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from qtseg.backends import RUNTIMES as BACKEND_RUNTIMES
from qtseg.evaluation import THRESHOLDS
from qtseg.export.cli import _plan
from qtseg.export.target import GRAPH_KEYS, TargetError
from qtseg.export.targets import TARGET_OPTIONS, TARGETS, check_options, resolve, target_names
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


def test_openvino_targets_state_the_precision_they_are_verified_at():
    want = {"openvino-fp32": "f32", "openvino-fp16": "f32", "openvino-bf16": "bf16", "openvino-int8": "native"}
    assert {t.name: t.inference_precision for t in TARGETS.values() if t.format == "openvino"} == want
    assert all(t.inference_precision is None for t in TARGETS.values() if t.format != "openvino")
    bf16 = TARGETS["openvino-bf16"]
    assert bf16.precision == "bf16" and bf16.graph == "fp32" and bf16.device == "cpu"
    floor = THRESHOLDS["bf16"]  # the floor: agreement >= 99.9 %, |Dice change| <= 0.1 pp
    assert (floor.min_agreement, floor.max_dice_delta_pp, floor.max_abs_diff) == (0.999, 0.1, None)


# OpenVINO's CPU plugin reads OV_CPU_MAX_ISA when it loads: AVX512_CORE = a CPU without BF16/VNNI.
PLAN_PROBE = """
import json
from qtseg.export.cli import _plan
from qtseg.export.targets import TARGETS, resolve
run, skipped = _plan(resolve("all"), set(), single=False)
print(json.dumps({"skipped": skipped, "run": [t.name for t in run],
                  "int8": TARGETS["openvino-int8"].resolved_inference_precision()}))
"""


def _no_bf16_env() -> dict[str, str]:
    import os

    return {**os.environ, "OV_CPU_MAX_ISA": "AVX512_CORE"}


def test_bf16_target_is_skipped_by_all_and_refused_alone_without_bf16(tmp_path):
    import json
    import subprocess
    import sys

    env = _no_bf16_env()
    proc = subprocess.run([sys.executable, "-c", PLAN_PROBE], capture_output=True, text=True, env=env,
                          timeout=300, check=True)
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    reason = got["skipped"]["openvino-bf16"]
    assert reason.startswith("openvino-bf16 cannot be verified on this CPU: inference precision bf16 "
                             "needs native BF16 support")
    assert {"openvino-fp32", "openvino-fp16"} <= set(got["run"]) and got["int8"] == "f32"
    cli = subprocess.run([sys.executable, "-m", "qtseg.export.cli", "--target", "openvino-bf16",
                          "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=300)
    assert cli.returncode == 2 and cli.stdout == ""
    assert cli.stderr.strip().splitlines() == [f"error: {reason}"]
    assert not (tmp_path / "out").exists()


def test_bf16_target_is_available_where_the_cpu_has_it():
    from qtseg.backends.openvino_backend import precision_problem

    if precision_problem("bf16"):
        pytest.skip("this CPU has no native bf16")
    assert TARGETS["openvino-bf16"].unavailable_reason() is None
    assert TARGETS["openvino-int8"].resolved_inference_precision() == "bf16"
