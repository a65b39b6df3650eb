"""Which C++ runtime an ELF shared library uses, read from its dynamic section and symbols.

AOTInductor packages hold a compiled ``.so`` that the torch runtime
``dlopen``s and calls through C++ types (``std::string``, ``std::regex``).
A library linked with ``-static-libstdc++`` carries a private copy of the
C++ standard library next to the process's own ``libstdc++.so.6``; the
AOTInductor model constructor then fails (torch 2.13: an error) or crashes
the process (torch 2.11: SIGSEGV inside ``std::regex``/``std::locale``,
issue 16). Such a library is recognised without loading it: it defines
``std::locale`` members, which only libstdc++ itself defines.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

_SHT_DYNAMIC, _SHT_DYNSYM = 6, 11
_DT_NEEDED = 1
# Non-template members of std::locale: defined only by libstdc++ itself.
_LIBSTDCXX_MARKERS = ("_ZNSt6locale7classicEv", "_ZNSt6localeC1Ev", "_ZNSt6localeC2Ev")


@dataclass(frozen=True)
class DynamicInfo:
    """``DT_NEEDED`` libraries and the defined dynamic symbols of one ELF file."""

    needed: tuple[str, ...]
    defined: frozenset[str]

    @property
    def cxx_runtime(self) -> str:
        """``"static"`` (private libstdc++ copy), ``"dynamic"`` (libstdc++.so) or ``"none"``."""
        if any(name in self.defined for name in _LIBSTDCXX_MARKERS):
            return "static"
        if any(lib.startswith(("libstdc++.so", "libc++.so")) for lib in self.needed):
            return "dynamic"
        return "none"


def _read(f: BinaryIO, offset: int, size: int) -> bytes:
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("truncated ELF file")
    return data


def _cstr(table: bytes, offset: int) -> str:
    end = table.find(b"\0", offset)
    return table[offset : end if end >= 0 else len(table)].decode("utf-8", "replace")


def read_dynamic(f: BinaryIO) -> DynamicInfo:
    """Parse a 64-bit little-endian ELF file (``f`` seekable, positioned anywhere).

    Raises:
        ValueError: not a 64-bit little-endian ELF file.
    """
    head = _read(f, 0, 64)
    if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    shoff = struct.unpack_from("<Q", head, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", head, 0x3A)
    # (type, offset, size, link, entsize) of every section
    sections = []
    for i in range(shnum):
        raw = _read(f, shoff + i * shentsize, 64)
        _, sh_type, _, _, off, size, link, _, _, entsize = struct.unpack("<IIQQQQIIQQ", raw)
        sections.append((sh_type, off, size, link, entsize))
    needed: list[str] = []
    defined: set[str] = set()
    for sh_type, off, size, link, entsize in sections:
        if sh_type not in (_SHT_DYNAMIC, _SHT_DYNSYM) or not entsize:
            continue
        _, str_off, str_size, _, _ = sections[link]
        strings = _read(f, str_off, str_size)
        body = _read(f, off, size)
        for pos in range(0, size - entsize + 1, entsize):
            if sh_type == _SHT_DYNAMIC:
                tag, value = struct.unpack_from("<qQ", body, pos)
                if tag == _DT_NEEDED:
                    needed.append(_cstr(strings, value))
            else:
                name, _, _, shndx, _, _ = struct.unpack_from("<IBBHQQ", body, pos)
                if shndx != 0 and name:
                    defined.add(_cstr(strings, name))
    return DynamicInfo(tuple(needed), frozenset(defined))
