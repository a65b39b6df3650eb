"""Plots and report.md notes: plain Dice axis, no single-batch curve, machine load, e2e < model."""

from __future__ import annotations

import pytest

from qtseg.bench.markdown import render
from qtseg.bench.plots import (
    DICE_VS_LATENCY,
    LATENCY_VS_BATCH,
    dice_figure,
    dice_limits,
    write_plots,
)

from .test_report_schema import synthetic_report

pytest.importorskip("matplotlib")


def _close_dices(report, values):
    rows = [r for r in report["rows"] if r["status"] == "ok"]
    for row, value in zip(rows, values):
        row["accuracy"]["dice"] = value
    return rows


def test_dice_axis_is_plain_and_at_least_two_points_tall():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = synthetic_report()
    rows = _close_dices(report, [0.88912, 0.88915, 0.88913])
    fig = dice_figure(plt, rows, 1)
    fig.canvas.draw()
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert high - low >= 2.0 and low <= 88.912 and 88.915 <= high
    assert ax.yaxis.get_major_formatter().get_offset() == ""
    plt.close(fig)
    assert dice_limits(99.5, 99.6) == (98.0, 100.0)
    assert dice_limits(70.0, 90.0) == (70.0, 90.0)


def test_latency_curve_needs_two_batch_sizes(tmp_path):
    report = synthetic_report()
    written, note = write_plots(report, tmp_path)
    assert written == [DICE_VS_LATENCY, LATENCY_VS_BATCH] and note is None
    for row in report["rows"]:
        row["latency"] = [e for e in row["latency"] if e["batch"] == 1]
    report["config"]["batches"] = [1]
    single = tmp_path / "single"
    single.mkdir()
    written, note = write_plots(report, single)
    assert written == [DICE_VS_LATENCY] and not (single / LATENCY_VS_BATCH).exists()
    assert "one batch size" in note


def test_report_md_records_load_and_explains_e2e_below_model_only():
    report = synthetic_report()
    report["system"]["load_average"] = {"before": [9.5, 8.0, 7.0], "after": [9.9, 8.1, 7.0]}
    report["system"]["cpu"]["usable_cpus"] = 2
    onnx = next(r for r in report["rows"] if r["target"] == "onnx")
    onnx["e2e"]["p50_ms"] = onnx["latency"][0]["p50_ms"] / 2
    md = render(report)
    assert "load average before [9.5, 8.0, 7.0], after [9.9, 8.1, 7.0]" in md
    assert "busier than its CPUs" in md
    assert "End-to-end p50 below model-only p50: qtseg-v2_onnx@cpu" in md
    assert "measurement noise" in md
    onnx["e2e"]["p50_ms"] = onnx["latency"][0]["p50_ms"] * 2
    report["system"]["load_average"] = {"before": [0.1, 0.1, 0.1], "after": [0.2, 0.1, 0.1]}
    md = render(report)
    assert "End-to-end p50 below" not in md and "busier" not in md
