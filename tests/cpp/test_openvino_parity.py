"""qtseg_infer (C++, OpenVINO) against the Python OpenVINO runtime on the same artifact.

Logits must agree to max |diff| <= 1e-4 and the masks must be identical; the
C++ preprocessing must equal PreprocessSpec.preprocess byte for byte.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qtseg.imageio import read_image
from tests.cpp.helpers import Artifact, cli_args, read_f32, run_checked

pytestmark = [pytest.mark.slow, pytest.mark.openvino]

LOGIT_TOL = 1e-4


def _python_openvino(artifact: Artifact, x: np.ndarray) -> np.ndarray:
    """Reference logits from the openvino Python API, one sample at a time, f32 as the C++ side."""
    import openvino as ov

    manifest = artifact.manifest
    config = manifest["runtime"]["properties"]
    compiled = ov.Core().compile_model(str(artifact.file("model")), "CPU", config)
    output = compiled.output(manifest["outputs"][0]["name"])
    return np.concatenate([compiled(x[i : i + 1])[output] for i in range(len(x))], axis=0)


def _run_cli(cpp_build, artifact: Artifact, images: list[Path], tmp: Path, *extra: str) -> dict:
    masks = [tmp / f"mask_{i}.png" for i in range(len(images))]
    proc = run_checked(
        [
            cpp_build.cli,
            "--artifact",
            artifact.path,
            *cli_args(images, masks),
            "--dump-input",
            tmp / "x.bin",
            "--dump-logits",
            tmp / "y.bin",
            *extra,
        ],
        what="qtseg_infer",
    )
    spec = artifact.spec
    h, w = spec.input_size
    n = len(images)
    return {
        "stdout": proc.stdout,
        "x": read_f32(tmp / "x.bin", (n, 3, h, w)),
        "logits": read_f32(tmp / "y.bin", (n, spec.num_classes, h, w)),
        "masks": [np.asarray(Image.open(m)) for m in masks],
    }


@pytest.fixture(scope="module")
def parity_images(sample_jpegs, png_images) -> list[Path]:
    """Three bundled samples and one lossless PNG."""
    return sample_jpegs[:3] + [p for p in png_images if p.name == "big_rgb.png"]


@pytest.mark.parametrize("which", ["dynamic-or-exported", "batch1"])
def test_cli_matches_python_openvino(
    cpp_build, ov_artifact, ov_artifact_batch1, parity_images, tmp_path, which
):
    artifact = ov_artifact if which == "dynamic-or-exported" else ov_artifact_batch1
    spec = artifact.spec
    out = _run_cli(cpp_build, artifact, parity_images, tmp_path, "--mask-values", "labels")

    x_py = spec.preprocess(parity_images)
    assert out["x"].tobytes() == x_py.tobytes(), (
        "C++ preprocessing differs from PreprocessSpec.preprocess"
    )

    ref = _python_openvino(artifact, x_py)
    max_diff = float(np.abs(out["logits"] - ref).max())
    mask_equal = []
    for i, path in enumerate(parity_images):
        size = read_image(path).shape[:2]
        mask_py = spec.postprocess(ref[i], size)
        assert out["masks"][i].shape == size
        mask_equal.append(bool(np.array_equal(out["masks"][i], mask_py)))
        # The C++ postprocessing of its own logits must equal the Python one exactly.
        assert np.array_equal(out["masks"][i], spec.postprocess(out["logits"][i], size))
    fg = [float((m > 0).mean()) for m in out["masks"]]
    print(
        f"\n[tests/cpp] {artifact.source}: max|logits diff| = {max_diff:.3g}, "
        f"masks identical = {mask_equal}, "
        f"foreground fractions = {[round(f, 3) for f in fg]}"
    )
    assert max_diff <= LOGIT_TOL
    assert all(mask_equal)


def test_scaled_masks_are_0_255_for_binary(cpp_build, ov_artifact, parity_images, tmp_path):
    spec = ov_artifact.spec
    if spec.num_classes != 2:
        pytest.skip("the exported model is not binary")
    out = _run_cli(cpp_build, ov_artifact, parity_images[:1], tmp_path)
    mask = out["masks"][0]
    expected = spec.postprocess(out["logits"][0], mask.shape).astype(np.uint8) * 255
    assert set(np.unique(mask)) <= {0, 255}
    assert np.array_equal(mask, expected)


def test_input_tensor_gives_the_python_logits(cpp_build, ov_artifact, parity_images, tmp_path):
    spec = ov_artifact.spec
    x = spec.preprocess(parity_images[:2])
    x.astype("<f4").tofile(tmp_path / "in.bin")
    run_checked(
        [
            cpp_build.cli,
            "--artifact",
            ov_artifact.path,
            "--input-tensor",
            tmp_path / "in.bin",
            "--input-shape",
            ",".join(map(str, x.shape)),
            "--dump-logits",
            tmp_path / "y.bin",
        ],
        what="qtseg_infer --input-tensor",
    )
    logits = read_f32(tmp_path / "y.bin", (2, spec.num_classes, *spec.input_size))
    assert float(np.abs(logits - _python_openvino(ov_artifact, x)).max()) <= LOGIT_TOL


def test_onnx_artifact_via_openvino_matches_onnxruntime(
    cpp_build, onnx_artifact, png_images, sample_jpegs, tmp_path
):
    # With no ONNX Runtime C++ SDK, "auto" reads the ONNX file with OpenVINO;
    # the reference is the Python onnxruntime package: a cross-runtime check.
    ort = pytest.importorskip("onnxruntime")
    images = [png_images[0], sample_jpegs[0]]
    out = _run_cli(cpp_build, onnx_artifact, images, tmp_path, "--mask-values", "labels")
    assert "format onnx" in out["stdout"]
    spec = onnx_artifact.spec
    x = spec.preprocess(images)
    assert out["x"].tobytes() == x.tobytes()
    session = ort.InferenceSession(
        str(onnx_artifact.path / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    ref = session.run(["logits"], {"image": x})[0]
    max_diff = float(np.abs(out["logits"] - ref).max())
    print(
        "\n[tests/cpp] ONNX artifact, C++ OpenVINO vs Python onnxruntime: "
        f"max|diff| = {max_diff:.3g}"
    )
    assert max_diff <= LOGIT_TOL
    for i, path in enumerate(images):
        assert np.array_equal(
            out["masks"][i], spec.postprocess(out["logits"][i], read_image(path).shape[:2])
        )


def test_bench_prints_latency_stats(cpp_build, ov_artifact, parity_images):
    proc = run_checked(
        [
            cpp_build.cli,
            "--artifact",
            ov_artifact.path,
            "--input",
            parity_images[0],
            "--bench",
            "3",
            "--warmup",
            "1",
        ],
        what="qtseg_infer --bench",
    )
    lines = proc.stdout.splitlines()
    assert any(line.startswith("latency over 3 runs after 1 warm-up") for line in lines)
    for stage in ("preprocess", "infer", "postprocess", "end-to-end"):
        row = next(line for line in lines if line.startswith(stage))
        values = [float(v) for v in row.split()[1:]]
        assert len(values) == 6 and all(v >= 0 for v in values)
        assert values[4] <= values[1] <= values[5]  # min <= p50 <= max


def test_matches_qtseg_backends_when_available(cpp_build, ov_artifact, parity_images, tmp_path):
    try:
        import qtseg.backends
        from qtseg.backends import open_backend
    except ImportError:
        pytest.skip("qtseg.backends.open_backend not available yet")
    if "open_artifact" not in inspect.getsource(qtseg.backends):
        # The fixtures write qtseg.manifest/2; the Python loaders switch to it separately.
        pytest.skip("qtseg.backends does not read qtseg.manifest/2 (open_artifact) yet")
    out = _run_cli(cpp_build, ov_artifact, parity_images[:2], tmp_path)
    with open_backend(ov_artifact.path) as backend:
        ref = np.concatenate([backend.infer(out["x"][i : i + 1]) for i in range(2)], axis=0)
    assert float(np.abs(out["logits"] - ref).max()) <= LOGIT_TOL
