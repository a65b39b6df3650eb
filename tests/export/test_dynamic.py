"""Dynamic batch / dynamic H/W / FP16 I/O variants and a dynamic-batch TRT-RTX profile."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qtseg.backends import open_backend
from qtseg.checkpoint import load_checkpoint
from qtseg.export.cli import outcome_status
from qtseg.export.job import ExportJob, Progress
from qtseg.export.options import ExportOptions
from qtseg.export.pipeline import export_target
from qtseg.export.targets import TARGETS

from ..artifacts import read_manifest
from .conftest import run_cli

pytestmark = pytest.mark.slow


def test_dynamic_batch_and_hw(tiny_checkpoint, sample_images, tmp_path):
    out = tmp_path / "exports"
    run = run_cli(["--target", "onnx", "--dynamic-batch", "4", "--dynamic-hw", "--no-simplify",
                   "--checkpoint", str(tiny_checkpoint), "--samples", str(sample_images),
                   "--num-samples", "2", "--out", str(out), "--quiet"])
    assert run.rc == 0, run.err
    folder = out / "qtseg-v2_onnx"
    assert read_manifest(folder)["inputs"][0]["shape"] == [-1, 3, -1, -1]
    model, _, _ = load_checkpoint(tiny_checkpoint)
    with open_backend(folder) as be:
        for shape in ((3, 3, 128, 128), (1, 3, 160, 96)):
            x = np.random.default_rng(0).random(shape, dtype=np.float32)
            with torch.no_grad():
                expected = model(torch.from_numpy(x)).numpy()
            assert np.abs(be.infer(x) - expected).max() < 1e-4


def test_fp16_io_and_trtrtx_profile(tiny_checkpoint, sample_images, tmp_path):
    """One job (one trace): onnx-fp16 with float16 I/O and a dynamic-batch TRT-RTX engine."""
    model, spec, info = load_checkpoint(tiny_checkpoint)
    options = ExportOptions(dynamic_batch=2, io_fp16=True, samples=str(sample_images), num_samples=2,
                            compute_capability=("86", "89"))
    job = ExportJob(model, spec, info, options, progress=Progress(quiet=True))
    try:
        onnx_out = export_target(job, TARGETS["onnx-fp16"], tmp_path)
        trt_out = export_target(job, TARGETS["trtrtx-fp16"], tmp_path)
    finally:
        job.close()
    assert onnx_out.status == "ok" and trt_out.status == "ok", (onnx_out.message, trt_out.message)
    # without an RTX GPU the engine is built but only its source graph runs: the table says so
    not_run = read_manifest(trt_out.path)["execution"]["not_run"]
    assert not_run or torch.cuda.is_available()
    assert outcome_status(trt_out) == (("built, not run", not_run) if not_run else ("ok", None))
    manifest = read_manifest(onnx_out.path)
    assert manifest["inputs"][0] == {"name": "image", "shape": [-1, 3, 128, 128], "dtype": "float16"}
    assert manifest["outputs"][0]["dtype"] == "float16" and manifest["parity"]["passed"]
    manifest = read_manifest(trt_out.path)
    assert manifest["inputs"][0]["dtype"] == "float32"  # --io-fp16 is an onnx-fp16 option only
    trt = manifest["details"]["tensorrt"]
    assert trt["compute_capabilities"] == ["sm_86", "sm_89"]
    assert trt["profile"] == {"image": {"min": [1, 3, 128, 128], "opt": [1, 3, 128, 128], "max": [2, 3, 128, 128]}}
    with open_backend(onnx_out.path) as be:
        x = np.random.default_rng(0).random((2, 3, 128, 128), dtype=np.float32)
        assert be.infer(x).shape == (2, 2, 128, 128)
