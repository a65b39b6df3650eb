"""Helpers of the C++ tests: building with CMake, running the CLI, writing artifacts and PNGs."""

from __future__ import annotations

import importlib
import json
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pytest

from qtseg.manifest import (
    INFERENCE_PRECISION,
    RUNTIMES,
    ArtifactFile,
    ExportSettings,
    Manifest,
    ModelInfo,
    RuntimeSpec,
    TensorMeta,
    describe_files,
    write_manifest,
)
from qtseg.preprocess import PREPROCESS_FILENAME, PreprocessSpec
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

    def file(self, role: str) -> Path:
        """Path of the file the manifest lists under ``role``."""
        return self.path / self.manifest["files"][role]["path"]


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


def cli_fails(cli: Path, *args: str | Path, code: int = 1) -> str:
    """Run the CLI, assert exit ``code`` and exactly one stderr line; return that line."""
    proc = run([cli, *args])
    lines = proc.stderr.splitlines()
    assert proc.returncode == code, f"exit {proc.returncode}, stderr: {proc.stderr!r}"
    assert len(lines) == 1, f"expected one stderr line, got {lines!r}"
    assert lines[0].startswith("qtseg_infer: "), lines[0]
    return lines[0]


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


def _runtime(fmt: str, precision: str, properties: dict[str, str] | None) -> RuntimeSpec:
    """The runtime block an exporter writes for ``fmt`` (OpenVINO: the verified precision)."""
    if properties is None:
        hint = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}.get(precision, "f32")
        properties = {INFERENCE_PRECISION: hint} if fmt == "openvino" else {}
    return RuntimeSpec(RUNTIMES[fmt][0], "cpu", dict(properties))


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
    properties: dict[str, str] | None = None,
    dynamic_batch_max: int = 4,
) -> Path:
    """Write preprocess.json + a ``qtseg.manifest/2`` manifest for the files already in ``out``.

    Sizes and SHA-256 are taken from the files as they are now (``describe_files``);
    the manifest is validated by ``write_manifest`` before it is written.
    """
    out.mkdir(parents=True, exist_ok=True)
    spec.save(out)
    batch = int(input_shape[0])
    manifest = Manifest(
        format=fmt,
        target=f"{fmt}-{precision}",
        precision=precision,
        runtime=_runtime(fmt, precision, properties),
        files=describe_files(out, {**files, "preprocess": PREPROCESS_FILENAME}),
        inputs=(TensorMeta(input_name, tuple(input_shape), "float32"),),
        outputs=(TensorMeta(output_name, tuple(output_shape), "float32"),),
        preprocess=spec,
        model=ModelInfo(model_name, {"num_classes": spec.num_classes}, "", "", ""),
        export=ExportSettings(
            batch=None if batch == -1 else batch,
            dynamic_batch_max=dynamic_batch_max if batch == -1 else None,
            dynamic_hw=False,
            opset=None,
        ),
        versions={},
        git_sha=None,
        calibration=None,
        parity={},
        execution={"built_on": "tests/cpp fixture"},
    )
    write_manifest(out, manifest)
    return out


def clone_artifact(src: Path, dst: Path, **manifest_changes: Any) -> Path:
    """Copy of an artifact (files copied, never linked) with top-level manifest keys replaced."""
    shutil.copytree(src, dst, symlinks=False)
    if manifest_changes:
        edit_manifest(dst, lambda m: m.update(manifest_changes))
    return dst


def edit_manifest(artifact: Path, edit: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """Apply ``edit`` to the manifest dict in place and write it back (no validation)."""
    manifest = json.loads((artifact / "manifest.json").read_text())
    edit(manifest)
    (artifact / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def rehash(artifact: Path) -> None:
    """Record every listed file's current size and SHA-256 (after a deliberate edit)."""

    def update(manifest: dict[str, Any]) -> None:
        for entry in manifest["files"].values():
            entry.update(ArtifactFile.of(artifact, entry["path"]).to_dict())

    edit_manifest(artifact, update)


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


def png_from_rows(
    path: Path, width: int, height: int, rows: bytes, *, bit_depth: int, color_type: int
) -> Path:
    """A PNG whose IHDR says ``width`` x ``height`` and whose IDAT holds ``rows``
    (filter bytes included) deflated; ``rows`` need not fill the image."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
    data += _chunk(b"IDAT", zlib.compress(rows, 9)) + _chunk(b"IEND", b"")
    path.write_bytes(data)
    return path
