"""Re-running an export with the same inputs reproduces byte-identical ONNX."""

from __future__ import annotations

import pytest

from qtseg.checkpoint import load_checkpoint
from qtseg.export.job import ExportJob, Progress
from qtseg.export.options import ExportOptions

from .conftest import run_cli

pytestmark = pytest.mark.slow


def test_second_export_is_byte_identical(export_all, tiny_checkpoint):
    """A fresh job (new model instance, new trace) gives the same bytes as the CLI run."""
    first, _ = export_all
    model, spec, info = load_checkpoint(tiny_checkpoint)
    job = ExportJob(model, spec, info, ExportOptions(verify=False), progress=Progress(quiet=True))
    try:
        for target, graph in (("onnx", "fp32"), ("onnx-fp16", "fp16")):
            saved = (first / f"qtseg-v2_{target}" / "model.onnx").read_bytes()
            assert job.graph_bytes(graph) == saved, target
    finally:
        job.close()


def test_no_verify_warns(tiny_checkpoint, tmp_path):
    run = run_cli(["--target", "onnx", "--checkpoint", str(tiny_checkpoint), "--no-verify",
                   "--no-simplify", "--out", str(tmp_path), "--quiet"])
    assert run.rc == 0, run.err
    assert "WARNING: --no-verify" in run.err
    from ..artifacts import read_manifest

    manifest = read_manifest(tmp_path / "qtseg-v2_onnx")
    assert manifest["parity"] == {"verified": False, "passed": None, "samples": {"dir": "bundled", "names": []},
                                  "results": []}
    assert "parity gate skipped" in manifest["execution"]["not_run"]
