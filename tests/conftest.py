"""Shared fixtures: Kvasir-SEG data (bundled mini set, optional full set) and tiny checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
KVASIR_MINI = REPO / "tests" / "assets" / "kvasir-mini"
KVASIR_ENV = "QTSEG_KVASIR_DIR"


def in_ci() -> bool:
    """True when the run is CI's (CI sets ``CI=true``): then missing prerequisites fail, not skip."""
    return os.environ.get("CI", "").strip().lower() == "true"


@pytest.fixture(scope="session")
def kvasir_mini() -> Path:
    """The bundled 48-image Kvasir-SEG subset (``tests/assets/kvasir-mini``: 24 train/16 val/8 test).

    Images are downscaled to 224 px on the longest side; masks are PNG 0/255.
    """
    if not (KVASIR_MINI / "splits.json").is_file():
        pytest.fail(f"bundled test data missing: {KVASIR_MINI}")
    return KVASIR_MINI


@pytest.fixture(scope="session")
def kvasir_full() -> Path:
    """The full 900-image Kvasir-SEG folder named by ``$QTSEG_KVASIR_DIR`` (``.ci/run`` sets it).

    Skipped when the variable is unset; a variable that names no dataset fails the test.
    """
    value = os.environ.get(KVASIR_ENV, "").strip()
    if not value:
        pytest.skip(f"needs the full Kvasir-SEG set: set {KVASIR_ENV}=/path/to/kvasir-seg")
    root = Path(value)
    if not (root / "images").is_dir() or not (root / "splits.json").is_file():
        pytest.fail(f"{KVASIR_ENV}={value} is not a Kvasir-SEG folder (images/, masks/, splits.json)")
    return root


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The bundled sample images + masks."""
    import qtseg

    return qtseg.SAMPLES_DIR


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial statistics so eval/train modes differ clearly."""
    gen = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
            mod.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            mod.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            mod.bias.data.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A random-weight qtseg-v2 checkpoint at 128x128, width 8 (fast on CPU)."""
    from qtseg.checkpoint import save_checkpoint
    from qtseg.models import create
    from qtseg.preprocess import PreprocessSpec

    torch.manual_seed(0)
    model = create("qtseg-v2", width=8, img_size=(128, 128)).eval()
    randomize_batchnorm(model)
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(out, model, PreprocessSpec(input_size=(128, 128)))
    return out
