"""TensorRT engine runner: here (no GPU) it must refuse clearly, never return numbers."""

from __future__ import annotations

import importlib.util

import pytest

from qtseg.backends import BackendUnavailable, NotExecutableHere
from qtseg.backends.tensorrt_backend import TensorRTBackend, cuda_device_problem, import_tensorrt

from .conftest import make_conv_onnx

HAVE_RTX = importlib.util.find_spec("tensorrt_rtx") is not None
HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def rtx_engine(tmp_path_factory):
    """A real TensorRT-RTX engine of the tiny graph (built ahead-of-time on CPU)."""
    from qtseg.export.tensorrt_engine import build_engine

    folder = tmp_path_factory.mktemp("engine")
    onnx_path = make_conv_onnx(folder / "model.onnx", batch=1)
    info = build_engine(onnx_path, folder / "model.engine", library="tensorrt_rtx")
    assert info["compute_capabilities"] and (folder / "model.engine").stat().st_size > 0
    return folder / "model.engine"


@pytest.mark.skipif(not HAVE_RTX, reason="tensorrt_rtx is part of the CI environment")
@pytest.mark.skipif(cuda_device_problem() is None, reason="a CUDA GPU is present: see the gpu test")
def test_no_gpu_means_not_executable_here(rtx_engine):
    with pytest.raises(NotExecutableHere) as info:
        TensorRTBackend(rtx_engine, library="tensorrt_rtx")
    assert str(info.value).startswith("not executable here: ")
    assert "CUDA" in str(info.value)


@pytest.mark.gpu
@pytest.mark.trt
@pytest.mark.skipif(cuda_device_problem() is not None, reason="needs a CUDA GPU with TensorRT-RTX support")
def test_engine_runs_on_gpu(rtx_engine):
    import numpy as np

    from .conftest import reference_conv

    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    with TensorRTBackend(rtx_engine, library="tensorrt_rtx") as be:
        assert be.input_metadata()[0].shape == (1, 3, 32, 32)
        out = be.infer(x)
    np.testing.assert_allclose(out, reference_conv(x), atol=1e-3)


@pytest.mark.skipif(HAVE_TRT, reason="tensorrt is installed here")
def test_missing_tensorrt_names_the_extra():
    with pytest.raises(BackendUnavailable) as info:
        import_tensorrt("tensorrt")
    assert "pip install 'qtseg[trt]'" in str(info.value)
    assert "TensorRT is not installed" in str(info.value)


def test_unknown_library():
    with pytest.raises(Exception, match="unknown TensorRT library"):
        import_tensorrt("tensorflow")


@pytest.mark.gpu
@pytest.mark.skipif(cuda_device_problem() is not None, reason="needs a CUDA GPU")
def test_device_buffers_roundtrip_on_gpu():
    """The cuda-python part of the runner (buffers, async copies, stream) on a real GPU."""
    import numpy as np
    from cuda.bindings import runtime as cudart

    from qtseg.backends.tensorrt_backend import DeviceBuffer, _check, gpu_description
    from qtseg.export.tensorrt_engine import gpu_compute_capability

    assert gpu_description(0).endswith(f"sm_{gpu_compute_capability()}")
    stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
    buf = DeviceBuffer(cudart)
    try:
        x = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
        y = np.empty_like(x)
        ptr = buf.ensure(x.nbytes)
        assert buf.ensure(x.nbytes // 2) == ptr  # no reallocation when it fits
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(ptr, x.ctypes.data, x.nbytes, h2d, stream), "H2D")
        _check(cudart.cudaMemcpyAsync(y.ctypes.data, ptr, x.nbytes, d2h, stream), "D2H")
        _check(cudart.cudaStreamSynchronize(stream), "sync")
        np.testing.assert_array_equal(x, y)
        assert buf.ensure(2 * x.nbytes) and buf.nbytes == 2 * x.nbytes
    finally:
        buf.free()
        cudart.cudaStreamDestroy(stream)
    assert buf.ptr == 0
