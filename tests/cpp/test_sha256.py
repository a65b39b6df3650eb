"""qtseg::Sha256 (the C++ artifact hash check) equals Python's hashlib on edge-case lengths,
in one piece and fed in odd chunks, with and without the CPU's SHA instructions."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from tests.cpp.helpers import run, run_checked

pytestmark = pytest.mark.slow

# Lengths around the 64-byte block and the 56-byte padding boundary, plus multi-block files.
LENGTHS = [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 1000, (1 << 20) + 17, 3_000_001]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("sha")
    rng = np.random.default_rng(5)
    paths = []
    for n in LENGTHS:
        path = out / f"len_{n}.bin"
        path.write_bytes(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        paths.append(path)
    (out / "abc.txt").write_bytes(b"abc")
    return [*paths, out / "abc.txt"]


def _digests(cpp_build, *args) -> tuple[str, dict[str, str]]:
    tool = cpp_build.api_test.parent / "qtseg_sha256"
    lines = run_checked([tool, *args], what="qtseg_sha256").stdout.splitlines()
    return lines[0], {path: hex_ for hex_, path in (line.split("  ")[:2] for line in lines[1:])}


@pytest.mark.parametrize(
    "mode", [[], ["--portable"], ["--chunk", "7"], ["--portable", "--chunk", "65"]]
)
def test_equals_hashlib(cpp_build, files, mode):
    header, got = _digests(cpp_build, *mode, *files)
    print(f"\n[tests/cpp] qtseg_sha256 {' '.join(mode)}: {header}")
    if "--portable" in mode:
        assert header == "# cpu extensions: no"
    for path in files:
        assert got[str(path)] == hashlib.sha256(path.read_bytes()).hexdigest(), path.name


def test_known_vector(cpp_build, files):
    # FIPS 180-2, appendix B.1: SHA-256("abc").
    _, got = _digests(cpp_build, files[-1])
    assert got[str(files[-1])] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_unreadable_file_is_one_error(cpp_build, tmp_path):
    tool = cpp_build.api_test.parent / "qtseg_sha256"
    proc = run([tool, tmp_path / "missing.bin"])
    assert proc.returncode == 1
    assert (
        proc.stderr.strip()
        == f"qtseg_sha256: cannot open {tmp_path / 'missing.bin'} to verify its SHA-256"
    )
