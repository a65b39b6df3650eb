"""Bench fixtures: ONNX Runtime and OpenVINO artifacts of one checkpoint, one bench run."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

# Targets whose runtimes are installed in CI (CPU). Dynamic batch 1..2 so batch 2 can be timed.
CPU_TARGETS = ("onnx", "onnx-fp16", "openvino-fp32", "openvino-fp16")
NUM_IMAGES = 4
BENCH_THREADS = 1


@dataclass
class BenchRun:
    """Exit code, output and report of one in-process ``qtseg-bench`` call."""

    rc: int
    out: str
    err: str
    report_dir: Path

    @property
    def report(self) -> dict:
        return json.loads((self.report_dir / "report.json").read_text())


def run_bench(args: list[str], report_dir: Path) -> BenchRun:
    """Call ``qtseg.bench.cli.main`` in-process, capturing stdout/stderr."""
    from qtseg.bench.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([*args, "--out", str(report_dir)])
    return BenchRun(rc, out.getvalue(), err.getvalue(), report_dir)


@pytest.fixture(scope="session")
def bench_checkpoint(tiny_checkpoint: Path) -> Path:
    """The bundled checkpoint when it exists (exported at 128x128 below), else the tiny one."""
    import qtseg

    return qtseg.DEFAULT_CHECKPOINT if qtseg.DEFAULT_CHECKPOINT.is_dir() else tiny_checkpoint


@pytest.fixture(scope="session")
def cpu_exports(bench_checkpoint: Path, tmp_path_factory) -> Path:
    """``exports/`` with the CPU targets, by the export pipeline (parity gate on, 4 images)."""
    import dataclasses

    import torch

    from qtseg.checkpoint import load_checkpoint
    from qtseg.export.job import ExportJob, Progress
    from qtseg.export.options import ExportOptions
    from qtseg.export.pipeline import export_target
    from qtseg.export.targets import TARGETS

    out = tmp_path_factory.mktemp("exports")
    model, spec, info = load_checkpoint(bench_checkpoint)
    spec = dataclasses.replace(spec, input_size=(128, 128))
    job = ExportJob(
        model,
        spec,
        info,
        ExportOptions(dynamic_batch=2, num_samples=NUM_IMAGES),
        progress=Progress(quiet=True),
    )
    # One thread for the gate's PyTorch reference, as the bench runs below use (--threads 1):
    # the same thread count gives bit-identical reference logits, so the parity numbers
    # can be compared exactly. One thread also keeps PyTorch fast on a busy 2-core machine.
    previous = torch.get_num_threads()
    torch.set_num_threads(BENCH_THREADS)
    try:
        for name in CPU_TARGETS:
            outcome = export_target(job, TARGETS[name], out)
            assert outcome.status == "ok", outcome.message
    finally:
        job.close()
        torch.set_num_threads(previous)
    return out


@pytest.fixture(scope="session")
def unrunnable_artifacts(cpu_exports: Path, tmp_path_factory) -> Path:
    """Artifacts that cannot run on a CPU-only machine, and one broken artifact.

    - ``trtrtx``: a TensorRT-RTX artifact (the runtime is installed; there is no GPU);
    - ``trt``: a TensorRT artifact (NVIDIA's ``tensorrt`` is not installed);
    - ``broken``: an ONNX artifact whose model file is not ONNX.
    """
    import dataclasses

    from qtseg.manifest import RuntimeSpec, describe_files, read_manifest_file, write_manifest

    base = read_manifest_file(cpu_exports / "qtseg-v2_onnx")
    out = tmp_path_factory.mktemp("unrunnable")
    for name, library in (("trtrtx", "tensorrt_rtx"), ("trt", "tensorrt")):
        folder = out / f"qtseg-v2_{name}-fp16"
        folder.mkdir()
        (folder / "model.engine").write_bytes(b"not an engine")
        base.preprocess.save(folder)
        manifest = dataclasses.replace(
            base,
            format="tensorrt",
            target=f"{name}-fp16",
            precision="fp16",
            runtime=RuntimeSpec(library, "cuda", {}),
            files=describe_files(folder, {"engine": "model.engine", "preprocess": "preprocess.json"}),
        )
        write_manifest(folder, manifest)
    # a model file that is not ONNX, recorded as such: the manifest is intact, the runtime refuses it
    broken = out / "qtseg-v2_broken"
    shutil.copytree(cpu_exports / "qtseg-v2_onnx", broken)
    (broken / "model.onnx").write_bytes(b"garbage")
    roles = {"model": "model.onnx", "preprocess": "preprocess.json"}
    write_manifest(broken, dataclasses.replace(base, files=describe_files(broken, roles)))
    return out


@pytest.fixture(scope="session")
def cpu_bench(cpu_exports: Path, tmp_path_factory) -> BenchRun:
    """One ``qtseg-bench`` run over the CPU artifacts: batch 1 and 2, few iterations."""
    report_dir = tmp_path_factory.mktemp("bench") / "report"
    return run_bench(
        [
            str(cpu_exports),
            "--batch",
            "1,2",
            "--warmup",
            "1",
            "--iters",
            "3",
            "--e2e-iters",
            "2",
            "--num-images",
            str(NUM_IMAGES),
            "--threads",
            str(BENCH_THREADS),
            "--quiet",
        ],
        report_dir,
    )
