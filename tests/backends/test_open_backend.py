"""open_backend: a verified manifest -> its runtime, through the one runtime table."""

from __future__ import annotations

import numpy as np
import pytest

from qtseg.backends import RUNTIMES, BackendError, ManifestError, open_backend
from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend
from qtseg.backends.openvino_backend import OpenVINOBackend
from qtseg.backends.torch_backend import TorchBackend
from qtseg.manifest import RUNTIMES as MANIFEST_RUNTIMES

from ..artifacts import make_manifest, manifest_dict, write_manifest_dict
from .conftest import make_conv_onnx, make_conv_openvino_artifact, reference_conv


@pytest.fixture()
def onnx_dir(tmp_path):
    folder = tmp_path / "a_onnx"
    folder.mkdir()
    make_conv_onnx(folder / "model.onnx")
    make_manifest(folder, fmt="onnx", files={"model": "model.onnx"}, precision="fp16")
    return folder


@pytest.fixture()
def ov_dir(tmp_path):
    return make_conv_openvino_artifact(tmp_path / "a_ov")


def test_onnx_and_openvino_artifacts(onnx_dir, ov_dir, batch):
    for folder, cls in ((onnx_dir, OnnxRuntimeBackend), (ov_dir, OpenVINOBackend)):
        with open_backend(folder) as be:
            assert isinstance(be, cls)
            np.testing.assert_allclose(be.infer(batch), reference_conv(batch), atol=1e-2)
    with open_backend(onnx_dir) as be:
        assert be.describe()["precision"] == "fp16"


@pytest.mark.parametrize("hint", ["f32", "bf16"])
def test_openvino_applies_the_manifests_inference_precision(ov_dir, hint):
    from qtseg.provenance import cpu_has

    data = manifest_dict(ov_dir)
    data["runtime"]["properties"]["INFERENCE_PRECISION_HINT"] = hint
    write_manifest_dict(ov_dir, data)
    with open_backend(ov_dir) as be:
        got = be.compiled_property("INFERENCE_PRECISION_HINT")
    # OpenVINO reports what it computes in: bf16 only where the CPU has it
    expected = hint if hint == "f32" or cpu_has("avx512_bf16") or cpu_has("amx_bf16") else "f32"
    assert got == expected


def test_onnxruntime_applies_the_manifests_session_config(onnx_dir):
    data = manifest_dict(onnx_dir)
    data["runtime"]["properties"] = {"session.intra_op.allow_spinning": "0"}
    write_manifest_dict(onnx_dir, data)
    with open_backend(onnx_dir) as be:
        assert be.describe()["session_config"] == {"session.intra_op.allow_spinning": "0"}


def test_a_tampered_artifact_never_reaches_the_runtime(onnx_dir):
    from .conftest import conv_weights

    data = bytearray((onnx_dir / "model.onnx").read_bytes())
    at = bytes(data).index(conv_weights()[0].tobytes()) + 3
    data[at] ^= 0x80  # flip the sign of one weight: still a valid graph, different numbers
    (onnx_dir / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="SHA-256"):
        open_backend(onnx_dir)
    with open_backend(onnx_dir, verify_hashes=False) as be:  # the explicit opt-out
        assert isinstance(be, OnnxRuntimeBackend)


def test_device_of_the_artifact_is_enforced(ov_dir):
    with pytest.raises(BackendError, match="built for cpu"):
        open_backend(ov_dir, device="cuda")


def test_checkpoint_and_module(tiny_checkpoint):
    from qtseg.checkpoint import load_checkpoint

    with open_backend(tiny_checkpoint) as be:
        assert isinstance(be, TorchBackend)
    model, _, _ = load_checkpoint(tiny_checkpoint)
    with open_backend(model) as be:
        assert isinstance(be, TorchBackend)


def test_bad_paths(tmp_path):
    with pytest.raises(BackendError, match="neither an artifact directory nor a qtseg checkpoint"):
        open_backend(tmp_path)
    with pytest.raises(BackendError, match="no such artifact"):
        open_backend(tmp_path / "nope")
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        open_backend(tmp_path / "y")


def test_runtime_table_covers_every_runtime_a_manifest_may_name():
    named = {name for names in MANIFEST_RUNTIMES.values() for name in names}
    assert named | {"torch"} == set(RUNTIMES)
    assert {r.name for r in RUNTIMES.values() if r.takes_threads} == {"torch", "onnxruntime", "openvino", "aoti"}
