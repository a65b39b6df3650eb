"""ELF reading: which C++ runtime a shared library links (the cause of issue 16's crash)."""

from __future__ import annotations

import io
import shutil

import pytest

from qtseg.backends.elf import read_dynamic
from tests.backends import aoti_packages as pk

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")


@pytest.mark.parametrize(("static", "runtime"), [(False, "dynamic"), (True, "static")])
def test_cxx_runtime_of_libraries_built_here(tmp_path, static, runtime):
    info = read_dynamic(io.BytesIO(pk.shared_library(tmp_path, static_libstdcxx=static)))
    assert info.cxx_runtime == runtime
    assert ("libstdc++.so.6" in info.needed) is (not static)
    assert "f" in info.defined  # the library's own exported function


def test_not_an_elf_file_is_a_value_error():
    with pytest.raises(ValueError, match="not a 64-bit little-endian ELF"):
        read_dynamic(io.BytesIO(b"PK\x03\x04 a zip, not a library" + bytes(64)))
    with pytest.raises(ValueError, match="truncated"):
        read_dynamic(io.BytesIO(b"\x7fELF"))
