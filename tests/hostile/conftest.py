"""Bad inputs for the hostile-input suite, made in the tests themselves (tiny files only)."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A real, valid 1-bit grayscale PNG of ``width x height`` zeros (~50 KB for 20000 x 20000)."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body)
                     + _chunk(b"IEND", b""))
    return path


def copy_checkpoint(src: Path, dst: Path) -> Path:
    """A writable copy of a checkpoint folder."""
    shutil.copytree(src, dst)
    return dst


def edit_json(path: Path, edit) -> None:
    """Apply ``edit(dict)`` to a JSON file in place (no validation)."""
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))


def rerecord(folder: Path) -> None:
    """Re-record the sizes and hashes in ``checkpoint.json``, as an attacker who edits it would.

    Makes a test reach the checks behind the hash check.
    """
    from qtseg.checkpoint import FILE_ROLES
    from qtseg.manifest import describe_files

    files = {r: f.to_dict() for r, f in describe_files(folder, FILE_ROLES).items()}
    edit_json(folder / "checkpoint.json", lambda d: d.update(files=files))


@pytest.fixture()
def ckpt(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """A writable copy of the tiny checkpoint (qtseg-v2, 128 x 128, width 8)."""
    return copy_checkpoint(tiny_checkpoint, tmp_path / "ckpt")


def conv_onnx_with(path: Path, weight_value: float, hw: int = 32) -> Path:
    """The tiny conv ONNX model with one weight set to ``weight_value`` (NaN, Inf, ...)."""
    import onnx
    from onnx import numpy_helper

    from tests.backends.conftest import make_conv_onnx

    make_conv_onnx(path, hw=hw)
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if init.name == "w":
            w = numpy_helper.to_array(init).copy()
            w.flat[0] = np.float32(weight_value)
            init.CopyFrom(numpy_helper.from_array(w, "w"))
    onnx.save(model, str(path))
    return path


@pytest.fixture()
def batch() -> np.ndarray:
    """A (2, 3, 32, 32) float32 input in [0, 1] (as tests/backends)."""
    return np.random.default_rng(1).random((2, 3, 32, 32), dtype=np.float32)
