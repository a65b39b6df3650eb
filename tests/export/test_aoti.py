"""The ``aoti`` target: torch.export + AOTInductor package, built and gated on CPU."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from qtseg.backends import open_backend
from qtseg.backends.aoti_backend import read_package_metadata
from qtseg.checkpoint import CheckpointInfo, load_checkpoint
from qtseg.evaluation import THRESHOLDS
from qtseg.export import aoti
from qtseg.export.aoti import build, export_aoti, for_device
from qtseg.export.job import ExportJob, Progress
from qtseg.export.options import ExportOptions
from qtseg.export.targets import TARGETS
from qtseg.preprocess import PreprocessSpec
from tests.backends import aoti_packages as pk

from ..artifacts import file_paths, read_manifest
from .conftest import run_cli


def test_device_variants_of_the_target():
    assert for_device("cpu") is TARGETS["aoti"]
    cuda, cuda16 = for_device("cuda"), for_device("cuda", "fp16")
    assert (cuda.name, cuda.format, cuda.precision) == ("aoti-cuda", "aoti", "fp32")
    assert (cuda16.name, cuda16.precision) == ("aoti-cuda-fp16", "fp16")
    with pytest.raises(ValueError, match="not offered for cpu"):
        for_device("cpu", "fp16")
    with pytest.raises(ValueError, match="device must be one of"):
        for_device("tpu")


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_compiler_linking_its_own_libstdcxx_is_passed_over(tmp_path):
    # the lent H200 image sets CXX to a wrapper like this one (issue 16)
    fake = tmp_path / "static-g++"
    fake.write_text('#!/bin/sh\nexec g++ "$@" -static-libstdc++\n')
    fake.chmod(0o755)
    assert aoti._cxx_runtime(str(fake)) == "static"
    assert aoti._cxx_runtime(str(tmp_path / "absent-c++")).startswith("cannot run")
    aoti.package_compiler.cache_clear()
    try:
        with torch._inductor.config.patch({"cpp.cxx": (str(fake),)}):
            chosen = aoti.package_compiler()
    finally:
        aoti.package_compiler.cache_clear()
    assert chosen != str(fake) and aoti._cxx_runtime(chosen) == "dynamic"


def test_aoti_rejects_dynamic_hw_before_any_work(tmp_path):
    run = run_cli(["--target", "aoti", "--dynamic-hw", "--out", str(tmp_path / "x")])
    assert run.rc == 2
    assert "does not accept --dynamic-hw" in run.err
    assert not (tmp_path / "x").exists()


def test_cuda_package_needs_a_gpu_and_leaves_nothing_behind(tiny_checkpoint, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match="machine with a CUDA GPU"):
        export_aoti(tiny_checkpoint, out=tmp_path, device="cuda", quiet=True)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    """:func:`build` of the tiny conv net with a dynamic batch 1..4 (one ~25 s compile)."""
    spec = PreprocessSpec(input_size=(pk.HW, pk.HW))
    info = CheckpointInfo(Path("tiny"), "tiny-net", {"layers": 2}, weights_sha256="0" * 64)
    job = ExportJob(
        pk.tiny_net(),
        spec,
        info,
        ExportOptions(dynamic_batch=pk.MAX_BATCH),
        progress=Progress(quiet=True),
    )
    staging = tmp_path_factory.mktemp("aoti-build")
    try:
        yield staging, build(job, TARGETS["aoti"], staging), spec
    finally:
        job.close()


@pytest.mark.slow
def test_build_writes_a_dynamic_batch_package(tiny_build):
    staging, result, spec = tiny_build
    assert result.files == {"model": "model.pt2"} and (staging / "model.pt2").is_file()
    assert [t.to_dict() for t in result.inputs] == [pk.INPUT_META]
    assert result.outputs[0].shape == (-1, 2, pk.HW, pk.HW)
    meta = read_package_metadata(staging / "model.pt2")
    aoti = result.details["aoti"]
    assert aoti["device"] == meta["AOTI_DEVICE_KEY"] == "cpu"
    assert aoti["cpu_isa"] == meta["AOTI_CPU_ISA"] and aoti["max_batch"] == 4
    assert meta["qtseg.model"] == "tiny-net" and meta["qtseg.target"] == "aoti"
    assert json.loads(meta["qtseg.input"]) == pk.INPUT_META
    assert json.loads(meta["qtseg.preprocess"]) == spec.to_dict()


@pytest.mark.slow
def test_build_parity_check_runs_the_package(tiny_build):
    _, result, _ = tiny_build
    (check,) = result.checks
    assert "AOTInductor CPU" in check.label
    with check.open() as be:
        for n in (1, 3, 4):
            x = np.random.default_rng(n).random((n, 3, pk.HW, pk.HW), dtype=np.float32)
            np.testing.assert_allclose(be.infer(x), pk.reference(x), rtol=0, atol=1e-5)
        with pytest.raises(ValueError, match="maximum batch 4"):
            be.infer(np.zeros((5, 3, pk.HW, pk.HW), np.float32))


@pytest.mark.slow
def test_aoti_artifact_of_export_all_passed_the_fp32_gate(export_all, tiny_checkpoint, samples_dir):
    """`--target all` builds `aoti` on CPU; the gate ran the package and it matches PyTorch FP32."""
    out, run = export_all
    # the run's exit code also reflects other targets (openvino-bf16 refuses the random tiny model)
    assert re.search(r"^aoti\s+ok\s", run.out, re.MULTILINE), run.out
    folder = out / "qtseg-v2_aoti"
    manifest = read_manifest(folder)
    assert manifest["format"] == "aoti" and file_paths(manifest) == {"model": "model.pt2", "preprocess": "preprocess.json"}
    assert manifest["runtime"]["device"] == "cpu" and manifest["details"]["aoti"]["max_batch"] == 1
    parity = manifest["parity"]
    assert parity["passed"]
    (result,) = parity["results"]
    assert (
        "AOTInductor CPU" in result["label"]
        and result["thresholds"] == THRESHOLDS["fp32"].to_dict()
    )
    assert result["max_abs_diff"] <= 1e-3 and result["agreement"] >= 0.9999

    model, spec, _ = load_checkpoint(tiny_checkpoint)
    images = sorted((samples_dir / "images").iterdir())[:2]
    from qtseg.imageio import read_image

    x = spec.preprocess([read_image(p) for p in images])
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    with open_backend(folder) as be:
        got = np.concatenate([be.infer(x[i : i + 1]) for i in range(len(x))])
    assert np.abs(got - expected).max() <= 1e-4


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cli_builds_gates_and_opens_an_fp16_cuda_package(tiny_checkpoint, tmp_path):
    """``qtseg-export --target aoti-cuda-fp16`` on a GPU: FP16 gate passed, opens on cuda only."""
    out = tmp_path / "exports"
    run = run_cli(
        ["--target", "aoti-cuda-fp16", "--checkpoint", str(tiny_checkpoint), "--dynamic-batch", "2",
         "--num-samples", "4", "--out", str(out), "--quiet"]
    )
    assert run.rc == 0, run.err
    folder = out / "qtseg-v2_aoti-cuda-fp16"
    manifest = read_manifest(folder)
    assert manifest["runtime"] == {"name": "aoti", "device": "cuda", "properties": {}}
    assert manifest["precision"] == "fp16" and manifest["details"]["aoti"]["fp16_weights"]
    assert manifest["details"]["aoti"]["compute_capability"]
    (result,) = manifest["parity"]["results"]
    assert result["passed"] and result["thresholds"] == THRESHOLDS["fp16"].to_dict()
    x = np.random.default_rng(0).random((2, 3, 128, 128), dtype=np.float32)
    with open_backend(folder) as be, open_backend(folder, cuda_graph=True) as graphed:
        assert be.describe()["device"] == "cuda"
        np.testing.assert_allclose(graphed.infer(x), be.infer(x), rtol=0, atol=1e-3)
        with pytest.raises(ValueError, match="maximum batch 2"):
            be.infer(np.zeros((3, 3, 128, 128), np.float32))
