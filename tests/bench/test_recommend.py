"""The bench's recommendation on synthetic rows: fastest artifact within its accuracy floor."""

from __future__ import annotations

import copy

import pytest

from qtseg.bench.markdown import render
from qtseg.bench.recommend import describe, pick_batch, recommend
from qtseg.bench.report import validate_report

from .test_report_schema import synthetic_report

CPU = {"model": "Test CPU", "flags": ["avx2", "avx512f", "avx512_vnni", "avx512_bf16"]}


def _rows() -> dict[str, dict]:
    return {r["id"]: r for r in copy.deepcopy(synthetic_report()["rows"])}


def test_the_fastest_row_within_its_floor_is_recommended():
    report = synthetic_report()
    (entry,) = report["recommendation"]
    assert entry["row"] == "qtseg-v2_openvino-fp32@cpu" and entry["batch"] == 1
    assert entry["reference_row"] == "qtseg-v2@128x128_torch-eager-fp32@cpu"
    assert entry["speedup_vs_reference"] == pytest.approx(10.0)  # 100 ms / 10 ms in the same run
    assert entry["p50_ms"] == pytest.approx(entry["reference_p50_ms"] / 10.0)
    assert entry["cpu"]["flags"] == report["system"]["cpu"]["flags"]
    ranked = [c["row"] for c in entry["candidates"]]
    assert ranked == ["qtseg-v2_openvino-fp32@cpu", "qtseg-v2_onnx@cpu", "qtseg-v2_trt-fp16@cpu"]
    assert "not_executed" in entry["candidates"][2]["why_not"]
    assert validate_report(report) == []


def test_a_faster_row_below_its_floor_or_unchecked_is_passed_over():
    rows = _rows()
    fast = rows["qtseg-v2_openvino-fp32@cpu"]
    fast.update(status="parity_failed", reason="agreement 99.5% < 99.99%")
    fast["parity"].update(passed=False, failures=["agreement 99.5% < 99.99%"])
    (entry,) = recommend(list(rows.values()), [1, 8], CPU)
    assert entry["row"] == "qtseg-v2_onnx@cpu" and entry["speedup_vs_reference"] == pytest.approx(5.0)
    why = {c["row"]: c["why_not"] for c in entry["candidates"]}
    assert "agreement 99.5%" in why["qtseg-v2_openvino-fp32@cpu"]

    rows["qtseg-v2_onnx@cpu"]["parity"] = None  # no reference: accuracy unknown
    (entry,) = recommend(list(rows.values()), [1, 8], CPU)
    assert entry["row"] is None and entry["reason"] == "no artifact ran and met its accuracy floor"
    assert "not checked" in {c["row"]: c["why_not"] for c in entry["candidates"]}["qtseg-v2_onnx@cpu"]
    assert describe(entry).startswith("no recommendation for qtseg-v2@128x128 on Test CPU")


def test_batch_choice_and_the_reference_is_never_recommended():
    assert pick_batch([1, 8]) == 1 and pick_batch([8, 1]) == 1 and pick_batch([8, 32]) == 8
    rows = list(_rows().values())
    (entry,) = recommend(rows, [8], CPU)
    assert entry["batch"] == 8 and entry["row"] == "qtseg-v2_openvino-fp32@cpu"
    only_ref = [r for r in rows if r["is_reference"]]
    (entry,) = recommend(only_ref, [1], CPU)
    assert entry["row"] is None and entry["reason"] == "no artifact in this run"


def test_terminal_line_and_markdown_name_the_cpu_and_the_ratio():
    report = synthetic_report()
    report["system"]["cpu"].update(CPU)
    report["recommendation"] = recommend(report["rows"], [1, 8], CPU)
    line = describe(report["recommendation"][0])
    assert "Test CPU (avx512f, avx512_vnni, avx512_bf16)" in line
    assert "10.00x PyTorch eager FP32 in this run" in line and "agreement 100.000 %" in line
    md = render(report)
    assert "## Recommendation" in md and line in md
    assert "| 3 | qtseg-v2_trt-fp16@cpu | - | - | - | no: not_executed: no usable CUDA device |" in md


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r["recommendation"][0].pop("speedup_vs_reference"), "speedup_vs_reference"),
        (lambda r: r["recommendation"][0].update(row=None, reason=None), "no row and no reason"),
        (lambda r: r["recommendation"][0]["candidates"][0].update(eligible="yes"), "eligible"),
        (lambda r: r.update(recommendation={}), "expected a list"),
    ],
)
def test_schema_of_the_recommendation(mutate, message):
    report = copy.deepcopy(synthetic_report())
    mutate(report)
    assert any(message in p for p in validate_report(report)), validate_report(report)


def test_reports_written_before_the_recommendation_still_validate():
    report = synthetic_report()
    report.pop("recommendation")
    assert validate_report(report) == []
