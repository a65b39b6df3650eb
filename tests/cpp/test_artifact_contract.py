"""Hostile artifacts (issue 12, items 1-3): the C++ loader refuses each with the same one
line as Python's ``qtseg.manifest.open_artifact`` ("<dir>/manifest.json: <field>: <problem>").

Every case starts from a valid tiny artifact, breaks one rule, and checks both loaders.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qtseg.manifest import ManifestError, open_artifact
from tests.cpp.helpers import cli_fails, clone_artifact, edit_manifest, rehash, run

pytestmark = pytest.mark.slow

Edit = Callable[[dict[str, Any]], Any]


def _set(path: str, value: Any) -> Edit:
    """Edit setting ``a.b.0.c`` (dots; integers index lists) to ``value``."""

    def edit(m: dict[str, Any]) -> None:
        *parents, last = (int(p) if p.isdigit() else p for p in path.split("."))
        for key in parents:
            m = m[key]
        m[last] = value

    return edit


def _drop(key: str) -> Edit:
    return lambda m: m.pop(key)


# case -> (edit of a valid manifest, text the refusal must contain)
CONTENT_CASES: dict[str, tuple[Edit, str]] = {
    "schema-99": (
        _set("schema", "qtseg.manifest/99"),
        "schema: unsupported version 'qtseg.manifest/99'",
    ),
    "schema-v1": (
        _set("schema", "qtseg.manifest/1"),
        "schema: unsupported version 'qtseg.manifest/1'",
    ),
    "schema-missing": (_drop("schema"), "schema: None is not a qtseg manifest schema"),
    "inputs-missing": (_drop("inputs"), "keys: missing inputs"),
    "outputs-missing": (_drop("outputs"), "keys: missing outputs"),
    "preprocess-missing": (_drop("preprocess"), "keys: missing preprocess"),
    "unknown-key": (_set("extra", 1), "keys: unknown extra"),
    "format": (_set("format", "pytorch"), "format: 'pytorch' is not one of"),
    "precision": (_set("precision", "fp64"), "precision: 'fp64' is not one of"),
    "runtime-name": (_set("runtime.name", "onnxruntime"), "runtime.name: 'onnxruntime' cannot run"),
    "runtime-device": (_set("runtime.device", "gpu"), "runtime.device: 'gpu' is not one of"),
    "precision-hint-missing": (
        _set("runtime.properties", {}),
        "runtime.properties.INFERENCE_PRECISION_HINT: None: an OpenVINO artifact must state",
    ),
    "precision-hint-bad": (
        _set("runtime.properties.INFERENCE_PRECISION_HINT", "i8"),
        "runtime.properties.INFERENCE_PRECISION_HINT: 'i8'",
    ),
    "property-not-string": (
        _set("runtime.properties.INFERENCE_NUM_THREADS", 1),
        "runtime.properties: must map strings to strings",
    ),
    "input-size-vs-spec": (
        _set("inputs.0.shape", [-1, 3, 128, 64]),
        "inputs[0].shape: [-1, 3, 128, 64]",
    ),
    "input-channels": (_set("inputs.0.shape", [-1, 1, 64, 64]), "inputs[0].shape: [-1, 1, 64, 64]"),
    "input-rank": (_set("inputs.0.shape", [3, 64, 64]), "inputs[0].shape: [3, 64, 64]"),
    "two-inputs": (
        lambda m: m["inputs"].append(dict(m["inputs"][0], name="second")),
        "inputs: expected exactly one model input, got 2",
    ),
    "output-classes": (
        _set("outputs.0.shape", [-1, 3, 64, 64]),
        "outputs[0].shape: [-1, 3, 64, 64]",
    ),
    "config-num-classes": (
        _set("model.config.num_classes", 3),
        "model.config.num_classes: 3 but the preprocess spec has num_classes=2",
    ),
    "dtype": (_set("inputs.0.dtype", "float64"), "inputs[0].dtype: 'float64' is not one of"),
    "static-batch-vs-input": (
        lambda m: m["export"].update(batch=2, dynamic_batch_max=None),
        "inputs[0].shape: batch -1 but export.batch is 2",
    ),
    "batch-and-dynamic": (
        _set("export.batch", 1),
        "export: exactly one of batch and dynamic_batch_max",
    ),
    "int8-without-calibration": (
        _set("precision", "int8"),
        "calibration: an int8 artifact must name",
    ),
    "absolute-path": (
        _set("files.model.path", "/etc/passwd"),
        "files.model.path: '/etc/passwd' is absolute",
    ),
    "dotdot-path": (
        _set("files.model.path", "../other/model.xml"),
        "files.model.path: '../other/model.xml' has",
    ),
    "dot-path": (_set("files.model.path", "./model.xml"), "files.model.path: './model.xml' has"),
    "backslash-path": (
        _set("files.model.path", "..\\model.xml"),
        "must be a plain POSIX relative path",
    ),
    "drive-path": (_set("files.model.path", "C:model.xml"), "must be a plain POSIX relative path"),
    "weights-role-missing": (
        lambda m: m["files"].pop("weights"),
        "files.weights: missing (format 'openvino' needs it)",
    ),
    "file-entry-keys": (
        _set("files.model.mtime", 0),
        "files.model: needs exactly the keys path, size, sha256",
    ),
    "file-sha256-case": (
        lambda m: m["files"]["model"].update(sha256=m["files"]["model"]["sha256"].upper()),
        "files.model.sha256: must be 64 lowercase hex digits",
    ),
    "file-size-negative": (
        _set("files.model.size", -1),
        "files.model.size: must be a non-negative integer",
    ),
    "preprocess-role-path": (
        _set("files.preprocess.path", "spec.json"),
        "files.preprocess.path: must be 'preprocess.json'",
    ),
    "same-file-twice": (
        _set("files.weights.path", "model.xml"),
        "files: two roles name the same file",
    ),
}


# Python prints the path with repr(), which doubles the backslash.
NOT_THE_SAME_LINE = {"backslash-path"}


def _both_refuse(
    cli: Path, artifact: Path, image: Path, needle: str, *, same_line: bool = True
) -> str:
    """C++ and Python refuse ``artifact``; both messages contain ``needle`` (and are equal)."""
    line = cli_fails(cli, "--artifact", artifact, "--input", image)
    with pytest.raises(ManifestError) as python:
        open_artifact(artifact)
    assert needle in line, line
    assert needle in str(python.value), python.value
    if same_line:
        assert line == f"qtseg_infer: error: {python.value}"
    assert str(artifact.resolve() / "manifest.json") in line  # names the file
    return line


@pytest.fixture()
def image(sample_jpegs) -> Path:
    return sample_jpegs[0]


@pytest.fixture()
def copy(tiny_ov_artifact, tmp_path) -> Path:
    return clone_artifact(tiny_ov_artifact, tmp_path / "artifact")


def test_the_untouched_copy_loads(cpp_build, copy, image):
    proc = run([cpp_build.cli, "--artifact", copy, "--input", image])
    assert proc.returncode == 0, proc.stderr
    assert "verified: 3 files, sizes and SHA-256" in proc.stdout
    open_artifact(copy)


@pytest.mark.parametrize("case", list(CONTENT_CASES))
def test_manifest_content(cpp_build, copy, image, case):
    edit, needle = CONTENT_CASES[case]
    edit_manifest(copy, edit)
    _both_refuse(cpp_build.cli, copy, image, needle, same_line=case not in NOT_THE_SAME_LINE)


def test_not_a_json_object(cpp_build, copy, image):
    (copy / "manifest.json").write_text("[1, 2]")
    _both_refuse(cpp_build.cli, copy, image, "manifest.json: not a JSON object")


def test_manifest_larger_than_16_mib(cpp_build, copy, image):
    edit_manifest(copy, lambda m: m["details"].update(padding="x" * (16 << 20)))
    _both_refuse(cpp_build.cli, copy, image, "manifest.json: larger than 16 MiB; refused")


def test_float16_io_is_valid_but_not_for_cpp(cpp_build, copy, image):
    edit_manifest(copy, _set("inputs.0.dtype", "float16"))
    open_artifact(copy)  # the contract allows it ...
    line = cli_fails(cpp_build.cli, "--artifact", copy, "--input", image)
    assert (
        "inputs[0].dtype: 'float16': the C++ library feeds and reads float32 tensors only" in line
    )


def test_symlink_leading_outside(cpp_build, copy, image, tmp_path):
    # Same bytes (size and hash match), but the file lives outside the folder.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.move(copy / "model.bin", outside / "model.bin")
    os.symlink(outside / "model.bin", copy / "model.bin")
    _both_refuse(
        cpp_build.cli, copy, image, "files.weights: model.bin resolves outside the artifact folder"
    )


def test_relative_symlink_climbing_out(cpp_build, copy, image, tmp_path):
    shutil.move(copy / "model.bin", tmp_path / "model.bin")
    os.symlink("../model.bin", copy / "model.bin")
    _both_refuse(
        cpp_build.cli, copy, image, "files.weights: model.bin resolves outside the artifact folder"
    )


def test_symlink_inside_the_folder_is_fine(cpp_build, copy, image):
    (copy / "blobs").mkdir()
    shutil.move(copy / "model.bin", copy / "blobs" / "weights.bin")
    os.symlink("blobs/weights.bin", copy / "model.bin")
    proc = run([cpp_build.cli, "--artifact", copy, "--input", image])
    assert proc.returncode == 0, proc.stderr
    open_artifact(copy)


def test_dangling_symlink(cpp_build, copy, image):
    (copy / "model.bin").unlink()
    os.symlink("nowhere.bin", copy / "model.bin")
    _both_refuse(
        cpp_build.cli, copy, image, "files.weights: model.bin does not exist in the artifact folder"
    )


def test_listed_path_is_a_directory(cpp_build, copy, image):
    (copy / "model.bin").unlink()
    (copy / "model.bin").mkdir()
    _both_refuse(cpp_build.cli, copy, image, "files.weights: model.bin is not a regular file")


def _flip_low_bit(path: Path, offset: int) -> None:
    """XOR the lowest bit of the byte at ``offset``: a 1-ulp change of a little-endian float."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(bytes(data))


def test_weight_byte_flipped(cpp_build, copy, image):
    size = (copy / "model.bin").stat().st_size
    _flip_low_bit(copy / "model.bin", (size // 2) & ~3)
    _both_refuse(
        cpp_build.cli,
        copy,
        image,
        "files.weights: model.bin does not match its recorded SHA-256 (changed or corrupted after it was written)",
    )


def test_no_verify_hashes_is_an_explicit_opt_out(cpp_build, copy, image):
    size = (copy / "model.bin").stat().st_size
    _flip_low_bit(copy / "model.bin", (size // 2) & ~3)
    proc = run([cpp_build.cli, "--artifact", copy, "--input", image, "--no-verify-hashes"])
    assert proc.returncode == 0, proc.stderr
    assert "sizes only (--no-verify-hashes)" in proc.stdout
    open_artifact(copy, verify_hashes=False)


def test_truncated_weights(cpp_build, copy, image):
    data = (copy / "model.bin").read_bytes()
    (copy / "model.bin").write_bytes(data[:-4])
    line = _both_refuse(
        cpp_build.cli, copy, image, f"model.bin has {len(data) - 4} bytes, manifest.json recorded"
    )
    assert "files.weights" in line


def test_truncated_file_is_caught_without_hashing(cpp_build, copy, image):
    data = (copy / "model.xml").read_bytes()
    (copy / "model.xml").write_bytes(data[: len(data) // 2])
    line = cli_fails(cpp_build.cli, "--artifact", copy, "--input", image, "--no-verify-hashes")
    assert "files.model: model.xml has" in line


def test_rehash_makes_a_deliberate_edit_valid(cpp_build, copy, image):
    # Control for the hash tests: the same flip, recorded in the manifest, loads.
    size = (copy / "model.bin").stat().st_size
    _flip_low_bit(copy / "model.bin", (size // 2) & ~3)
    rehash(copy)
    assert run([cpp_build.cli, "--artifact", copy, "--input", image]).returncode == 0


@pytest.mark.parametrize(("number", "needle"), [
    ("1e999", "overflow"),  # beyond a double: not valid JSON for either parser
    ("1e300", "scale, mean and std must be finite numbers (no NaN or Inf)"),  # beyond float32
])
def test_preprocessing_number_out_of_range_is_refused(cpp_build, copy, image, number, needle):
    sentinel = 12345.5
    edit_manifest(copy, _set("preprocess.std", [sentinel, 1.0, 1.0]))
    spec = json.loads((copy / "preprocess.json").read_text())
    spec["std"] = [sentinel, 1.0, 1.0]
    (copy / "preprocess.json").write_text(json.dumps(spec).replace(str(sentinel), number))
    rehash(copy)
    manifest = copy / "manifest.json"
    manifest.write_text(manifest.read_text().replace(str(sentinel), number))
    _both_refuse(cpp_build.cli, copy, image, needle, same_line=False)


def test_nan_token_is_not_json_for_either_loader(cpp_build, copy, image):
    manifest = copy / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"precision": "', '"nan_here": NaN, "precision": "', 1))
    line = cli_fails(cpp_build.cli, "--artifact", copy, "--input", image)
    with pytest.raises(ManifestError, match="not valid JSON") as python:
        open_artifact(copy)
    assert "manifest.json" in line and "manifest.json" in str(python.value)
