"""Bad input: one clear line each, exit 2, no partial files."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from .conftest import run_cli


@pytest.fixture()
def out(tmp_path):
    return tmp_path / "exports"


def _assert_one_error(run, *needles: str) -> None:
    assert run.rc == 2, (run.rc, run.err)
    lines = [line for line in run.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), run.err
    for needle in needles:
        assert needle in lines[0], lines[0]


def _base(ckpt, samples, out):
    return ["--checkpoint", str(ckpt), "--samples", str(samples), "--out", str(out)]


def test_unknown_target_lists_valid_ones(tiny_checkpoint, sample_images, out):
    run = run_cli(["--target", "tflite", *_base(tiny_checkpoint, sample_images, out)])
    _assert_one_error(run, "unknown target 'tflite'", "onnx, onnx-fp16", "trtrtx-fp16", "all")
    assert not out.exists()


def test_missing_checkpoint(tmp_path, sample_images, out):
    run = run_cli(["--target", "onnx", *_base(tmp_path / "nope", sample_images, out)])
    _assert_one_error(run, "checkpoint not found")
    assert not out.exists()


def test_checkpoint_model_mismatch(tiny_checkpoint, sample_images, out):
    run = run_cli(["--target", "onnx", "--model", "qtseg-v1", *_base(tiny_checkpoint, sample_images, out)])
    _assert_one_error(run, "holds model 'qtseg-v2', not 'qtseg-v1'")
    assert not out.exists()


def test_imgsz_not_multiple_of_32(tiny_checkpoint, sample_images, out):
    run = run_cli(["--target", "onnx", "--imgsz", "100", *_base(tiny_checkpoint, sample_images, out)])
    _assert_one_error(run, "multiple of 32")


def test_output_dir_not_writable(tiny_checkpoint, sample_images, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    run = run_cli(["--target", "onnx", *_base(tiny_checkpoint, sample_images, blocker / "exports")])
    _assert_one_error(run, "not writable")
    run = run_cli(["--target", "onnx", *_base(tiny_checkpoint, sample_images, blocker)])
    _assert_one_error(run, "not a directory")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed")
def test_backend_not_installed_names_the_extra(tiny_checkpoint, sample_images, out):
    run = run_cli(["--target", "trt-fp16", *_base(tiny_checkpoint, sample_images, out)])
    _assert_one_error(run, "TensorRT (the 'tensorrt' module) is not installed", "pip install tensorrt",
                      "trtrtx-fp16 builds with the pip-installable TensorRT-RTX instead")
    assert not out.exists()


def test_option_the_target_does_not_accept(tiny_checkpoint, sample_images, out):
    run = run_cli(["--target", "onnx", "--io-fp16", *_base(tiny_checkpoint, sample_images, out)])
    _assert_one_error(run, "does not accept --io-fp16")
    run = run_cli(["--target", "trtrtx-fp16", "--dynamic-hw", *_base(tiny_checkpoint, sample_images, out)])
    _assert_one_error(run, "does not accept --dynamic-hw")


def test_bad_opset_and_samples(tiny_checkpoint, sample_images, tmp_path, out):
    run = run_cli(["--target", "onnx", "--opset", "13", *_base(tiny_checkpoint, sample_images, out)])
    _assert_one_error(run, "--opset")
    run = run_cli(["--target", "onnx", *_base(tiny_checkpoint, tmp_path / "none", out)])
    _assert_one_error(run, "sample images not found")
    run = run_cli(["--target", "trtrtx-fp16", "--compute-capability", "ampere",
                   *_base(tiny_checkpoint, sample_images, out)])
    _assert_one_error(run, "bad compute capability")
    assert not out.exists()


def test_parsing_imports_no_runtime():
    code = (
        "import sys; from qtseg.export.cli import build_parser, _plan; from qtseg.export.targets import resolve;"
        "a = build_parser().parse_args(['--target', 'all']); _plan(resolve('all'), set(), single=False);"
        "heavy = [m for m in ('tensorrt', 'tensorrt_rtx', 'openvino', 'onnxruntime', 'torch') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_int8_target_without_calibration_set(tiny_checkpoint, sample_images, out):
    run = run_cli(["--target", "onnx-int8", *_base(tiny_checkpoint, sample_images, out)])
    _assert_one_error(run, "onnx-int8 needs a calibration set", "--calib DIR")
    assert not out.exists()


def test_int8_flags_without_int8_target(tiny_checkpoint, sample_images, kvasir_mini, tmp_path, out):
    run = run_cli(["--target", "onnx", "--calib", str(kvasir_mini), *_base(tiny_checkpoint, sample_images, out)])
    _assert_one_error(run, "--calib is used only by the INT8 targets", "onnx-int8")
    run = run_cli(["--target", "onnx-int8", "--calib-method", "minmax", *_base(tiny_checkpoint, sample_images, out)])
    _assert_one_error(run, "--calib-method is an INT8 option")
    run = run_cli(["--target", "onnx-int8", "--calib", str(tmp_path / "none"), *_base(tiny_checkpoint, sample_images, out)])
    _assert_one_error(run, "calibration set or dataset folder not found")
    run = run_cli(["--target", "onnx-int8", "--calib", str(kvasir_mini), "--calib-method", "kl",
                   *_base(tiny_checkpoint, sample_images, out)])
    _assert_one_error(run, "unknown calibration method 'kl'")
    assert not out.exists()
