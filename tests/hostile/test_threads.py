"""Every Python backend called from 4 threads x 50 calls returns bit for bit what one thread returns."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend
from qtseg.backends.openvino_backend import OpenVINOBackend
from qtseg.backends.torch_backend import TorchBackend

from ..backends.conftest import conv_weights, make_conv_onnx

THREADS, CALLS, HW = 4, 50, 96


def _inputs(n: int = THREADS * CALLS, hw: int = HW) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.random((1, 3, hw, hw), dtype=np.float32) for _ in range(n)]


def hammer(infer: Callable[[np.ndarray], np.ndarray], inputs: list[np.ndarray]) -> tuple[dict, list]:
    """Run ``inputs`` from THREADS threads at once (thread t takes every THREADS-th input).

    Returns:
        ``({input index: output}, [exceptions])``.
    """
    outputs: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(t: int) -> None:
        start.wait()
        for i in range(t, len(inputs), THREADS):
            try:
                outputs[i] = infer(inputs[i])
            except Exception as exc:  # noqa: BLE001 - collected and asserted on below
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return outputs, errors


def assert_same_as_single_thread(infer: Callable[[np.ndarray], np.ndarray], inputs: list[np.ndarray]) -> None:
    expected = [infer(x) for x in inputs]
    assert len({e.tobytes() for e in expected}) == len(expected), "inputs must give distinct outputs"
    outputs, errors = hammer(infer, inputs)
    assert not errors, f"{len(errors)} calls failed, e.g. {errors[0]!r}"
    wrong = [i for i, e in enumerate(expected) if not np.array_equal(outputs[i], e)]
    assert not wrong, f"{len(wrong)} of {len(inputs)} calls returned other logits (e.g. input {wrong[0]})"


@pytest.fixture(scope="module")
def conv_file(tmp_path_factory) -> Path:
    return make_conv_onnx(tmp_path_factory.mktemp("threads") / "model.onnx", hw=HW)


def test_onnxruntime_is_thread_safe(conv_file):
    with OnnxRuntimeBackend(conv_file) as backend:
        assert_same_as_single_thread(backend.infer, _inputs())


def test_openvino_is_thread_safe(conv_file):
    with OpenVINOBackend(conv_file) as backend:
        assert_same_as_single_thread(backend.infer, _inputs())


def test_the_check_catches_a_shared_openvino_request(conv_file):
    """Guard: one infer request shared by all threads (the old backend) fails the same check."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(conv_file), "CPU")
    request = compiled.create_infer_request()

    def shared(x: np.ndarray) -> np.ndarray:
        return np.array(request.infer({0: x})[compiled.outputs[0]], copy=True)

    with pytest.raises(AssertionError, match="calls failed|other logits"):
        assert_same_as_single_thread(shared, _inputs())


def test_torch_backend_is_thread_safe():
    w, b = conv_weights()
    conv = torch.nn.Conv2d(3, 2, 3, padding=1).eval()
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w))
        conv.bias.copy_(torch.from_numpy(b))
    with TorchBackend(conv, input_size=(HW, HW)) as backend:
        assert_same_as_single_thread(backend.infer, _inputs())


@pytest.mark.slow
def test_torch_backend_with_the_tiny_qtseg_checkpoint_is_thread_safe(tiny_checkpoint):
    """The real model (attention, positional encodings) too; slow: 4 threads share 2 cores here."""
    with TorchBackend(tiny_checkpoint) as backend:
        assert_same_as_single_thread(backend.infer, _inputs(THREADS * 2, hw=128))


def test_last_infer_s_is_kept_per_thread(conv_file):
    with OnnxRuntimeBackend(conv_file) as backend:
        backend.infer(_inputs(1)[0])
        assert backend.last_infer_s > 0
        seen: list[float] = []
        other = threading.Thread(target=lambda: seen.append(backend.last_infer_s))
        other.start()
        other.join()
        assert math.isnan(seen[0])  # another thread has made no call yet


@pytest.mark.slow
def test_aoti_is_thread_safe():
    from qtseg.backends.aoti_backend import AotiBackend
    from tests.backends import aoti_packages as pk

    with AotiBackend(pk.dynamic_package()) as backend:
        assert_same_as_single_thread(backend.infer, _inputs(hw=pk.HW))
