"""Helpers of the C++ tests: building with CMake, running the CLI, writing artifacts and PNGs."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import struct
import subprocess
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest

from qtseg.preprocess import PreprocessSpec
from tests.conftest import in_ci

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class CppBuild:
    """A configured and built CMake tree of the repository."""

    build_dir: Path
    cli: Path
    api_test: Path
    openvino_dir: Path
    seconds: float


@dataclass(frozen=True)
class Artifact:
    """An exported artifact directory and how the fixture made it."""

    path: Path
    source: str  # "qtseg.export.cli" or "self-built ..."

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads((self.path / "manifest.json").read_text())

    @property
    def spec(self) -> PreprocessSpec:
        return PreprocessSpec.load(self.path)


APT_HINT = "bash .ci/setup as root (docs/cpp.md, Build)"


def toolchain_missing(message: str) -> NoReturn:
    """Skip the test, or fail it under ``CI=true``: CI installs the toolchain, so it must be there."""
    if in_ci():
        pytest.fail(f"{message} [CI=true: the C++ toolchain must be installed]")
    pytest.skip(message)


def require_tool(name: str) -> str:
    """Path of a build tool; fails in CI (which must install it) and skips elsewhere."""
    path = shutil.which(name)
    if path is None:
        toolchain_missing(f"{name} not found (install it with: {APT_HINT})")
    return path


def require_module(name: str) -> Any:
    """Import a Python package the C++ build needs (openvino); fails in CI, skips elsewhere."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        toolchain_missing(f"python package {name} not importable ({exc}); pip install -e '.[all]'")


def configure(cmd: Sequence[str | Path], *, what: str) -> subprocess.CompletedProcess:
    """``cmake -S ... -B ...``: missing required C++ libraries skip (fail in CI), other errors fail."""
    proc = run(cmd)
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        marker = "qtseg: missing required libraries:"
        if marker in output:
            line = next(ln for ln in output.splitlines() if marker in ln)
            toolchain_missing(f"{line.strip()} (install them with: {APT_HINT})")
        pytest.fail(f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def run(
    cmd: Sequence[str | Path], *, cwd: Path | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    """Run a command, capturing text output."""
    return subprocess.run(
        [str(c) for c in cmd], check=False, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def run_checked(
    cmd: Sequence[str | Path], *, what: str, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run a command and fail the test with its output tail when it fails."""
    proc = run(cmd, cwd=cwd)
    if proc.returncode != 0:
        pytest.fail(
            f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def cli_args(inputs: Sequence[Path], outputs: Sequence[Path] = ()) -> list[str]:
    """``--input A --input B ... --output MA --output MB ...``."""
    args: list[str] = []
    for path in inputs:
        args += ["--input", str(path)]
    for path in outputs:
        args += ["--output", str(path)]
    return args


def read_f32(path: Path, shape: Sequence[int]) -> np.ndarray:
    """A raw little-endian float32 dump as an array of ``shape``."""
    data = np.fromfile(path, dtype="<f4")
    assert data.size == int(np.prod(shape)), (
        f"{path}: {data.size} values, expected shape {tuple(shape)}"
    )
    return data.reshape(shape)


def write_artifact(
    out: Path,
    *,
    spec: PreprocessSpec,
    fmt: str,
    files: dict[str, str],
    input_shape: Sequence[int],
    output_shape: Sequence[int],
    input_name: str = "image",
    output_name: str = "logits",
    precision: str = "fp32",
    model_name: str = "test-model",
) -> Path:
    """Write manifest.json + preprocess.json (design.md "Artifact directory") into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "schema": "qtseg.manifest/1",
        "format": fmt,
        "target": f"{fmt}-{precision}",
        "precision": precision,
        "files": files,
        "inputs": [{"name": input_name, "shape": list(input_shape), "dtype": "float32"}],
        "outputs": [{"name": output_name, "shape": list(output_shape), "dtype": "float32"}],
        "preprocess": spec.to_dict(),
        "model": {"name": model_name, "config": {}},
        "versions": {},
        "calibration": None,
        "parity": {},
        "execution": {"built_on": "tests/cpp fixture"},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    spec.save(out)
    return out


def clone_artifact(src: Path, dst: Path, **manifest_changes: Any) -> Path:
    """Copy of an artifact with model files symlinked and top-level manifest keys replaced."""
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.name not in ("manifest.json",):
            os.symlink(item.resolve(), dst / item.name)
    manifest = json.loads((src / "manifest.json").read_text())
    manifest.update(manifest_changes)
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dst


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def write_png(
    path: Path,
    array: np.ndarray,
    *,
    bit_depth: int,
    color_type: int,
    palette: bytes | None = None,
    trns: bytes | None = None,
) -> Path:
    """Minimal PNG encoder for layouts Pillow cannot write (16-bit colour, 1/2/4-bit gray).

    ``array`` holds samples: (H, W) or (H, W, C) unsigned ints (indices for palettes).
    """
    h, w = array.shape[:2]
    rows = []
    for y in range(h):
        row = array[y].reshape(-1)
        if bit_depth == 16:
            rows.append(row.astype(">u2").tobytes())
        elif bit_depth == 8:
            rows.append(row.astype(np.uint8).tobytes())
        else:
            bits = np.unpackbits(row.astype(np.uint8)[:, None], axis=1)[:, 8 - bit_depth :].reshape(
                -1
            )
            rows.append(np.packbits(bits).tobytes())
    raw = b"".join(b"\x00" + r for r in rows)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(
        b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    )
    if palette is not None:
        data += _chunk(b"PLTE", palette)
    if trns is not None:
        data += _chunk(b"tRNS", trns)
    data += _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")
    path.write_bytes(data)
    return path
