"""Bad input makes qtseg_infer exit non-zero with exactly one line on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qtseg.manifest import ArtifactFile
from tests.cpp.helpers import cli_fails, clone_artifact, edit_manifest, rehash, run

pytestmark = pytest.mark.slow


def _fails(cpp_build, *args, code: int = 1) -> str:
    return cli_fails(cpp_build.cli, *args, code=code)


@pytest.fixture()
def image(sample_jpegs) -> Path:
    return sample_jpegs[0]


def test_missing_artifact_dir(cpp_build, image, tmp_path):
    line = _fails(cpp_build, "--artifact", tmp_path / "nope", "--input", image)
    assert "artifact folder not found" in line


def test_missing_manifest(cpp_build, image, tmp_path):
    line = _fails(cpp_build, "--artifact", tmp_path, "--input", image)
    assert "manifest.json: missing (not a qtseg artifact folder)" in line


def test_missing_weights_file(cpp_build, ov_artifact, image, tmp_path):
    broken = clone_artifact(ov_artifact.path, tmp_path / "a")
    weights = ov_artifact.manifest["files"]["weights"]["path"]
    (broken / weights).unlink()
    line = _fails(cpp_build, "--artifact", broken, "--input", image)
    assert f"files.weights: {weights} does not exist in the artifact folder" in line


def test_malformed_manifest(cpp_build, ov_artifact, image, tmp_path):
    broken = clone_artifact(ov_artifact.path, tmp_path / "a")
    (broken / "manifest.json").write_text('{"schema": "qtseg.manifest/2", "format": ')
    assert "manifest.json: not valid JSON" in _fails(
        cpp_build, "--artifact", broken, "--input", image
    )


def _as_format(artifact: Path, fmt: str, runtime: str, files: dict[str, str]) -> None:
    """Turn a copied artifact into a valid manifest of another format (fake model files)."""
    for name in files.values():
        (artifact / name).write_bytes(b"not a model")

    def edit(m):
        m.update(format=fmt, target=f"{fmt}-fp32")
        m["runtime"] = {"name": runtime, "device": None, "properties": {}}
        listed = {**files, "preprocess": "preprocess.json"}
        m["files"] = {role: ArtifactFile.of(artifact, p).to_dict() for role, p in listed.items()}

    edit_manifest(artifact, edit)


def test_format_without_compiled_backend(cpp_build, ov_artifact, image, tmp_path):
    broken = clone_artifact(ov_artifact.path, tmp_path / "a")
    _as_format(broken, "aoti", "aoti", {"model": "model.pt2"})
    line = _fails(cpp_build, "--artifact", broken, "--input", image)
    assert "no compiled backend reads format 'aoti'" in line


def test_tensorrt_format_without_tensorrt(cpp_build, ov_artifact, image, tmp_path):
    compiled = run([cpp_build.cli, "--list-backends"]).stdout.split()
    if "tensorrt" in compiled:
        pytest.skip("this build has the TensorRT backend")
    broken = clone_artifact(ov_artifact.path, tmp_path / "a")
    _as_format(broken, "tensorrt", "tensorrt", {"engine": "model.engine", "onnx": "model.onnx"})
    line = _fails(cpp_build, "--artifact", broken, "--input", image)
    assert "format 'tensorrt'" in line and "compiled: openvino" in line


def test_manifest_input_name_mismatch(cpp_build, ov_artifact, image, tmp_path):
    broken = clone_artifact(ov_artifact.path, tmp_path / "a")
    edit_manifest(broken, lambda m: m["inputs"][0].update(name="not_the_input"))
    line = _fails(cpp_build, "--artifact", broken, "--input", image)
    assert "manifest/model mismatch" in line and "not_the_input" in line


def test_manifest_shape_mismatch_with_model(cpp_build, ov_artifact_batch1, image, tmp_path):
    # Manifest and preprocess.json agree on 2x the size, the (static) model does not.
    broken = clone_artifact(ov_artifact_batch1.path, tmp_path / "a")
    spec = ov_artifact_batch1.spec
    h, w = (2 * v for v in spec.input_size)

    def edit(m):
        m["inputs"][0]["shape"] = [1, 3, h, w]
        m["outputs"][0]["shape"] = [1, spec.num_classes, h, w]
        m["preprocess"]["input_size"] = [h, w]
        (broken / "preprocess.json").write_text(json.dumps(m["preprocess"]))

    edit_manifest(broken, edit)
    rehash(broken)
    line = _fails(cpp_build, "--artifact", broken, "--input", image)
    assert "manifest/model mismatch" in line


def test_num_classes_contradicts_output_shape(cpp_build, ov_artifact, image, tmp_path):
    broken = clone_artifact(ov_artifact.path, tmp_path / "a")
    edit_manifest(broken, lambda m: m["outputs"][0]["shape"].__setitem__(1, 7))
    line = _fails(cpp_build, "--artifact", broken, "--input", image)
    assert "outputs[0].shape" in line and "num_classes=2" in line


def _flip_channel_order(artifact: Path) -> None:
    """RGB <-> BGR in preprocess.json, same number of bytes (only the hash can tell)."""
    text = (artifact / "preprocess.json").read_text()
    flipped = text.replace('"RGB"', '"XXX"').replace('"BGR"', '"RGB"').replace('"XXX"', '"BGR"')
    assert flipped != text and len(flipped) == len(text)
    (artifact / "preprocess.json").write_text(flipped)


def test_preprocess_json_edited_after_export(cpp_build, ov_artifact, image, tmp_path):
    broken = clone_artifact(ov_artifact.path, tmp_path / "a")
    _flip_channel_order(broken)
    line = _fails(cpp_build, "--artifact", broken, "--input", image)
    assert "files.preprocess: preprocess.json does not match its recorded SHA-256" in line


def test_preprocess_json_differs_from_manifest(cpp_build, ov_artifact, image, tmp_path):
    broken = clone_artifact(ov_artifact.path, tmp_path / "a")
    _flip_channel_order(broken)
    rehash(broken)  # the hash now vouches for the edited file: only the spec comparison is left
    line = _fails(cpp_build, "--artifact", broken, "--input", image)
    assert "manifest.json: preprocess: differs from preprocess.json" in line


def test_manifest_with_four_input_channels(cpp_build, ov_artifact, image, tmp_path):
    broken = clone_artifact(ov_artifact.path, tmp_path / "a")
    edit_manifest(broken, lambda m: m["inputs"][0]["shape"].__setitem__(1, 4))
    assert "inputs[0].shape: [-1, 4," in _fails(cpp_build, "--artifact", broken, "--input", image)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"this is text, not an image\n",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
        b"\xff\xd8\xff\xe0\0\x10JFIF\0",
    ],
)
def test_undecodable_image(cpp_build, ov_artifact, tmp_path, content):
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    line = _fails(cpp_build, "--artifact", ov_artifact.path, "--input", bad)
    assert "cannot decode" in line and "bad.png" in line


def test_truncated_jpeg(cpp_build, ov_artifact, sample_jpegs, tmp_path):
    bad = tmp_path / "cut.jpg"
    bad.write_bytes(sample_jpegs[0].read_bytes()[:5000])
    assert "truncated" in _fails(cpp_build, "--artifact", ov_artifact.path, "--input", bad)


def test_missing_image(cpp_build, ov_artifact, tmp_path):
    assert "not found" in _fails(
        cpp_build, "--artifact", ov_artifact.path, "--input", tmp_path / "none.png"
    )


@pytest.mark.parametrize("channels, spatial", [(3, 0.5), (4, 1.0)])
def test_input_tensor_of_wrong_shape(cpp_build, ov_artifact, tmp_path, channels, spatial):
    h, w = (int(v * spatial) for v in ov_artifact.spec.input_size)
    np.zeros((1, channels, h, w), "<f4").tofile(tmp_path / "x.bin")
    line = _fails(
        cpp_build,
        "--artifact",
        ov_artifact.path,
        "--input-tensor",
        tmp_path / "x.bin",
        "--input-shape",
        f"1,{channels},{h},{w}",
    )
    assert "expects" in line


def test_input_tensor_file_size_mismatch(cpp_build, ov_artifact, tmp_path):
    h, w = ov_artifact.spec.input_size
    np.zeros(10, "<f4").tofile(tmp_path / "x.bin")
    line = _fails(
        cpp_build,
        "--artifact",
        ov_artifact.path,
        "--input-tensor",
        tmp_path / "x.bin",
        "--input-shape",
        f"1,3,{h},{w}",
    )
    assert "holds 10 float32 values" in line


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--bench", "x"],
        ["--artifact", "a", "--input", "i", "--output", "o", "--output", "p"],
        ["--frobnicate"],
    ],
)
def test_usage_errors_exit_2(cpp_build, args):
    assert "usage error" in _fails(cpp_build, *args, code=2)
