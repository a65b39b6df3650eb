"""``--compare``: ratios and the exit code on two synthetic reports."""

from __future__ import annotations

import copy
import json

import pytest

from qtseg.bench.cli import main
from qtseg.bench.compare import CompareLimits, compare_reports
from qtseg.bench.report import validate_report

from .test_report_schema import synthetic_report


def _write(tmp_path, name, report):
    assert validate_report(report) == []
    path = tmp_path / name
    path.write_text(json.dumps(report))
    return str(path)


def _slower(report, row_index, factor):
    new = copy.deepcopy(report)
    for e in new["rows"][row_index]["latency"]:
        for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms"):
            e[k] *= factor
    return new


def test_identical_reports_pass(tmp_path, capsys):
    old = synthetic_report()
    assert (
        main(
            [
                "--compare",
                _write(tmp_path, "old.json", old),
                "--current",
                _write(tmp_path, "new.json", old),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| qtseg-v2_onnx@cpu | p50 b1 |" in out and "no regression" in out


def test_slowdown_beyond_threshold_fails_and_within_passes(tmp_path, capsys):
    old = synthetic_report()
    old_path = _write(tmp_path, "old.json", old)
    assert (
        main(["--compare", old_path, "--current", _write(tmp_path, "a.json", _slower(old, 1, 1.5))])
        == 1
    )
    assert "REGRESSION" in capsys.readouterr().out
    assert (
        main(["--compare", old_path, "--current", _write(tmp_path, "b.json", _slower(old, 1, 1.1))])
        == 0
    )
    # a looser limit accepts the 1.5x slow-down
    assert (
        main(
            [
                "--compare",
                old_path,
                "--current",
                _write(tmp_path, "c.json", _slower(old, 1, 1.5)),
                "--max-regression",
                "0.6",
            ]
        )
        == 0
    )


def test_ratios_are_new_over_old():
    old = synthetic_report()
    result = compare_reports(old, _slower(old, 1, 1.25))
    line = next(
        x for x in result.lines if x["row"] == "qtseg-v2_onnx@cpu" and x["what"] == "p50 b1"
    )
    assert line["ratio"] == pytest.approx(1.25)
    assert not result.passed  # 1.25 > 1 + 0.2


def test_dice_drop_and_status_change_are_regressions():
    old = synthetic_report()
    worse = copy.deepcopy(old)
    worse["rows"][1]["accuracy"]["dice"] -= 0.01  # 1 pp
    result = compare_reports(old, worse)
    assert not result.passed and "Dice" in result.regressions[0]
    assert compare_reports(old, worse, CompareLimits(max_dice_drop_pp=2.0)).passed
    broken = copy.deepcopy(old)
    broken["rows"][1].update(
        status="error", reason="boom", latency=[], accuracy=None, parity=None, e2e=None
    )
    result = compare_reports(old, broken)
    assert any("status ok -> error" in r for r in result.regressions)


def test_rows_in_one_report_only_are_listed_not_failed():
    old = synthetic_report()
    new = copy.deepcopy(old)
    new["rows"][1]["id"] = "renamed"
    result = compare_reports(old, new)
    assert (
        result.passed
        and result.only_old == ["qtseg-v2_onnx@cpu"]
        and result.only_new == ["renamed"]
    )


def test_compare_with_a_non_report_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    good = _write(tmp_path, "good.json", synthetic_report())
    assert main(["--compare", str(bad), "--current", good]) == 2
