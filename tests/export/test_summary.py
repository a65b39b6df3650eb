"""The export summary table says what ran: 'built, not run' when the gate could not run a check."""

from __future__ import annotations

import io

import pytest

from qtseg.export.cli import outcome_status, print_summary
from qtseg.export.job import TargetOutcome

from ..artifacts import make_manifest, manifest_dict, write_manifest_dict


def _artifact(tmp_path, name, *, verified, not_run):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "model.engine").write_bytes(b"engine bytes")
    make_manifest(folder, fmt="tensorrt", files={"engine": "model.engine"}, precision="fp16")
    data = manifest_dict(folder)
    data["parity"] = {"verified": verified, "passed": True, "results": []}
    data["execution"] = {"built_on": "test", "verified_with": "model.onnx on onnxruntime CPU",
                         "not_run": not_run, "summary": "test"}
    write_manifest_dict(folder, data)
    return folder


@pytest.mark.parametrize(
    "verified, not_run, status",
    [
        (True, None, "ok"),
        (True, "model.engine on TensorRT-RTX: not executable here: no CUDA GPU", "built, not run"),
        (False, "parity gate skipped (--no-verify)", "built, not verified"),
    ],
)
def test_status_comes_from_the_manifest(tmp_path, verified, not_run, status):
    folder = _artifact(tmp_path, "qtseg-v2_trtrtx-fp16", verified=verified, not_run=not_run)
    outcome = TargetOutcome("trtrtx-fp16", "ok", folder, "engine built")
    assert outcome_status(outcome) == (status, not_run)
    stream = io.StringIO()
    print_summary([outcome, TargetOutcome("onnx", "failed", None, "boom")], {"trt-fp16": "no trt"},
                  stream)
    lines = stream.getvalue().splitlines()
    assert lines[2].startswith("trtrtx-fp16") and status in lines[2]
    if not_run:
        assert not_run in lines[2]
    assert "failed" in lines[3] and "skipped" in lines[4]
