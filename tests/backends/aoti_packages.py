"""Tiny real AOTInductor packages for the aoti backend tests (Python and C++).

Compiling even a tiny net takes ~25 s on 2 cores, so each package is built
once per test process (cached here) and shared by tests/backends and tests/cpp.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import zipfile
from functools import cache
from pathlib import Path

import numpy as np

HW = 32
MAX_BATCH = 4
NUM_CLASSES = 2
INPUT_META = {"name": "image", "shape": [-1, 3, HW, HW], "dtype": "float32"}


def tiny_net():
    """Conv-BN-ReLU-Conv, ``(N, 3, 32, 32) -> (N, 2, 32, 32)``, fixed seed, eval mode."""
    import torch

    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, NUM_CLASSES, 3, padding=1),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        bn = net[1]
        bn.running_mean.copy_(torch.rand(8, generator=gen) - 0.5)
        bn.running_var.copy_(torch.rand(8, generator=gen) + 0.5)
    return net.eval()


def reference(x: np.ndarray) -> np.ndarray:
    """PyTorch FP32 logits of :func:`tiny_net` for ``(N, 3, 32, 32)`` float32."""
    import torch

    with torch.inference_mode():
        return tiny_net()(torch.from_numpy(x)).numpy()


@cache
def _workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="qtseg-aoti-test-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _build(name: str, device: str) -> Path:
    import torch

    from qtseg.export.aoti import compile_package

    path = _workdir() / name / "model.pt2"
    path.parent.mkdir(parents=True)
    example = torch.rand(2, 3, HW, HW, device=device)
    dim = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    net = tiny_net().to(device)
    program = torch.export.export(net, (example,), dynamic_shapes=({0: dim},), strict=False)
    metadata = {
        "qtseg.input": json.dumps(INPUT_META),
        "qtseg.max_batch": str(MAX_BATCH),
        "qtseg.precision": "fp32",
    }
    compile_package(program, path, metadata)  # the exporter's compiler choice and check
    return path


@cache
def dynamic_package() -> Path:
    """``model.pt2`` of :func:`tiny_net`, CPU, dynamic batch 1..4, with qtseg metadata."""
    return _build("dynamic", "cpu")


@cache
def cuda_package() -> Path:
    """The same for CUDA (needs a GPU)."""
    return _build("cuda-real", "cuda")


def with_metadata(
    src: Path, dst: Path, changes: dict[str, str], library: bytes | None = None
) -> Path:
    """Copy of a real package with ``changes`` applied to its metadata JSON (e.g. device key).

    ``library`` replaces the bytes of the package's shared library.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("_metadata.json"):
                data = json.dumps({**json.loads(data), **changes}).encode()
            elif library is not None and item.filename.endswith(".so"):
                data = library
            zout.writestr(item, data)
    return dst


def shared_library(folder: Path, *, static_libstdcxx: bool) -> bytes:
    """A tiny C++ shared library built with g++, libstdc++ linked statically or not."""
    import subprocess

    src, lib = folder / "lib.cpp", folder / f"lib_{int(static_libstdcxx)}.so"
    folder.mkdir(parents=True, exist_ok=True)
    src.write_text(
        "#include <locale>\n"
        'extern "C" int f() { return (int)std::locale::classic().name().size(); }\n'
    )
    flags = ["-static-libstdc++"] if static_libstdcxx else []
    subprocess.run(["g++", "-shared", "-fPIC", str(src), "-o", str(lib), *flags], check=True)
    return lib.read_bytes()


@cache
def cuda_labelled_package() -> Path:
    """The dynamic package relabelled as compiled for CUDA (sm 90); refused without a GPU."""
    return with_metadata(
        dynamic_package(),
        _workdir() / "cuda" / "model.pt2",
        {"AOTI_DEVICE_KEY": "cuda", "AOTI_COMPUTE_CAPABILITY": "90"},
    )
