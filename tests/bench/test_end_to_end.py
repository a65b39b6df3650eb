"""``qtseg-bench`` over real ONNX Runtime and OpenVINO artifacts (no mocks)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from qtseg.bench.report import validate_report
from qtseg.evaluation import THRESHOLDS

from .conftest import CPU_TARGETS, NUM_IMAGES, run_bench

pytestmark = pytest.mark.slow
GATE_KEYS = (
    "max_abs_diff",
    "mean_abs_diff",
    "agreement",
    "dice_reference",
    "dice_candidate",
    "dice_delta_pp",
)


def _rows(report: dict) -> dict[str, dict]:
    return {r["id"]: r for r in report["rows"]}


def test_writes_three_report_files_and_exits_zero(cpu_bench):
    assert cpu_bench.rc == 0, cpu_bench.err
    for name in ("report.json", "report.md", "dice_vs_latency.png", "latency_vs_batch.png"):
        path = cpu_bench.report_dir / name
        assert path.is_file() and path.stat().st_size > 0, name
    assert (cpu_bench.report_dir / "latency_vs_batch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (cpu_bench.report_dir / "report.md").read_text()
    assert "| model | row | backend | precision |" in md and "openvino-fp16" in md
    assert "p50 ms (b1)" in cpu_bench.out  # the table is printed too


def test_report_matches_schema(cpu_bench):
    report = cpu_bench.report
    assert validate_report(report) == []
    assert report["schema"] == "qtseg.bench.report/1"
    assert report["threads"] >= 1 and report["system"]["cpu"]["model"]
    assert (
        "onnxruntime" in report["system"]["versions"] and "openvino" in report["system"]["versions"]
    )


def test_one_row_per_artifact_plus_reference(cpu_bench):
    rows = cpu_bench.report["rows"]
    assert [r["target"] for r in rows] == ["torch-eager-fp32", *sorted(CPU_TARGETS)]
    assert all(r["status"] == "ok" for r in rows), [(r["id"], r["reason"]) for r in rows]
    ref = rows[0]
    assert ref["is_reference"] and ref["backend"] == "torch" and ref["device"] == "cpu"
    assert {r["backend"] for r in rows[1:]} == {"onnxruntime", "openvino"}


def test_parity_numbers_equal_the_export_gate(cpu_bench, cpu_exports: Path):
    for row in cpu_bench.report["rows"][1:]:
        manifest = json.loads((Path(row["artifact"]) / "manifest.json").read_text())
        gate = manifest["parity"]["results"][0]
        assert manifest["parity"]["samples"]["names"] == [
            i["name"] for i in row["parity"]["per_image"]
        ]
        for key in GATE_KEYS:
            assert math.isclose(row["parity"][key], gate[key], rel_tol=1e-9, abs_tol=1e-12), (
                row["id"],
                key,
            )
        assert row["parity"]["thresholds"] == THRESHOLDS[row["precision"]].to_dict()
        assert row["export_gate"]["equal"] is True and row["export_gate"]["same_images"]


def test_accuracy_against_ground_truth(cpu_bench):
    for row in cpu_bench.report["rows"]:
        acc = row["accuracy"]
        assert acc["num_images"] == NUM_IMAGES
        assert 0.0 <= acc["dice"] <= 1.0 and 0.0 <= acc["iou"] <= acc["dice"] + 1e-12
        assert 0.0 <= acc["mae"] <= 1.0 and math.isclose(
            acc["accuracy"], 1.0 - acc["mae"], abs_tol=1e-6
        )  # MAE is a float32 mean
        # the gate's Dice of the candidate is the same number, computed by the export code
        assert math.isclose(acc["dice"], row["parity"]["dice_candidate"], rel_tol=1e-12)


def test_latency_per_batch_and_ratios(cpu_bench):
    rows = cpu_bench.report["rows"]
    for row in rows:
        assert [e["batch"] for e in row["latency"]] == [1, 2]
        for e in row["latency"]:
            assert e["status"] == "ok" and e["n"] == 3 and e["timer"] == "perf_counter"
            assert 0 < e["min_ms"] <= e["p50_ms"] <= e["p90_ms"] <= e["p99_ms"] <= e["max_ms"]
            assert math.isclose(e["img_per_s"], e["batch"] * 1000.0 / e["mean_ms"])
        e2e = row["e2e"]
        assert e2e["status"] == "ok" and e2e["n"] == 2 and e2e["batch"] == 1
    ref = rows[0]
    assert all(e["speedup_vs_reference"] == 1.0 for e in ref["latency"])
    onnx = next(r for r in rows if r["target"] == "onnx")
    p50_ref = ref["latency"][0]["p50_ms"]
    assert math.isclose(
        onnx["latency"][0]["speedup_vs_reference"], p50_ref / onnx["latency"][0]["p50_ms"]
    )


def test_memory_and_size(cpu_bench, cpu_exports: Path):
    for row in cpu_bench.report["rows"]:
        assert row["memory"]["peak_rss_mb"] > row["memory"]["rss_before_load_mb"] > 0
        assert row["memory"]["peak_gpu_allocated_mb"] is None
    onnx = next(r for r in cpu_bench.report["rows"] if r["target"] == "onnx")
    size = (cpu_exports / "qtseg-v2_onnx" / "model.onnx").stat().st_size / 2**20
    assert math.isclose(onnx["size_mb"], size)


def test_complexity_recorded(cpu_bench):
    (model,) = cpu_bench.report["models"]
    assert model["input_shape"] == [1, 3, 128, 128]
    assert model["flops"] == 2 * model["macs"] > 0 and model["params"] > 0


def test_worker_for_a_runtime_row_does_not_import_torch():
    """Peak RSS of an ONNX Runtime / OpenVINO row is the runtime's, not PyTorch's."""
    code = (
        "import sys, qtseg.bench.worker, qtseg.bench.rows, qtseg.backends.onnxruntime_backend, "
        "qtseg.backends.openvino_backend; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _run_unrunnable(cpu_exports: Path, folder: Path, out: Path, device: str):
    manifest = json.loads((cpu_exports / "qtseg-v2_onnx" / "manifest.json").read_text())
    return run_bench(
        [
            str(folder),
            "--device",
            device,
            "--checkpoint",
            manifest["model"]["checkpoint"],
            "--iters",
            "1",
            "--warmup",
            "0",
            "--e2e-iters",
            "0",
            "--num-images",
            "2",
            "--threads",
            "1",
            "--quiet",
            "--no-plots",
            "--no-isolate",
        ],
        out,
    )


def _assert_not_executed(row: dict) -> None:
    assert row["status"] == "not_executed" and row["reason"], row
    assert row["latency"] == [] and row["accuracy"] is None and row["parity"] is None
    assert row["memory"]["peak_rss_mb"] is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the rows of a machine without a GPU")
def test_engines_without_gpu_or_runtime_are_not_executed(
    cpu_exports, unrunnable_artifacts, tmp_path
):
    run = _run_unrunnable(cpu_exports, unrunnable_artifacts, tmp_path / "rep", "cuda")
    assert validate_report(run.report) == []
    rows = _rows(run.report)
    for row in rows.values():
        _assert_not_executed(row)
    assert "CUDA" in rows["qtseg-v2_trtrtx-fp16@cuda"]["reason"]  # runtime installed, no GPU
    assert "qtseg[trt]" in rows["qtseg-v2_trt-fp16@cuda"]["reason"]  # NVIDIA's tensorrt missing
    assert run.rc == 0
    assert "not executed:" in (tmp_path / "rep" / "report.md").read_text()


def test_on_cpu_engines_are_not_executed_and_a_broken_artifact_is_an_error(
    cpu_exports, unrunnable_artifacts, tmp_path
):
    run = _run_unrunnable(cpu_exports, unrunnable_artifacts, tmp_path / "rep", "cpu")
    assert validate_report(run.report) == []
    rows = _rows(run.report)
    for rid in ("qtseg-v2_trtrtx-fp16@cpu", "qtseg-v2_trt-fp16@cpu"):
        _assert_not_executed(rows[rid])
        assert "--device cuda" in rows[rid]["reason"]
    broken = rows["qtseg-v2_broken@cpu"]
    assert broken["status"] == "error" and "onnxruntime" in broken["reason"]
    assert rows["qtseg-v2@128x128_torch-eager-fp32@cpu"]["status"] == "ok"  # the others still ran
    assert run.rc == 1 and "broken" in run.err


def test_openvino_with_cuda_device_is_not_executed(cpu_exports, tmp_path):
    run = run_bench(
        [
            str(cpu_exports / "qtseg-v2_openvino-fp32"),
            "--device",
            "cuda",
            "--iters",
            "1",
            "--warmup",
            "0",
            "--e2e-iters",
            "0",
            "--num-images",
            "1",
            "--threads",
            "1",
            "--quiet",
            "--no-plots",
            "--no-isolate",
        ],
        tmp_path / "rep",
    )
    rows = run.report["rows"]
    assert all(r["status"] == "not_executed" for r in rows), [
        (r["id"], r["status"], r["reason"]) for r in rows
    ]
    assert run.rc == 0
