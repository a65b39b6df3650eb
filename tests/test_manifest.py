"""qtseg.manifest: the artifact contract every loader checks (schema, paths, hashes, specs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qtseg.manifest import Manifest, ManifestError, open_artifact, read_manifest_file

from .artifacts import make_manifest, manifest_dict, write_manifest_dict
from .backends.conftest import make_conv_onnx, make_conv_openvino_artifact


@pytest.fixture()
def art(tmp_path: Path) -> Path:
    folder = tmp_path / "art"
    folder.mkdir()
    make_conv_onnx(folder / "model.onnx")
    make_manifest(folder, fmt="onnx", files={"model": "model.onnx"})
    return folder


def _tamper(folder: Path, edit) -> None:
    data = manifest_dict(folder)
    edit(data)
    write_manifest_dict(folder, data)


def test_round_trip_and_open(art):
    manifest = open_artifact(art).manifest
    assert manifest.format == "onnx" and manifest.runtime.name == "onnxruntime"
    assert set(manifest.files) == {"model", "preprocess"}
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    assert manifest.loaded_bytes() == (art / "model.onnx").stat().st_size


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.update(schema="qtseg.manifest/99"), "schema"),
        (lambda d: d.update(schema="qtseg.manifest/1"), "unsupported version"),
        (lambda d: d.pop("inputs"), "missing inputs"),
        (lambda d: d.pop("outputs"), "missing outputs"),
        (lambda d: d.pop("preprocess"), "missing preprocess"),
        (lambda d: d.pop("schema"), "schema"),
        (lambda d: d.update(surprise=1), "unknown surprise"),
        (lambda d: d.update(format="tflite"), "format"),
        (lambda d: d.update(precision="fp8"), "precision"),
        (lambda d: d["runtime"].update(name="openvino"), "runtime.name"),
        (lambda d: d["runtime"].update(device="tpu"), "device"),
        (lambda d: d["inputs"][0].update(shape=[-1, 3, 64, 64]), "inputs[0].shape"),
        (lambda d: d["outputs"][0].update(shape=[-1, 3, 32, 32]), "outputs[0].shape"),
        (lambda d: d["preprocess"].update(num_classes=3), "outputs[0].shape"),
        (lambda d: d["model"]["config"].update(num_classes=3), "model.config.num_classes"),
        (lambda d: d["files"].pop("model"), "files.model"),
        (lambda d: d["files"]["model"].update(sha256="xyz"), "sha256"),
        (lambda d: d["export"].update(batch=2), "export"),
        (lambda d: d["preprocess"].update(input_size=512), "preprocess"),
    ],
)
def test_contract_violations_are_one_line_naming_the_field(art, edit, field):
    _tamper(art, edit)
    with pytest.raises(ManifestError) as exc:
        open_artifact(art)
    message = str(exc.value)
    assert field in message and "manifest.json" in message and "\n" not in message


@pytest.mark.parametrize("path", ["/etc/passwd", "../../etc/passwd", "a/../model.onnx", "./model.onnx",
                                  "", "C:model.onnx", "sub\\model.onnx"])
def test_paths_must_be_plain_relative(art, path):
    _tamper(art, lambda d: d["files"]["model"].update(path=path))
    with pytest.raises(ManifestError, match="files.model.path"):
        read_manifest_file(art)


def test_symlink_leading_outside_is_refused(art, tmp_path):
    outside = tmp_path / "outside.onnx"
    make_conv_onnx(outside, seed=3)
    (art / "model.onnx").unlink()
    os.symlink(outside, art / "model.onnx")
    with pytest.raises(ManifestError, match="outside the artifact folder"):
        open_artifact(art)


def test_symlink_inside_the_folder_is_fine(art):
    (art / "real.onnx").write_bytes((art / "model.onnx").read_bytes())
    (art / "model.onnx").unlink()
    os.symlink("real.onnx", art / "model.onnx")
    _tamper(art, lambda d: d["files"].update(weights_copy=dict(d["files"]["model"], path="real.onnx")))
    open_artifact(art)


def test_one_flipped_byte_fails_the_hash_and_names_the_file(art):
    data = bytearray((art / "model.onnx").read_bytes())
    data[-5] ^= 0x01
    (art / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=r"files.model: model.onnx does not match its recorded SHA-256"):
        open_artifact(art)
    open_artifact(art, verify_hashes=False)  # explicit opt-out: only the hash is skipped


def test_truncated_file_fails_even_without_hashing(art):
    data = (art / "model.onnx").read_bytes()
    (art / "model.onnx").write_bytes(data[:-10])
    with pytest.raises(ManifestError, match="bytes"):
        open_artifact(art, verify_hashes=False)


def test_preprocess_json_must_equal_the_embedded_spec(art):
    from qtseg.provenance import file_sha256

    spec_file = art / "preprocess.json"
    spec_file.write_text(spec_file.read_text().replace('"RGB"', '"BGR"'))
    with pytest.raises(ManifestError, match="files.preprocess"):  # its hash no longer matches
        open_artifact(art)
    # even with size and hash re-recorded, the spec must equal the manifest's own
    size, digest = spec_file.stat().st_size, file_sha256(spec_file)
    _tamper(art, lambda d: d["files"]["preprocess"].update(size=size, sha256=digest))
    with pytest.raises(ManifestError, match="differs from preprocess.json"):
        open_artifact(art)


def test_openvino_manifest_must_state_its_inference_precision(tmp_path):
    folder = make_conv_openvino_artifact(tmp_path / "ov")
    assert open_artifact(folder).manifest.runtime.properties == {"INFERENCE_PRECISION_HINT": "f32"}
    _tamper(folder, lambda d: d["runtime"].update(properties={}))
    with pytest.raises(ManifestError, match="INFERENCE_PRECISION_HINT"):
        open_artifact(folder)


@pytest.mark.parametrize("content", [b"{not json", b"[]", b"\xff\xfe", b'{"a": ' * 100000])
def test_malformed_json_is_one_line(art, content):
    (art / "manifest.json").write_bytes(content)
    with pytest.raises(ManifestError) as exc:
        open_artifact(art)
    assert "\n" not in str(exc.value)


def test_missing_folder_and_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        open_artifact(tmp_path / "nope")
    with pytest.raises(ManifestError, match="missing"):
        open_artifact(tmp_path)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_json_constants_are_refused(art, token):
    """Python's json takes NaN/Infinity; the C++ parser (and JSON) does not: neither do we."""
    text = (art / "manifest.json").read_text()
    (art / "manifest.json").write_text(text.replace("{", '{"x": ' + token + ", ", 1))
    with pytest.raises(ManifestError, match=f"{token} is not valid JSON"):
        open_artifact(art)
