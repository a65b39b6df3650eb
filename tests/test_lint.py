"""``ruff check`` over the repository (rules in pyproject.toml, ``[tool.ruff.lint]``).

Skipped where ruff is not installed, except under CI (``CI=true``), where a
missing ruff is a failure: the lint must run there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list[str] | None:
    """Command prefix of the ruff next to this Python (the venv's), else on PATH."""
    local = Path(sys.executable).with_name("ruff")
    if local.is_file():
        return [str(local)]
    found = shutil.which("ruff")
    return [found] if found else None


def test_ruff_check_passes() -> None:
    ruff = _ruff()
    if ruff is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("ruff is not installed (pip install -e '.[dev]'); CI must lint")
        pytest.skip("ruff is not installed")
    run = subprocess.run(
        [*ruff, "check", "--no-cache", "--output-format", "concise", str(ROOT)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
