"""AOTInductor backend on real (tiny) ``.pt2`` packages compiled here for CPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from qtseg.backends import BackendError, NotExecutableHere, TensorMeta, open_backend
from qtseg.backends.aoti_backend import AotiBackend, package_library, read_package_metadata
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


def test_packages_built_here_link_libstdcxx_dynamically(package):
    member, runtime = package_library(package)
    assert member.endswith(".so") and "/data/aotinductor/model/" in member
    assert runtime == "dynamic"


def test_a_library_with_its_own_libstdcxx_is_refused_before_loading(package, tmp_path):
    # torch 2.11 dies with SIGSEGV loading such a package (issue 16); the backend must refuse it
    static = pk.shared_library(tmp_path / "lib", static_libstdcxx=True)
    bad = pk.with_metadata(package, tmp_path / "bad" / "model.pt2", {}, library=static)
    with pytest.raises(BackendError, match="own copy of libstdc.. .linked with -static-libstdc"):
        AotiBackend(bad)


def test_cuda_graph_needs_a_cuda_package(package):
    with pytest.raises(BackendError, match="cuda_graph needs a CUDA package"):
        AotiBackend(package, cuda_graph=True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_package_runs_with_and_without_graph_replay():
    path = pk.cuda_package()
    x = _batch(3)
    with AotiBackend(path) as plain, AotiBackend(path, cuda_graph=True) as graphed:
        assert plain.describe()["compiled_for"] == "cuda"
        want = pk.reference(x)
        np.testing.assert_allclose(plain.infer(x), want, rtol=0, atol=1e-4)
        np.testing.assert_allclose(graphed.infer(x), want, rtol=0, atol=1e-4)
        # replay with new data of the same shape, then another shape
        np.testing.assert_allclose(graphed.infer(x[::-1].copy()), want[::-1], rtol=0, atol=1e-4)
        np.testing.assert_allclose(graphed.infer(x[:1]), want[:1], rtol=0, atol=1e-4)
        assert callable(graphed.device_call(x)) and graphed.peak_memory_mb() > 0


def test_missing_and_broken_packages_raise_backend_error(tmp_path):
    with pytest.raises(BackendError, match="not found"):
        AotiBackend(tmp_path / "absent.pt2")
    broken = tmp_path / "model.pt2"
    broken.write_bytes(b"not a zip archive")
    with pytest.raises(BackendError, match="not a readable AOTInductor package"):
        AotiBackend(broken)
