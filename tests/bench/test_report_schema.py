"""``report.json`` schema: assembly, ratios and validation on synthetic rows."""

from __future__ import annotations

import copy
import json

import pytest

from qtseg.bench.markdown import render
from qtseg.bench.report import SCHEMA, build_report, read_report, validate_report, write_report
from qtseg.bench.rows import RowSpec, failed_row
from qtseg.bench.system import system_info
from qtseg.timing import latency_stats


def _row(
    rid: str, target: str, p50_s: float, *, reference: bool = False, dice: float = 0.8
) -> dict:
    spec = RowSpec(
        id=rid,
        kind="torch" if reference else "artifact",
        path="/nowhere",
        model_key="qtseg-v2@128x128",
        device="cpu",
        threads=2,
        batches=(1, 8),
        warmup=1,
        iters=3,
        e2e_iters=3,
        images_dir="",
        num_images=2,
        variant="eager-fp32" if reference else "",
        is_reference=reference,
    )
    row = failed_row(spec, "ok", "")
    row.update(
        reason=None,
        backend="torch" if reference else "onnxruntime",
        target=target,
        precision="fp32",
        format="checkpoint" if reference else "onnx",
        size_mb=10.0,
    )
    row["accuracy"] = {
        "num_images": 2,
        "dice": dice,
        "iou": dice - 0.1,
        "mae": 0.05,
        "accuracy": 0.95,
    }
    row["parity"] = {
        "precision": "fp32",
        "num_images": 2,
        "max_abs_diff": 1e-6,
        "mean_abs_diff": 1e-7,
        "agreement": 1.0,
        "dice_reference": dice,
        "dice_candidate": dice,
        "dice_delta_pp": 0.0,
        "thresholds": {},
        "passed": True,
        "failures": [],
    }
    row["latency"] = [
        {
            **latency_stats([p50_s * b * 0.9, p50_s * b, p50_s * b * 1.2], b).to_dict(),
            "status": "ok",
            "reason": None,
            "timer": "perf_counter",
        }
        for b in (1, 8)
    ]
    row["e2e"] = {
        **latency_stats([2 * p50_s] * 3, 1).to_dict(),
        "status": "ok",
        "reason": None,
        "timer": "perf_counter",
    }
    row["memory"] = {
        "peak_rss_mb": 300.0,
        "rss_before_load_mb": 100.0,
        "peak_gpu_allocated_mb": None,
    }
    return row


def synthetic_report() -> dict:
    """A valid report: reference, two artifacts, one not-executed TensorRT row."""
    trt_spec = RowSpec(
        id="qtseg-v2_trt-fp16@cpu",
        kind="artifact",
        path="/nowhere",
        model_key="qtseg-v2@128x128",
        device="cpu",
        threads=2,
        batches=(1, 8),
        warmup=1,
        iters=3,
        e2e_iters=3,
        images_dir="",
        num_images=2,
    )
    rows = [
        _row("qtseg-v2@128x128_torch-eager-fp32@cpu", "torch-eager-fp32", 0.100, reference=True),
        _row("qtseg-v2_onnx@cpu", "onnx", 0.020),
        _row("qtseg-v2_openvino-fp32@cpu", "openvino-fp32", 0.010),
        failed_row(trt_spec, "not_executed", "no usable CUDA device"),
    ]
    model = {
        "key": "qtseg-v2@128x128",
        "name": "qtseg-v2",
        "config": {"width": 8},
        "checkpoint": "/ckpt",
        "checkpoint_note": "given",
        "weights": "checkpoint",
        "preprocess": {},
        "params": 10,
        "macs": 20,
        "flops": 40,
        "input_shape": [1, 3, 128, 128],
        "counter": "qtseg",
        "layers": None,
    }
    config = {"batches": [1, 8], "warmup": 1, "iters": 3, "num_images": 2}
    return build_report(
        command="qtseg-bench",
        config=config,
        system=system_info(with_gpu=False),
        result={"threads": 2, "models": [model], "rows": rows, "memory_scope": "row process"},
    )


def test_synthetic_report_is_valid_and_json_strict(tmp_path):
    report = synthetic_report()
    assert validate_report(report) == []
    path = write_report(report, tmp_path)
    assert read_report(path)["schema"] == SCHEMA
    json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_ratios_and_summary():
    report = synthetic_report()
    rows = {r["id"]: r for r in report["rows"]}
    ov = rows["qtseg-v2_openvino-fp32@cpu"]
    assert ov["reference_row"] == "qtseg-v2@128x128_torch-eager-fp32@cpu"
    assert ov["latency"][0]["speedup_vs_reference"] == pytest.approx(10.0)
    assert ov["latency"][1]["speedup_vs_reference"] == pytest.approx(10.0)
    assert ov["e2e"]["speedup_vs_reference"] == pytest.approx(10.0)
    (summary,) = report["summary"]
    assert summary["by_batch"][0]["best_row"] == "qtseg-v2_openvino-fp32@cpu"
    assert summary["by_batch"][0]["speedup"] == pytest.approx(10.0)


def test_nan_becomes_null():
    report = synthetic_report()
    report["rows"][1]["latency"][0]["img_per_s"] = float("inf")
    from qtseg.atomic import finite_or_none

    cleaned = finite_or_none(report)
    assert cleaned["rows"][1]["latency"][0]["img_per_s"] is None
    assert cleaned["rows"][0] == report["rows"][0]  # finite values untouched


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r.pop("rows"), "missing key 'rows'"),
        (lambda r: r.update(schema="other/1"), "schema"),
        (lambda r: r["rows"][1].update(status="great"), "status"),
        (lambda r: r["rows"][1]["latency"][0].pop("p50_ms"), "p50_ms"),
        (lambda r: r["rows"][1]["latency"][0].update(n="3"), "latency[0].n"),
        (lambda r: r["rows"][3].update(latency=[{"batch": 1}]), "did not run carries numbers"),
        (lambda r: r["rows"][3].update(reason=None), "without a reason"),
        (lambda r: r["models"][0].pop("macs"), "macs"),
        (lambda r: r["rows"][0].update(is_reference="yes"), "is_reference"),
        (lambda r: r["system"]["cpu"].pop("flags"), "flags"),
    ],
)
def test_schema_violations_are_reported(mutate, message):
    report = copy.deepcopy(synthetic_report())
    mutate(report)
    problems = validate_report(report)
    assert problems and any(message in p for p in problems), problems


def test_write_refuses_an_invalid_report(tmp_path):
    report = synthetic_report()
    report["rows"][0]["status"] = "?"
    with pytest.raises(ValueError, match="schema"):
        write_report(report, tmp_path)


def test_markdown_has_the_table_and_flags():
    report = synthetic_report()
    report["rows"][1].update(status="parity_failed", reason="agreement 99.0% < 99.99%")
    md = render(report)
    assert "| model | row | backend | precision | device | size MB | Dice % |" in md
    assert "PARITY FAIL: agreement 99.0% < 99.99%" in md
    assert "not executed: no usable CUDA device" in md
    assert "10.00x" in md  # OpenVINO vs reference at batch 1
