"""Atomic file and directory writes that can never lose what was there before.

Files: write a temp file beside the target, fsync, rename over it.

Directories (:func:`staging_dir`): the new folder is built under a hidden
staging name beside the final one and then *exchanged* with the old folder in
one step (Linux ``renameat2(RENAME_EXCHANGE)``), so at every instant the final
path holds either the complete old folder or the complete new one, even if
the process is killed at any point. The old folder, now under the staging
name, is removed afterwards.

Each staging folder is ``flock``-ed by the process that owns it. A later
:func:`staging_dir` for the same final path removes staging folders whose
owner has died (the kernel drops the lock with the process) and leaves those
of a concurrent writer alone. Creating, cleaning and swapping happen under an
exclusive ``flock`` on the parent folder, so concurrent writers of one path
both succeed (the last one to finish wins) and never see a half-made state.

Where ``RENAME_EXCHANGE`` is not available (not Linux, a filesystem that
refuses it) the swap falls back to two renames (old -> ``.NAME.old``, new ->
NAME). A kill between them leaves the final path missing until the next
:func:`staging_dir` for it, which puts ``.NAME.old`` back first. Where
``flock`` is not available (some network filesystems) the lock and the stale
cleanup are skipped (also where ``fcntl`` does not exist, e.g. Windows).
"""

from __future__ import annotations

import ctypes
import errno
import json
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not POSIX: no locks (module docstring)
    fcntl = None  # type: ignore[assignment]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
STAGING_SUFFIX = ".staging"


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every NaN/Inf float (in nested dicts, lists, tuples) replaced by ``None``.

    Reports are strict JSON: a value that could not be measured is ``null``, never ``NaN``.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


class NonStandardJSON(json.JSONDecodeError):
    """``NaN`` / ``Infinity`` tokens (Python's ``json`` takes them, JSON does not) or a number beyond a double."""

    def __init__(self, message: str) -> None:
        ValueError.__init__(self, message)
        self.msg, self.doc, self.pos, self.lineno, self.colno = message, "", 0, 1, 1


def _refuse_constant(token: str) -> Any:
    raise NonStandardJSON(f"{token} is not valid JSON (JSON has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NonStandardJSON(f"number {text} overflows a double")
    return value


def strict_json_loads(data: str | bytes) -> Any:
    """``json.loads`` that refuses ``NaN``/``Infinity`` and numbers that overflow a double.

    The C++ loader's parser refuses the same (Python's ``json`` takes ``NaN`` and
    reads ``1e999`` as infinity).

    Raises:
        json.JSONDecodeError: malformed JSON or one of those numbers.
    """
    return json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


# -- locks ----------------------------------------------------------------------------
def _flock(path: Path, *, blocking: bool) -> int | None:
    """Open ``path`` (file or folder) and ``flock`` it exclusively.

    Returns:
        The open descriptor holding the lock; ``None`` when the lock is taken
        (non-blocking) or the filesystem has no ``flock``.
    """
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # gone, or not readable: no lock rather than no write
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError:  # EWOULDBLOCK: held by a live process; ENOLCK/EBADF: unsupported here
        os.close(fd)
        return None
    return fd


@contextmanager
def _parent_lock(parent: Path) -> Iterator[None]:
    """Exclusive lock on ``parent`` for the short create/clean/swap steps (blocks)."""
    fd = _flock(parent, blocking=True)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


# -- the swap -------------------------------------------------------------------------
def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically; ``False`` if this system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except AttributeError:  # glibc < 2.28, other libcs
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _backup_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.old")


def _place(staging: Path, final: Path) -> Path | None:
    """Move ``staging`` to ``final``; return where the old folder now is (or ``None``)."""
    if not final.exists() and not final.is_symlink():
        os.rename(staging, final)
        return None
    if _exchange(staging, final):
        return staging  # the staging name now holds the old folder
    backup = _backup_path(final)
    _remove_tree(backup)
    os.replace(final, backup)  # the one step a kill can interrupt: see the module docstring
    os.replace(staging, final)
    return backup


def _remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _recover_and_clean(final: Path) -> None:
    """Under the parent lock: restore an interrupted fallback swap, drop stale staging folders."""
    backup = _backup_path(final)
    if backup.exists() and not final.exists():
        os.rename(backup, final)
    elif backup.exists():
        _remove_tree(backup)
    pattern = re.compile(re.escape(f".{final.name}.") + r"[A-Za-z0-9_]+" + re.escape(STAGING_SUFFIX))
    for entry in final.parent.iterdir():
        if not pattern.fullmatch(entry.name) or not entry.is_dir() or entry.is_symlink():
            continue
        fd = _flock(entry, blocking=False)
        if fd is None:
            continue  # a live writer owns it
        try:
            _remove_tree(entry)
        finally:
            os.close(fd)


@contextmanager
def staging_dir(final: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder beside ``final``; on success it replaces ``final``.

    On any exception the staging folder is removed and ``final`` is left
    untouched, so a failed export never leaves partial files in place. The
    replacement itself never leaves ``final`` missing (module docstring).
    """
    final = Path(final)
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    with _parent_lock(parent):
        _recover_and_clean(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=STAGING_SUFFIX, dir=parent))
        owner = _flock(tmp, blocking=False)
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700; artifacts are meant to be shared
        try:
            yield tmp
        except BaseException:
            _remove_tree(tmp)
            raise
        with _parent_lock(parent):
            old = _place(tmp, final)
        if old is not None:
            _remove_tree(old)
    finally:
        if owner is not None:
            with suppress(OSError):
                os.close(owner)
