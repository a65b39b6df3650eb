"""The C++ libtorch backend (-DQTSEG_WITH_LIBTORCH=ON) runs AOTInductor packages like Python does.

Builds the library against the torch wheel's TorchConfig.cmake (other backends
off; ~1.5 min on 2 cores here) and compares ``qtseg_infer --dump-logits`` with
:class:`qtseg.backends.aoti_backend.AotiBackend` on the same ``model.pt2``.
Set ``QTSEG_TEST_LIBTORCH=0`` to skip the build.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from qtseg.backends.aoti_backend import AotiBackend
from qtseg.preprocess import PreprocessSpec
from tests.backends import aoti_packages as pk
from tests.cpp.helpers import (
    REPO,
    configure,
    read_f32,
    require_tool,
    run,
    run_checked,
    write_artifact,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``qtseg_infer`` built with only the libtorch backend."""
    if os.environ.get("QTSEG_TEST_LIBTORCH") == "0":
        pytest.skip("QTSEG_TEST_LIBTORCH=0")
    import torch.utils

    cmake = require_tool("cmake")
    require_tool("c++")
    torch_dir = Path(torch.utils.cmake_prefix_path) / "Torch"
    build = tmp_path_factory.mktemp("cpp-libtorch")
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    start = time.perf_counter()
    configure(
        [
            cmake,
            "-S",
            REPO,
            "-B",
            build,
            *generator,
            "-DCMAKE_BUILD_TYPE=Release",
            "-DQTSEG_WITH_LIBTORCH=ON",
            f"-DTorch_DIR={torch_dir}",
            "-DQTSEG_WITH_OPENVINO=OFF",
            "-DQTSEG_WITH_TENSORRT=OFF",
            "-DQTSEG_WITH_ORT=OFF",
            "-DQTSEG_BUILD_TESTS=OFF",
        ],
        what="cmake configure (libtorch)",
    )
    run_checked(
        [cmake, "--build", build, "-j2", "--target", "qtseg_infer_cli"],
        what="cmake --build (libtorch)",
    )
    print(f"\n[tests/cpp] libtorch configure + build took {time.perf_counter() - start:.1f} s")
    return build / "cpp" / "qtseg_infer"


def _artifact(folder: Path, package: Path, properties: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(package, folder / "model.pt2")  # a symlink leading out of the folder is refused
    write_artifact(
        folder,
        spec=PreprocessSpec(input_size=(pk.HW, pk.HW)),
        fmt="aoti",
        files={"model": "model.pt2"},
        input_shape=pk.INPUT_META["shape"],
        output_shape=[-1, 2, pk.HW, pk.HW],
        model_name="tiny-net",
        properties=properties,
    )
    return folder


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _artifact(tmp_path_factory.mktemp("aoti") / "tiny_aoti", pk.dynamic_package())


def _infer_tensor(cli: Path, artifact: Path, x: np.ndarray, tmp: Path):
    x.astype("<f4").tofile(tmp / "x.f32")
    shape = ",".join(str(d) for d in x.shape)
    return run(
        [
            cli,
            "--artifact",
            artifact,
            "--input-tensor",
            tmp / "x.f32",
            "--input-shape",
            shape,
            "--dump-logits",
            tmp / "logits.f32",
        ]
    )


def test_libtorch_is_a_compiled_backend(cli):
    proc = run([cli, "--list-backends"])
    assert proc.returncode == 0 and "libtorch" in proc.stdout.split()


def test_cpp_logits_equal_python_aoti_logits(cli, artifact, tmp_path):
    x = np.random.default_rng(7).random((3, 3, pk.HW, pk.HW), dtype=np.float32)
    proc = _infer_tensor(cli, artifact, x, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "backend: libtorch" in proc.stdout and "compiled for cpu" in proc.stdout
    cpp = read_f32(tmp_path / "logits.f32", (3, 2, pk.HW, pk.HW))
    with AotiBackend(artifact / "model.pt2") as be:
        python = be.infer(x)
    diff = float(np.abs(cpp - python).max())
    print(f"\n[tests/cpp] libtorch C++ vs Python aoti: max|diff| {diff:.3g}")
    assert diff <= 1e-4
    assert np.abs(cpp - pk.reference(x)).max() <= 1e-5


def test_cpp_pipeline_from_an_image(cli, artifact, sample_jpegs, tmp_path):
    """C++ decode + preprocess + libtorch; its logits equal Python's on the C++ input tensor."""
    proc = run(
        [
            cli,
            "--artifact",
            artifact,
            "--input",
            sample_jpegs[0],
            "--output",
            tmp_path / "mask.png",
            "--dump-input",
            tmp_path / "in.f32",
            "--dump-logits",
            tmp_path / "logits.f32",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    x = read_f32(tmp_path / "in.f32", (1, 3, pk.HW, pk.HW))
    with AotiBackend(artifact / "model.pt2") as be:
        python = be.infer(x)
    assert np.abs(read_f32(tmp_path / "logits.f32", (1, 2, pk.HW, pk.HW)) - python).max() <= 1e-4
    assert (tmp_path / "mask.png").is_file()


def test_batch_beyond_the_package_maximum_is_refused(cli, artifact, tmp_path):
    proc = _infer_tensor(cli, artifact, np.zeros((5, 3, pk.HW, pk.HW), np.float32), tmp_path)
    assert proc.returncode == 1
    assert "maximum batch 4" in proc.stderr


def test_cuda_package_is_refused_without_a_gpu(cli, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    folder = _artifact(tmp_path / "cuda_aoti", pk.cuda_labelled_package())
    proc = _infer_tensor(cli, folder, np.zeros((1, 3, pk.HW, pk.HW), np.float32), tmp_path)
    assert proc.returncode == 1
    assert "compiled for CUDA (sm 90)" in proc.stderr and "sees no CUDA device" in proc.stderr


def test_runtime_properties_are_refused_not_ignored(cli, tmp_path):
    folder = _artifact(tmp_path / "with_props", pk.dynamic_package(), {"num_runners": "2"})
    proc = _infer_tensor(cli, folder, np.zeros((1, 3, pk.HW, pk.HW), np.float32), tmp_path)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "runtime.properties" in lines[0] and "'num_runners'" in lines[0]
