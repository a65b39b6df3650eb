"""AOTInductor backend on real (tiny) ``.pt2`` packages compiled here for CPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from qtseg.backends import BackendError, NotExecutableHere, TensorMeta, open_backend
from qtseg.backends.aoti_backend import AotiBackend, read_package_metadata
from qtseg.preprocess import PreprocessSpec
from tests.backends import aoti_packages as pk

pytestmark = pytest.mark.slow  # one ~25 s AOTInductor compile, shared by the module


@pytest.fixture(scope="module")
def package() -> Path:
    return pk.dynamic_package()


def _batch(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, pk.HW, pk.HW), dtype=np.float32)


def test_package_metadata_is_read_without_loading(package):
    meta = read_package_metadata(package)
    assert meta["AOTI_DEVICE_KEY"] == "cpu"
    assert meta["qtseg.max_batch"] == "4"
    assert json.loads(meta["qtseg.input"]) == pk.INPUT_META


@pytest.mark.parametrize("n", [1, 2, 4])
def test_logits_match_pytorch_for_every_batch_size(package, n):
    x = _batch(n)
    with AotiBackend(package) as be:
        out = be.infer(x)
        again = be.infer(x)
    assert out.shape == (n, 2, pk.HW, pk.HW) and out.dtype == np.float32
    np.testing.assert_allclose(out, pk.reference(x), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(out, again)  # deterministic on CPU


def test_metadata_and_describe_come_from_the_package(package):
    with AotiBackend(package) as be:
        assert be.input_metadata() == [TensorMeta("image", (-1, 3, 32, 32), "float32")]
        info = be.describe()
    assert info["backend"] == "aoti" and info["device"] == "cpu" and info["compiled_for"] == "cpu"
    assert info["precision"] == "fp32" and info["cpu_isa"]
    assert info["versions"]["torch"]


def test_inputs_the_compiled_code_would_not_check_are_refused(package):
    with AotiBackend(package) as be:
        with pytest.raises(ValueError, match="maximum batch 4"):
            be.infer(_batch(5))
        with pytest.raises(ValueError, match="axis 2"):
            be.infer(np.zeros((1, 3, 64, 64), np.float32))
        with pytest.raises(ValueError, match="float32"):
            be.infer(_batch(1).astype(np.float64))


def test_open_backend_reads_an_aoti_artifact_directory(package, tmp_path):
    from ..artifacts import make_manifest

    shutil.copyfile(package, tmp_path / "model.pt2")  # a symlink leading outside would be refused
    make_manifest(tmp_path, fmt="aoti", files={"model": "model.pt2"}, hw=32)
    x = _batch(3)
    with open_backend(tmp_path) as be:
        assert isinstance(be, AotiBackend)
        np.testing.assert_allclose(be.infer(x), pk.reference(x), rtol=0, atol=1e-5)


def test_cpu_package_refuses_a_cuda_device(package):
    with pytest.raises(BackendError, match="compiled for cpu"):
        AotiBackend(package, device="cuda")


def test_cuda_package_is_not_executable_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(NotExecutableHere, match="compiled for CUDA .compute capability 90."):
        AotiBackend(pk.cuda_labelled_package())


def test_missing_and_broken_packages_raise_backend_error(tmp_path):
    with pytest.raises(BackendError, match="not found"):
        AotiBackend(tmp_path / "absent.pt2")
    broken = tmp_path / "model.pt2"
    broken.write_bytes(b"not a zip archive")
    with pytest.raises(BackendError, match="not a readable AOTInductor package"):
        AotiBackend(broken)
