"""Export fixtures: one `qtseg-export --target all` run of the tiny checkpoint, shared."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class CliRun:
    """Exit code and captured output of one ``qtseg-export`` call."""

    rc: int
    out: str
    err: str


def run_cli(args: list[str]) -> CliRun:
    """Call ``qtseg.export.cli.main`` in-process, capturing stdout/stderr."""
    from qtseg.export.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(args)
    return CliRun(rc, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def sample_images(kvasir_mini: Path) -> Path:
    """Real images (first 8 sorted are used) with ground truth in ../masks."""
    return kvasir_mini / "images"


@pytest.fixture(scope="session")
def export_all(tiny_checkpoint: Path, tmp_path_factory) -> tuple[Path, CliRun]:
    """``qtseg-export --target all`` on the tiny checkpoint with the bundled samples."""
    import qtseg

    if not (qtseg.SAMPLES_DIR / "images").is_dir():
        pytest.fail(f"bundled samples missing: {qtseg.SAMPLES_DIR}")
    out = tmp_path_factory.mktemp("exports")
    run = run_cli(["--target", "all", "--checkpoint", str(tiny_checkpoint), "--out", str(out)])
    return out, run
